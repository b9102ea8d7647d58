"""Memory in Dagster: ingest and compaction runs, the sensor, and erase coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from helpers import dagster_dump, run_memory_ingest

from aura_assets.definitions import defs
from aura_assets.memory.sensors import tier_compaction_sensor
from aura_assets.resources import RESOURCES
from lakehouse import Settings
from lakehouse.memory import MemoryStore


def _files_holding(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


@pytest.mark.slow
def test_runs_move_tiers_and_forget_leaves_nothing_in_dagster(
    in_aura_env: Settings, redis_client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    secret = "dagster must never see SECRET-ORCA-55"
    earlier = datetime.now(UTC) - timedelta(hours=2)
    with MemoryStore(in_aura_env, redis_client=redis_client) as mem:
        sid = mem.store("acme", secret, metadata={"why": secret}, now=earlier)
        cid = mem.store("acme", "control memory", now=earlier)
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        run_memory_ingest(instance, earlier.date())
        event = instance.get_latest_materialization_event(dg.AssetKey("memory_events"))
        meta = event.asset_materialization.metadata  # type: ignore[union-attr]
        assert meta["stream/new_events"].value == 2
        preview = meta["preview"].value
        assert sid in preview and cid in preview and "content" not in preview

        # The sensor sees hot memories past their age and asks for one compaction.
        with dg.build_sensor_context(instance=instance, resources=RESOURCES) as context:
            first = tier_compaction_sensor(context)
        assert [r.run_key for r in first.run_requests][0].startswith("hot-age@")
        with dg.build_sensor_context(
            instance=instance, resources=RESOURCES, cursor=first.cursor
        ) as context:
            assert isinstance(tier_compaction_sensor(context), dg.SkipReason)  # idempotent

        compaction = defs.resolve_job_def("memory_compaction").execute_in_process(instance=instance)
        assert compaction.success
        warm = instance.get_latest_materialization_event(dg.AssetKey("memory_warm_index"))
        wmeta = {k: v.value for k, v in warm.asset_materialization.metadata.items()}  # type: ignore[union-attr]
        assert (wmeta["before/hot"], wmeta["before/warm"]) == (2, 0)
        assert (wmeta["after/hot"], wmeta["after/warm"], wmeta["moved/hot_to_warm"]) == (0, 2, 2)

        with MemoryStore(in_aura_env, redis_client=redis_client) as mem:
            assert mem.get("acme", sid).tier == "warm"  # type: ignore[union-attr]
            receipt = mem.forget("acme", sid)
            assert receipt.qdrant_points_deleted == 1
        dump = dagster_dump(instance)
        assert sid in dump  # the scan reads the previews and metadata it checks
        assert "SECRET-ORCA" not in dump
        assert _files_holding(home, "SECRET-ORCA") == []
