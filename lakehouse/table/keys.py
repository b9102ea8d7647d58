"""Keys unique across a whole table: replays recognised, conflicting duplicates refused.

:func:`lakehouse.table.writer.merge_day` keeps a key unique inside its day partition. An event can
also come back on another day (a producer replaying its log: same key, same content) or a key
can be reused with other content (a producer bug, or an attack). :func:`split_known` looks the
incoming keys up in every partition of the table at one snapshot and in the batch itself:

* a key not stored anywhere and first in the batch is **fresh** (to be written);
* a key stored (or earlier in the batch) with equal content is a **replay** (not written again,
  acknowledged);
* a key stored (or earlier in the batch) with other content is a **conflict**: the caller makes
  it a dead letter with the reason, so the first stored version is kept and the difference is
  never silent.

Cost: one scan of the key column of the whole table, then a scan of the content of the stored
keys the batch repeats (none in the common case). ``python -m bench keys`` measures it against
the day merge the ingestion runs anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import In
from pyiceberg.table import Table

from lakehouse.table.registry import TableSpec

_SCAN_CHUNK = 1_000  # stored keys per content scan


@dataclass
class KeySplit:
    """Row indices of an incoming batch, split by what the table already holds."""

    fresh: list[int] = field(default_factory=list)
    replays: list[int] = field(default_factory=list)
    conflicts: dict[int, str] = field(default_factory=dict)  # row index -> reason


def split_known(
    spec: TableSpec,
    table: Table,
    incoming: pa.Table,
    snapshot_id: int | None,
    *,
    compare: Sequence[str],
) -> KeySplit:
    """Split ``incoming`` rows into fresh, replayed and conflicting keys (see the module doc).

    Args:
        spec: the table's spec; its key must be one column.
        table: the Iceberg table.
        incoming: rows in the table's schema.
        snapshot_id: the snapshot to look keys up in (None: an empty table).
        compare: the columns whose equality makes a repeated key a replay.
    """
    if len(spec.key) != 1:
        raise ValueError(f"split_known needs a one-column key, {spec.name} has {spec.key}")
    key = spec.key[0]
    columns = (key, *compare)
    rows = incoming.select(list(columns)).to_pylist()
    stored = _stored(table, key, columns, [r[key] for r in rows], snapshot_id)
    seen: dict[Any, dict[str, Any]] = {}
    split = KeySplit()
    for i, row in enumerate(rows):
        k = row[key]
        before = stored.get(k)
        where = "stored before"
        if before is None:
            before, where = seen.get(k), "earlier in the same batch"
        if before is None:
            seen[k] = row
            split.fresh.append(i)
            continue
        differs = [c for c in compare if before[c] != row[c]]
        if not differs:
            split.replays.append(i)
            continue
        when = ""
        time_column = spec.time_column
        if time_column in compare and before.get(time_column or "") is not None:
            when = f" ({time_column} {before[time_column or ''].isoformat()})"
        split.conflicts[i] = (
            f"conflicting duplicate: {key} {k!r} was {where}{when} with other content "
            f"(differs in {', '.join(differs)}); the first version is kept"
        )
    return split


def _stored(
    table: Table,
    key: str,
    columns: tuple[str, ...],
    keys: list[Any],
    snapshot_id: int | None,
) -> dict[Any, dict[str, Any]]:
    if snapshot_id is None or not keys:
        return {}
    # Stage 1: the key column alone (no row filter: pyiceberg evaluates a large IN slowly).
    stored_keys = table.scan(selected_fields=(key,), snapshot_id=snapshot_id).to_arrow()
    column = stored_keys.column(key)
    wanted = pa.array(sorted(set(keys)), type=column.type)
    hits = pc.unique(column.filter(pc.is_in(column, value_set=wanted))).to_pylist()
    # Stage 2: the content of the few stored keys that are in the batch.
    found: dict[Any, dict[str, Any]] = {}
    for start in range(0, len(hits), _SCAN_CHUNK):
        chunk = set(hits[start : start + _SCAN_CHUNK])
        scan = table.scan(
            row_filter=In(key, chunk), selected_fields=columns, snapshot_id=snapshot_id
        )
        for row in scan.to_arrow().to_pylist():
            found.setdefault(row[key], row)
    return found
