"""Topology in Dagster: a partition range materialised twice, the sensors."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from aura_assets.definitions import defs
from aura_assets.topology.sensors import (
    DRIFT_DAY_TAG,
    P_VALUE_TAG,
    RETRAIN_JOB,
    drift_sensor,
    workflows_stream_sensor,
)
from lakehouse import Lakehouse
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.topology.events import STREAM
from lakehouse.topology.retrieval import open_index, similar_runs

START = date(2026, 11, 1)
DAYS = 5
CHANGE_AT = 3  # the retry loop appears on 2026-11-04
PER_DAY = 60
TOPOLOGY_ASSETS = ("workflow_runs", "topology_history", "topology_index", "topology_drift")


def _range_tags(first: date, last: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def _counts(lh: Lakehouse) -> dict[str, int]:
    names = ("workflow_runs", "workflow_runs_rejected", "topology_history", "drift_reports")
    return {n: lh.read(n).num_rows for n in names}


@pytest.mark.slow
def test_a_range_materialises_in_one_run_twice_and_drift_requests_retraining(
    in_aura_env, redis_client
) -> None:  # type: ignore[no-untyped-def]
    events = list(
        simulate_workflow_events(START, DAYS, PER_DAY, seed=5, regime_change_at=CHANGE_AT)
    )
    publish_workflow_events(redis_client, events)
    redis_client.xadd(STREAM, {"data": '{"run_id": "w-bad"}'})
    instance = dg.DagsterInstance.ephemeral()

    # The stream sensor asks for one run per day with unacknowledged traces.
    ctx = dg.build_sensor_context(instance=instance, resources={"redis": defs.resources["redis"]})
    requests = workflows_stream_sensor(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == [
        (START + timedelta(days=i)).isoformat() for i in range(DAYS)
    ]

    job = defs.resolve_job_def("topology_daily")
    last = START + timedelta(days=DAYS - 1)
    first = job.execute_in_process(instance=instance, tags=_range_tags(START, last))
    assert first.success
    lh = Lakehouse(in_aura_env)
    counts = _counts(lh)
    assert counts["workflow_runs"] == counts["topology_history"] == DAYS * PER_DAY
    assert counts["workflow_runs_rejected"] == 1
    assert redis_client.xpending(STREAM, "aura-lakehouse")["pending"] == 0
    drift = {(r["day"].date(), r["detector"]): r for r in lh.read("drift_reports").to_pylist()}
    change_day = START + timedelta(days=CHANGE_AT)
    # The claim: flagged on the change day or the next, p < 0.01.
    after = [drift[(change_day + timedelta(days=i), "topology")] for i in (0, 1)]
    assert any(r["drift"] and r["p_value"] < 0.01 for r in after)
    assert all(r["history_snapshot_id"] is not None for r in after)
    assert all(not drift[(START + timedelta(days=i), "topology")]["drift"] for i in (1, 2))
    assert (START, "topology") not in drift  # no earlier day to compare with

    # Every selected asset has one materialisation per partition of the range.
    for name in TOPOLOGY_ASSETS:
        key = dg.AssetKey(name)
        assert instance.get_materialized_partitions(key) == {
            (START + timedelta(days=i)).isoformat() for i in range(DAYS)
        }, name

    # Re-running the range changes no row count and no drift verdict.
    again = job.execute_in_process(instance=instance, tags=_range_tags(START, last))
    assert again.success
    assert _counts(lh) == counts
    redrift = {(r["day"].date(), r["detector"]): r for r in lh.read("drift_reports").to_pylist()}
    assert {k: v["p_value"] for k, v in redrift.items()} == {
        k: v["p_value"] for k, v in drift.items()
    }

    # The vector index is in step with topology_history.
    client = open_index(lh.settings)
    try:
        assert client.count() == DAYS * PER_DAY
        tenant, run = events[0]["tenant_id"], events[0]["run_id"]
        hits = similar_runs(client, tenant, run_id=run, k=5)
        assert hits and all(h.tenant_id == tenant for h in hits)
    finally:
        client.close()

    # drift_sensor: one retraining request per flagged day, with the reason in its tags.
    result = drift_sensor(dg.build_sensor_context(instance=instance))
    flagged = sorted(d for (d, det), r in drift.items() if det == "topology" and r["drift"])
    assert flagged
    by_key = {r.run_key: r for r in result.run_requests}
    assert set(by_key) == {f"drift-{d}" for d in flagged}
    for day in flagged:
        request = by_key[f"drift-{day}"]
        assert request.job_name == RETRAIN_JOB
        assert request.tags[DRIFT_DAY_TAG] == day.isoformat()
        assert float(request.tags[P_VALUE_TAG]) == pytest.approx(
            drift[(day, "topology")]["p_value"], rel=1e-5
        )
    # The cursor moves on: the same materialisations are not read twice.
    again_ctx = dg.build_sensor_context(instance=instance, cursor=result.cursor)
    assert isinstance(drift_sensor(again_ctx), dg.SkipReason)
    # A code location without the job keeps the requests for later.
    without = dg.build_sensor_context(instance=instance, definitions=defs)
    if not defs.get_repository_def().has_job(RETRAIN_JOB):
        skipped = drift_sensor(without)
        assert isinstance(skipped, dg.SkipReason) and RETRAIN_JOB in str(skipped.skip_message)
