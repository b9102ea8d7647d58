"""Router assets in Dagster: a training-set range and router_retrain run."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from aura_assets.definitions import defs
from lakehouse import Lakehouse
from lakehouse.router import versions
from lakehouse.simulate.routing import RoutingWorkload, simulate_day

START = date(2026, 11, 1)


@pytest.mark.slow
def test_training_range_and_retrain_materialise(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(in_aura_env)
    workload = RoutingWorkload(start=START, per_day=800, seed=4)
    days = [START + timedelta(days=i) for i in range(4)]
    for day in days:
        lh.append("routing_decisions", simulate_day(workload, day)[0])
    instance = dg.DagsterInstance.ephemeral()
    training = defs.resolve_job_def("router_training").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    assert training.success
    assert lh.read("router_training_set").num_rows == 4 * 800
    retrain = defs.resolve_job_def("router_retrain").execute_in_process(instance=instance)
    assert retrain.success
    event = instance.get_latest_materialization_event(dg.AssetKey("router_evaluation"))
    meta = event.asset_materialization.metadata
    assert {"cost_saving", "quality_ratio_low", "apgr", "champion_version", "curve"} <= set(meta)
    assert meta["curve"].value.startswith("| threshold |")
    model_meta = instance.get_latest_materialization_event(
        dg.AssetKey("router_model")
    ).asset_materialization.metadata
    assert model_meta["published"].value is True
    assert model_meta["champion_version"].value == versions.champion_row(lh)["version"]  # type: ignore[index]
