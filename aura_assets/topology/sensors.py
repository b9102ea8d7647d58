"""Sensors: start the topology job for days with new traces; retrain the router on drift."""

import json
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from aura_assets.streams import stream_sensor
from aura_assets.topology.assets import DRIFT
from aura_assets.topology.jobs import topology_daily_job
from lakehouse.topology.ingest import CONTRACT

RETRAIN_JOB = "router_retrain"
DRIFT_DAY_TAG = "aura/drift-day"
P_VALUE_TAG = "aura/p-value"
REASON_TAG = "aura/reason"


workflows_stream_sensor = stream_sensor("workflows_stream_sensor", CONTRACT, topology_daily_job)


@sensor(
    minimum_interval_seconds=60,
    description="Request a router retraining once per day topology_drift flagged (off by "
    "default: it trains a model; turn it on in the UI's Automation page).",
)
def drift_sensor(context: SensorEvaluationContext):
    """For each day ``topology_drift`` flagged, request a ``router_retrain`` run once.

    Reads the drift materialisations recorded after the cursor; each flagged day becomes a run
    request with run key ``drift-<day>`` (Dagster never launches a run key twice) and tags
    saying why. While the code location has no ``router_retrain`` job the cursor stays put, so
    the flagged days are requested once it exists.
    """
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=DRIFT, after_storage_id=after), limit=1000, ascending=True
    ).records
    if not records:
        return SkipReason("no new topology_drift materialisations")
    flagged: dict[str, float] = {}
    for record in records:
        materialization = record.asset_materialization
        assert materialization is not None
        entry = materialization.metadata.get("drift/flagged_days")
        value: Any = getattr(entry, "value", entry) or {}
        days: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
        flagged.update({str(d): float(p) for d, p in days.items()})
    repo = context.repository_def
    if flagged and repo is not None and not repo.has_job(RETRAIN_JOB):
        return SkipReason(
            f"drift flagged on {', '.join(sorted(flagged))} but this code location has no job "
            f"{RETRAIN_JOB!r}; the days will be requested once it exists"
        )
    cursor = str(max(r.storage_id for r in records))
    return SensorResult(
        run_requests=[
            RunRequest(
                job_name=RETRAIN_JOB,
                run_key=f"drift-{day}",
                tags={
                    DRIFT_DAY_TAG: day,
                    P_VALUE_TAG: f"{p:.6g}",
                    REASON_TAG: f"topology drift on {day} (p={p:.4g})",
                    "aura/triggered-by": AssetKey.to_user_string(DRIFT),
                },
            )
            for day, p in sorted(flagged.items())
        ],
        cursor=cursor,
    )
