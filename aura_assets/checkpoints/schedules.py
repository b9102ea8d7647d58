"""Archive yesterday's checkpoints shortly after midnight UTC."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from aura_assets.checkpoints.jobs import checkpoint_archive_job


@schedule(job=checkpoint_archive_job, cron_schedule="45 0 * * *", execution_timezone="UTC")
def checkpoint_archive_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"archive-{day}", partition_key=day)
