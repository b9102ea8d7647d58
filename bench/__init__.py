"""Benchmarks: ``python -m bench NAME`` runs one, ``python -m bench`` runs all.

Each benchmark module ``bench/<name>.py`` defines ``main() -> None`` and prints JSON lines through
:func:`emit`, with ratios against a baseline measured in the same process.
"""

from __future__ import annotations

import json
import sys


def emit(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
    **extra: object,
) -> None:
    """Print one result line; ``ratio`` is ``value / baseline`` when a baseline is given."""
    line: dict[str, object] = {"name": name, "value": round(value, 6), "unit": unit}
    if baseline is not None:
        line["baseline"] = round(baseline, 6)
        if baseline_name:
            line["baseline_name"] = baseline_name
        line["ratio"] = round(value / baseline, 4) if baseline else None
    line.update(extra)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
