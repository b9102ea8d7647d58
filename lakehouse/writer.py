"""Writes to aura tables: append and idempotent day-partition overwrite, with lineage.

Every snapshot carries who wrote it (``aura.asset``, ``aura.partition``, ``aura.run-id``,
``aura.code-version``) in its summary. Commits that lose a race against another writer are
retried on a refreshed table a bounded number of times; a failed write leaves the previous
snapshot untouched because Iceberg commits are atomic.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table

from lakehouse import refs
from lakehouse.exceptions import CommitConflictError, ValidationError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.tables import TableSpec, evolve_schema

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 6


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
    """Rows whose event time lies in ``[start, end)``."""
    return And(
        GreaterThanOrEqual(spec.time_column, start.isoformat()),
        LessThan(spec.time_column, end.isoformat()),
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
    if data.num_rows == 0:
        return
    start, end = day_bounds(day)
    ts = data.column(spec.time_column)
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


def _retrying(table: Table, action: str, commit, retries: int) -> None:  # type: ignore[no-untyped-def]
    """Run ``commit`` and retry on a refreshed table while it loses commit races.

    With ``retries=1`` a lost race raises at once: callers whose data depends on what they read
    (read-merge-write) must re-read instead of re-committing stale rows.
    """
    for attempt in range(1, retries + 1):
        try:
            refs.as_commit_conflict(commit)  # another branch's commit is a race too
            return
        except CommitFailedException as exc:
            if attempt == retries:
                raise CommitConflictError(
                    f"{action} on {table.name()} conflicted with concurrent writers "
                    f"{retries} time(s) ({exc}); retry the run"
                ) from exc
            log.info(
                "%s on %s lost a commit race (attempt %d); retrying", action, table.name(), attempt
            )
            time.sleep(min(0.05 * 2**attempt, 1.0))
            table.refresh()


def append(
    spec: TableSpec,
    table: Table,
    data: pa.Table,
    lineage: Lineage,
    branch: str = MAIN_BRANCH,
    retries: int = DEFAULT_RETRIES,
) -> WriteResult:
    """Append ``data`` as one snapshot on ``branch`` (a missing branch starts from main)."""
    rows = conform(spec, table, data)
    refs.ensure_branch(table, branch)
    _retrying(
        table,
        "append",
        lambda: table.append(rows, snapshot_properties=lineage.properties(), branch=branch),
        retries,
    )
    return WriteResult(spec.name, branch, rows.num_rows, refs.head(table, branch), "append")


def overwrite_day(
    spec: TableSpec,
    table: Table,
    data: pa.Table,
    day: date,
    lineage: Lineage,
    branch: str = MAIN_BRANCH,
    retries: int = DEFAULT_RETRIES,
) -> WriteResult:
    """Replace the rows of ``day`` with ``data`` in one atomic commit (idempotent re-writes)."""
    rows = conform(spec, table, data)
    check_within_day(spec, rows, day)
    refs.ensure_branch(table, branch)
    predicate = day_filter(spec, day)

    def commit() -> None:
        props = lineage.properties()
        head = table.snapshot_by_name(branch)
        day_files = head is not None and any(
            True
            for _ in table.scan(row_filter=predicate, snapshot_id=head.snapshot_id).plan_files()
        )
        if day_files:
            table.overwrite(
                rows, overwrite_filter=predicate, snapshot_properties=props, branch=branch
            )
        else:  # an empty day: a plain append, guarded by the same head assertion on commit
            table.append(rows, snapshot_properties=props, branch=branch)

    _retrying(table, "overwrite", commit, retries)
    return WriteResult(spec.name, branch, rows.num_rows, refs.head(table, branch), "overwrite")
