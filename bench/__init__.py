"""Benchmarks: ``python -m bench NAME`` runs one, ``python -m bench`` runs all.

Each benchmark module ``bench/<name>.py`` defines ``main() -> None`` and prints JSON lines through
:func:`emit`, with ratios against a baseline measured in the same process.
"""

from __future__ import annotations

import json
import os
import sys

# Arrow's mimalloc pool hands freed pages back to the OS after a short delay, so a writer that
# runs right after another one that freed hundreds of megabytes pays page faults for memory the
# first one used (pyiceberg's raw append measured 0.7 s alone and 1.0-1.5 s interleaved with the
# other writers). Keeping freed pages lets every benchmark run on the same warm heap; it must be
# set before pyarrow loads, which is why it lives here. An explicit setting is left alone.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")


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
