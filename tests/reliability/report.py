"""Rewrite the figures table of RELIABILITY.md from a run's JSON lines.

Usage: ``python tests/reliability/report.py [--keep] FIGURES.jsonl [RELIABILITY.md]`` (``make
reliability`` runs the suite with ``AURA_RELIABILITY_OUT=FIGURES.jsonl``, then this). Only the
part between the ``figures:begin`` and ``figures:end`` markers is replaced; the promises and
their tests above it are written by hand. ``--keep`` keeps the rows of tests the figures file
does not mention (a run of some of the tests adds or updates their rows only).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def table(lines: list[dict[str, object]], kept: dict[str, str] | None = None) -> str:
    """The figures table: the latest line of each test, then ``kept`` rows of other tests."""
    rows = ["| test | scale | figures |", "| --- | --- | --- |"]
    by_name = dict(kept or {})
    for line in lines:
        shown = {k: v for k, v in line.items() if k not in ("test", "scale")}
        values = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in shown.items())
        name = str(line["test"])
        by_name[name] = f"| `{name}` | {line.get('scale')} | {values.replace('|', '/')} |"
    return "\n".join(rows + [row for _, row in sorted(by_name.items())])


def _rows(block: str) -> dict[str, str]:
    """The rows of an existing figures table, by test name."""
    found = (re.match(r"\| `([^`]+)` \|", line) for line in block.splitlines())
    return {m.group(1): m.string for m in found if m}


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    argv = [a for a in argv if a != "--keep"]
    source = Path(argv[0])
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[2] / "RELIABILITY.md"
    lines = [json.loads(x) for x in source.read_text().splitlines() if x.strip()]
    text = target.read_text()
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    kept = _rows(block) if keep else None
    target.write_text(f"{head}{BEGIN}\n{table(lines, kept)}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
