"""Cold memories read by id: only the row groups of ``memories`` that can hold them.

``memories`` is partitioned by the day of ``created_at`` and written sorted by ``memory_id`` in
small row groups (:mod:`.tables`). :class:`ColdRows` keeps, per day, each row group's
``memory_id`` minimum and maximum (from the Parquet footers of the current snapshot's data
files, read once per snapshot); a lookup of ``(id, created_ms)`` pairs reads the row groups of
the ids' days whose range holds them, without the vector column (the caller has the vectors
from the vector index).

Invariants: rows come from data files of a committed snapshot and are checked by id after the
read. The index is rebuilt when an id is not found or a file it names is gone (compaction,
erase and key rotation rewrite whole days), so a stale index costs one rebuild, never a wrong
row; a snapshot with delete files (another engine's merge-on-read) is read through pyiceberg's
scan instead.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.expressions import In
from pyiceberg.table import Table

# Every column of ``memories`` but the vector (and the archive time, which reads never use).
COLUMNS = (
    "memory_id",
    "tenant_id",
    "content",
    "metadata",
    "importance",
    "created_at",
    "expires_at",
    "last_access",
    "signature",
)
_DAY_MS = 86_400_000
# Rows of recently read row groups a process keeps (content included: a few tens of MB).
CACHED_ROWS = 262_144


@dataclass
class _Day:
    """The row groups of one day partition, ordered by their smallest ``memory_id``."""

    mins: list[str] = field(default_factory=list)
    groups: list[tuple[str, str, str, int]] = field(default_factory=list)  # min, max, path, rg


@dataclass
class _Index:
    snapshot_id: int | None
    days: dict[int, _Day]
    footers: dict[str, Any]
    whole: bool  # False: the snapshot has delete files, read it through pyiceberg
    io: Any = None


class ColdRows:
    """Lookups by id into the current snapshot of ``memories`` (see the module docstring)."""

    def __init__(self, table: Callable[[], Table]) -> None:
        self._table = table
        self._index: _Index | None = None
        self._groups = _Groups()

    def lookup(self, wanted: Sequence[tuple[str, int]]) -> pa.Table:
        """The rows (:data:`COLUMNS`) of the ``(memory_id, created_ms)`` pairs the table holds."""
        if not wanted:
            return pa.table({"memory_id": pa.array([], pa.string())})
        for attempt in range(2):
            if self._index is None or attempt:
                self._index = self._build(self._index)
            index = self._index
            if not index.whole:
                return self._scan(index, [i for i, _ in wanted])
            try:
                rows = self._read(index, wanted)
            except (FileNotFoundError, OSError):
                continue  # a file of a snapshot since replaced: rebuild and retry
            if attempt or rows.num_rows >= len({i for i, _ in wanted}):
                return rows
        raise FileNotFoundError(
            "a data file of memories vanished twice while reading it; retry the search"
        )

    def forget(self) -> None:
        """Drop the index and the cached row groups (the next lookup rebuilds it): an erase or
        a key rotation in this process keeps no old row in memory."""
        self._index = None
        self._groups.clear()

    def _build(self, old: _Index | None) -> _Index:
        table = self._table()
        snapshot = table.current_snapshot()
        sid = None if snapshot is None else snapshot.snapshot_id
        if old is not None and old.snapshot_id == sid:
            return old
        days: dict[int, _Day] = {}
        footers: dict[str, Any] = {}
        whole = True
        tasks = list(table.scan(snapshot_id=sid).plan_files()) if sid is not None else []
        for task in tasks:
            if task.delete_files:
                whole = False
                break
            path = task.file.file_path
            with table.io.new_input(path).open() as stream:
                meta = pq.ParquetFile(stream).metadata
            footers[path] = meta
            day = days.setdefault(int(task.file.partition[0]), _Day())
            column = _column(meta, "memory_id")
            for rg in range(meta.num_row_groups):
                stats = meta.row_group(rg).column(column).statistics if column >= 0 else None
                lo, hi = "", "\U0010ffff"  # no statistics: the group may hold any id
                if stats is not None and stats.has_min_max:
                    lo, hi = str(stats.min), str(stats.max)
                day.groups.append((lo, hi, path, rg))
        for day in days.values():
            day.groups.sort()
            day.mins = [g[0] for g in day.groups]
        self._groups.keep_only(footers)
        return _Index(sid, days, footers, whole, table.io)

    def _read(self, index: _Index, wanted: Sequence[tuple[str, int]]) -> pa.Table:
        groups: dict[str, set[int]] = {}
        for memory_id, created_ms in wanted:
            day = index.days.get(created_ms // _DAY_MS)
            if day is None:
                continue
            for lo, hi, path, rg in day.groups[: bisect.bisect_right(day.mins, memory_id)]:
                if lo <= memory_id <= hi:
                    groups.setdefault(path, set()).add(rg)
        ids = pa.array(sorted({i for i, _ in wanted}), pa.string())
        parts = []
        for path, rgs in groups.items():
            tables = self._groups.read(index, path, sorted(rgs))
            parts += [t.filter(pc.is_in(t.column("memory_id"), value_set=ids)) for t in tables]
        if not parts:
            return pa.table({"memory_id": pa.array([], pa.string())})
        return pa.concat_tables(parts, promote_options="permissive")

    def _scan(self, index: _Index, ids: list[str]) -> pa.Table:
        table = self._table()
        scan = table.scan(
            row_filter=In("memory_id", sorted(set(ids))),
            selected_fields=COLUMNS,
            snapshot_id=index.snapshot_id,
        )
        return scan.to_arrow()


class _Groups(OrderedDict[tuple[str, int], pa.Table]):
    """Row groups read lately (:data:`COLUMNS`), least recently used first, at most
    :data:`CACHED_ROWS` rows.

    A data file never changes once written (a rewrite makes a new file), so a cached group is
    that group for as long as its file exists: a group is served only while its file is still
    there (one existence check per file and lookup), else the lookup rebuilds the index, which
    drops the groups of files the current snapshot no longer holds."""

    rows = 0

    def read(self, index: _Index, path: str, rgs: list[int]) -> list[pa.Table]:
        """Row groups ``rgs`` of ``path``: the cached ones, the others read in one call."""
        missing = [rg for rg in rgs if (path, rg) not in self]
        if len(missing) < len(rgs) and not index.io.new_input(path).exists():
            raise FileNotFoundError(path)  # rewritten meanwhile (erase, rotation): rebuild
        fresh: dict[int, pa.Table] = {}
        if missing:
            meta = index.footers[path]
            with index.io.new_input(path).open() as stream:
                found = pq.ParquetFile(stream, metadata=meta).read_row_groups(
                    missing, columns=list(COLUMNS)
                )
            at = 0
            for rg in missing:
                n = meta.row_group(rg).num_rows
                fresh[rg] = found.slice(at, n)
                at += n
        out = []
        for rg in rgs:  # every group answered before any is evicted
            if rg not in fresh:
                self.move_to_end((path, rg))
            out.append(fresh[rg] if rg in fresh else self[(path, rg)])
        for rg, group in fresh.items():
            self._put((path, rg), group)
        return out

    def _put(self, key: tuple[str, int], group: pa.Table) -> None:
        self[key] = group
        self.rows += group.num_rows
        while self.rows > CACHED_ROWS and len(self) > 1:
            _, old = self.popitem(last=False)
            self.rows -= old.num_rows

    def keep_only(self, paths: Mapping[str, Any]) -> None:
        """Drop the groups of files not in ``paths``."""
        for key in [k for k in self if k[0] not in paths]:
            self.rows -= self.pop(key).num_rows

    def clear(self) -> None:
        super().clear()
        self.rows = 0


def _column(meta: Any, name: str) -> int:
    """The position of a top-level column in a Parquet file's row groups, or -1."""
    if meta.num_row_groups == 0:
        return -1
    group = meta.row_group(0)
    for i in range(group.num_columns):
        if group.column(i).path_in_schema == name:
            return i
    return -1
