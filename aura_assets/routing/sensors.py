"""Start ingestion when the routing stream holds entries the lakehouse has not acknowledged."""

from datetime import UTC, datetime

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from aura_assets.routing.jobs import routing_ingest_job
from aura_resources.lakehouse import RedisResource
from lakehouse import routing


@sensor(job=routing_ingest_job, minimum_interval_seconds=30)
def routing_stream_sensor(context: SensorEvaluationContext, redis: RedisResource):
    """One run per day that has unacknowledged events; the run key makes repeats no-ops."""
    client = redis.client()
    backlog = routing.stream_backlog(client)
    if backlog == 0:
        return SkipReason("no unacknowledged entries on aura:events:routing")
    last_id = client.xinfo_stream(routing.STREAM)["last-generated-id"]
    last = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
    days = sorted(routing.backlog_days(client))
    if not days:  # only malformed entries: any day's run records them as rejected
        days = [datetime.now(UTC).date()]
    return SensorResult(
        run_requests=[
            RunRequest(run_key=f"{day}@{last}", partition_key=day.isoformat()) for day in days
        ]
    )
