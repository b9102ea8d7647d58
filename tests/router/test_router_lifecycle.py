"""Router artifacts across backup/restore and orphan removal; a publish that fails after the
promotion was staged leaves main with exactly one champion."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pytest

from lakehouse import Lakehouse, Settings, maintenance
from lakehouse.maintenance import backup as bk
from lakehouse.publish.wap import accept_all
from lakehouse.router import promotion, training, versions
from lakehouse.router.model import RouterModel
from lakehouse.simulate.routing import RoutingWorkload, simulate_day
from lakehouse.table import refs, storage
from lakehouse.table.catalog import warehouse_properties

START = date(2026, 10, 1)
WORKLOAD = RoutingWorkload(start=START, per_day=900, seed=5)
DAYS = [START + timedelta(days=i) for i in range(4)]
ASK = ("tenant-03", "code", 900, ["large", "small", "mid"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four days; a first champion that nearly always asks the strongest model (costly)."""
    home = tmp_path_factory.mktemp("router_life") / "aura"
    lh = Lakehouse(Settings.from_env({"AURA_HOME": str(home)}))
    for day in DAYS:
        lh.append("routing_decisions", simulate_day(WORKLOAD, day)[0])
    training.build_training_set(lh, DAYS, audit=accept_all)
    first = promotion.retrain(lh, DAYS[:3], DAYS[3:], threshold=0.99, n_boot=100)
    assert first.published
    return {"lh": lh, "home": home, "first": first}


def _champions(lh: Lakehouse) -> list[str]:
    return [r["version"] for r in versions.models(lh).to_pylist() if r["status"] == "champion"]


def _worse(lh: Lakehouse) -> RouterModel:
    rows, snapshot = training.read_training(lh, DAYS[:3])
    shuffled = np.random.default_rng(1).permutation(rows.num_rows)
    noisy = rows.set_column(
        rows.schema.get_field_index("quality_score"),
        "quality_score",
        rows.column("quality_score").take(pa.array(shuffled)),
    )
    return RouterModel.train(noisy, training_snapshot_ids=[snapshot], max_iter=20)


def test_backup_restore_keeps_router_artifacts(world: dict[str, Any], tmp_path: Path) -> None:
    lh: Lakehouse = world["lh"]
    version = world["first"].candidate.version
    dest = tmp_path / "backup"
    bk.backup(lh.settings, dest)
    manifest = bk.load_manifest(dest)
    artifacts = {rel for rel, f in manifest["files"].items() if f["kind"] == "artifact"}
    assert {f"router_models/{version}/model.skops", f"router_models/{version}/model.json"} <= (
        artifacts
    )
    assert all(len(manifest["files"][rel]["sha256"]) == 64 for rel in artifacts)
    assert bk.verify(dest).ok

    target = Settings.from_env({"AURA_HOME": str(tmp_path / "restored")})
    bk.restore(dest, target)
    restored = Lakehouse(target)
    row = versions.champion_row(restored)
    assert row is not None and row["version"] == version
    # the restore adds no commit: router_models is the backed-up table, snapshot for snapshot
    before, after = lh.table("router_models"), restored.table("router_models")
    assert after.metadata.current_snapshot_id == before.metadata.current_snapshot_id
    assert [s.snapshot_id for s in after.snapshots()] == [s.snapshot_id for s in before.snapshots()]
    moved = storage.child(target.warehouse, f"router_models/{version}")
    assert versions.artifact_path(restored, row) == moved
    assert storage.exists(storage.child(moved, "model.skops"), {})
    versions._CACHE.clear()  # load from the restored home, not the source's cache
    model, why = versions.best_model_for(restored, *ASK)
    assert model in ASK[3] and why.startswith(f"champion {version}")
    assert versions.load_version(restored, version).version == version


@pytest.mark.slow
def test_orphaned_artifact_of_refused_candidate_is_removed_after_grace(
    world: dict[str, Any],
) -> None:
    lh: Lakehouse = world["lh"]
    worse = _worse(lh)
    result = promotion.retrain(lh, DAYS[:3], DAYS[3:], candidate=worse, n_boot=100)
    assert not result.published
    root, props = versions.artifact_root(lh), warehouse_properties(lh.settings)
    orphan = storage.child(root, worse.version)
    kept = storage.child(root, world["first"].candidate.version)

    def stored(directory: str) -> list[str]:  # listed through the file-system layer (S3 too)
        return [f.path.rsplit("/", 1)[-1] for f in storage.list_files(directory, props)]

    assert stored(orphan) == ["model.json", "model.skops"]

    # Its audit branch still names it: kept whatever the grace.
    report = maintenance.remove_orphans(lh, "router_models", grace=timedelta(0))
    assert report.artifacts == [] and stored(orphan)

    table = lh.table("router_models")
    expired = refs.expire_refs(table, now_ms=int(time.time() * 1000) + 8 * 86_400_000)
    assert result.audit_branch in expired
    # Unreferenced now, but younger than the grace period: kept.
    report = maintenance.remove_orphans(lh, "router_models", grace=timedelta(days=3))
    assert report.artifacts == [] and report.too_young >= 1 and stored(orphan)

    old = time.time() - 4 * 86_400
    for path in Path(urlsplit(orphan).path).rglob("*"):
        os.utime(path, (old, old))
    dry = maintenance.remove_orphans(lh, "router_models", dry_run=True)
    assert dry.artifacts == [orphan] and stored(orphan)
    report = maintenance.remove_orphans(lh, "router_models")
    assert report.artifacts == [orphan] and report.bytes_freed > 0
    assert stored(orphan) == [] and stored(kept) == ["model.json", "model.skops"]
    versions._CACHE.clear()
    assert versions.best_model_for(lh, *ASK)[1].startswith(f"champion {kept.rsplit('/', 1)[-1]}")


@pytest.mark.slow
def test_failed_publish_after_staged_promotion_keeps_one_champion(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lh: Lakehouse = world["lh"]
    before = _champions(lh)
    assert len(before) == 1
    champion = versions.champion(lh)
    winners = []  # a candidate the gate promotes: a little less cautious than the champion
    for threshold in (0.98, 0.97, 0.95, 0.9):
        model = versions.train(lh, DAYS[:3], threshold=threshold)
        judged = promotion.evaluate(lh, model, champion, DAYS[3:], n_boot=100)
        if promotion.gate(judged).promote:
            winners.append(model)
            break
    assert winners, "no candidate beats the cautious champion"
    candidate = winners[0]

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("process killed between the status write and the publish")

    monkeypatch.setattr(refs, "publish", crash)
    with pytest.raises(RuntimeError, match="killed"):
        promotion.retrain(lh, DAYS[:3], DAYS[3:], candidate=candidate, n_boot=100)
    monkeypatch.undo()
    assert _champions(lh) == before  # main untouched: the status change is on the branch only
    table = lh.table("router_models")
    staged = [r.name for r in refs.list_refs(table, "branch") if r.name != "main"]
    assert staged
    statuses = {
        r["version"]: r["status"] for r in versions.models(lh, branch=staged[-1]).to_pylist()
    }
    assert statuses[candidate.version] == "champion" and statuses[before[0]] == "retired"

    result = promotion.retrain(lh, DAYS[:3], DAYS[3:], candidate=candidate, n_boot=100)
    assert result.published, result.decision.reasons
    assert result.previous_champion == before[0]
    assert _champions(lh) == [candidate.version]
    statuses = {r["version"]: r["status"] for r in versions.models(lh).to_pylist()}
    assert statuses[before[0]] == "retired"
