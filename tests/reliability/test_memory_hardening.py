"""Memory under attack, second round: erase finds every copy, hostile records cost only
themselves, keys fail closed, and what ``store`` accepts is exactly what ingestion accepts.

Each test reproduces a finding of the second attack (issue 21, memory items 2, 7, 8, 9, 10, 11,
14 and 17; issue 22's memory details) on real stores: embedded Redis, Qdrant local mode,
Iceberg files.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import parquet_hits

from aura_assets.cli import main
from lakehouse import Settings
from lakehouse.exceptions import AuraError, ConfigurationError, ValidationError
from lakehouse.memory import STREAM, HashingEmbedder, MemoryStore, ingest_memory_events, new_key
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.hot import TENANTS, HotTier
from lakehouse.memory.model import Memory
from lakehouse.memory.tables import memory_table
from lakehouse.publish.wap import accept_all

pytestmark = pytest.mark.reliability

MAX_ID = "18446744073709551615-18446744073709551615"


@pytest.fixture
def mem(settings: Settings, redis_client: Any) -> Iterator[MemoryStore]:
    store = MemoryStore(settings, redis_client=redis_client)
    yield store
    store.close()


def _publish(client: Any, event: dict[str, Any] | str, **fields: str) -> None:
    data = event if isinstance(event, str) else json.dumps(event)
    client.xadd(STREAM, fields or {"data": data})


def _event(tenant: str, **changes: Any) -> dict[str, Any]:
    """A valid ``store`` event of a new memory, as a producer would publish it."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    event = {
        "event_id": str(uuid.uuid4()),
        "ts_ms": now,
        "op": "store",
        "memory_id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "content": "a memory",
        "metadata": {},
        "importance": 0.5,
        "created_ms": now,
    }
    return event | changes


def _ingest(mem: MemoryStore) -> Any:
    return ingest_memory_events(
        mem.lakehouse, mem.redis, datetime.now(UTC).date(), audit=accept_all
    )


def _rows(mem: MemoryStore, table: str) -> list[dict[str, Any]]:
    t = memory_table(mem.lakehouse, table)
    return [] if t.current_snapshot() is None else t.scan().to_arrow().to_pylist()


def _stream_text(mem: MemoryStore) -> str:
    return " ".join(repr(fields) for _, fields in mem.redis.xrange(STREAM) if fields)


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# ----------------------------------------------------------------- item 2: dead letters erased


def test_forget_tenant_erases_dead_letters_wherever_the_payload_names_it(
    mem: MemoryStore, figures: Any
) -> None:
    # Over 4 KiB, the tenant after the cut that the dead letter's stored payload keeps.
    long = json.dumps(_event("x", content="SECRET-LONG " + "y" * 20_000))
    long = long.replace('"tenant_id": "x", ', "")[:-1] + ', "tenant_id": "victim"}'
    _publish(mem.redis, long)
    # Invalid JSON with a newline (or tab) between the key and the tenant.
    _publish(mem.redis, '{"tenant_id":\n"victim", "content": "SECRET-NEWLINE", ')
    _publish(mem.redis, '{"tenant_id"\t:  "victim", "content": "SECRET-TAB"')
    # No ``data`` field: the payload under another name, also left in the stream.
    _publish(mem.redis, "", payload=json.dumps(_event("victim", content="SECRET-NODATA")))
    # Another tenant's dead letter stays (so the scans below could fail).
    _publish(mem.redis, json.dumps(_event("bystander", content="KEEP-ME " + "z" * 20_000)))
    report = _ingest(mem)
    assert report.rejected == 5
    assert parquet_hits(mem.settings.home, "SECRET-LONG")  # the scan finds what it looks for

    receipt = mem.forget_tenant("victim")

    secrets = ("SECRET-LONG", "SECRET-NEWLINE", "SECRET-TAB", "SECRET-NODATA")
    left = [s for s in secrets if parquet_hits(mem.settings.home, s)]
    in_stream = [s for s in secrets if s in _stream_text(mem)]
    figures(dead_letters=5, erased_tables=len(receipt.iceberg), left=left, in_stream=in_stream)
    assert left == [] and in_stream == []
    rejected = _rows(mem, "memory_events_rejected")
    assert len(rejected) == 1 and "KEEP-ME" in rejected[0]["raw"]
    assert "KEEP-ME" in _stream_text(mem)


# --------------------------------------------------------- item 7: the stream's maximum entry id


def test_a_stream_at_its_maximum_id_refuses_stores_and_forget_still_answers(
    mem: MemoryStore,
) -> None:
    kept = mem.store("acme", "stored before the stream was exhausted")
    mem.redis.xadd(STREAM, {"data": json.dumps(_event("acme"))}, id=MAX_ID)
    with pytest.raises(AuraError, match="maximum"):
        mem.store("acme", "a memory whose event the stream cannot take")
    assert mem.hot.count("acme") == 1 and mem.spool.count() == 0  # nothing half-written
    receipt = mem.forget("acme", kept)
    assert receipt.redis_keys_deleted == 1 and not receipt.event_published
    assert mem.get("acme", kept) is None


def test_cli_store_on_an_exhausted_stream_fails_in_one_line(in_aura_env: Settings) -> None:
    with MemoryStore(in_aura_env) as mem:
        mem.redis.xadd(STREAM, {"data": json.dumps(_event("acme"))}, id=MAX_ID)
    result = CliRunner().invoke(main, ["memory", "store", "acme", "lost?"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "maximum" in result.output and len(result.output.strip().splitlines()) == 1


# ----------------------------------------------- item 8: one bad record costs only itself


def _plant(mem: MemoryStore, tenant: str, rec: str, vec: np.ndarray, created_ms: int) -> str:
    """A record written straight into the hot tier (as a store of an older version could)."""
    memory_id = json.loads(rec.replace(_nested(900), "{}"))["id"]
    key = HotTier.key(tenant, memory_id)
    mem.redis.hset(key, mapping={"rec": rec, "vec": vec.astype(np.float32).tobytes()})
    mem.redis.zadd(HotTier.index(tenant), {memory_id: created_ms})
    mem.redis.sadd(TENANTS, tenant)
    return memory_id


def test_deep_metadata_is_refused_at_the_door(mem: MemoryStore) -> None:
    with pytest.raises(ValidationError, match="deep"):
        mem.store("acme", "deep", metadata=json.loads(_nested(900)))
    with pytest.raises(ValidationError, match="deep"):
        mem.store("acme", "deep", metadata=json.loads(_nested(40)))
    assert mem.get("acme", mem.store("acme", "fine", metadata=json.loads(_nested(8)))) is not None


def test_one_unreadable_record_does_not_stop_reads_or_compaction(
    mem: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    old = int((now - timedelta(hours=3)).timestamp() * 1000)
    vec = HashingEmbedder().embed("invoice reminder")
    deep_id = str(uuid.uuid4())
    deep = (
        f'{{"id":"{deep_id}","tenant_id":"aaa","content":"invoice reminder deep",'
        f'"metadata":{_nested(900)},"importance":0.5,"created_ms":{old}}}'
    )
    _plant(mem, "aaa", deep, vec, old)
    other = MemoryCipher(base64.urlsafe_b64decode(new_key()))
    stranger = Memory(str(uuid.uuid4()), "aaa", "invoice reminder sealed", vec, created_ms=old)
    sealed = json.dumps(other.seal_record(stranger.record()))
    _plant(mem, "aaa", sealed, vec, old)
    good = mem.store("aaa", "invoice reminder good", now=now - timedelta(hours=3))
    later = mem.store("zzz", "invoice reminder of a later tenant", now=now - timedelta(hours=3))

    with caplog.at_level(logging.WARNING):
        hits = mem.search("aaa", "invoice reminder", k=10)
        report = mem.compact(now=now)
    assert [h.memory.id for h in hits] == [good]
    assert "skipped" in caplog.text and deep_id in caplog.text
    assert report.hot_to_warm == 2  # aaa's good memory and zzz's: compaction went on
    assert mem.get("zzz", later).tier == "warm"  # type: ignore[union-attr]
    assert mem.hot.count("aaa") == 2  # the unreadable ones stay where they were
    with pytest.raises(AuraError, match="deep|nested"):
        mem.get("aaa", deep_id)


# --------------------------------------------------------- item 9: one spelling of an id


def test_forget_finds_copies_spelled_in_upper_case(mem: MemoryStore) -> None:
    mid = mem.store("acme", "the original")
    upper = mid.upper()
    _publish(mem.redis, _event("acme", memory_id=upper, content="COPY-UPPER"))
    _publish(mem.redis, _event("acme", memory_id=upper, content="DEAD-UPPER", importance=7))
    _publish(mem.redis, _event("acme", memory_id="not-a-uuid", content="NOT-A-UUID"))
    _ingest(mem)
    events = _rows(mem, "memory_events")
    assert {r["memory_id"] for r in events} == {mid}  # normalised at ingest
    reasons = [r["reason"] for r in _rows(mem, "memory_events_rejected")]
    assert any("UUID" in r for r in reasons)

    mem.forget("acme", mid)

    assert _rows(mem, "memory_events") == []
    assert [r for r in _rows(mem, "memory_events_rejected") if "DEAD-UPPER" in r["raw"]] == []
    assert "COPY-UPPER" not in _stream_text(mem) and "DEAD-UPPER" not in _stream_text(mem)


# ------------------------------------------- item 10: the stored vector reveals no content


def test_with_a_key_the_stored_vector_does_not_reveal_a_pin(
    settings: Settings, redis_client: Any, figures: Any
) -> None:
    keyed = settings.with_overrides(memory_key=new_key())
    with MemoryStore(keyed, redis_client=redis_client) as mem:
        mid = mem.store("acme", "my card PIN is 4821")
        stored = np.frombuffer(mem.redis.hget(HotTier.key("acme", mid), "vec"), np.float32)
        public = HashingEmbedder()
        guesses = [f"my card PIN is {pin:04d}" for pin in range(10_000)]
        best = max(guesses, key=lambda g: float(public.embed(g) @ stored))
        best_sim = float(public.embed(best) @ stored)
        assert mem.search("acme", "card PIN", k=1)[0].memory.id == mid  # search still works
    figures(guesses=len(guesses), best_guess_similarity=round(best_sim, 3))
    assert best_sim < 0.9


def test_search_still_finds_memories_after_key_rotation(
    settings: Settings, redis_client: Any
) -> None:
    first = settings.with_overrides(memory_key=new_key())
    with MemoryStore(first, redis_client=redis_client) as mem:
        hot = mem.store("acme", "hot memory about invoices")
        warm = mem.store(
            "acme", "warm memory about refunds", now=datetime.now(UTC) - timedelta(hours=2)
        )
        mem.compact()
    second = settings.with_overrides(memory_key=new_key(), memory_old_keys=(first.memory_key,))
    with MemoryStore(second, redis_client=redis_client) as mem:
        mem.rotate_key()
        assert mem.search("acme", "memory about invoices", k=1)[0].memory.id == hot
        assert mem.search("acme", "memory about refunds", k=1)[0].memory.id == warm


# ------------------------------------------------------------ item 11: keys fail closed


@pytest.mark.parametrize("spoil", ["", "{k}{k}", " {k} ", "{k}=junk", "{k}\n"])
def test_a_malformed_memory_key_is_an_error(aura_env: dict[str, str], spoil: str) -> None:
    key = new_key()
    with pytest.raises(ConfigurationError, match="AURA_MEMORY_KEY") as caught:
        Settings.from_env(aura_env | {"AURA_MEMORY_KEY": spoil.format(k=key)})
    assert key not in str(caught.value)
    assert Settings.from_env(aura_env | {"AURA_MEMORY_KEY": key}).memory_key == key


def test_cli_with_an_empty_key_stores_nothing(
    in_aura_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AURA_MEMORY_KEY", "")
    result = CliRunner().invoke(main, ["memory", "store", "acme", "meant to be sealed"])
    assert result.exit_code == 1 and "AURA_MEMORY_KEY" in result.output
    assert isinstance(result.exception, SystemExit)


# ---------------------------------------- item 14: one validation for store and ingest


@pytest.mark.parametrize("keyed", [False, True])
def test_what_store_accepts_ingest_accepts(
    settings: Settings, redis_client: Any, keyed: bool
) -> None:
    s = settings.with_overrides(memory_key=new_key()) if keyed else settings
    with MemoryStore(s, redis_client=redis_client) as mem:
        for content in ("x" * 20_000, "x" * 100_000, "é" * 15_000):
            with pytest.raises(ValidationError):
                mem.store("acme", content)
        for meta in ({"x": float("nan")}, {"x": float("inf")}, {"x": "y" * 70_000}):
            with pytest.raises(ValidationError):
                mem.store("acme", "fine", metadata=meta)
        accepted = [
            mem.store("acme", "x" * 16_000),
            mem.store("acme", "€" * 5_000, metadata={"note": "ü" * 4_000}),
            mem.store("acme", "nested", metadata=json.loads(_nested(8))),
        ]
        report = _ingest(mem)
    assert report.rejected == 0 and report.written == len(accepted)


def test_the_stream_refuses_forged_internal_fields(mem: MemoryStore) -> None:
    forged = [
        _event("acme", content="aura-enc:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        _event("acme", metadata={"aura_sealed": "aura-enc:v1:AAAA"}),
        _event("acme", metadata={"consolidated_from": [str(uuid.uuid4())]}),
        _event("acme", op="forget"),  # no erase was ever recorded for it
        _event("acme", op="forget_tenant", memory_id=None),
    ]
    for event in forged:
        _publish(mem.redis, event)
    report = _ingest(mem)
    assert report.written == 0 and report.rejected == len(forged)
    assert mem.get("acme", forged[0]["memory_id"]) is None
    genuine = mem.store("acme", "real")
    mem.forget("acme", genuine)
    report = _ingest(mem)
    ops = sorted(r["op"] for r in _rows(mem, "memory_events"))
    assert ops == ["forget"]  # the genuine forget is kept (its store event was erased)


# ----------------------------------------------- item 17: one-line errors from the CLI


@pytest.mark.parametrize(
    "args",
    [
        ["store", "acme", "x", "--ttl-hours", "inf"],
        ["store", "acme", "x", "--ttl-hours", "nan"],
        ["store", "acme", "x", "--ttl-hours", "1e300"],
        ["store", "acme", "x", "--meta", _nested(5000)],
        ["store", "acme", "x", "--meta", '{"x": NaN}'],
        ["store", "acme", b"caf\xff".decode("utf-8", "surrogateescape")],
        ["store", "acme", ""],
        ["compact", "--hot-max-age-minutes", str(10**15)],
        ["compact", "--warm-max-age-days", str(10**12)],
        ["search", "acme", "q", "-k", str(10**19)],
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_cli_refuses_hostile_values_in_one_line(in_aura_env: Settings, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["memory", *args])
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(result.output.strip().splitlines()) == 1, result.output


# ------------------------------------------------------------- issue 22: memory details


def test_empty_content_is_refused(mem: MemoryStore) -> None:
    for content in ("", "   ", "\n\t"):
        with pytest.raises(ValidationError, match="empty"):
            mem.store("acme", content)


def test_forget_of_an_unknown_id_reports_nothing_deleted(mem: MemoryStore) -> None:
    mid = mem.store("acme", "kept")
    mem.forget("acme", mid)
    again = mem.forget("acme", mid)
    never = mem.forget("acme", str(uuid.uuid4()))
    for receipt in (again, never):
        assert receipt.redis_stream_entries_deleted == 0 and not receipt.found


def test_a_query_sharing_nothing_with_memories_returns_none(mem: MemoryStore) -> None:
    texts = [f"meeting notes number {i} about budgets" for i in range(12)]
    for text in texts:
        mem.store("acme", text)
    hits = mem.search("acme", "q", k=10)
    assert all(h.similarity > 0 for h in hits) and len(hits) < len(texts)
    assert mem.search("acme", "budgets", k=3)  # a real query still answers


def test_cli_json_keeps_non_ascii(in_aura_env: Settings) -> None:
    runner = CliRunner()
    mid = runner.invoke(main, ["memory", "store", "acme", "café ☕ Grüße"]).output.strip()
    shown = runner.invoke(main, ["memory", "get", "acme", mid]).output
    assert "café ☕ Grüße" in shown
    found = runner.invoke(main, ["memory", "search", "acme", "café"]).output
    assert "café ☕ Grüße" in found
