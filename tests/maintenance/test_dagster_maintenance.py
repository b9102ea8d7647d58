"""table_maintenance in Dagster: the job's per-table metadata, the nightly schedule, the sensor."""

from __future__ import annotations

import dagster as dg
import pytest
from helpers import TABLE

from aura_assets.definitions import defs
from aura_assets.maintenance import sensors
from aura_assets.maintenance.sensors import small_files_sensor, tables_to_compact
from aura_resources.lakehouse import LakehouseResource
from lakehouse import Lakehouse, maintenance

RUN_CONFIG = {
    "ops": {
        "maintain_tables_op": {
            "config": {
                "tables": [TABLE],
                "older_than_hours": 0.0,
                "orphan_grace_hours": 0.0,
                "retain_last": 1,
            }
        }
    }
}


def test_job_reports_files_bytes_and_snapshots_before_and_after(
    in_aura_env, small_files: Lakehouse
) -> None:  # type: ignore[no-untyped-def]
    rows = small_files.info(TABLE).rows
    result = defs.resolve_job_def("table_maintenance").execute_in_process(
        run_config=RUN_CONFIG, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    meta = output.event_specific_data.metadata
    figures = meta[TABLE].value
    assert figures["before.live_data_files"] == 12 and figures["after.live_data_files"] == 2
    assert figures["before.snapshots"] > figures["after.snapshots"]
    assert figures["after.stored_bytes"] < figures["before.stored_bytes"]
    assert "12 → 2" in meta["summary"].value
    assert small_files.info(TABLE).rows == rows  # same rows, fewer files
    assert maintenance.small_file_counts(small_files, TABLE) == {
        "ts_day=2026-11-20": 1,
        "ts_day=2026-11-21": 1,
    }


def test_nightly_schedule_targets_the_job() -> None:
    schedule = defs.resolve_schedule_def("table_maintenance_nightly")
    assert schedule.job_name == "table_maintenance"
    assert schedule.cron_schedule == "0 3 * * *"


def test_sensor_requests_maintenance_with_run_keys(
    in_aura_env, small_files: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    resource = LakehouseResource()
    assert tables_to_compact(resource, threshold=7) == {}
    found = tables_to_compact(resource, threshold=6)
    assert set(found) == {TABLE} and found[TABLE][0] == 6

    monkeypatch.setattr(sensors, "SMALL_FILES_PER_PARTITION", 6)
    with dg.build_sensor_context(resources={"lakehouse": resource}) as context:
        result = small_files_sensor(context)
    [request] = result.run_requests
    snapshot = small_files.info(TABLE).snapshot_id
    assert request.run_key == f"{TABLE}@{snapshot}"
    assert request.run_config["ops"]["maintain_tables_op"]["config"]["tables"] == [TABLE]

    # After the requested run, nothing is over the threshold: the sensor skips.
    defs.resolve_job_def("table_maintenance").execute_in_process(
        run_config=RUN_CONFIG, instance=dg.DagsterInstance.ephemeral()
    )
    with dg.build_sensor_context(resources={"lakehouse": resource}) as context:
        assert isinstance(small_files_sensor(context), dg.SkipReason)
