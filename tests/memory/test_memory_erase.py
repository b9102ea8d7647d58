"""forget / forget_tenant: nothing AURA stores under AURA_HOME holds the content afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpers import EMBEDDED_REDIS, OBJSTORE
from helpers import parquet_hits as _parquet_hits
from helpers import raw_hits as _raw_hits

from lakehouse.memory import MemoryStore, ingest_memory_events
from lakehouse.memory.events import STREAM
from lakehouse.memory.tables import memory_table
from lakehouse.publish.wap import accept_all


def _spread(mem: MemoryStore, tenant: str, secret: str, control: str) -> tuple[str, str]:
    """The secret and a control memory in every tier, snapshot, branch, tag and the stream."""
    now = datetime.now(UTC)
    sid = mem.store(tenant, secret, metadata={"note": secret})
    cid = mem.store(tenant, control)
    ingest_memory_events(mem.lakehouse, mem.redis, now.date(), audit=accept_all)
    mem.compact(now=now + timedelta(hours=2))  # both to warm
    mem.compact(now=now + timedelta(hours=2), warm_max_points=0)  # both to cold
    table = memory_table(mem.lakehouse, "memories")
    with table.manage_snapshots() as ms:
        ms.create_tag(table.metadata.current_snapshot_id, "release-1")
        ms.create_branch(table.metadata.current_snapshot_id, "experiment")
    # A hot copy again (the same content stored twice) and an unacknowledged stream entry.
    mem.store(tenant, secret)
    return sid, cid


def test_forget_leaves_no_bytes_anywhere(mem: MemoryStore) -> None:
    home = mem.settings.home
    if EMBEDDED_REDIS:
        mem.redis.config_set("rdbcompression", "no")  # raw scans of the RDB/AOF are conclusive
    secret, control = "vault code 7Q-ZEBRA-441 for acme", "control memory KEEP-ME-9931"
    sid, cid = _spread(mem, "acme", secret, control)
    again = [h.memory.id for h in mem.search("acme", secret, k=5) if h.memory.content == secret]
    mem.hot.rewrite_persistence()
    assert _raw_hits(home, secret) and _parquet_hits(home, secret)  # the scan does find it
    if OBJSTORE:  # the cold tier is in the bucket: the object-by-object scan finds it there
        assert any(hit.startswith("s3://") for hit in _parquet_hits(home, secret))

    receipt = mem.forget("acme", sid)
    receipt2 = mem.forget("acme", next(i for i in again if i != sid))
    assert receipt.redis_stream_entries_deleted == 1 and receipt2.redis_keys_deleted == 1
    assert receipt.qdrant_files_vacuumed
    assert receipt.redis_persistence_rewritten is EMBEDDED_REDIS
    by_table = {t.table: t for t in receipt.iceberg}
    assert by_table["memories"].rows_removed == 1
    assert set(by_table["memories"].refs_rewritten) == {"main", "release-1", "experiment"}
    assert by_table["memory_events"].rows_removed == 1 and by_table["memories"].files_deleted

    assert _raw_hits(home, secret) == []
    assert _parquet_hits(home, secret) == []
    assert _raw_hits(home, "7Q-ZEBRA") == []
    # The control memory survives everywhere (so the scans above could have failed).
    assert mem.get("acme", cid) is not None
    assert _parquet_hits(home, control)
    if EMBEDDED_REDIS:
        assert any("redis" in p for p in _raw_hits(home, control))
    # And nothing of the secret is left in Redis itself (keys, stream entries).
    for key in mem.redis.scan_iter():
        if mem.redis.type(key) == b"stream":
            assert not any(b"7Q-ZEBRA" in v for _, f in mem.redis.xrange(key) for v in f.values())
        elif mem.redis.type(key) == b"hash":
            assert not any(b"7Q-ZEBRA" in v for v in mem.redis.hgetall(key).values())
    table = memory_table(mem.lakehouse, "memories")
    assert table.scan(snapshot_id=table.metadata.refs["release-1"].snapshot_id).to_arrow()[
        "memory_id"
    ].to_pylist() == [cid]
    # The stream keeps its other entries, its group and pending state.
    assert mem.redis.xlen(STREAM) > 0
    assert mem.redis.xinfo_groups(STREAM)[0]["name"] == b"aura-lakehouse"


def test_forget_tenant_erases_only_that_tenant(mem: MemoryStore) -> None:
    home = mem.settings.home
    if EMBEDDED_REDIS:
        mem.redis.config_set("rdbcompression", "no")
    now = datetime.now(UTC)
    a_texts = [f"alpha private note {i} QX{i}" for i in range(3)]
    for text in a_texts:
        mem.store("alpha", text)
    keep = mem.store("beta", "beta keeps this BETA-7")
    ingest_memory_events(mem.lakehouse, mem.redis, now.date(), audit=accept_all)
    mem.compact(now=now + timedelta(hours=2))
    mem.store("alpha", "alpha hot again QX9")
    receipt = mem.forget_tenant("alpha")
    assert len(receipt.memory_ids) == 4
    assert receipt.qdrant_points_deleted == 3
    for text in [*a_texts, "alpha hot again QX9"]:
        assert _raw_hits(home, text) == [] and _parquet_hits(home, text) == []
    assert mem.get("beta", keep) is not None
    assert mem.search("alpha", "alpha private note", k=10) == []
    assert _parquet_hits(home, "beta keeps this BETA-7")


def test_forget_leaves_no_bytes_in_the_vector_engine(mem: MemoryStore) -> None:
    """Memories forgotten while in the warm tier or in the cold tier and its vector index (a
    Qdrant Edge shard): a byte scan of AURA_HOME finds none of their markers and finds the kept
    ones; the index holds exactly the cold memories left."""
    home = mem.settings.home
    if EMBEDDED_REDIS:
        mem.redis.config_set("rdbcompression", "no")
    now = datetime.now(UTC)
    ids = {}
    for i in range(80):  # the oldest 40 go cold; 2 of them and 2 warm ones to forget
        marker = f"{'GONE' if i % 20 == 0 else 'KEEP'}-{i:03d}-MARK"
        ids[marker] = mem.store("acme", f"note {marker}", now=now + timedelta(milliseconds=i))
    later = now + timedelta(hours=2)
    mem.compact(now=later, consolidate_cosine=None)  # all to the warm tier
    mem.compact(now=later, warm_max_points=40, consolidate_cosine=None)  # the oldest 40 to cold
    # The scans can find it (in the embedded Redis's files or the table's Parquet; a Redis
    # server keeps its copy outside AURA_HOME).
    assert _raw_hits(home, "GONE-020-MARK") or _parquet_hits(home, "GONE-020-MARK")
    assert mem.cold.index is not None and mem.cold.index.count() == 40
    gone = [m for m in ids if m.startswith("GONE")]
    assert {mem.get("acme", ids[m]).tier for m in gone} == {"warm", "cold"}  # type: ignore[union-attr]
    for marker in gone:
        assert mem.forget("acme", ids[marker]).found
    assert {m: _raw_hits(home, m) for m in gone if _raw_hits(home, m)} == {}
    assert [m for m in gone if _parquet_hits(home, m)] == []
    kept = [m for m in ids if m.startswith("KEEP")]
    assert all(mem.get("acme", ids[m]) is not None for m in kept)
    assert _raw_hits(home, "KEEP-079-MARK") and _parquet_hits(home, "KEEP-001-MARK")
    assert mem.cold.index.count() + mem.warm.count() == len(kept)
    assert mem.cold.index.ids() == {ids[m] for m in kept if int(m[5:8]) < 40}
