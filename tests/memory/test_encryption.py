"""AURA_MEMORY_KEY: every copy of a memory is sealed, reads open it, keys rotate, keys never leak.

Each test spreads memories over every tier (cold Iceberg, warm Qdrant, hot Redis, the event
stream and ``memory_events``) on real stores, then reads the bytes those stores keep (Redis
values, Qdrant local storage, the RDB/AOF of the embedded Redis, parquet data files).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner
from helpers import (
    EMBEDDED_REDIS,
    dagster_dump,
    parquet_files,
    parquet_hits,
    raw_hits,
    run_memory_ingest,
)

from aura_assets.cli import main
from aura_assets.definitions import defs
from lakehouse import Settings
from lakehouse.exceptions import ConfigurationError, MemoryKeyError, ValidationError
from lakehouse.memory import MemoryStore, ingest_memory_events, new_key
from lakehouse.memory.crypto import PREFIX, MemoryCipher
from lakehouse.memory.events import STREAM
from lakehouse.memory.tables import memory_table
from lakehouse.publish.wap import accept_all

TENANT = "enc-tenant"
SECRETS = {  # content → a metadata value; every one must stay out of every store
    "cold": ("cold memory CIPHER-COLD-1187 about the merger", "META-COLD-5521"),
    "warm": ("warm memory CIPHER-WARM-2290 about the launch", "META-WARM-6632"),
    "hot": ("hot memory CIPHER-HOT-3391 about the budget", "META-HOT-7743"),
}


def _keyed(settings: Settings, key: str | None, *old: str) -> Settings:
    return settings.with_overrides(memory_key=key, memory_old_keys=tuple(old))


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def sealed(settings: Settings, redis_client: Any, key: str) -> Iterator[MemoryStore]:  # type: ignore[no-untyped-def]
    store = MemoryStore(_keyed(settings, key), redis_client=redis_client)
    if EMBEDDED_REDIS:
        redis_client.config_set("rdbcompression", "no")  # raw scans of the RDB are conclusive
    yield store
    store.close()


def _spread(mem: MemoryStore) -> dict[str, str]:
    """One memory per tier (cold, warm, hot); every event in the stream, the first ingested."""
    now = datetime.now(UTC)
    ids = {}
    content, meta = SECRETS["cold"]
    ids["cold"] = mem.store(TENANT, content, metadata={"topic": meta, "n": 1})
    ingest_memory_events(mem.lakehouse, mem.redis, now.date(), audit=accept_all)
    mem.compact(now=now + timedelta(hours=2))
    mem.compact(now=now + timedelta(hours=2), warm_max_points=0)
    content, meta = SECRETS["warm"]
    ids["warm"] = mem.store(TENANT, content, metadata={"topic": meta, "n": 2})
    mem.compact(now=now + timedelta(hours=2))
    content, meta = SECRETS["hot"]
    ids["hot"] = mem.store(TENANT, content, metadata={"topic": meta, "n": 3})
    mem.hot.rewrite_persistence()
    return ids


def _redis_values(mem: MemoryStore) -> list[bytes]:
    """Every hash value and stream field value in the Redis database."""
    values: list[bytes] = []
    for key in mem.redis.scan_iter():
        kind = mem.redis.type(key)
        if kind == b"hash":
            values += list(mem.redis.hgetall(key).values())
        elif kind == b"stream":
            values += [v for _, fields in mem.redis.xrange(key) for v in fields.values()]
    return values


def _leaks(mem: MemoryStore, texts: list[str]) -> list[str]:
    """Where any of ``texts`` is readable: files under AURA_HOME, parquet values, Redis."""
    home = mem.settings.home
    found = []
    for text in texts:
        found += raw_hits(home, text) + parquet_hits(home, text)
        found += [f"redis:{text}" for v in _redis_values(mem) if text.encode() in v]
    return found


def _plaintexts() -> list[str]:
    return [t for pair in SECRETS.values() for t in pair]


def test_every_copy_is_sealed_and_reads_open(sealed: MemoryStore) -> None:
    ids = _spread(sealed)
    for tier, mid in ids.items():
        got = sealed.get(TENANT, mid)
        assert got is not None and got.tier == tier
        assert (got.content, got.metadata["topic"]) == SECRETS[tier]
        hits = sealed.search(TENANT, SECRETS[tier][0], k=1, filters={"topic": SECRETS[tier][1]})
        assert [(h.memory.id, h.memory.tier) for h in hits] == [(mid, tier)]
    # The scans find what is stored in the clear (ids, the tenant), so they can fail...
    home = sealed.settings.home
    assert any("/vectors/aura_memory/" in p for p in raw_hits(home, TENANT))  # warm payloads
    assert parquet_hits(home, ids["cold"]) and parquet_hits(home, TENANT)
    if EMBEDDED_REDIS:
        assert any("redis" in p for p in raw_hits(home, ids["hot"]))
    assert any(ids["hot"].encode() in v for v in _redis_values(sealed))
    # ...and no content or metadata value is stored in the clear anywhere.
    assert _leaks(sealed, _plaintexts()) == []
    # The copies hold tokens: Redis hash, stream entries, memory_events and memories rows.
    rec = json.loads(sealed.redis.hget(sealed.hot.key(TENANT, ids["hot"]), "rec"))
    assert rec["content"].startswith(PREFIX) and set(rec["metadata"]) == {"aura_sealed"}
    entries = [json.loads(f[b"data"]) for _, f in sealed.redis.xrange(STREAM)]
    assert len(entries) == 3 and all(e["content"].startswith(PREFIX) for e in entries)
    for name in ("memories", "memory_events"):
        rows = memory_table(sealed.lakehouse, name).scan().to_arrow().to_pylist()
        assert rows and all(r["content"].startswith(PREFIX) for r in rows)
        assert all("aura_sealed" in json.loads(r["metadata"]) for r in rows)
    # Vectors stay searchable in the clear: every tier answers a vector query.
    vector = sealed.get(TENANT, ids["cold"]).vector  # type: ignore[union-attr]
    assert sealed.search(TENANT, vector, k=1, tiers=("cold",))[0].memory.id == ids["cold"]


def test_wrong_or_missing_key_is_a_clear_error(
    sealed: MemoryStore, settings: Settings, redis_client: Any, key: str
) -> None:  # type: ignore[no-untyped-def]
    ids = _spread(sealed)
    wrong = new_key()
    for keys in ((wrong,), (None,)):
        store = MemoryStore(
            _keyed(settings, *keys), redis_client=redis_client, qdrant_client=sealed.qdrant
        )
        with store as other:
            for tier, mid in ids.items():
                with pytest.raises(MemoryKeyError) as exc:
                    other.get(TENANT, mid)
                message = str(exc.value)
                assert mid in message and "AURA_MEMORY_KEY" in message
                assert key not in message and (wrong not in message)
                assert SECRETS[tier][0] not in message
            with pytest.raises(MemoryKeyError):
                other.search(TENANT, "memory", k=3)
    # A token copied to another memory or tenant does not open (associated data).
    rec = json.loads(redis_client.hget(sealed.hot.key(TENANT, ids["hot"]), "rec"))
    for moved in ({"id": str(uuid.uuid4())}, {"tenant_id": "other-tenant"}):
        forged = rec | moved
        tenant, mid = forged["tenant_id"], forged["id"]
        redis_client.hset(sealed.hot.key(tenant, mid), mapping={"rec": json.dumps(forged)})
        redis_client.hset(sealed.hot.key(tenant, mid), mapping={"vec": b"\0" * 4 * sealed.dim})
        with pytest.raises(MemoryKeyError, match="does not authenticate"):
            sealed.get(tenant, mid)


def test_rotation_reseals_every_copy(
    settings: Settings, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    if EMBEDDED_REDIS:
        redis_client.config_set("rdbcompression", "no")
    # A memory stored before any key (plaintext), then the key set: rotation seals both kinds.
    with MemoryStore(settings, redis_client=redis_client) as plain:
        legacy = plain.store(TENANT, "legacy plaintext LEGACY-4410", metadata={"k": "LEG-77"})
    old, new = new_key(), new_key()
    with MemoryStore(_keyed(settings, old), redis_client=redis_client) as mem:
        assert mem.get(TENANT, legacy).content == "legacy plaintext LEGACY-4410"  # type: ignore[union-attr]
        ids = _spread(mem)
        tokens = _tokens(mem)
    # A tag of memories: rotation must cover every ref, not only main.
    table = memory_table(mem.lakehouse, "memories")
    with table.manage_snapshots() as ms:
        ms.create_tag(table.metadata.current_snapshot_id, "release-1")
    assert tokens and all(_leaks(mem, [t[-24:]]) for t in tokens[:3])  # the scan finds them

    caplog.set_level(logging.DEBUG)
    with MemoryStore(_keyed(settings, new, old), redis_client=redis_client) as mem:
        report = mem.rotate_key()
        # The legacy memory went cold with the first; one memory each is warm and hot.
        assert (report.hot_records, report.warm_points, report.stream_entries) == (1, 1, 4)
        by_table = {t.table: t for t in report.iceberg}
        assert by_table["memories"].rows_resealed == 4  # main and the tag, two rows each
        assert set(by_table["memories"].refs_rewritten) == {"main", "release-1"}
        assert by_table["memories"].snapshots_expired and by_table["memories"].files_deleted
        assert by_table["memory_events"].rows_resealed == 2  # the legacy and the cold event
        assert report.redis_persistence_rewritten is EMBEDDED_REDIS
        for tier, mid in ids.items():
            assert mem.get(TENANT, mid).content == SECRETS[tier][0]  # type: ignore[union-attr]
        # No old token (nor plaintext) is left in any store, file, snapshot or stream entry.
        assert _leaks(mem, [t[-24:] for t in tokens]) == []
        assert _leaks(mem, [*_plaintexts(), "LEGACY-4410", "LEG-77"]) == []
        again = mem.rotate_key()  # idempotent: nothing left to re-seal in Redis
        assert (again.hot_records, again.stream_entries) == (0, 0)
    assert old not in caplog.text and new not in caplog.text
    with MemoryStore(_keyed(settings, new), redis_client=redis_client) as mem:
        assert mem.get(TENANT, legacy).content == "legacy plaintext LEGACY-4410"  # type: ignore[union-attr]
        for tier, mid in ids.items():
            assert mem.get(TENANT, mid).content == SECRETS[tier][0]  # type: ignore[union-attr]
        table = memory_table(mem.lakehouse, "memories")
        tagged = table.scan(snapshot_id=table.metadata.refs["release-1"].snapshot_id)
        cipher = MemoryCipher(base64.urlsafe_b64decode(new))
        assert all(cipher.current(c) for c in tagged.to_arrow()["content"].to_pylist())
    with MemoryStore(_keyed(settings, old), redis_client=redis_client) as mem:
        for mid in [legacy, *ids.values()]:
            with pytest.raises(MemoryKeyError, match="neither AURA_MEMORY_KEY"):
                mem.get(TENANT, mid)


def _tokens(mem: MemoryStore) -> list[str]:
    """Every sealed token in Redis and in the parquet files (to look for after a rotation)."""
    found: set[str] = set()
    for value in _redis_values(mem):
        found |= {t.split('"')[0] for t in value.decode(errors="replace").split(PREFIX)[1:]}
    for _, table in parquet_files(mem.settings.home):  # and the bucket's, on S3
        for name in ("content", "metadata"):
            if name in table.column_names:
                for v in table[name].to_pylist():
                    found |= {t.split('"')[0] for t in (v or "").split(PREFIX)[1:]}
    return sorted(PREFIX + t for t in found)


def test_rotation_needs_a_key(mem: MemoryStore) -> None:
    with pytest.raises(ConfigurationError, match="AURA_MEMORY_KEY"):
        mem.rotate_key()


@pytest.mark.parametrize(
    "bad", ["short", "x" * 44, base64.b64encode(bytes(range(32))).decode() + "+/", "é" * 44]
)
def test_a_malformed_key_is_refused_without_echoing_it(aura_env: dict[str, str], bad: str) -> None:
    for variable in ("AURA_MEMORY_KEY", "AURA_MEMORY_OLD_KEYS"):
        with pytest.raises(ConfigurationError) as exc:
            Settings.from_env(aura_env | {variable: bad})
        assert variable in str(exc.value) and bad not in str(exc.value)
        assert "urlsafe base64" in str(exc.value)


@pytest.mark.slow
def test_cli_never_shows_the_key(in_aura_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    old, new = new_key(), new_key()
    monkeypatch.setenv("AURA_MEMORY_KEY", old)
    config = runner.invoke(main, ["config"])
    assert config.exit_code == 0 and "memory encryption" in config.output
    assert "on (AURA_MEMORY_KEY set" in config.output and old not in config.output
    mid = runner.invoke(main, ["memory", "store", TENANT, "cli SECRET-CLI-8"]).output.strip()
    monkeypatch.setenv("AURA_MEMORY_KEY", new)
    refused = runner.invoke(main, ["memory", "get", TENANT, mid])
    assert refused.exit_code == 1 and "AURA_MEMORY_OLD_KEYS" in refused.output
    monkeypatch.setenv("AURA_MEMORY_OLD_KEYS", old)
    rotated = runner.invoke(main, ["memory", "rotate-key"])
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.output)["hot_records"] == 1
    monkeypatch.delenv("AURA_MEMORY_OLD_KEYS")
    shown = runner.invoke(main, ["memory", "get", TENANT, mid])
    assert json.loads(shown.output)["content"] == "cli SECRET-CLI-8"
    fresh = runner.invoke(main, ["memory", "new-key"]).output.strip()
    assert len(base64.urlsafe_b64decode(fresh)) == 32
    outputs = config.output + refused.output + rotated.output + shown.output
    assert old not in outputs and new not in outputs


def test_dagster_runs_see_no_key_and_no_plaintext(
    in_aura_env: Settings, monkeypatch: pytest.MonkeyPatch, redis_client: Any, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    key = new_key()
    monkeypatch.setenv("AURA_MEMORY_KEY", key)
    earlier = datetime.now(UTC) - timedelta(hours=2)
    with MemoryStore(Settings.from_env(), redis_client=redis_client) as mem:
        mid = mem.store(TENANT, "dagster SECRET-DAG-66", metadata={"m": "META-DAG-1"}, now=earlier)
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        run_memory_ingest(instance, earlier.date())
        compaction = defs.resolve_job_def("memory_compaction").execute_in_process(instance=instance)
        assert compaction.success
        dump = dagster_dump(instance)
    assert mid in dump  # the dump holds the runs' metadata and previews
    for text in (key, "SECRET-DAG", "META-DAG"):
        assert text not in dump
        assert raw_hits(home, text) == []
    with MemoryStore(Settings.from_env(), redis_client=redis_client) as mem:
        assert mem.get(TENANT, mid).tier == "warm"  # type: ignore[union-attr]


def test_forget_removes_the_ciphertext_too(sealed: MemoryStore) -> None:
    """An erase of a sealed memory leaves no token of it (ciphertext plus key is the text)."""
    ids = _spread(sealed)
    doomed = [ids["cold"], ids["warm"]]

    def of_doomed(token: str) -> bool:
        for mid in doomed:
            for name in ("content", "metadata"):
                try:
                    sealed.cipher.open(TENANT, mid, name, token)
                    return True
                except MemoryKeyError:
                    pass
        return False

    tokens = [t for t in _tokens(sealed) if of_doomed(t)]
    # content and metadata of: the cold memory's memories row and its event (the stream entry
    # and its memory_events row share the tokens), and the warm memory's event
    assert len(tokens) == 2 * 3
    assert all(_leaks(sealed, [t[-24:]]) for t in tokens)  # the scan finds them
    for mid in doomed:
        assert sealed.forget(TENANT, mid).found
    assert _leaks(sealed, [t[-24:] for t in tokens]) == []
    assert sealed.get(TENANT, ids["hot"]).content == SECRETS["hot"][0]  # type: ignore[union-attr]


def test_async_store_rotates(settings: Settings, redis_client: Any) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from lakehouse.memory import AsyncMemoryStore

    old, new = new_key(), new_key()

    async def scenario() -> tuple[int, str]:
        async with AsyncMemoryStore(_keyed(settings, old), redis_client=redis_client) as mem:
            mid = await mem.store(TENANT, "async ASYNC-SECRET-5")
        async with AsyncMemoryStore(_keyed(settings, new, old), redis_client=redis_client) as mem:
            report = await mem.rotate_key()
        async with AsyncMemoryStore(_keyed(settings, new), redis_client=redis_client) as mem:
            got = await mem.get(TENANT, mid)
        return report.hot_records, got.content if got else ""

    assert asyncio.run(scenario()) == (1, "async ASYNC-SECRET-5")


@pytest.mark.parametrize("sealed_mode", [False, True])
def test_token_lookalikes_are_refused(
    settings: Settings, redis_client: Any, sealed_mode: bool
) -> None:  # type: ignore[no-untyped-def]
    keyed = _keyed(settings, new_key() if sealed_mode else None)
    with MemoryStore(keyed, redis_client=redis_client) as mem:
        for content, metadata in ((PREFIX + "abc", None), ("x", {"aura_sealed": "abc"})):
            with pytest.raises(ValidationError, match="reserved"):
                mem.store(TENANT, content, metadata=metadata)
        assert mem.redis.xlen(STREAM) == 0  # nothing was written
