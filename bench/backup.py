"""Backup and restore of a table, against a plain recursive copy of the warehouse.

Builds ``routing_decisions`` in a temporary AURA_HOME with ``AURA_BENCH_APPENDS`` appends of
``AURA_BENCH_APPEND_ROWS`` rows each, then times, in the same process: ``shutil.copytree`` of
the whole warehouse (the baseline: no checksums, no consistency), a full
:func:`lakehouse.maintenance.backup.backup`, an incremental one after one more append, a
:func:`verify`, and a :func:`restore` into a new AURA_HOME (paths rebased). The restored table
must have the same snapshots and row count.

Environment: ``AURA_BENCH_APPENDS`` (default 20), ``AURA_BENCH_APPEND_ROWS`` (default 50000).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import emit
from bench.timetravel import decisions
from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.maintenance.backup import backup, restore, verify
from lakehouse.table.catalog import close_catalog

TABLE = "routing_decisions"


def main() -> None:
    appends = int(os.environ.get("AURA_BENCH_APPENDS", "20"))
    per_append = int(os.environ.get("AURA_BENCH_APPEND_ROWS", "50000"))
    with tempfile.TemporaryDirectory(prefix="aura-bench-backup-") as tmp:
        root = Path(tmp)
        lh = Lakehouse(Settings.from_env({"AURA_HOME": str(root / "home")}))
        rows = decisions((appends + 1) * per_append, seed=5)
        for i in range(appends):
            lh.append(TABLE, rows.slice(i * per_append, per_append), lineage=Lineage("bench"))

        began = time.perf_counter()
        shutil.copytree(urlsplit(lh.settings.warehouse).path, root / "copy")
        copy_s = time.perf_counter() - began
        copied = sum(p.stat().st_size for p in (root / "copy").rglob("*") if p.is_file())
        emit("backup.copytree", copy_s, "s", bytes=copied)

        full = backup(lh.settings, root / "backup")
        emit(
            "backup.full",
            full.seconds,
            "s",
            baseline=copy_s,
            baseline_name="copytree",
            files=full.files,
            bytes=full.bytes,
            mib_per_s=round(full.bytes / full.seconds / 2**20, 1),
        )
        lh.append(TABLE, rows.slice(appends * per_append, per_append), lineage=Lineage("bench"))
        incremental = backup(lh.settings, root / "backup", incremental=True)
        emit(
            "backup.incremental",
            incremental.seconds,
            "s",
            baseline=full.seconds,
            baseline_name="full",
            copied_files=incremental.copied_files,
            copied_bytes=incremental.copied_bytes,
        )
        began = time.perf_counter()
        checked = verify(root / "backup")
        emit(
            "backup.verify", time.perf_counter() - began, "s", baseline=full.seconds, ok=checked.ok
        )

        target = Settings.from_env({"AURA_HOME": str(root / "restored")})
        restored = restore(root / "backup", target)
        emit(
            "backup.restore",
            restored.seconds,
            "s",
            baseline=full.seconds,
            baseline_name="full",
            files=restored.files,
            rebased=restored.rewritten,
        )
        again = Lakehouse(target)
        assert again.read(TABLE).num_rows == rows.num_rows, "restore lost rows"
        assert [s.snapshot_id for s in again.table(TABLE).metadata.snapshots] == [
            s.snapshot_id for s in lh.table(TABLE).metadata.snapshots
        ], "restore changed the snapshots"
        close_catalog(lh.catalog)
        close_catalog(again.catalog)


if __name__ == "__main__":
    main()
