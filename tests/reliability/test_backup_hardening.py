"""Backup, restore and maintenance under attack (issue 21 items 1, 3, 4, 5, 13 and 18).

* Erased data does not survive in an incremental backup, nor in an old manifest of it.
* Restore trusts nothing it reads: hostile paths and names, symlinks, and a consistent rewrite
  of the backup (checksums recomputed) are refused before anything is written.
* A backup destination inside the warehouse is refused (orphan removal would delete it).
* Maintenance runs on every real home: empty tables, tables without the branch, bookkeeping.
* kill -9 during a restore: every interrupted home is refused by every command until the same
  restore runs again, which starts over and finishes.
* A copied AURA_HOME is refused instead of writing into the original's warehouse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from click.testing import CliRunner
from helpers import (
    DAYS,
    OBJSTORE,
    TABLE,
    day_decisions,
    empty_rest_catalog,
    objstore_env,
    parquet_hits,
)
from pyiceberg.expressions import EqualTo

from aura_assets.cli import main
from lakehouse import Lakehouse, Lineage, Settings, maintenance
from lakehouse.exceptions import HomeStateError
from lakehouse.maintenance.backup import BackupError, backup, load_manifest, restore, verify
from lakehouse.memory.cold import erase_rows
from lakehouse.settings import NAMESPACE
from lakehouse.table import refs
from lakehouse.table.catalog import open_catalog
from reliability.harness import process_context, scaled

pytestmark = pytest.mark.reliability

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
VICTIM = "victim-tenant-7f3a"


def _warehouse(settings: Settings) -> Path:
    return Path(urlsplit(settings.warehouse).path)


def _home(tmp_path: Path, name: str, **extra: str) -> Settings:
    return Settings.from_env({"AURA_HOME": str(tmp_path / name), **extra})


def _source(settings: Settings, appends: int = 3) -> Lakehouse:
    lh = Lakehouse(settings)
    lh.ensure_all()
    for i in range(appends):
        lh.append(TABLE, day_decisions(20, DAYS[i % 2], start=100 * i), lineage=Lineage(asset="t"))
    return lh


def _state(lh: Lakehouse) -> dict[str, Any]:
    """Per table: snapshot ids, refs and main's row count."""
    state: dict[str, Any] = {}
    for info in lh.tables():
        table = lh.table(info.name)
        table.refresh()
        state[info.name] = (
            sorted(s.snapshot_id for s in table.metadata.snapshots),
            {n: r.snapshot_id for n, r in table.metadata.refs.items()},
            info.rows,
        )
    return state


def _reseal(dest: Path, change: Callable[[dict[str, Any]], None] = lambda m: None) -> None:
    """What an attacker without the key does: edit, then recompute every checksum."""
    manifest = load_manifest(dest)
    change(manifest)
    for rel, entry in manifest["files"].items():
        path = dest / "files" / rel
        if path.is_file():
            data = path.read_bytes()
            entry["sha256"], entry["size"] = hashlib.sha256(data).hexdigest(), len(data)
    (dest / "manifest.json").write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------- item 1


def test_incremental_backup_keeps_no_erased_data(tmp_path: Path, figures) -> None:  # type: ignore[no-untyped-def]
    settings = _home(tmp_path, "home")
    lh = _source(settings)
    victim = day_decisions(15, DAYS[0], start=5000).to_pylist()
    for row in victim:
        row["tenant_id"] = VICTIM
    lh.append(TABLE, pa.Table.from_pylist(victim, schema=day_decisions(1).schema))
    dest = tmp_path / "backup"
    backup(settings, dest)
    assert parquet_hits(dest, VICTIM)  # the backup holds the tenant's rows

    erase_rows(lh.table(TABLE), EqualTo("tenant_id", VICTIM))  # what forget-tenant does
    assert not parquet_hits(_warehouse(settings), VICTIM)
    report = backup(settings, dest, incremental=True)

    hits = parquet_hits(dest, VICTIM)
    current = load_manifest(dest)["files"]
    stale = [
        old.name
        for old in (dest / "manifests").iterdir()
        if any(rel not in current for rel in json.loads(old.read_text())["files"])
    ]
    checked = verify(dest)
    figures(victim_files_in_backup=len(hits), stale_manifests=len(stale), verify_ok=checked.ok)
    assert hits == [] and stale == [] and checked.ok, (hits, stale, checked)
    assert report.removed_files > 0 and report.removed_manifests > 0
    target = _home(tmp_path, "restored")
    restore(dest, target)
    restored = Lakehouse(target).read(TABLE)
    assert VICTIM not in restored.column("tenant_id").to_pylist()
    assert restored.num_rows == lh.read(TABLE).num_rows


# ------------------------------------------------------------------------------- item 3


def _attacks(settings: Settings, lh: Lakehouse) -> dict[str, Callable[[Path], None]]:
    """Each edits a copy of a backup the way the second attack did."""
    outside = settings.home.parent / "outside-secret.txt"
    outside.write_text("not part of any backup")

    def dotdot(dest: Path) -> None:
        escape = dest / "files" / ".." / ".." / "escape"
        escape.mkdir(parents=True, exist_ok=True)
        (escape / "pwned.txt").write_text("pwned")
        _reseal(
            dest,
            lambda m: m["files"].__setitem__(
                "../../escape/pwned.txt", {"kind": "data", "sha256": "", "size": 0}
            ),
        )

    def absolute(dest: Path) -> None:
        _reseal(
            dest,
            lambda m: m["files"].__setitem__(
                str(outside), {"kind": "data", "sha256": "", "size": 0}
            ),
        )

    def rolled_back(dest: Path) -> None:
        manifest = load_manifest(dest)
        rel = manifest["tables"][TABLE]["metadata"]
        doc = json.loads((dest / "files" / rel).read_text())
        older = doc["snapshots"][-2]["snapshot-id"]
        doc["current-snapshot-id"] = older
        doc["refs"]["main"]["snapshot-id"] = older
        (dest / "files" / rel).write_text(json.dumps(doc))

        def describe(m: dict[str, Any]) -> None:
            m["tables"][TABLE]["current_snapshot_id"] = older
            m["tables"][TABLE]["refs"]["main"]["snapshot_id"] = older

        _reseal(dest, describe)

    def swapped(dest: Path) -> None:
        files = load_manifest(dest)["files"]
        data = sorted((f["size"], r) for r, f in files.items() if f["kind"] == "data")
        a, b = dest / "files" / data[0][1], dest / "files" / data[-1][1]  # smallest, largest
        content_a, content_b = a.read_bytes(), b.read_bytes()
        a.write_bytes(content_b)
        b.write_bytes(content_a)
        _reseal(dest)

    def dropped(dest: Path) -> None:
        _reseal(dest, lambda m: m["tables"].pop("experiments"))

    def unsigned(dest: Path) -> None:
        _reseal(dest, lambda m: m.pop("signature", None))

    def symlinked(dest: Path) -> None:
        rel = next(r for r, f in load_manifest(dest)["files"].items() if f["kind"] == "data")
        path = dest / "files" / rel
        copy = settings.home.parent / "linked.parquet"
        shutil.copyfile(path, copy)
        path.unlink()
        path.symlink_to(copy)

    def hostile_names(dest: Path) -> None:
        def add(m: dict[str, Any]) -> None:
            for name in ("../../evil", 'x" ; DROP VIEW routing_decisions; --'):
                m["tables"][name] = dict(m["tables"][TABLE])

        _reseal(dest, add)

    return {
        "dotdot_path": dotdot,
        "absolute_path": absolute,
        "main_rolled_back": rolled_back,
        "data_files_swapped": swapped,
        "table_dropped": dropped,
        "signature_removed": unsigned,
        "symlinked_file": symlinked,
        "hostile_table_names": hostile_names,
    }


def test_restore_refuses_every_tampered_backup(tmp_path: Path, figures) -> None:  # type: ignore[no-untyped-def]
    settings = _home(tmp_path, "home", AURA_BACKUP_KEY=KEY)
    lh = _source(settings)
    dest = tmp_path / "backup"
    made = backup(settings, dest)

    refused: dict[str, str] = {}
    for n, (name, attack) in enumerate(_attacks(settings, lh).items()):
        copy = tmp_path / f"tampered-{name}"
        shutil.copytree(dest, copy, symlinks=True)
        attack(copy)
        target = _home(tmp_path / f"target-{n}", "home", AURA_BACKUP_KEY=KEY)
        with pytest.raises(BackupError) as caught:
            restore(copy, target)
        refused[name] = str(caught.value).split("fails verification ")[-1][:120]
        assert not open_catalog(target).list_tables(NAMESPACE), name  # nothing registered
        assert not list(_warehouse(target).rglob("*.*")), name  # nothing written
        assert not (target.home.parent / "escape").exists(), name  # <warehouse>/../../escape
    figures(attacks=len(refused), refused=len(refused), reasons=refused)

    # The untouched backup is signed and restores, and time travel is intact.
    assert made.signed and verify(dest, key=KEY).ok
    target = _home(tmp_path, "good", AURA_BACKUP_KEY=KEY)
    assert restore(dest, target).signature == "signed"
    assert _state(Lakehouse(target)) == _state(lh)


def test_without_a_key_the_digest_anchors_the_backup(tmp_path: Path) -> None:
    settings = _home(tmp_path, "home")
    lh = _source(settings)
    dest = tmp_path / "backup"
    made = backup(settings, dest)
    assert not made.signed and made.digest.startswith("sha256:")
    attacks = _attacks(settings, lh)
    attacks["main_rolled_back"](dest)  # consistent: checksums and description recomputed
    with pytest.raises(BackupError, match="digest is sha256:.*not the expected"):
        restore(dest, _home(tmp_path, "target"), expect_digest=made.digest)


def test_verify_reports_hostile_entries_and_cli_refuses(tmp_path: Path) -> None:
    settings = _home(tmp_path, "home")
    lh = _source(settings, appends=1)
    dest = tmp_path / "backup"
    backup(settings, dest)
    _attacks(settings, lh)["hostile_table_names"](dest)
    report = verify(dest)
    assert not report.ok and any("../../evil" in p for p in report.unsafe)
    result = CliRunner().invoke(main, ["restore", str(dest), "--home", str(tmp_path / "t")])
    assert result.exit_code == 1 and "fails verification" in result.output, result.output


# ------------------------------------------------------------------------------- item 4


def test_backup_inside_the_warehouse_is_refused(tmp_path: Path) -> None:
    settings = _home(tmp_path, "home")
    lh = _source(settings, appends=1)
    inside = _warehouse(settings) / "my-backup"
    with pytest.raises(BackupError, match="overlaps the warehouse .*orphan removal"):
        backup(settings, inside)
    assert not inside.exists()
    maintenance.remove_orphans(lh, TABLE, grace=timedelta(0))


# ------------------------------------------------------------------------------- item 5


def test_maintenance_runs_on_every_real_home(tmp_path: Path, figures) -> None:  # type: ignore[no-untyped-def]
    """Empty tables (no main yet), a branch only some tables have, bookkeeping tables."""
    home = tmp_path / "home"
    lh = _source(Settings.from_env({"AURA_HOME": str(home)}))
    refs.create_branch(lh.table(TABLE), "exp")
    runner = CliRunner()
    outcomes = {}
    for args, env in (
        (["maintain", "--dry-run"], {}),
        (["maintain"], {}),
        (["maintain", "--branch", "exp"], {}),
    ):
        result = runner.invoke(main, args, env={"AURA_HOME": str(home), **env})
        outcomes[" ".join(args)] = result.exit_code
        assert result.exit_code == 0, result.output
        assert "aura.experiments" in result.output and "skipped (no branch 'main')" in (
            result.output
        )
    dry = runner.invoke(main, ["maintain", "--dry-run"], env={"AURA_HOME": str(home)})
    assert "now: " in dry.output and "snapshots " not in dry.output  # no unchanged after-state

    from dagster import DagsterInstance

    from aura_assets.maintenance.jobs import table_maintenance_job
    from aura_resources.lakehouse import LakehouseResource

    run = table_maintenance_job.execute_in_process(
        resources={"lakehouse": LakehouseResource(home=str(home), branch="exp")},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    figures(cli=outcomes, dagster_job_success=run.success)
    assert run.success


# ------------------------------------------------------------------------------- item 13


def _restore_child(src: str, env: dict[str, str], kill_at: int) -> None:
    """Restore, and SIGKILL this process at its ``kill_at``-th step (0: never)."""
    steps = 0

    def step(_: str) -> None:
        nonlocal steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    restore(src, Settings.from_env(env), on_progress=step)


def _run_killed(src: str, env: dict[str, str], kill_at: int) -> bool:
    """Run :func:`_restore_child` in a fresh process; returns whether it was killed."""
    proc = process_context().Process(target=_restore_child, args=(src, env, kill_at))
    proc.start()
    proc.join(300)
    assert proc.exitcode in (0, -signal.SIGKILL), f"restore failed on its own ({proc.exitcode})"
    return proc.exitcode == -signal.SIGKILL


def test_kill_during_restore_leaves_a_home_every_command_refuses(tmp_path: Path, figures) -> None:  # type: ignore[no-untyped-def]
    """kill -9 at seeded points of the write phase (after the claim, after each file copied or
    rewritten, after each table registered): the home is refused until restore runs again."""
    settings = _home(tmp_path, "home")
    lh = _source(settings)
    want = _state(lh)
    dest = tmp_path / "backup"
    backup(settings, dest)
    steps: list[str] = []
    restore(dest, _home(tmp_path, "probe"), on_progress=steps.append)

    trials = scaled(20)
    rng = random.Random(20261207)
    outcome: dict[str, int] = {"refused": 0, "untouched": 0, "finished": 0, "half": 0}
    killed = resumed = 0
    runner = CliRunner()
    for t in range(trials):
        env = {"AURA_HOME": str(tmp_path / f"r{t}")}
        killed += _run_killed(str(dest), env, rng.randint(1, len(steps)))
        target = Settings.from_env(env)
        try:
            names = open_catalog(target).list_tables(NAMESPACE)
        except HomeStateError as exc:
            assert "did not finish" in str(exc) and "aura restore" in str(exc)
            shown = runner.invoke(main, ["tables"], env=env)
            assert shown.exit_code == 1 and "did not finish" in shown.output, shown.output
            outcome["refused"] += 1
        else:
            if not names:
                outcome["untouched"] += 1
            elif _state(Lakehouse(target)) == want:
                outcome["finished"] += 1
                continue
            else:
                outcome["half"] += 1
                continue
        restore(dest, target)  # re-running starts over and finishes
        resumed += _state(Lakehouse(target)) == want
    figures(trials=trials, killed=killed, resumed=resumed, steps=len(steps), **outcome)
    assert outcome["half"] == 0 and killed == trials
    assert resumed == outcome["refused"] + outcome["untouched"]


@pytest.mark.skipif(not OBJSTORE, reason="S3 + REST catalog: the object-store pass")
def test_kill_during_a_rest_restore_leaves_a_catalog_every_command_refuses(  # type: ignore[no-untyped-def]
    tmp_path: Path, figures
) -> None:
    """The same kills on S3 + a REST catalog, restoring into the pass's second table bucket:
    the catalog is refused until the same restore runs again, which drops only the tables the
    killed run created and finishes, snapshot for snapshot."""
    settings = Settings.from_env({"AURA_HOME": str(tmp_path / "home"), **objstore_env()})
    empty_rest_catalog(open_catalog(settings, check=False))  # the pass shares the catalog
    lh = _source(settings)
    want = _state(lh)
    dest = tmp_path / "backup"
    backup(settings, dest)

    def target(name: str) -> dict[str, str]:
        env = {"AURA_HOME": str(tmp_path / name), **objstore_env()}
        env["AURA_CATALOG_WAREHOUSE"] = os.environ["AURA_TEST_RESTORE_WAREHOUSE"]
        env["AURA_WAREHOUSE"] += f"-{tmp_path.name}-{name}"
        empty_rest_catalog(open_catalog(Settings.from_env(env), check=False), objects=True)
        return env

    steps: list[str] = []
    restore(dest, Settings.from_env(target("probe")), on_progress=steps.append)
    trials = scaled(12)
    rng = random.Random(20261207)
    refused = resumed = killed = 0
    for t in range(trials):
        env = target(f"r{t}")
        killed += _run_killed(str(dest), env, rng.randint(1, len(steps)))
        restored = Settings.from_env(env)
        with pytest.raises(HomeStateError, match="did not finish.*aura restore"):
            open_catalog(restored).list_tables(NAMESPACE)
        refused += 1
        shown = CliRunner().invoke(main, ["tables"], env=env)
        assert shown.exit_code == 1 and "did not finish" in shown.output, shown.output
        assert restore(dest, restored).started_over
        resumed += _state(Lakehouse(restored)) == want
    empty_rest_catalog(open_catalog(Settings.from_env(env), check=False), objects=True)
    figures(trials=trials, killed=killed, refused=refused, resumed=resumed, steps=len(steps))
    assert killed == refused == resumed == trials


# ------------------------------------------------------------------------------- item 18


def test_a_copied_home_is_refused(tmp_path: Path) -> None:
    original = _home(tmp_path, "original")
    lh = _source(original, appends=1)
    before = sorted(p.name for p in _warehouse(original).rglob("*.parquet"))
    copy = tmp_path / "copy"
    shutil.copytree(original.home, copy, ignore=shutil.ignore_patterns("*.sock", "redis"))
    copied = Settings.from_env({"AURA_HOME": str(copy)})
    with pytest.raises(HomeStateError, match="outside AURA_WAREHOUSE .*aura backup"):
        Lakehouse(copied).append(TABLE, day_decisions(3, start=9000), lineage=Lineage(asset="x"))
    result = CliRunner().invoke(main, ["tables"], env={"AURA_HOME": str(copy)})
    assert result.exit_code == 1 and "copied AURA_HOME" in result.output, result.output
    assert sorted(p.name for p in _warehouse(original).rglob("*.parquet")) == before
    assert lh.read(TABLE).num_rows == 20


def test_without_a_key_swapped_and_escaping_files_are_still_refused(tmp_path: Path) -> None:
    """What the tables' own metadata contradicts needs no key: swapped data files (sizes and
    row counts in the manifests), paths leaving the backup, symlinks, hostile names."""
    settings = _home(tmp_path, "home")
    lh = _source(settings)
    lh.append(TABLE, day_decisions(60, DAYS[1], start=7000), lineage=Lineage(asset="t"))
    dest = tmp_path / "backup"
    backup(settings, dest)
    for n, name in enumerate(("data_files_swapped", "dotdot_path", "symlinked_file")):
        copy = tmp_path / f"tampered-{name}"
        shutil.copytree(dest, copy, symlinks=True)
        _attacks(settings, lh)[name](copy)
        target = _home(tmp_path / f"t{n}", "home")
        with pytest.raises(BackupError, match="fails verification"):
            restore(copy, target)
        assert not open_catalog(target).list_tables(NAMESPACE)
