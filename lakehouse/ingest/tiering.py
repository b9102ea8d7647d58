"""Hot → cold tiering: copy rows from a hot store into an Iceberg table, verify, then trim.

A *hot store* (a SQL table, Redis, Qdrant, ...) holds recent rows for fast access; the *cold*
table is an Iceberg table partitioned by day of its time column and keyed by ``spec.key``. The
hot store is reached only through the small :class:`HotStore` protocol, so every tier (workflow
checkpoints, memory tiers) reuses one mechanism:

1. **copy**: the hot store's candidate rows are merged into their cold day partitions (rows the
   partition already holds, by key, are kept as they are), one commit per day;
2. **verify**: the keys are read back from the committed snapshot;
3. **trim**: only keys the cold table verifiably holds are deleted from the hot store.

Invariants: a hot row is deleted only after a committed cold snapshot was read back holding its
key; copying is idempotent, so a crash between the cold commit and the trim loses nothing and the
re-run (copy adds nothing, verify passes) finishes the trim. Reads go through the cold table by
key or filter (:meth:`Tiering.lookup`, :meth:`Tiering.read`); :meth:`Tiering.restore` copies cold
rows back into a hot store that can take them (:class:`RestorableHotStore`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, In

from lakehouse.exceptions import AuraError
from lakehouse.table import writer
from lakehouse.table.writer import Lineage

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

Key = tuple[Any, ...]


@runtime_checkable
class HotStore(Protocol):
    """What tiering needs from a hot store; rows are Arrow, keyed by the cold table's key."""

    def candidates(
        self, *, day: date | None = None, older_than: datetime | None = None
    ) -> pa.Table:
        """Rows to tier: those of ``day`` (UTC) and/or older than ``older_than``.

        The table carries the cold table's key columns and its time column (other columns of
        the cold schema as the store has them).
        """
        ...

    def delete(self, keys: Sequence[Key]) -> int:
        """Delete the rows with these keys; returns how many were deleted."""
        ...

    def count(self) -> int:
        """Rows the hot store holds."""
        ...


@runtime_checkable
class RestorableHotStore(HotStore, Protocol):
    """A hot store that cold rows can be copied back into."""

    def insert(self, rows: pa.Table) -> int:
        """Insert rows (in the cold schema), keeping rows whose key is already hot."""
        ...


@dataclass(frozen=True)
class TierMerge:
    """One day partition merge: rows added, bytes of the files written, the commit's snapshot."""

    day: date
    added: int
    bytes: int = 0
    snapshot_id: int | None = None


@dataclass(frozen=True)
class TierTrim:
    """A trim: keys asked for, keys deleted from the hot store, keys the cold table lacked."""

    requested: int
    trimmed: int
    not_in_cold: int


@dataclass(frozen=True)
class TierResult:
    """One tiering pass: the candidates, what each day's merge added, and the trim."""

    candidates: int
    merges: list[TierMerge] = field(default_factory=list)
    trim: TierTrim | None = None

    @property
    def added(self) -> int:
        return sum(m.added for m in self.merges)


def keys_of(rows: pa.Table, key: Sequence[str]) -> list[Key]:
    """The key tuples of ``rows`` in row order."""
    if rows.num_rows == 0:
        return []
    return list(zip(*(rows.column(k).to_pylist() for k in key), strict=True))


def merge_into_day(
    lakehouse: Lakehouse, name: str, rows: pa.Table, day: date, lineage: Lineage
) -> TierMerge:
    """Add the ``rows`` missing (by key) from the day partition of ``name`` in one commit.

    The single merge call site of tiering (and so of the checkpoint archive): ``writer.merge_day``,
    which re-reads the day after a lost race instead of committing a stale merge.
    """
    if rows.num_rows == 0:
        return TierMerge(day, 0)
    spec = lakehouse.spec(name)
    merged = writer.merge_day(spec, lakehouse, rows, day, lineage, lakehouse.settings.branch)
    if merged.write is None:
        return TierMerge(day, 0)
    snapshot_id = merged.write.snapshot_id
    snapshot = lakehouse.table(name).snapshot_by_id(snapshot_id) if snapshot_id else None
    size = int(snapshot.summary.get("added-files-size", 0)) if snapshot and snapshot.summary else 0
    return TierMerge(day, merged.added, size, snapshot_id)


class Tiering:
    """Tier one hot store into one cold Iceberg table (keyed, partitioned by day).

    Example:
        >>> tiers = Tiering(Lakehouse(), "agent_memories", redis_store, asset="memory_tiering")
        >>> tiers.tier(older_than=datetime.now(UTC) - timedelta(days=7))
        >>> tiers.lookup([("agent-1", "m-42")])
    """

    def __init__(
        self,
        lakehouse: Lakehouse,
        table: str,
        hot: HotStore,
        *,
        asset: str | None = None,
    ) -> None:
        self.lakehouse = lakehouse
        self.spec = lakehouse.spec(table)
        self.name = self.spec.name
        self.hot = hot
        self.asset = asset or self.name
        if not self.spec.key:
            raise AuraError(f"table {self.name!r} has no key: tiering needs one to verify rows")
        if not getattr(self.spec, "time_column", None):
            raise AuraError(
                f"table {self.name!r} has no time column: tiering merges rows into day "
                "partitions, so give the spec a time_column"
            )

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.spec.key)

    # ------------------------------------------------------------------------------- copy

    def copy(self, rows: pa.Table, *, run_id: str | None = None) -> list[TierMerge]:
        """Merge ``rows`` into their day partitions of the cold table (one commit per day)."""
        if rows.num_rows == 0:
            return []
        time_column = self.spec.time_column
        days = pc.cast(
            pc.cast(rows.column(time_column), pa.timestamp("us", tz="UTC")), pa.date32()
        ).to_pylist()
        results = []
        for day in sorted(set(days)):
            mask = pa.array([d == day for d in days], pa.bool_())
            lineage = Lineage(asset=self.asset, partition=day.isoformat(), run_id=run_id)
            part = rows.filter(mask).select(self.spec.arrow_schema.names)
            results.append(
                merge_into_day(
                    self.lakehouse, self.name, part.cast(self.spec.arrow_schema), day, lineage
                )
            )
        return results

    # ----------------------------------------------------------------------------- verify

    def held(self, keys: Iterable[Key], *, snapshot_id: int | None = None) -> set[Key]:
        """The ``keys`` a committed cold snapshot holds (the current one by default)."""
        wanted = set(keys)
        if not wanted:
            return set()
        table = self.lakehouse.table(self.name)
        if snapshot_id is None:
            current = table.current_snapshot()
            if current is None:
                return set()
            snapshot_id = current.snapshot_id
        found = table.scan(
            row_filter=self._key_filter(wanted),
            selected_fields=self.key,
            snapshot_id=snapshot_id,
        ).to_arrow()
        return wanted & set(keys_of(found, self.key))

    def _key_filter(self, keys: set[Key]) -> BooleanExpression:
        expr: BooleanExpression = AlwaysTrue()
        for i, column in enumerate(self.key):
            values = sorted({k[i] for k in keys}, key=repr)
            clause = In(column, values)
            expr = clause if i == 0 else And(expr, clause)
        return expr

    # ------------------------------------------------------------------------------- trim

    def trim(self, keys: Sequence[Key]) -> TierTrim:
        """Delete from the hot store the ``keys`` the committed cold table holds; keep the rest."""
        wanted = list(dict.fromkeys(keys))
        held = self.held(wanted)
        safe = [k for k in wanted if k in held]
        trimmed = self.hot.delete(safe) if safe else 0
        return TierTrim(len(wanted), trimmed, len(wanted) - len(safe))

    # ------------------------------------------------------------------------------- tier

    def tier(
        self,
        *,
        day: date | None = None,
        older_than: datetime | None = None,
        run_id: str | None = None,
        trim: bool = True,
    ) -> TierResult:
        """Copy the hot store's candidates to cold, verify each commit, then trim the hot store.

        Safe to re-run after a crash at any point: rows already cold are not written again, and
        hot rows are deleted only once read back from a committed cold snapshot.
        """
        if day is None and older_than is None:
            raise AuraError("say which rows to tier: pass day=..., older_than=... or both")
        rows = self.hot.candidates(day=day, older_than=older_than)
        merges = self.copy(rows, run_id=run_id)
        if not trim or rows.num_rows == 0:
            return TierResult(rows.num_rows, merges)
        keys = keys_of(rows, self.key)
        # Read back from the newest commit this pass made (it includes the earlier days' ones).
        snapshot_ids = [m.snapshot_id for m in merges if m.snapshot_id is not None]
        held = self.held(keys, snapshot_id=snapshot_ids[-1] if snapshot_ids else None)
        safe = [k for k in dict.fromkeys(keys) if k in held]
        trimmed = self.hot.delete(safe) if safe else 0
        return TierResult(
            rows.num_rows, merges, TierTrim(len(set(keys)), trimmed, len(set(keys)) - len(safe))
        )

    # ------------------------------------------------------------------------ read-through

    def read(
        self, row_filter: BooleanExpression | None = None, fields: Sequence[str] = ("*",)
    ) -> pa.Table:
        """Cold rows matching ``row_filter`` (all rows without one)."""
        table = self.lakehouse.table(self.name)
        if table.current_snapshot() is None:
            schema = self.spec.arrow_schema
            if tuple(fields) == ("*",):
                return schema.empty_table()
            return pa.schema([schema.field(f) for f in fields]).empty_table()
        return table.scan(
            row_filter=row_filter if row_filter is not None else AlwaysTrue(),
            selected_fields=tuple(fields),
        ).to_arrow()

    def lookup(self, keys: Iterable[Key]) -> pa.Table:
        """Cold rows with these keys."""
        wanted = set(keys)
        if not wanted:
            return self.spec.arrow_schema.empty_table()
        rows = self.read(self._key_filter(wanted))
        mask = [k in wanted for k in keys_of(rows, self.key)]
        return rows.filter(pa.array(mask, pa.bool_()))

    # ---------------------------------------------------------------------------- restore

    def restore(
        self,
        row_filter: BooleanExpression | None = None,
        *,
        into: RestorableHotStore | None = None,
    ) -> int:
        """Copy cold rows matching ``row_filter`` into ``into`` (default: this hot store)."""
        target = into if into is not None else self.hot
        if not isinstance(target, RestorableHotStore):
            raise AuraError(
                f"{type(target).__name__} cannot take restored rows: give it an insert(rows) "
                "method (see lakehouse.ingest.tiering.RestorableHotStore)"
            )
        rows = self.read(row_filter)
        return target.insert(rows) if rows.num_rows else 0
