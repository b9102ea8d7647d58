"""Every CLI input is validated before any action: one-line errors, no traceback, no writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aura_assets.cli import main

BAD_INPUTS = [
    (["checkpoints", "archive", "--day", "foo"], "--day"),
    (["checkpoints", "archive", "--day", "2026-13-01"], "--day"),
    (["checkpoints", "archive", "--keep-last", "-1"], "--keep-last"),
    (["checkpoints", "archive", "--max-age-days", "-2"], "--max-age-days"),
    (["checkpoints", "show", "t-1", "--limit", "0"], "--limit"),
    (["simulate", "--per-day", "-5"], "--per-day"),
    (["simulate", "--days", "0"], "--days"),
    (["simulate", "--malformed-rate", "2"], "--malformed-rate"),
    (["simulate", "--workflows", "-1"], "--workflows"),
    (["simulate", "--start", "2026-02-30"], "--start"),
    (["demo", "--days", "0"], "--days"),
    (["demo", "--malformed-rate", "-0.5"], "--malformed-rate"),
    (["branch", "publish", "x", "--tag-retention-days", "-3"], "--tag-retention-days"),
    (["tag", "create", "rel", "--retention-days", "0"], "--retention-days"),
]


@pytest.mark.parametrize(("args", "option"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_values_are_refused_before_anything_happens(
    args: list[str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "aura"
    monkeypatch.setenv("AURA_HOME", str(home))
    for name in ("AURA_PG_URL", "AURA_CATALOG_URI", "AURA_REDIS_URL", "AURA_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught error
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and option in lines[0]
    assert "Traceback" not in result.output
    assert not home.exists()  # no catalog, warehouse, Redis or checkpoint store was created
