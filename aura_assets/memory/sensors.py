"""Sensors of the memory domain: stream ingestion and tier compaction.

``tier_compaction_sensor`` reads the hot tier (Redis) directly and the warm and cold tiers
from the last compaction's metadata (so it never opens a vector shard, which one process at a
time may hold). It requests a compaction when the hot tier is too big or too old, when the
warm tier is too big or holds memories past retention, or when a memory's TTL has passed. Its
run key is the reason plus the memory stream's last entry id: nothing written since the last
request means the same key, and Dagster skips it.
"""

import time
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from aura_assets.memory.assets import WARM
from aura_assets.memory.jobs import memory_compaction_job, memory_ingest_job
from aura_assets.streams import last_entry_id, stream_sensor
from aura_resources.lakehouse import RedisResource
from lakehouse.memory import CONTRACT, STREAM, HotTier

HOT_MAX_MEMORIES = 10_000
HOT_MAX_AGE_MS = 3_600_000
WARM_MAX_POINTS = 100_000
WARM_MAX_AGE_MS = 30 * 86_400_000


memory_stream_sensor = stream_sensor(
    "memory_stream_sensor", CONTRACT, memory_ingest_job, minimum_interval_seconds=60
)


def compaction_reasons(
    hot: int, hot_oldest_ms: int | None, warm_meta: dict[str, Any], now_ms: int
) -> list[str]:
    """Why a compaction is due (empty: it is not)."""
    reasons = []
    if hot > HOT_MAX_MEMORIES:
        reasons.append(f"hot-size>{HOT_MAX_MEMORIES}")
    if hot_oldest_ms is not None and now_ms - hot_oldest_ms > HOT_MAX_AGE_MS:
        reasons.append("hot-age")
    if int(warm_meta.get("after/warm", 0)) > WARM_MAX_POINTS:
        reasons.append(f"warm-size>{WARM_MAX_POINTS}")
    oldest = warm_meta.get("after/warm_oldest_ms")
    if oldest is not None and now_ms - int(oldest) > WARM_MAX_AGE_MS:
        reasons.append("warm-age")
    for name in ("after/warm_next_expiry_ms", "after/cold_next_expiry_ms"):
        due = warm_meta.get(name)
        if due is not None and int(due) <= now_ms:
            reasons.append("expired")
            break
    return reasons


@sensor(
    job=memory_compaction_job,
    minimum_interval_seconds=120,
    default_status=DefaultSensorStatus.RUNNING,
    description="Compact the memory tiers when one passes its thresholds or memories have "
    "expired (on by default).",
)
def tier_compaction_sensor(context: SensorEvaluationContext, redis: RedisResource):
    """Request a compaction when a tier passes its thresholds or memories have expired."""
    client = redis.client()
    hot = HotTier(client)
    count, oldest = 0, None
    for tenant in hot.tenants():
        count += hot.count(tenant)
        first = hot.oldest_created_ms(tenant)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    event = context.instance.get_latest_materialization_event(WARM)
    meta: dict[str, Any] = {}
    if event is not None and event.asset_materialization is not None:
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    reasons = compaction_reasons(count, oldest, meta, int(time.time() * 1000))
    if not reasons:
        return SkipReason(f"hot tier {count} memories, nothing past its thresholds")
    last = last_entry_id(client, STREAM)
    key = f"{'+'.join(reasons)}@{last}"
    if context.cursor == key:
        return SkipReason(f"compaction already requested for {key}")
    return SensorResult(run_requests=[RunRequest(run_key=key)], cursor=key)
