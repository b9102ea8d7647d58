"""``aura maintain`` and ``aura history`` on a real lakehouse."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import TABLE

from aura_assets.cli import main
from lakehouse import Lakehouse
from lakehouse.table import refs


@pytest.mark.slow
def test_maintain_dry_run_then_for_real(in_aura_env, small_files: Lakehouse) -> None:  # type: ignore[no-untyped-def]
    lh = small_files
    head = refs.head(lh.table(TABLE))
    runner = CliRunner()

    dry = runner.invoke(main, ["maintain", TABLE, "--dry-run", "--orphan-grace", "1h"])
    assert dry.exit_code == 0, dry.output
    assert "2 partition(s), 12 small file(s) to rewrite" in dry.output
    assert refs.head(lh.table(TABLE)) == head

    history = runner.invoke(main, ["history", TABLE])
    assert history.exit_code == 0, history.output
    assert history.output.count("ingest") == 12 and "run-5" in history.output

    real = runner.invoke(main, ["maintain", TABLE, "--older-than", "0", "--retain-last", "1"])
    assert real.exit_code == 0, real.output
    assert "12 small file(s) -> 2 file(s)" in real.output
    assert "live files 12 -> 2" in real.output
    assert lh.read(TABLE).num_rows == 240

    history = runner.invoke(main, ["history", TABLE])  # the ingest snapshots were expired
    assert history.exit_code == 0, history.output
    assert history.output.count("overwrite/compact  table_maintenance") == 1  # retain_last 1

    bad = runner.invoke(main, ["maintain", TABLE, "--orphan-grace", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
    missing = runner.invoke(main, ["history", TABLE, "--ref", "nope"])
    assert missing.exit_code == 1 and "no branch or tag 'nope'" in missing.output
