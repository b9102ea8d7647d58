"""``python -m bench growth`` at tiny sizes: one line per path, with the contract's fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.growth import PATHS, sizes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(1800)  # 16 fresh interpreters; minutes on a loaded 2-core machine
def test_growth_lines_name_every_path_with_sizes_seconds_rss_and_worst_step() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AURA_BENCH_GROWTH_SCALE": "0.002",
        "AURA_BENCH_GROWTH_MAX": "10",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench", "growth"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["name"] for line in lines] == [f"growth.{p}" for p in PATHS]
    for line in lines:
        n = len(line["sizes"])
        assert n == 2, line
        assert line["sizes"][1] == 10 * line["sizes"][0], line
        assert len(line["seconds"]) == len(line["peak_rss_mb"]) == n
        assert all(s > 0 for s in line["seconds"])
        assert all(m > 0 for m in line["peak_rss_mb"])
        assert line["worst_step_ratio"] == max(line["step_ratios"]) > 0
    # one progress line per size on stderr
    progress = [x for x in done.stderr.splitlines() if x.startswith("growth.")]
    assert len(progress) == 2 * len(PATHS)


def test_sizes_step_by_ten_and_obey_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AURA_BENCH_GROWTH_SCALE", raising=False)
    monkeypatch.delenv("AURA_BENCH_GROWTH_MAX", raising=False)
    monkeypatch.setenv("AURA_BENCH_MEMORY_N", "100000")
    assert sizes("ingest") == [100_000, 1_000_000, 10_000_000]
    assert sizes("compaction") == [100, 1_000, 10_000]
    assert sizes("memory_search") == [10_000, 100_000]
    monkeypatch.setenv("AURA_BENCH_GROWTH_MAX", "10")
    assert sizes("ingest") == [100_000, 1_000_000]
