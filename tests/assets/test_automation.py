"""Automation on purpose: what runs by default, what each schedule and sensor says it does, and
that every schedule of a partitioned job targets the day that has closed."""

from datetime import UTC, date, datetime

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    build_schedule_context,
)
from dagster._core.definitions.sensor_definition import SensorType

from aura_assets.definitions import defs

STREAM_SENSORS = {"routing_stream_sensor", "workflows_stream_sensor", "memory_stream_sensor"}
AUTOMATION_SENSOR = "default_automation_condition_sensor"


def _repo():  # type: ignore[no-untyped-def]
    return defs.get_repository_def()


def test_every_schedule_and_sensor_says_what_it_does() -> None:
    repo = _repo()
    undescribed = [s.name for s in [*repo.schedule_defs, *repo.sensor_defs] if not s.description]
    assert undescribed == []


def test_stream_sensors_and_automation_sensor_run_by_default() -> None:
    sensors = {s.name: s for s in _repo().sensor_defs}
    assert STREAM_SENSORS | {AUTOMATION_SENSOR} <= set(sensors)
    for name in STREAM_SENSORS | {AUTOMATION_SENSOR}:
        assert sensors[name].default_status == DefaultSensorStatus.RUNNING, name
    # One automation sensor covers every asset, so Dagster adds no stopped default one.
    automation = [s for s in sensors.values() if s.sensor_type == SensorType.AUTOMATION]
    automation += [s for s in sensors.values() if s.sensor_type == SensorType.AUTO_MATERIALIZE]
    assert [s.name for s in automation] == [AUTOMATION_SENSOR]


def test_what_stays_off_says_how_to_turn_it_on() -> None:
    repo = _repo()
    stopped = [s for s in repo.schedule_defs if s.default_status != DefaultScheduleStatus.RUNNING]
    stopped += [s for s in repo.sensor_defs if s.default_status != DefaultSensorStatus.RUNNING]
    for item in stopped:
        assert "off by default" in (item.description or ""), item.name


def test_partitioned_schedules_target_the_closed_day() -> None:
    repo = _repo()
    tick = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
    partitioned = [
        s for s in repo.schedule_defs if repo.get_job(s.job_name).partitions_def is not None
    ]
    assert {s.job_name for s in partitioned} >= {
        "routing_ingest",
        "checkpoint_archive",
        "topology_daily",
    }
    for schedule in partitioned:
        assert schedule.default_status == DefaultScheduleStatus.RUNNING, schedule.name
        job = repo.get_job(schedule.job_name)
        with build_schedule_context(scheduled_execution_time=tick, repository_def=repo) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
        assert len(requests) == 1, schedule.name
        request = requests[0]
        assert isinstance(request, RunRequest)
        assert request.partition_key == date(2026, 12, 6).isoformat(), schedule.name
        assert job.partitions_def is not None
        assert job.partitions_def.has_partition_key(request.partition_key)
