"""Signatures of one day: ``topology_history`` from the day's ``workflow_runs``.

:func:`history_day` replaces the day of ``topology_history`` with the persistent-homology
signature (:mod:`lakehouse.topology.tda`) and the scalar summaries of each of the day's runs,
through write-audit-publish; re-running gives the same rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.core import Lakehouse
from lakehouse.publish.wap import Audit, WapResult, write_audit_publish
from lakehouse.table.writer import Lineage
from lakehouse.topology.drift import run_scalars
from lakehouse.topology.tables import TOPOLOGY_HISTORY, WORKFLOW_RUNS
from lakehouse.topology.tda import TopologySignature, event_signature

__all__ = ["day_rows", "history_day", "history_rows", "signature_of_row"]


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
    runs_head = lh.head(WORKFLOW_RUNS.name, branch)
    runs = (
        lh.read(WORKFLOW_RUNS.name, day=day, snapshot_id=runs_head)
        if runs_head is not None
        else WORKFLOW_RUNS.arrow_schema.empty_table()
    )
    rows = history_rows(runs)
    if rows.num_rows == 0 and day_rows(lh, TOPOLOGY_HISTORY.name, day, branch) == 0:
        return None
    return write_audit_publish(
        lh, TOPOLOGY_HISTORY.name, rows, audit=audit, day=day, lineage=lineage, target=branch
    )


def day_rows(lh: Lakehouse, name: str, day: date, branch: str) -> int:
    """Rows of ``day`` in table ``name`` at the head of ``branch`` (or main)."""
    head = lh.head(name, branch)
    return 0 if head is None else lh.read(name, day=day, snapshot_id=head).num_rows
