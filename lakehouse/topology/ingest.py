"""The topology pipeline of one day: ingest traces, compute signatures, index them, test drift.

Each step is a function of the day, used alike by the Dagster assets and any Python program:

* :func:`ingest_day`: the one ingest path of ``workflow_runs``. It reads every unacknowledged
  entry of ``aura:events:workflows`` through its own
  :class:`~lakehouse.ingest.streams.StreamConsumer`,
  merges the day's runs (keyed on ``run_id``, :func:`lakehouse.table.writer.merge_day`) on an audit
  branch inside :func:`lakehouse.publish.wap.audit_and_publish`, records malformed entries with
  their
  reason in ``workflow_runs_rejected``, acknowledges dead letters and, once published, the
  day's runs; runs of other days (and of a failed audit) are handed back to the group. No
  entry can stop it: parsing and the Arrow conversion go through the shared
  :func:`~lakehouse.ingest.streams.parse_stream_entries` and
  :func:`~lakehouse.ingest.streams.to_arrow_or_dead_letters`. A ``run_id`` is unique across every
  day
  (:func:`lakehouse.table.keys.split_known`): a run already stored with equal content is a replay
  (acknowledged, not written again); with other content it is a conflicting duplicate, a dead
  letter with the reason (the first version is kept).
* :func:`history_day`: the signatures of the day's runs replace the day of
  ``topology_history`` (write-audit-publish; re-running gives the same rows).
* :func:`index_day`: the Qdrant collection holds exactly the day's rows of ``topology_history``
  afterwards (the day's points are deleted, from their cells too, then upserted);
  :func:`rebuild_index` rebuilds the whole collection, and retrains its cells, from the table.
* :func:`drift_day`: the topology permutation test and the scalar KS baseline of the day
  against the ``reference_days`` before it, both rows replacing the day of ``drift_reports``
  with the snapshot ids they read. The permutation seed is derived from ``seed`` and the day,
  so a re-run writes the same report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import redis

from lakehouse.core import Lakehouse
from lakehouse.ingest.guards import bounded_raw
from lakehouse.ingest.stream_day import publish_day
from lakehouse.ingest.streams import (
    DeadLetter,
    EventStream,
    Parsed,
    StreamConsumer,
    parse_stream_entries,
    to_arrow_or_dead_letters,
)
from lakehouse.publish.wap import Audit, WapResult, write_audit_publish
from lakehouse.table.keys import split_known
from lakehouse.table.writer import Lineage, WriteResult
from lakehouse.topology.drift import (
    DEFAULT_ALPHA,
    DEFAULT_PERMUTATIONS,
    DriftReport,
    run_scalars,
    scalar_drift,
    topology_drift,
)
from lakehouse.topology.events import MAX_PAYLOAD_BYTES, STREAM, parse_workflow_event
from lakehouse.topology.tables import (
    DRIFT_REPORTS,
    TOPOLOGY_HISTORY,
    WORKFLOW_RUNS,
    WORKFLOW_RUNS_REJECTED,
)
from lakehouse.topology.tda import TopologySignature, event_signature

if TYPE_CHECKING:  # retrieval imports qdrant_client, which this module loads only to index
    from lakehouse.topology.retrieval import Layout

log = logging.getLogger(__name__)

DEFAULT_REFERENCE_DAYS = 3


# ---------------------------------------------------------------------------------------------
# Ingest


def event_day(payload: bytes) -> date | None:
    """The day of an event payload, None when it is malformed (for backlog sensors).

    Never raises, whatever the payload holds.
    """
    try:
        return parse_workflow_event(payload)["ts"].date()
    except Exception:  # a sensor must never fail on stream content
        return None


EVENTS = EventStream(STREAM, event_day)
"""The workflows stream; its consumer, backlog and backlog days below serve ingest and sensors."""
consumer = EVENTS.consumer
stream_backlog = EVENTS.backlog
backlog_days = EVENTS.backlog_days


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion of ``workflow_runs`` did."""

    day: date
    read: int
    new_runs: int
    duplicates: int
    rejected: int
    deferred: int
    rows_in_partition: int
    wap: WapResult | None
    rejected_write: WriteResult | None
    published: bool
    replays: int = 0
    conflicts: int = 0


CONTENT_FIELDS = ("ts", "tenant_id", "workflow", "status", "nodes", "edges")
"""What makes two events with one ``run_id`` the same run (a replay) or a conflict."""


def _parse(
    entries: Sequence[tuple[Any, Any]],
) -> tuple[list[Parsed[dict[str, Any]]], list[DeadLetter]]:
    parsed, dead = parse_stream_entries(entries, parse_workflow_event, max_bytes=MAX_PAYLOAD_BYTES)
    for record in parsed:
        record.value["stream_id"] = record.stream_id
    return parsed, dead


def _drop_known(
    lh: Lakehouse, incoming: pa.Table, raw: dict[str, str | None], branch: str
) -> tuple[pa.Table, int, list[DeadLetter]]:
    """``incoming`` without replays and conflicting duplicates of runs stored on any day."""
    if incoming.num_rows == 0:
        return incoming, 0, []
    table = lh.table(WORKFLOW_RUNS.name)
    snapshot_id = lh.head(WORKFLOW_RUNS.name, branch)
    split = split_known(WORKFLOW_RUNS, table, incoming, snapshot_id, compare=CONTENT_FIELDS)
    ids = incoming.column("stream_id").to_pylist()
    conflicts = [
        DeadLetter(ids[i], bounded_raw(raw.get(ids[i])), reason)
        for i, reason in split.conflicts.items()
    ]
    if not split.replays and not conflicts:
        return incoming, 0, []
    return incoming.take(pa.array(split.fresh, pa.int64())), len(split.replays), conflicts


def runs_to_arrow(runs: Sequence[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Parsed events (with ``stream_id``) as rows of ``workflow_runs``."""
    schema = WORKFLOW_RUNS.arrow_schema
    columns = {name: [r.get(name) for r in runs] for name in schema.names}
    columns["ingested_at"] = [ingested_at] * len(runs)
    return pa.Table.from_pydict(columns, schema=schema)


def ingest_day(
    lh: Lakehouse,
    client: redis.Redis,
    day: date,
    *,
    audit: Audit,
    lineage: Lineage | None = None,
    branch: str | None = None,
    reader: StreamConsumer | None = None,
) -> IngestReport:
    """Ingest the stream's runs of ``day`` into ``workflow_runs`` exactly once.

    Args:
        lh: The lakehouse.
        client: Redis holding ``aura:events:workflows``.
        day: The day partition to ingest.
        audit: Judges the written day before it is published (``quality.audit.gx_audit``).
        lineage: Who writes (default: asset ``workflow_runs``, partition ``day``).
        branch: The branch to publish into (default ``lh.settings.branch``).
        reader: The stream consumer (default a fresh one of the ingestion group).

    Raises:
        CommitConflictError: Other writers of the same day kept committing first.
    """
    lineage = lineage or Lineage(asset=WORKFLOW_RUNS.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    reader = reader or consumer(client)
    entries = list(reader.read_unacked())
    parsed, dead = _parse(entries)
    now = datetime.now(UTC)
    todays = [r for r in parsed if r.value["ts"].date() == day]
    deferred = [r.stream_id for r in parsed if r.value["ts"].date() != day]
    incoming, unfit = to_arrow_or_dead_letters(todays, lambda runs: runs_to_arrow(runs, now))
    incoming, replays, conflicts = _drop_known(
        lh, incoming, {r.stream_id: r.raw for r in todays}, branch
    )
    dead = dead + unfit + conflicts
    day_result = publish_day(
        lh,
        WORKFLOW_RUNS,
        WORKFLOW_RUNS_REJECTED,
        reader.stream,
        incoming,
        dead,
        day,
        audit=audit,
        lineage=lineage,
        branch=branch,
    )
    rejected_ids = {d.stream_id for d in dead}
    ids = [r.stream_id for r in todays if r.stream_id not in rejected_ids]
    day_result.settle(reader, dead=dead, day_ids=ids, deferred_ids=deferred)
    merged, wap, published = day_result.merge, day_result.wap, day_result.published
    report = IngestReport(
        day=day,
        read=len(entries),
        new_runs=merged.added,
        duplicates=len(ids) - merged.added,
        rejected=len(dead),
        deferred=len(deferred),
        rows_in_partition=merged.rows.num_rows,
        wap=wap,
        rejected_write=day_result.rejected_write,
        published=published,
        replays=replays,
        conflicts=len(conflicts),
    )
    log.info("workflow ingest %s: %s", day, report)
    return report


# ---------------------------------------------------------------------------------------------
# Signatures


def history_rows(runs: pa.Table, computed_at: datetime | None = None) -> pa.Table:
    """Rows of ``topology_history`` for rows of ``workflow_runs`` (one per run)."""
    computed_at = computed_at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for run in runs.to_pylist():
        sig = event_signature(run)
        n_nodes, n_edges, latency, errors = run_scalars(run)
        rows.append(
            {
                "run_id": run["run_id"],
                "ts": run["ts"],
                "tenant_id": run["tenant_id"],
                "workflow": run["workflow"],
                "status": run["status"],
                "n_nodes": int(n_nodes),
                "n_edges": int(n_edges),
                "mean_latency_ms": latency,
                "error_rate": errors,
                **sig.as_row(),
                "computed_at": computed_at,
            }
        )
    return pa.Table.from_pylist(rows, schema=TOPOLOGY_HISTORY.arrow_schema)


def signature_of_row(row: dict[str, Any]) -> TopologySignature:
    """The :class:`TopologySignature` stored in a ``topology_history`` row."""
    return TopologySignature(
        dgm0=np.asarray(row["dgm0"], dtype=float).reshape(-1, 2),
        dgm1=np.asarray(row["dgm1"], dtype=float).reshape(-1, 2),
        betti_0=int(row["betti_0"]),
        betti_1=int(row["betti_1"]),
        entropy=float(row["entropy"]),
        landscape_l1=(float(row["landscape_l1_h0"]), float(row["landscape_l1_h1"])),
        landscape_l2=(float(row["landscape_l2_h0"]), float(row["landscape_l2_h1"])),
        bottleneck_score=float(row["bottleneck_score"]),
        bottleneck_agents=tuple(row["bottleneck_agents"]),
        image=np.asarray(row["image"], dtype=float),
        betti_curve=np.asarray(row["betti_curve"], dtype=float),
    )


def history_day(
    lh: Lakehouse,
    day: date,
    *,
    audit: Audit,
    lineage: Lineage | None = None,
    branch: str | None = None,
) -> WapResult | None:
    """Replace ``day`` of ``topology_history`` with the signatures of the day's runs.

    Returns None when the day has no runs and no signatures (nothing to write).
    """
    lineage = lineage or Lineage(asset=TOPOLOGY_HISTORY.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    runs_head = _head(lh, WORKFLOW_RUNS.name, branch)
    runs = (
        lh.read(WORKFLOW_RUNS.name, day=day, snapshot_id=runs_head)
        if runs_head is not None
        else WORKFLOW_RUNS.arrow_schema.empty_table()
    )
    rows = history_rows(runs)
    if rows.num_rows == 0 and _day_rows(lh, TOPOLOGY_HISTORY.name, day, branch) == 0:
        return None
    return write_audit_publish(
        lh, TOPOLOGY_HISTORY.name, rows, audit=audit, day=day, lineage=lineage, target=branch
    )


# ---------------------------------------------------------------------------------------------
# Qdrant index


@dataclass(frozen=True)
class IndexReport:
    """What :func:`index_day` did to the collection (``cells`` is 0 for a flat layout)."""

    day: date
    removed: int
    indexed: int
    points: int
    history_snapshot_id: int | None
    cells: int = 0


def _day_filter(day: date) -> Any:
    from qdrant_client import models

    return models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value=day.isoformat()))]
    )


def index_day(
    lh: Lakehouse,
    client: Any,
    day: date,
    *,
    branch: str | None = None,
    collection: str | None = None,
    layout: Layout = "auto",
) -> IndexReport:
    """Make the collection's points of ``day`` exactly the day's ``topology_history`` rows.

    The day's old points leave the collection of record and their cells; the new ones join the
    nearest cells, and the layout is retrained when due (:mod:`lakehouse.topology.retrieval`).
    """
    from lakehouse.topology.retrieval import (
        COLLECTION,
        ensure_collection,
        index_runs,
        layout_info,
        remove_runs,
    )

    collection = collection or COLLECTION
    branch = branch or lh.settings.branch
    snapshot_id = _head(lh, TOPOLOGY_HISTORY.name, branch)
    rows = (
        lh.read(TOPOLOGY_HISTORY.name, day=day, snapshot_id=snapshot_id).to_pylist()
        if snapshot_id is not None
        else []
    )
    ensure_collection(client, collection)
    removed = remove_runs(client, _day_filter(day), collection)
    indexed = index_runs(
        client, ((r, signature_of_row(r)) for r in rows), collection=collection, layout=layout
    )
    points = client.count(collection, exact=True).count
    cells = layout_info(client, collection).cells
    return IndexReport(day, removed, indexed, points, snapshot_id, cells)


def rebuild_index(
    lh: Lakehouse,
    client: Any,
    *,
    branch: str | None = None,
    collection: str | None = None,
    layout: Layout = "auto",
) -> int:
    """Drop the collection and its cells, index every row of ``topology_history``; the points.

    The cell layout is trained afresh on the rebuilt collection when it is large enough.
    """
    from lakehouse.topology.retrieval import COLLECTION, drop_index, index_runs

    collection = collection or COLLECTION
    drop_index(client, collection)
    branch = branch or lh.settings.branch
    snapshot_id = _head(lh, TOPOLOGY_HISTORY.name, branch)
    rows = (
        lh.read(TOPOLOGY_HISTORY.name, snapshot_id=snapshot_id).to_pylist()
        if snapshot_id is not None
        else []
    )
    return index_runs(
        client, ((r, signature_of_row(r)) for r in rows), collection=collection, layout=layout
    )


# ---------------------------------------------------------------------------------------------
# Drift


@dataclass(frozen=True)
class DriftDay:
    """The drift reports of one day (None when a window had fewer than 2 runs) and the write."""

    day: date
    topology: DriftReport | None
    scalar: DriftReport | None
    reference_days: int
    rows: pa.Table
    wap: WapResult | None
    history_snapshot_id: int | None
    runs_snapshot_id: int | None
    reason: str = ""


def day_seed(seed: int, day: date) -> int:
    """The permutation seed of ``day``: fixed by ``seed`` and the day, so re-runs agree."""
    return int(np.random.SeedSequence([seed, day.toordinal()]).generate_state(1)[0])


def _window(
    lh: Lakehouse, name: str, start: date, end: date, snapshot_id: int | None
) -> list[dict[str, Any]]:
    if snapshot_id is None:
        return []
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC)
    return lh.read(name, window=(lo, hi), snapshot_id=snapshot_id).to_pylist()


def drift_day(
    lh: Lakehouse,
    day: date,
    *,
    audit: Audit,
    reference_days: int = DEFAULT_REFERENCE_DAYS,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    lineage: Lineage | None = None,
    branch: str | None = None,
) -> DriftDay:
    """Test ``day`` against the ``reference_days`` before it; write both rows to ``drift_reports``.

    The topology detector reads ``topology_history`` and the scalar baseline ``workflow_runs``,
    each at one snapshot of ``branch`` (recorded in the rows). A day whose windows hold fewer
    than 2 runs gets no rows (its earlier rows, if any, are removed), with the reason returned.
    """
    if reference_days < 1:
        raise ValueError(f"reference_days must be at least 1, got {reference_days}")
    lineage = lineage or Lineage(asset=DRIFT_REPORTS.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    history_sid = _head(lh, TOPOLOGY_HISTORY.name, branch)
    runs_sid = _head(lh, WORKFLOW_RUNS.name, branch)
    start = day - timedelta(days=reference_days)
    history = _window(lh, TOPOLOGY_HISTORY.name, start, day + timedelta(days=1), history_sid)
    runs = _window(lh, WORKFLOW_RUNS.name, start, day + timedelta(days=1), runs_sid)
    ref_h = [r for r in history if r["ts"].date() < day]
    cur_h = [r for r in history if r["ts"].date() == day]
    ref_r = [r for r in runs if r["ts"].date() < day]
    cur_r = [r for r in runs if r["ts"].date() == day]
    used_days = len({r["ts"].date() for r in ref_h})
    topo = scalar = None
    reason = ""
    if min(len(ref_h), len(cur_h)) < 2:
        reason = (
            f"{len(ref_h)} reference and {len(cur_h)} current runs in topology_history; "
            "a drift test needs at least 2 of each"
        )
    else:
        topo = topology_drift(
            [signature_of_row(r) for r in ref_h],
            [signature_of_row(r) for r in cur_h],
            alpha=alpha,
            n_permutations=n_permutations,
            seed=day_seed(seed, day),
        )
        if min(len(ref_r), len(cur_r)) >= 2:
            scalar = scalar_drift(ref_r, cur_r, alpha=alpha)
    now = datetime.now(UTC)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = pa.Table.from_pylist(
        [
            {
                "day": midnight,
                "detector": r.detector,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "drift": r.drifted,
                "alpha": r.alpha,
                "reference_days": used_days,
                "window_days": reference_days,
                "n_ref": r.n_ref,
                "n_cur": r.n_cur,
                "n_permutations": r.n_permutations,
                "seed": r.seed,
                "distance": r.distance or None,
                "landscape_p_value": r.landscape_p_value,
                "history_snapshot_id": history_sid,
                "runs_snapshot_id": runs_sid,
                "computed_at": now,
            }
            for r in (topo, scalar)
            if r is not None
        ],
        schema=DRIFT_REPORTS.arrow_schema,
    )
    wap = None
    if rows.num_rows or _day_rows(lh, DRIFT_REPORTS.name, day, branch):
        wap = write_audit_publish(
            lh, DRIFT_REPORTS.name, rows, audit=audit, day=day, lineage=lineage, target=branch
        )
    return DriftDay(day, topo, scalar, used_days, rows, wap, history_sid, runs_sid, reason)


def _head(lh: Lakehouse, name: str, branch: str) -> int | None:
    """The head of ``branch``, or of main when the branch does not exist yet."""
    return lh.head(name, branch)


def _day_rows(lh: Lakehouse, name: str, day: date, branch: str) -> int:
    head = _head(lh, name, branch)
    return 0 if head is None else lh.read(name, day=day, snapshot_id=head).num_rows
