"""Partitioning and automation shared by every AURA domain: one partition per UTC day.

The first partition is ``AURA_PARTITIONS_START`` (``lakehouse.settings``; default 2026-11-01),
so the UI does not show years of empty partitions. ``end_offset=1`` keeps today's partition open:
the stream sensor ingests today's events as they come and the checkpoint archive can copy today.

A day's scheduled run therefore targets the day that has just *closed*
(:func:`closed_day_schedule`), not Dagster's "last partition", which is today's, still open, so
``build_schedule_from_partitioned_job`` would never schedule a closed day here. Downstream assets
follow their upstream with declarative automation (:data:`FOLLOW_UPSTREAM`).
"""

from datetime import timedelta
from typing import Any

from dagster import (
    AutomationCondition,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from lakehouse.settings import Settings

DAILY = DailyPartitionsDefinition(
    start_date=Settings.from_env().partitions_start.isoformat(), timezone="UTC", end_offset=1
)

LATE_DAYS = 3
"""How many days back automation follows an upstream update (late events re-open a day)."""

FOLLOW_UPSTREAM = AutomationCondition.eager().replace(
    AutomationCondition.in_latest_time_window(),
    AutomationCondition.in_latest_time_window(timedelta(days=LATE_DAYS)),
)
"""Materialise a partition when its upstream partition was updated (any of the last
:data:`LATE_DAYS` days), once no upstream is missing or running: Dagster's ``eager`` widened
from today's partition to the recent ones."""


def closed_day_schedule(job: Any, hour: int = 0, minute: int = 30) -> ScheduleDefinition:
    """Run ``job`` (daily partitioned) at ``hour:minute`` UTC for the day that has just closed.

    The run key is the day, so a tick evaluated twice starts one run. On by default: closing a
    day (late events, the archive, the day's topology) is what a running AURA does.
    """

    @schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=f"{minute} {hour} * * *",
        execution_timezone="UTC",
        description=(
            f"{job.name} for the partition of the day that has just closed "
            f"({hour:02d}:{minute:02d} UTC; on by default)."
        ),
        default_status=DefaultScheduleStatus.RUNNING,
        tags={"aura/partitions": "daily, the closed day"},
    )
    def _closed_day(context: ScheduleEvaluationContext) -> RunRequest:
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return RunRequest(run_key=day, partition_key=day)

    return _closed_day
