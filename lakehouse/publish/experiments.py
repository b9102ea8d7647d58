"""Experiments: one branch name across every aura table, diffed and published all or nothing.

>>> exp = experiments.create(lh, "cheaper-router")          # every table branches at its main
>>> lh.append("routing_decisions", rows, branch="cheaper-router")   # or AURA_BRANCH=...
>>> experiments.diff(lh, "cheaper-router")                  # per table: snapshots, rows, metrics
>>> experiments.publish(lh, "cheaper-router")               # every table's main, or none
>>> experiments.drop(lh, "cheaper-router")

Each experiment is recorded as events (created, published, dropped) in the Iceberg table
``aura.experiments``, so its history is queryable like any other table. Bookkeeping tables (this
one, ``quality_results``: ``bookkeeping=True`` on their spec) are never branched: they record
what happened on every branch. A table's spec says which metrics a diff shows
(``diff_metrics``).

A publish first checks that every table's main can fast-forward to its branch and changes
nothing if one cannot. It then writes a publish journal (:mod:`lakehouse.table.journal`) and moves
the tables' mains one by one, each in one atomic commit that also tags the published snapshot;
if a commit fails midway (say another writer moved that main meanwhile), the mains already moved
are moved back and their tags removed. While the journal is there, AURA's readers see every table
as before the publish; a publish killed midway is completed (or rolled back) by the next AURA
call that sees its journal. See docs/publish.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType

from lakehouse.core import Lakehouse
from lakehouse.exceptions import AuraError, NotFastForwardError, RefError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table import journal, refs
from lakehouse.table.bookkeeping import EXPERIMENTS, experiment_event
from lakehouse.table.registry import TableSpec, all_specs, data_specs, spec_for
from lakehouse.table.writer import Lineage

log = logging.getLogger(__name__)
EPOCH = date(1970, 1, 1)

OPEN, PUBLISHED, DROPPED = "open", "published", "dropped"
_EVENT_STATUS = {"created": OPEN, "published": PUBLISHED, "dropped": DROPPED}


@dataclass(frozen=True)
class Experiment:
    """Current state of one experiment, from its events."""

    name: str
    status: str
    created_at: datetime
    updated_at: datetime
    bases: dict[str, int]
    published: dict[str, int] = field(default_factory=dict)
    tag: str | None = None
    run_id: str | None = None
    description: str | None = None

    @property
    def tables(self) -> list[str]:
        return sorted(self.bases)


@dataclass(frozen=True)
class TableDiff:
    """One table of an experiment compared with main.

    ``rows_added``, ``rows_removed`` and ``rows_changed`` are net, by the table's key, between
    the branch point (the last snapshot main and the branch share) and the branch head: a day
    rewritten with 300 more rows is 300 added (and the rows whose values differ, changed), not
    every row of the day removed and written again.
    """

    table: str
    base_snapshot_id: int | None
    main_snapshot_id: int | None
    branch_snapshot_id: int | None
    branch_snapshots: int
    main_snapshots: int
    rows_added: int
    rows_removed: int
    main_rows: int
    branch_rows: int
    metrics: dict[str, tuple[float | None, float | None]]
    rows_changed: int = 0
    main_days: tuple[date, ...] | None = None
    """Days with rows at main's head (None: the table has no day partitions)."""
    branch_days: tuple[date, ...] | None = None
    """Days with rows at the branch head (None: the table has no day partitions)."""

    @property
    def days_only_on_branch(self) -> tuple[date, ...]:
        """Days the branch has and main lacks (what a publish adds to main's partitions)."""
        return tuple(sorted(set(self.branch_days or ()) - set(self.main_days or ())))

    @property
    def fast_forward(self) -> bool:
        """Whether main can be fast-forwarded to the branch (main has nothing the branch lacks)."""
        return self.branch_snapshot_id is not None and self.main_snapshots == 0

    @property
    def changed(self) -> bool:
        return self.branch_snapshots > 0


def create(
    lh: Lakehouse,
    name: str,
    *,
    tables: Iterable[str] | None = None,
    description: str | None = None,
    run_id: str | None = None,
) -> Experiment:
    """Branch every aura table (or ``tables``) at its current main, recorded as one experiment.

    Raises:
        RefError: the name is invalid, an open experiment has it, or a table already has a ref
            with that name (nothing is created then).
    """
    refs.validate_ref_name(name, user=True)
    current = _state(lh).get(name)
    if current is not None and current.status == OPEN:
        raise RefError(f"experiment {name!r} already exists; drop it or choose another name")
    specs = [spec_for(t) for t in tables] if tables is not None else data_specs()
    loaded = {s.name: lh.table(s.name) for s in specs}
    taken = [t for t, table in loaded.items() if refs.head(table, name) is not None]
    if taken:
        raise RefError(
            f"tables {taken} already have a branch or tag {name!r}; drop it (`aura branch drop "
            f"{name}`) or choose another name"
        )
    bases: dict[str, int] = {}
    try:
        for table_name, table in loaded.items():
            bases[table_name] = refs.create_branch(table, name)
    except (AuraError, CommitFailedException):
        for table_name in bases:
            refs.drop_branch(loaded[table_name], name, missing_ok=True)
        raise
    _record(lh, name, "created", bases, run_id=run_id, description=description)
    log.info("created experiment %s over %d tables", name, len(bases))
    return get(lh, name)


def get(lh: Lakehouse, name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
        RefError: there is no such experiment.
    """
    found = _state(lh).get(name)
    if found is None:
        raise RefError(f"no experiment {name!r}; `aura branch list` shows the experiments")
    return found


def list_experiments(lh: Lakehouse, *, include_closed: bool = False) -> list[Experiment]:
    """Experiments, newest first; open ones only unless ``include_closed``."""
    found = [e for e in _state(lh).values() if include_closed or e.status == OPEN]
    return sorted(found, key=lambda e: e.created_at, reverse=True)


def diff(lh: Lakehouse, name: str, *, metrics: bool = True) -> list[TableDiff]:
    """Per table: snapshots and rows the branch adds or removes versus main, and key metrics."""
    exp = get(lh, name)
    return [_diff_table(lh, table, name, metrics) for table in exp.tables]


def _diff_table(lh: Lakehouse, table_name: str, branch: str, with_metrics: bool) -> TableDiff:
    table = lh.table(table_name)
    main_id, branch_id = refs.head(table), refs.head(table, branch)
    main_line = refs.ancestry(table, main_id)
    branch_line = refs.ancestry(table, branch_id)
    main_ids = {s.snapshot_id for s in main_line}
    branch_ids = {s.snapshot_id for s in branch_line}
    branch_only = [s for s in branch_line if s.snapshot_id not in main_ids]
    main_only = [s for s in main_line if s.snapshot_id not in branch_ids]
    base = next((s.snapshot_id for s in branch_line if s.snapshot_id in main_ids), None)
    spec = spec_for(table_name)
    main_days = partition_days(table, spec, main_id)
    added, removed, changed = (
        row_changes(table, spec, base, branch_id) if branch_only else (0, 0, 0)
    )
    shown: dict[str, tuple[float | None, float | None]] = {}
    if with_metrics:
        on_main = _metrics(table, spec, main_id)
        on_branch = on_main if branch_id == main_id else _metrics(table, spec, branch_id)
        shown = {k: (on_main.get(k), on_branch.get(k)) for k in on_main}
    return TableDiff(
        table=table_name,
        base_snapshot_id=base,
        main_snapshot_id=main_id,
        branch_snapshot_id=branch_id,
        branch_snapshots=len(branch_only),
        main_snapshots=len(main_only),
        rows_added=added,
        rows_removed=removed,
        rows_changed=changed,
        main_rows=_total_rows(table, main_id),
        branch_rows=_total_rows(table, branch_id),
        metrics=shown,
        main_days=main_days,
        branch_days=main_days if branch_id == main_id else partition_days(table, spec, branch_id),
    )


def partition_days(
    table: Table, spec: TableSpec, snapshot_id: int | None
) -> tuple[date, ...] | None:
    """The days that hold rows at ``snapshot_id`` (from the manifests: no data file is read).

    None for a table without day partitions.
    """
    if not spec.partitioned:
        return None
    if snapshot_id is None:
        return ()
    files = [task.file for task in table.scan(snapshot_id=snapshot_id).plan_files()]
    days = {EPOCH + timedelta(days=f.partition[0]) for f in files if f.record_count}
    return tuple(sorted(days))


def day_ranges(days: Sequence[date]) -> str:
    """Days as runs of consecutive days: ``2026-11-01..2026-11-04, 2026-11-09``."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs) or "none"


def row_changes(
    table: Table, spec: TableSpec, old_id: int | None, new_id: int | None
) -> tuple[int, int, int]:
    """Rows added, removed and changed (same key, other values) from ``old_id`` to ``new_id``.

    Only the data files one snapshot has and the other lacks are read: a file both share holds
    the same rows on both sides.
    """
    old_tasks = _tasks(table, old_id)
    new_tasks = _tasks(table, new_id)
    before = _read_tasks(table, [t for p, t in old_tasks.items() if p not in new_tasks])
    after = _read_tasks(table, [t for p, t in new_tasks.items() if p not in old_tasks])
    if before is None or after is None:
        return (
            (after.num_rows if after is not None else 0),
            (before.num_rows if before is not None else 0),
            0,
        )
    key = list(spec.key)
    old, new = _fingerprints(before, key), _fingerprints(after, key)
    old_keys, new_keys = old.select(key).unique(), new.select(key).unique()
    added = new_keys.join(old_keys, on=key, how="anti").height
    removed = old_keys.join(new_keys, on=key, how="anti").height
    # A key on both sides whose row is identical (same fingerprint) was rewritten, not changed.
    same = new.join(old, on=[*key, "_row"], how="semi").select(key).unique().height
    return added, removed, new_keys.height - added - same


def _fingerprints(data: pa.Table, key: list[str]) -> pl.DataFrame:
    """The key columns and a hash of each whole row (nested columns included)."""
    frame = pl.from_arrow(data)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(key).with_columns(_row=frame.hash_rows(seed=0)).unique()


def _tasks(table: Table, snapshot_id: int | None) -> dict[str, object]:
    if snapshot_id is None:
        return {}
    return {t.file.file_path: t for t in table.scan(snapshot_id=snapshot_id).plan_files()}


def _read_tasks(table: Table, tasks: list[object]) -> pa.Table | None:
    """The rows of these scan tasks (deletes applied), or None if there are none."""
    if not tasks:
        return None
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    return scan.to_table(tasks)  # type: ignore[arg-type]


def _summary_int(snapshot: object, key: str) -> int:
    summary = getattr(snapshot, "summary", None)
    value = summary.get(key) if summary else None
    return int(value) if value else 0


def _total_rows(table: Table, snapshot_id: int | None) -> int:
    if snapshot_id is None:
        return 0
    snapshot = table.metadata.snapshot_by_id(snapshot_id)
    return _summary_int(snapshot, "total-records")


def _metric_plan(table: Table, spec: TableSpec) -> dict[str, tuple[str, str]]:
    if spec.diff_metrics is not None:
        return dict(spec.diff_metrics)
    numeric = (DoubleType, FloatType, IntegerType, LongType)
    return {
        f"{f.name} mean": (f.name, "mean")
        for f in table.schema().fields
        if isinstance(f.field_type, numeric) and f.name not in spec.key
    }


def _metrics(table: Table, spec: TableSpec, snapshot_id: int | None) -> dict[str, float | None]:
    plan = _metric_plan(table, spec)
    result: dict[str, float | None] = {"rows": float(_total_rows(table, snapshot_id))}
    if snapshot_id is None or not plan:
        return result | dict.fromkeys(plan)
    columns = sorted({column for column, _ in plan.values()})
    data = table.scan(snapshot_id=snapshot_id, selected_fields=tuple(columns)).to_arrow()
    for label, (column, aggregate) in plan.items():
        result[label] = _aggregate(data.column(column), aggregate) if data.num_rows else None
    return result


def _aggregate(column: pa.ChunkedArray, aggregate: str) -> float | None:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    value = getattr(pc, aggregate)(column).as_py()
    return None if value is None else float(value)


def publish(
    lh: Lakehouse,
    name: str,
    *,
    run_id: str | None = None,
    tag: str | None = None,
    tag_max_ref_age_ms: int | None = None,
    on_table: Callable[[str], None] | None = None,
) -> list[refs.PublishResult]:
    """Fast-forward every table's main to the experiment's branch: all tables or none.

    Every published snapshot is tagged (``tag``, by default derived from the experiment and
    ``run_id``). ``on_table`` is called with each table's name just before its main moves
    (progress reporting). A publish journal (:mod:`lakehouse.table.journal`) is written before
    the first table moves, so that a killed publish is completed or rolled back by the next
    AURA call and readers never see some tables published and others not.

    Raises:
        NotFastForwardError: some table's main has snapshots its branch lacks; nothing changed.
        RefError: the experiment is not open, a branch is missing, a publish of it is already
            under way, or a commit failed midway (the mains already moved were moved back).
    """
    journal.settle_dead(lh.catalog)
    exp = get(lh, name)
    if exp.status != OPEN:
        raise RefError(f"experiment {name!r} is {exp.status}; only open experiments publish")
    tag = refs.validate_name(tag or publish_tag(name, run_id))
    loaded = {t: lh.table(t) for t in exp.tables}
    problems = []
    moves = []
    for table_name, table in loaded.items():
        table.refresh()
        try:
            before, after = refs.check_fast_forward(table, name)
            moves.append(journal.Move(table_name, before, after))
        except (NotFastForwardError, RefError) as exc:
            problems.append(str(exc))
        if tag in table.metadata.refs:
            problems.append(f"{table_name} already has a ref {tag!r}")
    if problems:
        raise NotFastForwardError(
            f"experiment {name!r} cannot be published, nothing was changed: " + "; ".join(problems)
        )
    entry = journal.Journal(
        experiment=name,
        moves=tuple(moves),
        owner=journal.Owner.me(),
        tag=tag,
        tag_max_ref_age_ms=tag_max_ref_age_ms,
        run_id=run_id,
    )
    journal.begin(lh.catalog, entry)
    done: list[refs.PublishResult] = []
    for move in moves:
        if on_table is not None:
            on_table(move.table)
        table = loaded[move.table]
        try:
            journal.advance(table, move, tag, tag_max_ref_age_ms)
        except (AuraError, CommitFailedException) as exc:
            entry = journal.mark(lh.catalog, entry, journal.ROLLING_BACK)
            failed = journal.roll_back(loaded, entry)
            journal.end(lh.catalog, entry)
            undone = ", ".join(r.table for r in done if r.table not in failed) or "none"
            message = (
                f"publishing experiment {name!r} failed at {move.table} ({exc}); rolled back the "
                f"tables already published ({undone})"
            )
            if failed:
                message += (
                    f"; could not roll back {sorted(failed)} because their main moved on since: "
                    "inspect them with `aura branch diff`"
                )
            raise RefError(message) from exc
        done.append(
            refs.PublishResult(
                ".".join(table.name()),
                name,
                MAIN_BRANCH,
                move.before,
                move.after,
                move.before != move.after,
                tag,
            )
        )
    try:
        journal.record_published(lh.catalog, entry)
        journal.end(lh.catalog, entry)
    except (AuraError, CommitFailedException) as exc:
        # Never leave a live journal behind (readers would keep seeing main as before it): the
        # settle records the event again, or rolls every table back if it cannot.
        if journal.settle(lh.catalog, entry) != "published":
            raise RefError(
                f"publishing experiment {name!r}: recording it in aura.experiments failed ({exc}); "
                "every table was rolled back, publish it again"
            ) from exc
    log.info("published experiment %s (%d tables, tag %s)", name, len(done), tag)
    return done


def publish_tag(name: str, run_id: str | None = None) -> str:
    """The tag a publish puts on the published snapshots: the experiment and the run (or time)."""
    suffix = run_id[:8] if run_id else datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # Kept within the one ref-name limit however long the experiment's name is.
    keep = refs.MAX_REF_NAME - len(f"-published-{suffix}")
    return f"{name[:keep]}-published-{suffix}"


def drop(lh: Lakehouse, name: str) -> list[str]:
    """Remove the experiment's branch from every table; returns the tables that had it."""
    exp = get(lh, name)
    dropped = [t for t in exp.tables if refs.drop_branch(lh.table(t), name, missing_ok=True)]
    _record(lh, name, "dropped", {t: refs.head(lh.table(t)) or 0 for t in exp.tables})
    return dropped


def tag_release(lh: Lakehouse, name: str, *, max_ref_age_ms: int | None = None) -> dict[str, int]:
    """Tag every aura table's current main as ``name`` (a release), all or none.

    Returns the tagged snapshot id per table.

    Raises:
        RefError: some table already has a ref called ``name`` (nothing is tagged then).
    """
    refs.validate_ref_name(name, user=True)
    loaded = {s.name: lh.table(s.name) for s in data_specs()}
    taken = [t for t, table in loaded.items() if refs.head(table, name) is not None]
    if taken:
        raise RefError(f"tables {taken} already have a ref {name!r}; tags are immutable")
    tagged: dict[str, int] = {}
    try:
        for table_name, table in loaded.items():
            tagged[table_name] = refs.create_tag(table, name, max_ref_age_ms=max_ref_age_ms)
    except (AuraError, CommitFailedException):
        for table_name in tagged:
            refs.drop_tag(loaded[table_name], name, missing_ok=True)
        raise
    return tagged


def list_tags(lh: Lakehouse) -> list[refs.RefInfo]:
    """Every tag of every aura table."""
    return [r for s in all_specs() for r in refs.list_refs(lh.table(s.name), "tag")]


def _record(
    lh: Lakehouse,
    name: str,
    event: str,
    tables: dict[str, int],
    *,
    tag: str | None = None,
    run_id: str | None = None,
    description: str | None = None,
) -> None:
    data = experiment_event(name, event, tables, tag=tag, run_id=run_id, description=description)
    lh.append(
        EXPERIMENTS.name,
        data,
        lineage=Lineage(asset="experiments", run_id=run_id),
        branch=MAIN_BRANCH,
    )


def _state(lh: Lakehouse) -> dict[str, Experiment]:
    rows = lh.read(EXPERIMENTS.name, branch=MAIN_BRANCH).sort_by("event_at").to_pylist()
    return dict(_fold(rows))


def _fold(rows: list[dict[str, object]]) -> Iterator[tuple[str, Experiment]]:
    """Replay the events in time order into each experiment's latest state."""
    state: dict[str, Experiment] = {}
    for row in rows:
        name = str(row["experiment"])
        event = str(row["event"])
        at = row["event_at"]
        tables = {k: int(v) for k, v in json.loads(str(row["tables"])).items()}
        previous = state.get(name)
        if event == "created" or previous is None:
            state[name] = Experiment(
                name=name,
                status=_EVENT_STATUS.get(event, OPEN),
                created_at=at,  # type: ignore[arg-type]
                updated_at=at,  # type: ignore[arg-type]
                bases=tables,
                run_id=row["run_id"],  # type: ignore[arg-type]
                description=row["description"],  # type: ignore[arg-type]
            )
            continue
        state[name] = Experiment(
            name=name,
            status=_EVENT_STATUS.get(event, previous.status),
            created_at=previous.created_at,
            updated_at=at,  # type: ignore[arg-type]
            bases=previous.bases,
            published=tables if event == "published" else previous.published,
            tag=row["tag"] or previous.tag,  # type: ignore[arg-type]
            run_id=row["run_id"] or previous.run_id,  # type: ignore[arg-type]
            description=previous.description,
        )
    yield from state.items()
