"""``aura memory``: store, get, search, forget with its receipt, compact."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aura_assets.cli import main
from lakehouse import Settings


@pytest.mark.slow
def test_cli_round_trip(in_aura_env: Settings) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["memory", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    mid = run("store", "acme", "the user prefers tea", "--meta", '{"kind": "pref"}').strip()
    other = run("store", "beta", "beta prefers coffee").strip()
    shown = json.loads(run("get", "acme", mid))
    assert shown["content"] == "the user prefers tea" and shown["tier"] == "hot"
    hits = [json.loads(line) for line in run("search", "acme", "tea", "-k", "3").splitlines()]
    assert [h["id"] for h in hits] == [mid]  # beta's memory never shows up for acme
    denied = runner.invoke(main, ["memory", "get", "acme", other])
    assert denied.exit_code == 1 and "no live memory" in denied.output
    report = json.loads(run("compact", "--hot-max-age-minutes", "0"))
    assert report["report"]["hot_to_warm"] == 2 and report["after"]["warm"] == 2
    receipt = json.loads(run("forget", "acme", mid))
    assert receipt["memory_ids"] == [mid] and receipt["qdrant_points_deleted"] == 1
    gone = runner.invoke(main, ["memory", "get", "acme", mid])
    assert gone.exit_code == 1
    bad = runner.invoke(main, ["memory", "store", "acme", "x", "--meta", "[1]"])
    assert bad.exit_code == 2 and "JSON object" in bad.output
