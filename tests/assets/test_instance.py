"""The Dagster instance: storage migrated once under concurrency, run monitoring configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, asset, materialize
from helpers import ROOT

from aura_assets.instance import instance_yaml, open_instance
from lakehouse import Settings

USE_INSTANCE = """
from aura_assets.instance import open_instance
from lakehouse import Settings
instance = open_instance(Settings.from_env())
instance.get_runs(limit=1)
instance.dispose()
"""


@pytest.mark.process
def test_concurrent_first_use_of_a_fresh_home_then_runs_succeed(
    in_aura_env: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen([sys.executable, "-c", USE_INSTANCE], env=env, cwd=tmp_path)
        for _ in range(6)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0] * 6

    @asset
    def one() -> int:
        return 1

    instance: DagsterInstance = open_instance(in_aura_env)
    try:
        runs = [materialize([one], instance=instance) for _ in range(2)]
        assert all(run.success for run in runs)
        for run in runs:  # recorded in the storage (shared by other tests on the server pass)
            stored = instance.get_run_by_id(run.run_id)
            assert stored is not None and stored.is_success
        if not in_aura_env.dagster_pg_url:  # one alembic head in every SQLite storage file
            import sqlite3

            for db in in_aura_env.dagster_home.rglob("*.db"):
                with sqlite3.connect(db) as con:
                    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
                    if "alembic_version" in tables:
                        heads = con.execute("SELECT count(*) FROM alembic_version").fetchone()
                        assert heads == (1,), db
    finally:
        instance.dispose()


def test_run_monitoring_fails_dead_runs(tmp_path: Path) -> None:
    config = yaml.safe_load(instance_yaml(Settings.from_env({"AURA_HOME": str(tmp_path)})))
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["start_timeout_seconds"] <= 300
    assert monitoring["max_runtime_seconds"] <= 4 * 3600
    assert monitoring["max_resume_run_attempts"] == 0
    settings = Settings.from_env({"AURA_HOME": str(tmp_path)})
    instance = open_instance(settings)
    try:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == monitoring["max_runtime_seconds"]
    finally:
        instance.dispose()
