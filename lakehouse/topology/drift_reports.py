"""Drift of one day: ``drift_reports`` from ``topology_history`` and ``workflow_runs``.

:func:`drift_day` runs the topology permutation test and the scalar KS baseline
(:mod:`lakehouse.topology.drift`) of the day against the ``reference_days`` before it; both rows
replace the day of ``drift_reports`` with the snapshot ids they read. The permutation seed is
derived from ``seed`` and the day (:func:`day_seed`), so a re-run writes the same report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.core import Lakehouse
from lakehouse.publish.wap import Audit, WapResult, write_audit_publish
from lakehouse.table.writer import Lineage
from lakehouse.topology.drift import (
    DEFAULT_ALPHA,
    DEFAULT_PERMUTATIONS,
    DriftReport,
    scalar_drift,
    topology_drift,
)
from lakehouse.topology.history import day_rows, signature_of_row
from lakehouse.topology.tables import DRIFT_REPORTS, TOPOLOGY_HISTORY, WORKFLOW_RUNS

__all__ = ["DEFAULT_REFERENCE_DAYS", "DriftDay", "day_seed", "drift_day"]

DEFAULT_REFERENCE_DAYS = 3


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
    history_sid = lh.head(TOPOLOGY_HISTORY.name, branch)
    runs_sid = lh.head(WORKFLOW_RUNS.name, branch)
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
    if rows.num_rows or day_rows(lh, DRIFT_REPORTS.name, day, branch):
        wap = write_audit_publish(
            lh, DRIFT_REPORTS.name, rows, audit=audit, day=day, lineage=lineage, target=branch
        )
    return DriftDay(day, topo, scalar, used_days, rows, wap, history_sid, runs_sid, reason)
