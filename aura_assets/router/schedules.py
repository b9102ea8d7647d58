"""Weekly gated retraining of the router (the drift sensor may request it sooner)."""

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from aura_assets.router.jobs import router_retrain_job


@schedule(
    job=router_retrain_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    description=(
        "Retrain the router every Monday 03:00 UTC on the recent days; the candidate becomes "
        "champion only if it passes the gates (off by default: turn it on in the UI's "
        "Automation page)."
    ),
)
def router_weekly_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    week = context.scheduled_execution_time.date().isoformat()
    return RunRequest(run_key=f"router-weekly-{week}")
