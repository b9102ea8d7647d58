"""Close each day: re-ingest yesterday's partition shortly after midnight UTC (late events)."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from aura_assets.routing.jobs import routing_ingest_job


@schedule(job=routing_ingest_job, cron_schedule="30 0 * * *", execution_timezone="UTC")
def routing_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"close-{day}", partition_key=day)
