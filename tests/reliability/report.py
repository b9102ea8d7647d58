"""Rewrite the figures table of RELIABILITY.md from a run's JSON lines.

Usage: ``python tests/reliability/report.py FIGURES.jsonl [RELIABILITY.md]`` (``make
reliability`` runs the suite with ``AURA_RELIABILITY_OUT=FIGURES.jsonl``, then this). Only the
part between the ``figures:begin`` and ``figures:end`` markers is replaced; the promises and
their tests above it are written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def table(lines: list[dict[str, object]]) -> str:
    rows = ["| test | scale | figures |", "| --- | --- | --- |"]
    latest: dict[str, dict[str, object]] = {}
    for line in lines:
        latest[str(line["test"])] = line
    for name, line in sorted(latest.items()):
        shown = {k: v for k, v in line.items() if k not in ("test", "scale")}
        values = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in shown.items())
        rows.append(f"| `{name}` | {line.get('scale')} | {values.replace('|', '/')} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    source = Path(argv[0])
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[2] / "RELIABILITY.md"
    lines = [json.loads(x) for x in source.read_text().splitlines() if x.strip()]
    text = target.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    target.write_text(f"{head}{BEGIN}\n{table(lines)}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
