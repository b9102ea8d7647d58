"""`aura doctor`: every store checked; a dead one is named with the variable to fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import ROOT, dead_port, needs_redis_cluster

from aura_assets.cli import main
from aura_assets.instance import dagster_env, prepare_dagster_home
from lakehouse import Settings


def test_doctor_passes_on_the_embedded_defaults(in_aura_env: Settings) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    for store in ("catalog", "warehouse", "redis", "qdrant", "dagster storage", "duckdb"):
        assert any(line.startswith("ok") and store in line for line in result.output.splitlines())


def test_doctor_lists_the_vector_shards_and_names_the_process_holding_one(
    in_aura_env: Settings,
) -> None:
    if in_aura_env.qdrant_url:
        pytest.skip("AURA_QDRANT_URL is set: the embedded engine's shards are not used")
    from lakehouse.vectors import CollectionSpec, open_store

    spec = CollectionSpec(name="doctor_probe", vectors={"v": (4, "cosine")})
    with open_store(in_aura_env, spec):
        held = CliRunner().invoke(main, ["doctor"])
    free = CliRunner().invoke(main, ["doctor"])
    assert held.exit_code == 0 and free.exit_code == 0, held.output + free.output
    qdrant = [
        next(line for line in r.output.splitlines() if line.split()[1:2] == ["qdrant"])
        for r in (held, free)
    ]
    assert "held now: doctor_probe by" in qdrant[0] and str(os.getpid()) in qdrant[0]
    assert "doctor_probe" in qdrant[1] and "held now" not in qdrant[1]


@pytest.mark.slow
def test_doctor_names_dead_stores_and_their_variables(
    in_aura_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AURA_REDIS_URL", f"redis://:s3cretpw@127.0.0.1:{dead_port()}/0")
    monkeypatch.setenv("AURA_PG_URL", f"postgresql://aura:s3cretpw@127.0.0.1:{dead_port()}/aura")
    monkeypatch.delenv("AURA_CATALOG_URI", raising=False)
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    failed = {line.split()[1] for line in lines if line.startswith("FAIL")}
    assert {"redis", "postgres", "catalog"} <= failed, result.output
    assert "AURA_REDIS_URL" in result.output and "AURA_PG_URL" in result.output
    assert "s3cretpw" not in result.output
    assert "Traceback" not in result.output


@needs_redis_cluster
def test_doctor_and_config_show_the_redis_cluster(in_aura_env: Settings) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.split()[1] == "redis")
    assert line.startswith("ok") and "cluster_state:ok, 3 masters" in line, line
    shown = CliRunner().invoke(main, ["config"])
    assert shown.exit_code == 0 and "(Redis Cluster, from this node)" in shown.output, shown.output


@pytest.mark.process
def test_doctor_warns_when_default_automation_is_stopped(in_aura_env: Settings) -> None:
    """A stream sensor stopped in the instance, and no daemon: doctor says what to start."""
    prepare_dagster_home(in_aura_env)
    env = {**os.environ, **dagster_env(in_aura_env), "PYTHONPATH": str(ROOT)}
    stop = [sys.executable, "-m", "dagster", "sensor", "stop", "routing_stream_sensor"]
    done = subprocess.run(
        [*stop, "-w", "workspace.yaml"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output  # warnings, not failures
    warns = [line for line in result.output.splitlines() if line.startswith("WARN")]
    assert any(
        "routing_stream_sensor" in w and "dagster sensor start routing_stream_sensor" in w
        for w in warns
    ), result.output
    assert any("no Dagster daemon is running" in w and "aura ui" in w for w in warns), warns
    assert not any("memory_stream_sensor" in w for w in warns)  # still on by default
