"""The topology day pipeline on real Redis, Iceberg and the embedded vector engine (Qdrant Edge)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from lakehouse import Lakehouse
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.topology import ingest
from lakehouse.topology.drift_reports import drift_day
from lakehouse.topology.events import STREAM
from lakehouse.topology.history import history_day
from lakehouse.topology.index import index_day, rebuild_index
from lakehouse.topology.retrieval import SPEC, similar_runs
from lakehouse.vectors import EdgeStore
from quality.audit import gx_audit

DAY = date(2026, 11, 20)


def _events(days: int = 2, per_day: int = 8, seed: int = 3) -> list[dict]:
    return list(simulate_workflow_events(DAY, days, per_day, seed))


def _pending(client) -> int:  # type: ignore[no-untyped-def]
    return int(client.xpending(STREAM, "aura-lakehouse")["pending"])


def test_ingest_is_exactly_once_and_dead_letters_carry_reasons(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    events = _events()
    publish_workflow_events(redis_client, events)
    good = dict(events[0], run_id="w-extra")
    broken_edge = dict(good, run_id="w-broken", edges=[{**good["edges"][0], "dst": "nowhere"}])
    for payload in (
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "tenant_id"}),
        json.dumps(broken_edge),
    ):
        redis_client.xadd(STREAM, {"data": payload})
    redis_client.xadd(STREAM, {"other": "x"})
    publish_workflow_events(redis_client, [events[1]])  # a replayed event: same run_id

    first = ingest.ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (first.written, first.duplicates, first.rejected, first.deferred) == (8, 1, 4, 8)
    assert first.published and first.rows_in_partition == 8
    reasons = sorted(r["reason"] for r in lakehouse.read("workflow_runs_rejected").to_pylist())
    assert any("not JSON" in r for r in reasons)
    assert any("missing fields ['tenant_id']" in r for r in reasons)
    assert any("unknown node 'nowhere'" in r for r in reasons)
    assert any("no 'data' field" in r for r in reasons)
    # Only the other day's runs are still unacknowledged, handed back to the group.
    assert _pending(redis_client) == 8
    assert ingest.backlog_days(redis_client) == {DAY + timedelta(days=1)}

    again = ingest.ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (again.written, again.rejected, again.deferred) == (0, 0, 8)
    second = ingest.ingest_day(lakehouse, redis_client, DAY + timedelta(days=1), audit=gx_audit)
    assert second.written == 8 and second.deferred == 0
    assert _pending(redis_client) == 0 and ingest.stream_backlog(redis_client) == 0
    runs = lakehouse.read("workflow_runs")
    assert runs.num_rows == 16 and len(set(runs.column("run_id").to_pylist())) == 16
    assert lakehouse.read("workflow_runs_rejected").num_rows == 4
    stored = next(r for r in runs.to_pylist() if r["run_id"] == events[0]["run_id"])
    assert stored["edges"] == events[0]["edges"] and stored["nodes"] == events[0]["nodes"]


def test_a_run_id_is_unique_across_days_replays_acknowledged_conflicts_dead_lettered(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    first = _events(days=1, per_day=1)[0]
    publish_workflow_events(redis_client, [first])
    ingest.ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    later = (datetime.fromisoformat(first["ts"]) + timedelta(days=1)).isoformat()
    publish_workflow_events(redis_client, [first, dict(first, ts=later, status="error")])
    report = ingest.ingest_day(lakehouse, redis_client, DAY + timedelta(days=1), audit=gx_audit)
    again = ingest.ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (report.written, report.conflicts, again.replays) == (0, 1, 1)
    assert lakehouse.read("workflow_runs").column("status").to_pylist() == [first["status"]]
    (reason,) = lakehouse.read("workflow_runs_rejected").column("reason").to_pylist()
    assert "conflicting duplicate: run_id" in reason and "the first version is kept" in reason
    assert ingest.stream_backlog(redis_client) == 0


def _first_runs(events: list[dict]) -> dict[str, str]:
    """The first run id of each tenant."""
    out: dict[str, str] = {}
    for e in events:
        out.setdefault(e["tenant_id"], e["run_id"])
    return out


@pytest.mark.slow
def test_history_index_and_tenant_filtered_retrieval(
    lakehouse: Lakehouse, redis_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    events = _events(days=1, per_day=40, seed=9)
    publish_workflow_events(redis_client, events)
    ingest.ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    wap = history_day(lakehouse, DAY, audit=gx_audit)
    assert wap is not None and wap.published and wap.write.rows == 40
    history_day(lakehouse, DAY, audit=gx_audit)  # idempotent overwrite of the day
    assert history_day(lakehouse, DAY - timedelta(days=1), audit=gx_audit) is None
    history = lakehouse.read("topology_history").to_pylist()
    assert len(history) == 40
    row = history[0]
    assert row["betti_0"] >= 1 and 0 < row["bottleneck_score"] <= 1 and row["dgm0"]

    client = EdgeStore(tmp_path / "vectors", SPEC)
    try:
        report = index_day(lakehouse, client, DAY)
        assert (report.indexed, report.removed, report.points) == (40, 0, 40)
        again = index_day(lakehouse, client, DAY)
        assert (again.removed, again.points) == (40, 40)
        tenants = {e["tenant_id"] for e in events}
        assert len(tenants) > 1
        for tenant in tenants:
            mine = [e["run_id"] for e in events if e["tenant_id"] == tenant]
            hits = similar_runs(client, tenant, run_id=mine[0], k=50)
            assert {h.tenant_id for h in hits} <= {tenant}
            assert len(hits) == len(mine) - 1 and all(h.exact for h in hits)
            assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        other = next(e for e in events if e["tenant_id"] != events[0]["tenant_id"])
        with pytest.raises(KeyError, match="not indexed"):
            similar_runs(client, events[0]["tenant_id"], run_id=other["run_id"])
        before = {
            t: similar_runs(client, t, run_id=m, k=50) for t, m in _first_runs(events).items()
        }

        # Optimized (what the asset does after indexing), then rebuilt: the same answers.
        client.optimize()
        assert rebuild_index(lakehouse, client) == 40
        assert client.count() == 40
        for tenant, run_id in _first_runs(events).items():
            assert similar_runs(client, tenant, run_id=run_id, k=50) == before[tenant]
    finally:
        client.close()


@pytest.mark.slow
def test_drift_day_writes_both_detectors_with_the_snapshots_read(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    publish_workflow_events(
        redis_client, simulate_workflow_events(DAY, 3, 12, seed=4, regime_change_at=None)
    )
    days = [DAY + timedelta(days=i) for i in range(3)]
    for d in days:
        ingest.ingest_day(lakehouse, redis_client, d, audit=gx_audit)
        history_day(lakehouse, d, audit=gx_audit)
    first = drift_day(lakehouse, days[0], audit=gx_audit, reference_days=2)
    assert first.topology is None and "at least 2" in first.reason and first.wap is None
    result = drift_day(
        lakehouse, days[2], audit=gx_audit, reference_days=2, seed=1, n_permutations=199
    )
    assert result.wap is not None and result.wap.published
    rows = {r["detector"]: r for r in lakehouse.read("drift_reports", day=days[2]).to_pylist()}
    assert set(rows) == {"topology", "scalar"}
    topo = rows["topology"]
    assert (topo["reference_days"], topo["window_days"], topo["n_ref"], topo["n_cur"]) == (
        2,
        2,
        24,
        12,
    )
    assert (
        topo["history_snapshot_id"]
        == lakehouse.table("topology_history").current_snapshot().snapshot_id
    )
    assert (
        topo["runs_snapshot_id"] == lakehouse.table("workflow_runs").current_snapshot().snapshot_id
    )
    rerun = drift_day(
        lakehouse, days[2], audit=gx_audit, reference_days=2, seed=1, n_permutations=199
    )
    assert rerun.topology == result.topology
    assert lakehouse.read("drift_reports").num_rows == 2
