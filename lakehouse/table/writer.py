"""Writes to aura tables: append, idempotent day-partition overwrite and keyed day merge.

Every snapshot carries who wrote it (``aura.asset``, ``aura.partition``, ``aura.run-id``,
``aura.code-version``) in its summary. Commits that lose a race against another writer are
retried on a refreshed table by one :class:`~lakehouse.table.retry.RetryPolicy`; a failed write
leaves
the previous snapshot untouched because Iceberg commits are atomic.

Invariant of :func:`merge_day`: a merge is committed only against the head it was computed
from (the overwrite asserts that head), and after a lost race the day is read again and merged
again, so a merge computed from a stale read is never committed. Appends and whole-day
overwrites do not depend on what they read and are simply retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.io.pyarrow import bin_pack_arrow_table, pyarrow_to_schema, write_file
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, TableProperties, WriteTask
from pyiceberg.table.snapshots import Operation
from pyiceberg.transforms import DayTransform
from pyiceberg.utils.properties import property_as_int

from lakehouse.exceptions import CommitConflictError, ValidationError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table import refs
from lakehouse.table.registry import TableSpec, evolve_schema
from lakehouse.table.retry import DEFAULT, NO_RETRY, RetryPolicy


class TableSource(Protocol):
    """Anything that opens an aura table by name (a :class:`~lakehouse.core.Lakehouse`)."""

    def table(self, name: str) -> Table: ...


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lineage:
    """Who wrote a snapshot; stored in the snapshot summary."""

    asset: str | None = None
    partition: str | None = None
    run_id: str | None = None
    code_version: str | None = None

    def properties(self) -> dict[str, str]:
        """Snapshot summary properties; ``aura.commit`` groups the snapshots of one commit."""
        props = {
            "aura.commit": uuid.uuid4().hex,
            "aura.asset": self.asset,
            "aura.partition": self.partition,
            "aura.run-id": self.run_id,
            "aura.code-version": self.code_version,
        }
        return {k: v for k, v in props.items() if v}


@dataclass(frozen=True)
class WriteResult:
    """Outcome of one committed write."""

    table: str
    branch: str
    rows: int
    snapshot_id: int | None
    operation: str


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC half-open interval ``[day, day + 1)``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_filter(spec: TableSpec, day: date) -> BooleanExpression:
    return time_filter(spec, *day_bounds(day))


def time_filter(spec: TableSpec, start: datetime, end: datetime) -> BooleanExpression:
    """Rows whose event time lies in ``[start, end)``.

    Raises:
        ConfigurationError: the table is unpartitioned (it has no time column).
    """
    column = spec.require_time_column("time window or day partitions")
    return And(
        GreaterThanOrEqual(column, start.isoformat()),
        LessThan(column, end.isoformat()),
    )


def conform(spec: TableSpec, table: Table, data: pa.Table) -> pa.Table:
    """Align ``data`` to the table's current schema: order, types and required columns.

    New columns in ``data`` are added to the table first (additive schema evolution).

    Raises:
        ValidationError: a required column is missing or holds nulls, or a type cannot be cast.
    """
    target = table.schema().as_arrow()
    extra = [f for f in data.schema if f.name not in target.names]
    if extra:
        evolve_schema(table, pa.schema(extra))
        table.refresh()
        target = table.schema().as_arrow()
    columns = []
    for field in target:
        if field.name not in data.column_names:
            if not field.nullable:
                raise ValidationError(
                    f"{spec.name}: required column {field.name!r} is missing from the data"
                )
            columns.append(pa.nulls(data.num_rows, field.type))
            continue
        column = data.column(field.name)
        if not field.nullable and column.null_count:
            raise ValidationError(
                f"{spec.name}: required column {field.name!r} has {column.null_count} null(s)"
            )
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValidationError(
                    f"{spec.name}: column {field.name!r} of type {column.type} cannot be stored "
                    f"as {field.type}: {exc}"
                ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=target)


def check_within_day(spec: TableSpec, data: pa.Table, day: date) -> None:
    """Refuse rows whose event time falls outside ``day`` (they belong to another partition)."""
    time_column = spec.require_time_column("day partitions")
    if data.num_rows == 0:
        return
    start, end = day_bounds(day)
    ts = data.column(time_column)
    outside = pc.sum(
        pc.or_(
            pc.less(ts, pa.scalar(start, ts.type)), pc.greater_equal(ts, pa.scalar(end, ts.type))
        )
    ).as_py()
    if outside:
        raise ValidationError(
            f"{spec.name}: {outside} row(s) have {spec.time_column} outside partition {day}; "
            "write each day's rows to its own partition"
        )


def _commit(table: Table, commit: Callable[[], object], what: str, policy: RetryPolicy) -> None:
    """Run ``commit`` under ``policy``, refreshing the table after each lost race."""

    def attempt() -> None:
        refs.as_commit_conflict(commit)  # another branch's commit is a race too

    policy.run(attempt, on_conflict=table.refresh, what=f"{what} on {table.name()}")


def append(
    spec: TableSpec,
    table: Table,
    data: pa.Table,
    lineage: Lineage,
    branch: str = MAIN_BRANCH,
    policy: RetryPolicy = DEFAULT,
) -> WriteResult:
    """Append ``data`` as one snapshot on ``branch`` (a missing branch starts from main)."""
    rows = conform(spec, table, data)
    refs.ensure_branch(table, branch)
    _commit(
        table,
        lambda: table.append(rows, snapshot_properties=lineage.properties(), branch=branch),
        "append",
        policy,
    )
    return WriteResult(spec.name, branch, rows.num_rows, refs.head(table, branch), "append")


def overwrite_day(
    spec: TableSpec,
    table: Table,
    data: pa.Table,
    day: date,
    lineage: Lineage,
    branch: str = MAIN_BRANCH,
    policy: RetryPolicy = DEFAULT,
) -> WriteResult:
    """Replace the rows of ``day`` with ``data`` in one atomic commit (idempotent re-writes)."""
    rows = conform(spec, table, data)
    check_within_day(spec, rows, day)
    if spec.sort_by:
        rows = rows.sort_by([(column, "ascending") for column in spec.sort_by])
    refs.ensure_branch(table, branch)
    predicate = day_filter(spec, day)

    def commit() -> None:
        props = lineage.properties()
        head = table.snapshot_by_name(branch)
        day_files = head is not None and any(
            True
            for _ in table.scan(row_filter=predicate, snapshot_id=head.snapshot_id).plan_files()
        )
        # An empty day is a plain append, guarded by the same head assertion on commit.
        _write_one_partition(table, rows, props, branch, replace=predicate if day_files else None)

    _commit(table, commit, "overwrite", policy)
    return WriteResult(spec.name, branch, rows.num_rows, refs.head(table, branch), "overwrite")


def _write_one_partition(
    table: Table,
    rows: pa.Table,
    props: dict[str, str],
    branch: str,
    *,
    replace: BooleanExpression | None,
) -> None:
    """Commit ``rows`` (all of one partition) to ``branch``, replacing ``replace`` first.

    pyiceberg's ``append``/``overwrite`` find the partitions of a batch by filtering and copying
    every row once per partition value (about 140 ms for a million rows). A day write already
    holds a single day: when the spec's partition value of the batch's earliest and latest row
    agree (a day transform is monotonic, so then every row has it) the rows are written as they
    are under that partition key, and committed through the same transaction steps as
    ``Transaction.overwrite`` (a delete of ``replace``, then a fast append). Anything else
    (nulls, several partitions, other specs, merge-appends) takes pyiceberg's own path.
    """
    key = _single_partition_key(table, rows)
    merging = table.properties.get(TableProperties.MANIFEST_MERGE_ENABLED, "false") == "true"
    if key is None or merging:
        if replace is None:
            table.append(rows, snapshot_properties=props, branch=branch)
        else:
            table.overwrite(
                rows, overwrite_filter=replace, snapshot_properties=props, branch=branch
            )
        return
    with table.transaction() as tx:
        if replace is not None:
            tx.delete(
                delete_filter=replace,
                snapshot_properties=props,
                branch=branch,
                _isolation_operation=Operation.OVERWRITE,  # as Transaction.overwrite does
            )
        metadata = tx.table_metadata
        target_size = (
            property_as_int(metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES)
            or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
        )
        schema = pyarrow_to_schema(
            rows.schema,
            name_mapping=metadata.schema().name_mapping,
            format_version=metadata.format_version,
        )
        with tx.update_snapshot(snapshot_properties=props, branch=branch).fast_append() as append:
            tasks = (
                WriteTask(
                    write_uuid=append.commit_uuid,
                    task_id=n,
                    schema=schema,
                    record_batches=batches,
                    partition_key=key,
                )
                for n, batches in enumerate(bin_pack_arrow_table(rows, target_size))
            )
            for data_file in write_file(io=table.io, table_metadata=metadata, tasks=tasks):
                append.append_data_file(data_file)


def _single_partition_key(table: Table, rows: pa.Table) -> PartitionKey | None:
    """The partition key every row of ``rows`` has under a one-field day spec, else None."""
    spec = table.spec()
    if rows.num_rows == 0 or len(spec.fields) != 1:
        return None
    field = spec.fields[0]
    if not isinstance(field.transform, DayTransform):
        return None
    schema = table.schema()
    name = schema.find_column_name(field.source_id)
    if name is None or name not in rows.column_names:
        return None
    column = rows.column(name)
    if column.null_count:
        return None
    bounds = pc.min_max(column)
    ends = pa.array([bounds["min"].as_py(), bounds["max"].as_py()], column.type)
    first, last = field.transform.pyarrow_transform(schema.find_type(field.source_id))(ends)
    if first != last:
        return None
    return PartitionKey(
        field_values=[PartitionFieldValue(field=field, value=first.as_py())],
        partition_spec=spec,
        schema=schema,
    )


class MergeResult(NamedTuple):
    """Outcome of :func:`merge_day`: the day's rows after the merge, how many were new, and the
    write (None when nothing was new and nothing was committed)."""

    rows: pa.Table
    added: int
    write: WriteResult | None


def merge_day(
    spec: TableSpec,
    lh_or_table: TableSource | Table,
    incoming: pa.Table,
    day: date,
    lineage: Lineage,
    branch: str,
    *,
    policy: RetryPolicy = DEFAULT,
) -> MergeResult:
    """Merge ``incoming`` into ``day`` of ``branch``, keyed on ``spec.key``; commit if any is new.

    The day is read at the branch head (a missing branch starts from main), rows whose key is
    already there are dropped (the existing row is kept; among incoming rows the first of a key
    wins), and the union replaces the day in one overwrite that asserts the head it read. When
    that commit loses a race the table is refreshed and the day is read and merged again, up to
    ``policy.attempts`` times: a merge computed from a stale read is never committed.

    Raises:
        ValidationError: ``incoming`` does not fit the table or has rows outside ``day``.
        ConfigurationError: the table is unpartitioned.
        CommitConflictError: the day kept changing under every attempt.
    """
    spec.require_time_column("day partitions")
    table = lh_or_table if isinstance(lh_or_table, Table) else lh_or_table.table(spec.name)
    refs.ensure_branch(table, branch)
    predicate = day_filter(spec, day)
    incoming = conform(spec, table, incoming)
    check_within_day(spec, incoming, day)

    def attempt() -> MergeResult:
        head = refs.head(table, branch)
        existing = (
            table.scan(row_filter=predicate, snapshot_id=head).to_arrow()
            if head is not None
            else spec.arrow_schema.empty_table()
        )
        merged, added = merge_keyed(spec.key, existing, incoming)
        if not added:
            return MergeResult(merged, 0, None)
        # NO_RETRY: a lost race must re-read, which the outer policy's next attempt does.
        write = overwrite_day(spec, table, merged, day, lineage, branch, policy=NO_RETRY)
        return MergeResult(merged, added, write)

    def refresh() -> None:
        table.refresh()
        log.info("%s %s changed while merging; reading the day again", spec.name, day)

    return policy.run(
        _conflict_of(attempt), on_conflict=refresh, what=f"merge of {spec.name} {day}"
    )


def _conflict_of(attempt: Callable[[], MergeResult]) -> Callable[[], MergeResult]:
    """Report a single lost overwrite (a CommitConflictError after NO_RETRY) as a lost race."""

    def run() -> MergeResult:
        try:
            return attempt()
        except CommitConflictError as exc:
            raise CommitFailedException(str(exc)) from exc

    return run


def merge_keyed(
    key: tuple[str, ...], existing: pa.Table, incoming: pa.Table
) -> tuple[pa.Table, int]:
    """Union of ``existing`` and the ``incoming`` rows whose key is new; first of a key wins.

    Rows stay in Arrow; Polars only computes the keep-masks (its hashing of string keys is
    several times faster than Arrow's). Returns the union and how many incoming rows it added.
    """
    if incoming.num_rows == 0:
        return existing, 0
    ids = _key_series(key, incoming)
    # Distinct hashes prove distinct keys: one pass over 64-bit hashes, the common case.
    keep = ids.is_first_distinct() if ids.hash().n_unique() != len(ids) else None
    if existing.num_rows:
        fresh = ~ids.is_in(_key_series(key, existing).implode())
        keep = fresh if keep is None else keep & fresh
    if keep is not None:
        incoming = incoming.filter(keep.to_arrow())
    if incoming.num_rows == 0:
        return existing, 0
    if existing.num_rows == 0:
        return incoming, incoming.num_rows
    return pa.concat_tables([existing.cast(incoming.schema), incoming]), incoming.num_rows


def _key_series(key: tuple[str, ...], data: pa.Table) -> pl.Series:
    """One Polars series identifying each row by ``key`` (a struct for compound keys)."""
    if len(key) == 1:
        return pl.Series(data.column(key[0]))
    frame = pl.from_arrow(data.select(list(key)))
    assert isinstance(frame, pl.DataFrame)
    return frame.select(pl.struct(list(key)).alias("key")).to_series()
