"""Backup, verify and restore: a round trip equal by snapshot ids, refs, row counts and answers."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from helpers import DAYS, OBJSTORE, TABLE, Batch, empty_rest_catalog

from aura_assets.cli import main
from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.exceptions import HomeStateError
from lakehouse.maintenance.backup import BackupError, backup, load_manifest, restore, verify
from lakehouse.memory import MemoryStore
from lakehouse.settings import NAMESPACE
from lakehouse.sql import connect
from lakehouse.table import refs, storage
from lakehouse.table.catalog import (
    forget_checks,
    open_catalog,
    tables_warehouse,
    warehouse_properties,
)

QUERY = (
    "SELECT chosen_model, count(*) AS n, sum(prompt_tokens) AS tokens "
    "FROM routing_decisions GROUP BY 1 ORDER BY 1"
)


@pytest.fixture
def restored_env(aura_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """AURA_* variables for a fresh AURA_HOME (and, on the server pass, a new catalog name; on
    the object-store pass, the REST catalog's second table bucket and a new S3 prefix)."""
    env = {**aura_env, "AURA_HOME": str(tmp_path / "restored")}
    if "AURA_CATALOG_NAME" in env:
        env["AURA_CATALOG_NAME"] = f"t_{uuid.uuid4().hex[:12]}"
    if OBJSTORE:
        env["AURA_CATALOG_WAREHOUSE"] = os.environ["AURA_TEST_RESTORE_WAREHOUSE"]
        env["AURA_WAREHOUSE"] += f"-restored-{uuid.uuid4().hex[:8]}"
        _lose(Settings.from_env(env))  # the second table bucket is shared by the pass's tests
    yield env
    if OBJSTORE:
        _lose(Settings.from_env(env))
    elif "AURA_PG_URL" in env:  # drop what the restore registered in the shared database
        catalog = open_catalog(Settings.from_env(env))
        for identifier in catalog.list_tables(NAMESPACE):
            catalog.drop_table(identifier)
        catalog.drop_namespace(NAMESPACE)


@pytest.fixture
def source(small_files: Lakehouse, batch: Batch) -> Lakehouse:
    """12 appends on main, a branch with its own commit, a tag, and the other tables (empty)."""
    lh = small_files
    lh.ensure_all()
    table = lh.table(TABLE)
    refs.create_tag(table, "release-1")
    refs.create_branch(table, "exp")
    lh.append(TABLE, batch(7, DAYS[1], start=9000), lineage=Lineage(asset="exp"), branch="exp")
    return lh


def _state(lh: Lakehouse) -> dict[str, object]:
    """Per table: snapshot ids, refs, and the row count at every ref."""
    state: dict[str, object] = {}
    for info in lh.tables():
        table = lh.table(info.name)
        table.refresh()
        rows = {
            name: table.scan(snapshot_id=ref.snapshot_id).to_arrow().num_rows
            for name, ref in table.metadata.refs.items()
        }
        state[info.name] = {
            "snapshots": sorted(s.snapshot_id for s in table.metadata.snapshots),
            "refs": {
                n: (r.snapshot_ref_type.value, r.snapshot_id)
                for n, r in table.metadata.refs.items()
            },
            "current": table.metadata.current_snapshot_id,
            "rows": rows,
            "log": [(e.snapshot_id, e.timestamp_ms) for e in table.metadata.snapshot_log],
        }
    return state


def _answers(settings: Settings, as_of: datetime) -> dict[str, list[tuple[object, ...]]]:
    answers = {}
    for name, options in (("now", {}), ("as_of", {"as_of": as_of}), ("exp", {"ref": "exp"})):
        with connect(settings, **options) as session:  # type: ignore[arg-type]
            answers[name] = session.execute(QUERY).fetchall()
    return answers


def _as_of(lh: Lakehouse) -> datetime:
    """The moment main's 6th snapshot became current (half the ingested rows)."""
    log = lh.table(TABLE).metadata.snapshot_log
    return datetime.fromtimestamp(log[5].timestamp_ms / 1000, UTC)


def _lose(settings: Settings) -> None:
    """The disaster: every table and file of the lakehouse is gone (the catalog's rows too on
    a REST catalog, whose server decides where tables lie: dropping them deletes their objects
    on SeaweedFS, and the purge does elsewhere)."""
    if not OBJSTORE:
        shutil.rmtree(Path(urlsplit(settings.warehouse).path))
        return
    forget_checks(settings)
    empty_rest_catalog(open_catalog(settings, check=False), objects=True)
    props = warehouse_properties(settings)
    storage.delete_files([f.path for f in storage.list_files(settings.warehouse, props)], props)


def test_round_trip_to_a_new_home(
    source: Lakehouse, batch: Batch, restored_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    as_of = _as_of(source)
    before, answers = _state(source), _answers(source.settings, as_of)
    assert answers["as_of"] != answers["now"] != answers["exp"]  # the query can tell them apart

    dest = tmp_path / "backup"
    report = backup(source.settings, dest)
    assert report.tables == len(before) and report.copied_files == report.files > 0
    manifest = load_manifest(dest)
    assert manifest["source"]["warehouse"] == source.settings.warehouse
    datetime.fromisoformat(manifest["created_at"])
    described = manifest["tables"][TABLE]
    assert described["refs"]["exp"]["type"] == "branch"
    assert described["refs"]["release-1"]["type"] == "tag"
    assert sorted(described["snapshot_ids"]) == before[TABLE]["snapshots"]  # type: ignore[index]
    assert described["rows"] == 240
    kinds = {f["kind"] for f in manifest["files"].values()}
    # "state" (hot memories, spool, hot checkpoints) when the stores hold any: on the server
    # pass the worker's Redis db and PostgreSQL database are shared by its tests.
    assert kinds - {"state"} == {"metadata", "manifest_list", "manifest", "data"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"].values())
    assert verify(dest).ok

    _lose(source.settings)  # the disaster: the source files are gone

    target = Settings.from_env(restored_env)
    restored = restore(dest, target)
    assert restored.rewritten > 0 and sorted(restored.tables) == sorted(before)
    lh = Lakehouse(target)
    assert _state(lh) == before
    assert _answers(target, as_of) == answers
    table = lh.table(TABLE)  # every path now lies in the new warehouse
    new_root = tables_warehouse(target).rstrip("/") + "/"
    assert table.metadata_location.startswith(new_root)
    for snapshot in table.metadata.snapshots:
        assert snapshot.manifest_list.startswith(new_root)
        for mf in snapshot.manifests(table.io):
            assert mf.manifest_path.startswith(new_root)
            for entry in mf.fetch_manifest_entry(table.io):
                assert entry.data_file.file_path.startswith(new_root)

    lh.append(TABLE, batch(1, DAYS[0], start=77_000), lineage=Lineage(asset="after-restore"))
    assert lh.read(TABLE).num_rows == 241


def test_commits_during_a_backup_are_not_in_it(
    source: Lakehouse, batch: Batch, restored_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    before, answers = _state(source), _answers(source.settings, _as_of(source))
    captured: dict[str, str] = {}

    def commit_meanwhile(locations: dict[str, str]) -> None:
        captured.update(locations)
        source.append(TABLE, batch(9, DAYS[0], start=60_000), lineage=Lineage(asset="late"))
        refs.create_tag(source.table(TABLE), "late-tag")

    dest = tmp_path / "backup"
    backup(source.settings, dest, on_captured=commit_meanwhile)
    assert source.table(TABLE).metadata_location != captured[TABLE]  # the commit happened
    described = load_manifest(dest)["tables"][TABLE]
    assert described["metadata_location"] == captured[TABLE] and "late-tag" not in described["refs"]

    target = Settings.from_env(restored_env)
    restore(dest, target)
    assert _state(Lakehouse(target)) == before
    assert _answers(target, _as_of(source)) == answers


def test_restore_into_the_same_warehouse_path(source: Lakehouse, tmp_path: Path) -> None:
    """Catalog lost, files lost, same AURA_HOME: files are copied back unchanged."""
    before, answers = _state(source), _answers(source.settings, _as_of(source))
    dest = tmp_path / "backup"
    backup(source.settings, dest)
    if not OBJSTORE:  # the catalog's rows are lost (on REST, _lose drops the tables)
        catalog = open_catalog(source.settings)
        for identifier in catalog.list_tables(NAMESPACE):
            catalog.drop_table(identifier)
    _lose(source.settings)
    report = restore(dest, source.settings)
    assert report.rewritten == 0
    assert _state(Lakehouse(source.settings)) == before
    assert _answers(source.settings, _as_of(source)) == answers


def test_restore_refuses_a_non_empty_catalog(source: Lakehouse, tmp_path: Path) -> None:
    backup(source.settings, tmp_path / "backup")
    what = "empty warehouse of the REST catalog" if OBJSTORE else "new AURA_HOME"
    with pytest.raises(BackupError, match=f"is not empty .*routing_decisions.*{what}"):
        restore(tmp_path / "backup", source.settings)
    assert _state(source)  # nothing was dropped


def test_verify_finds_corrupt_and_missing_files(
    in_aura_env, source: Lakehouse, restored_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "backup"
    backup(source.settings, dest)
    files = load_manifest(dest)["files"]
    data = next(rel for rel, f in files.items() if f["kind"] == "data")
    manifest_file = next(rel for rel, f in files.items() if f["kind"] == "manifest")
    damaged = dest / "files" / data
    content = bytearray(damaged.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, other bytes
    damaged.write_bytes(bytes(content))
    (dest / "files" / manifest_file).unlink()

    report = verify(dest)
    assert report.corrupt == [data] and report.missing == [manifest_file] and not report.ok
    result = CliRunner().invoke(main, ["backup", "verify", str(dest)])
    assert result.exit_code == 1, result.output
    assert f"corrupt  {data}" in result.output and f"missing  {manifest_file}" in result.output
    with pytest.raises(BackupError, match="fails verification .*1 missing, 1 corrupt"):
        restore(dest, Settings.from_env(restored_env))


def test_incremental_copies_only_new_files(source: Lakehouse, batch: Batch, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    first = backup(source.settings, dest)
    with pytest.raises(BackupError, match="already holds a backup; use --incremental"):
        backup(source.settings, dest)
    old = load_manifest(dest)["files"]

    same = backup(source.settings, dest, incremental=True)  # nothing committed since
    assert same.copied_files == 0 and same.files == first.files and same.incremental

    source.append(TABLE, batch(5, DAYS[0], start=50_000), lineage=Lineage(asset="late"))
    second = backup(source.settings, dest, incremental=True)
    new = load_manifest(dest)["files"]
    added = set(new) - set(old)
    assert second.copied_files == len(added) and 0 < len(added) < len(new)
    assert second.copied_bytes == sum(new[rel]["size"] for rel in added)
    assert {new[rel]["kind"] for rel in added} == {"metadata", "manifest_list", "manifest", "data"}
    assert sum(1 for rel in added if new[rel]["kind"] == "data") == 1
    assert all(new[rel] == old[rel] for rel in set(new) & set(old))
    assert verify(dest).ok
    # the older manifests name the previous metadata file, which the backup no longer keeps
    # (it keeps only what the current manifest lists: erased data must not survive in it)
    assert len(list((dest / "manifests").iterdir())) == 1


def test_cli_backup_verify_restore(
    in_aura_env, source: Lakehouse, restored_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dest, runner = tmp_path / "backup", CliRunner()
    made = runner.invoke(main, ["backup", str(dest)])
    assert made.exit_code == 0, made.output
    assert "backed up" in made.output and "table(s)" in made.output
    again = runner.invoke(main, ["backup", str(dest), "--incremental"])
    assert again.exit_code == 0 and "copied 0 file(s)" in again.output, again.output
    checked = runner.invoke(main, ["backup", "verify", str(dest)])
    assert checked.exit_code == 0 and "ok:" in checked.output, checked.output

    refused = runner.invoke(main, ["restore", str(dest)])  # the current home is not empty
    assert refused.exit_code == 1 and "is not empty" in refused.output

    home = restored_env["AURA_HOME"]
    env = {k: v for k, v in restored_env.items() if k != "AURA_HOME"}  # new catalog name (pass 2)
    done = runner.invoke(main, ["restore", str(dest), "--home", home], env=env)
    assert done.exit_code == 0, done.output
    assert _state(Lakehouse(Settings.from_env(restored_env))) == _state(source)
    assert json.loads((dest / "manifest.json").read_text())["tables"]


@pytest.mark.skipif(not OBJSTORE, reason="S3 + REST catalog: the object-store pass")
def test_s3_rest_backup_restores_to_s3_rest_with_its_refs_and_snapshot_ids(
    source: Lakehouse, batch: Batch, restored_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A backup of tables in one table bucket restores into another, snapshot for snapshot."""
    source.append(TABLE, batch(3, DAYS[0], start=70_000), lineage=Lineage(asset="after-tag"))
    table = source.table(TABLE)
    ids = {name: ref.snapshot_id for name, ref in table.metadata.refs.items()}
    assert set(ids) == {"main", "release-1", "exp"} and len(set(ids.values())) == 3
    rows = {name: _rows(table, snapshot) for name, snapshot in ids.items()}
    dest = tmp_path / "backup"
    backup(source.settings, dest)
    target = Settings.from_env(restored_env)

    def killed(step: str) -> None:  # the first restore dies once its first table is created
        if step == "registered":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore(dest, target, on_progress=killed)
    forget_checks(target)
    with pytest.raises(HomeStateError, match="did not finish.*Run `aura restore"):
        Lakehouse(target).table(TABLE)
    assert restore(dest, target).started_over

    restored = Lakehouse(target).table(TABLE)
    assert restored.metadata_location.startswith(tables_warehouse(target).rstrip("/") + "/")
    assert {n: r.snapshot_id for n, r in restored.metadata.refs.items()} == ids
    assert sorted(s.snapshot_id for s in restored.metadata.snapshots) == sorted(
        s.snapshot_id for s in table.metadata.snapshots
    )
    assert {name: _rows(restored, snapshot) for name, snapshot in ids.items()} == rows
    assert _rows(source.table(TABLE), ids["main"]) == rows["main"]  # the source is untouched


def _rows(table, snapshot_id: int) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """Every row of ``table`` at ``snapshot_id``, sorted."""
    arrow = table.scan(snapshot_id=snapshot_id).to_arrow()
    return sorted(
        zip(*(arrow.column(c).to_pylist() for c in arrow.column_names), strict=True), key=repr
    )


@pytest.fixture
def bucket_dest(settings: Settings) -> Iterator[str]:
    """A backup destination in the object-store pass's bucket for backups (emptied after)."""
    dest = f"{os.environ['AURA_TEST_BACKUP_BUCKET']}/backups/x-{uuid.uuid4().hex[:8]}"
    yield dest
    props = settings.s3_properties()
    storage.delete_files([f.path for f in storage.list_files(dest, props)], props)


@pytest.mark.skipif(not OBJSTORE, reason="a backup in a bucket: the object-store pass")
def test_backup_in_a_bucket_restores_copies_incrementally_and_refuses_tampering(
    in_aura_env, source: Lakehouse, batch: Batch, restored_env, bucket_dest: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """S3 + REST to s3://backups/...: the same rows at main, a tag and a branch in another
    table bucket; a second backup uploads only new objects; one changed object is refused."""
    key = base64.urlsafe_b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("AURA_BACKUP_KEY", key)  # for the CLI
    settings = dataclasses.replace(source.settings, backup_key=key)  # manifests signed
    props = settings.s3_properties()
    for inside in (f"{settings.warehouse}/bk", f"{tables_warehouse(settings)}/bk"):
        with pytest.raises(BackupError, match="overlaps the warehouse"):
            backup(settings, inside)
    with pytest.raises(BackupError, match="bucket of s3://no-such-bucket/x does not exist"):
        backup(settings, "s3://no-such-bucket/x")

    with MemoryStore(settings) as mem:  # state outside the tables: exported into the bucket
        remembered = mem.store("acme", "a memory about apple orchards")
    first = backup(settings, bucket_dest)
    assert first.dest == bucket_dest and first.copied_files == first.files > 0
    assert first.state.hot_memories >= 1
    stored = {f.path: f.mtime_ms for f in storage.list_files(bucket_dest, props)}
    old = load_manifest(bucket_dest, properties=props)["files"]
    with pytest.raises(BackupError, match="already holds a backup; use --incremental"):
        backup(settings, bucket_dest)
    assert set(stored) == {
        f"{bucket_dest}/{name}"
        for name in ("manifest.json", f"manifests/{_history_name(bucket_dest, props)}")
    } | {f"{bucket_dest}/files/{rel}" for rel in old}

    source.append(TABLE, batch(3, DAYS[0], start=70_000), lineage=Lineage(asset="after-tag"))
    second = backup(settings, bucket_dest, incremental=True)
    new = load_manifest(bucket_dest, properties=props)["files"]
    added = set(new) - set(old)
    assert second.copied_files == len(added) > 0 and second.files == len(new)
    assert second.copied_bytes == sum(new[rel]["size"] for rel in added)
    after = {f.path: f.mtime_ms for f in storage.list_files(bucket_dest, props)}
    for rel in set(new) & set(old):  # not uploaded again
        assert after[f"{bucket_dest}/files/{rel}"] == stored[f"{bucket_dest}/files/{rel}"], rel
    made = verify(bucket_dest, key=key, properties=props)
    assert made.ok and made.signature == "signed"
    checked = CliRunner().invoke(main, ["backup", "verify", bucket_dest])
    assert checked.exit_code == 0 and "ok:" in checked.output, checked.output

    table = source.table(TABLE)
    ids = {name: ref.snapshot_id for name, ref in table.metadata.refs.items()}
    assert set(ids) == {"main", "release-1", "exp"} and len(set(ids.values())) == 3
    rows = {name: _rows(table, snapshot) for name, snapshot in ids.items()}
    _lose(settings)
    target = dataclasses.replace(Settings.from_env(restored_env), backup_key=key)
    done = restore(bucket_dest, target)
    assert done.signature == "signed" and done.state.warm_memories >= 1
    with MemoryStore(target) as mem:
        assert [h.memory.id for h in mem.search("acme", "apple orchards", k=1)] == [remembered]
    restored = Lakehouse(target).table(TABLE)
    assert restored.metadata_location.startswith(tables_warehouse(target).rstrip("/") + "/")
    assert {n: r.snapshot_id for n, r in restored.metadata.refs.items()} == ids
    assert {name: _rows(restored, snapshot) for name, snapshot in ids.items()} == rows

    data = next(rel for rel in sorted(added) if new[rel]["kind"] == "data")
    location = f"{bucket_dest}/files/{data}"
    content = bytearray(storage.read_bytes(location, props))
    content[len(content) // 2] ^= 0xFF  # same size, other bytes
    storage.write_bytes(location, props, bytes(content))
    report = verify(bucket_dest, key=key, properties=props)
    assert report.corrupt == [data] and not report.ok
    refused = CliRunner().invoke(main, ["backup", "verify", bucket_dest])
    assert refused.exit_code == 1 and f"corrupt  {data}" in refused.output, refused.output
    with pytest.raises(BackupError, match="fails verification .*1 corrupt"):
        restore(bucket_dest, target)


def _history_name(dest: str, props: dict[str, str]) -> str:
    """The name of the one manifest in the history of the backup at ``dest``."""
    (found,) = storage.list_files(f"{dest}/manifests", props)
    return found.path.rsplit("/", 1)[-1]


def test_a_destination_of_another_scheme_is_refused(settings: Settings) -> None:
    """Only a directory or an s3:// prefix: nothing is written to a path named like a URI."""
    with pytest.raises(BackupError, match="a local directory or an s3:// prefix"):
        backup(settings, "gs://bucket/backups")
    with pytest.raises(BackupError, match="names no bucket"):
        verify("s3:///backups")
