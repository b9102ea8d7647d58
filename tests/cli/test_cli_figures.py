"""Figures and labels the CLI and the UI show are true: the archive's bytes compare like with
like, and the hot store is labelled with the database it really is."""

import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from aura_assets.checkpoints.assets import WORKFLOWS, hot_store_kind
from aura_assets.cli import main
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import AuraCheckpointSaver, archive_checkpoints
from lakehouse.simulate.agents import run_workflows


@pytest.mark.slow
def test_archive_bytes_compare_what_was_added(in_aura_env: Settings) -> None:
    report = run_workflows(in_aura_env, 2, 7, prefix="figures")
    try:
        runner = CliRunner()
        first = runner.invoke(main, ["checkpoints", "archive"], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        found = re.search(r"\((\d+) bytes in Iceberg for (\d+) raw bytes\)", first.output)
        assert found, first.output
        archived, raw = int(found[1]), int(found[2])
        assert archived > 0 and raw > 0
        again = runner.invoke(main, ["checkpoints", "archive"], catch_exceptions=False)
        assert again.exit_code == 0, again.output
        assert "nothing new: the day's checkpoints were already archived" in again.output
        with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
            result = archive_checkpoints(Lakehouse(in_aura_env), saver, datetime.now(UTC).date())
        assert (result.checkpoints, result.raw_bytes, result.archive_bytes) == (0, 0, 0)
    finally:
        with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
            for thread_id in report.thread_ids:
                saver.delete_thread(thread_id)


def test_hot_store_is_labelled_with_its_database(settings: Settings) -> None:
    kind = hot_store_kind(settings)
    assert kind == ("postgres" if settings.pg_url else "sqlite")
    assert hot_store_kind(Settings.from_env({"AURA_HOME": str(settings.home)})) == "sqlite"
    url = "postgresql://aura@db:5432/aura"
    assert hot_store_kind(Settings.from_env({"AURA_HOME": "x", "AURA_PG_URL": url})) == "postgres"
    # The code location's spec shows the store of the environment it was loaded in.
    assert hot_store_kind(Settings.from_env()) in WORKFLOWS.kinds
    assert {"postgres", "sqlite"} & set(WORKFLOWS.kinds) == {hot_store_kind(Settings.from_env())}
