"""Close each day: run the topology job for yesterday shortly after midnight UTC."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from aura_assets.topology.jobs import topology_daily_job


@schedule(job=topology_daily_job, cron_schedule="45 0 * * *", execution_timezone="UTC")
def topology_daily_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"close-{day}", partition_key=day)
