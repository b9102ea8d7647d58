"""The code location loads and validates once, with what each domain adds to it.

``aura_assets.definitions`` is what ``dagster dev``, ``dg`` and the UI load; this is the one test
that validates the whole of it (domain tests resolve jobs from the already-imported object).
"""

from __future__ import annotations

import dagster as dg

from aura_assets.definitions import defs
from aura_assets.partitions import DAILY


def _keys() -> set[str]:
    return {k.to_user_string() for k in defs.resolve_all_asset_keys()}


def test_the_code_location_loads_with_every_domain() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = _keys()
    sensors = {s.name for s in defs.sensors or []}

    # routing: the daily ingest and its model
    assert {"routing_decisions", "routing_decisions_rejected", "routing_model_daily"} <= keys
    assert defs.resolve_job_def("routing_ingest").partitions_def == DAILY

    # router: training set, model and evaluation, retrained weekly
    assert {"router_training_set", "router_model", "router_evaluation"} <= keys
    retrain = defs.resolve_job_def("router_retrain")
    assert {k.to_user_string() for k in retrain.asset_layer.executable_asset_keys} >= {
        "router_model",
        "router_evaluation",
    }
    assert defs.resolve_schedule_def("router_weekly_schedule").job_name == "router_retrain"

    # topology: a partition range materialises in one run
    topology = ("workflow_runs", "topology_history", "topology_index", "topology_drift")
    assert set(topology) | {"workflow_runs_rejected"} <= keys
    graph = defs.resolve_asset_graph()
    for name in topology:
        node = graph.get(dg.AssetKey(name))
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), name
        assert node.partitions_def is not None
    assert defs.resolve_job_def("topology_daily").partitions_def is not None
    assert {"workflows_stream_sensor", "drift_sensor"} <= sensors

    # memory: events, tiers and compaction
    assert {
        "memory_events",
        "memory_events_rejected",
        "memory_warm_index",
        "memory_cold_archive",
    } <= keys
    assert defs.resolve_job_def("memory_compaction") is not None
    assert {"tier_compaction_sensor", "memory_stream_sensor"} <= sensors

    # checkpoints: the daily archive of the hot store
    assert defs.resolve_assets_def("workflow_checkpoints").partitions_def is not None
