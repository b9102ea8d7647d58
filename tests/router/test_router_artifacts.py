"""Model artifacts live in the warehouse (a directory or the bucket) and load back from it."""

from __future__ import annotations

from datetime import date, timedelta

from lakehouse import Lakehouse, maintenance
from lakehouse.publish.wap import accept_all
from lakehouse.router import promotion, training, versions
from lakehouse.simulate.routing import RoutingWorkload, simulate_day
from lakehouse.table import storage
from lakehouse.table.catalog import warehouse_properties

DAYS = [date(2026, 11, 2), date(2026, 11, 3)]


def test_artifacts_are_written_to_and_read_from_the_warehouse(lakehouse: Lakehouse) -> None:
    lh = lakehouse
    for day in DAYS:
        workload = RoutingWorkload(start=DAYS[0], seed=5)
        lh.append("routing_decisions", simulate_day(workload, day, n=400)[0])
    training.build_training_set(lh, DAYS, audit=accept_all)
    result = promotion.retrain(lh, DAYS[:1], DAYS[1:], threshold=0.99, n_boot=50)
    assert result.published
    version = result.candidate.version
    props = warehouse_properties(lh.settings)
    root = versions.artifact_root(lh)
    assert root == storage.child(lh.settings.warehouse, "router_models")  # s3://... on S3
    champion = storage.child(root, version)

    def stored(directory: str) -> list[str]:  # the bucket's listing on S3
        return [f.path for f in storage.list_files(directory, props)]

    assert stored(champion) == [f"{champion}/model.json", f"{champion}/model.skops"]
    row = versions.champion_row(lh)
    assert row is not None and versions.artifact_path(lh, row) == champion

    versions._CACHE.clear()  # read back through the file-system layer, not the cache
    assert versions.load_version(lh, version).version == version
    model, why = versions.best_model_for(lh, "tenant-03", "code", 900, ["large", "small", "mid"])
    assert why.startswith(f"champion {version}")

    # A trained version never registered is an orphan: gone from the store, the champion kept.
    stray = versions.train(lh, DAYS[:1], max_iter=7)
    orphan = storage.child(root, stray.version)
    assert stray.version != version and len(stored(orphan)) == 2
    assert maintenance.remove_orphans(lh, "router_models").artifacts == []  # within the grace
    report = maintenance.remove_orphans(lh, "router_models", grace=timedelta(0))
    # (on the object-store pass the warehouse prefix is shared: earlier tests' artifacts no row
    # of this catalog names are orphans here too)
    assert orphan in report.artifacts and champion not in report.artifacts
    assert report.bytes_freed > 0
    assert stored(orphan) == [] and len(stored(champion)) == 2
    versions._CACHE.clear()
    assert versions.load_version(lh, version).version == version
