"""Hostile input: fuzzed routing events (hypothesis); each is ingested or dead-lettered, none stays.

Every example publishes a batch of events drawn from valid events and their mutations: bad
JSON, wrong types, NaN and infinities, huge strings and arrays, unicode and control
characters, far-past and far-future times, duplicate ids with the same or other content,
missing ``data`` fields, missing and extra fields. Then the days with a backlog are ingested
(as the sensor would ask) with the real great-expectations audit. Afterwards every entry is
exactly one of: stored (its row equals what was sent), a dead letter with a reason, or a replay
of a stored decision with equal content; nothing is pending, and no run failed.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from lakehouse import Lakehouse, Settings
from lakehouse.routing import STREAM, backlog_days, ingest_day, stream_backlog
from lakehouse.stores import open_redis
from quality.audit import gx_audit
from reliability.harness import (
    FRESH,
    account,
    any_value,
    payload_digests,
    publish_fuzzed,
    scaled,
    wild_ts,
)

pytestmark = pytest.mark.reliability

DAY = date(2026, 11, 20)
EVENTS = scaled(10_000)
PER_EXAMPLE = 5
INGEST_EVERY = max(1, EVENTS // 5)
FIELDS = (
    "decision_id",
    "ts",
    "tenant_id",
    "task_type",
    "prompt_tokens",
    "candidate_models",
    "chosen_model",
    "cost_usd",
    "latency_ms",
    "quality_score",
    "fallback_used",
)

names = st.sampled_from(["a", "b", "large", "small"])
valid_ts = st.integers(0, 2 * 86_400 - 1).map(
    lambda s: (datetime(2026, 11, 20, tzinfo=UTC) + timedelta(seconds=s)).isoformat()
)


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    candidates = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    return {
        "decision_id": FRESH,
        "ts": draw(valid_ts),
        "tenant_id": draw(st.sampled_from(["acme", "globex", "t-1"])),
        "task_type": draw(st.sampled_from(["chat", "code"])),
        "prompt_tokens": draw(st.integers(0, 2**63 - 1)),
        "candidate_models": candidates,
        "chosen_model": draw(st.sampled_from(candidates)),
        "cost_usd": draw(st.floats(0, 1e6)),
        "latency_ms": draw(st.floats(0, 1e7)),
        "quality_score": draw(st.floats(0, 1)),
        "fallback_used": draw(st.booleans()),
    }


@st.composite
def entry(draw: st.DrawFn) -> dict[bytes, bytes]:
    """One stream entry's fields, hostile or not."""
    event = draw(valid_event())
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid",
                "wrong_type",
                "missing",
                "extra",
                "bad_json",
                "nan",
                "huge_string",
                "huge_array",
                "unicode",
                "wild_ts",
                "no_data",
                "not_object",
                "bytes",
                "dup_id",
            ]
        )
    )
    if kind == "wrong_type":
        event[draw(st.sampled_from(FIELDS))] = draw(any_value)
    elif kind == "missing":
        event.pop(draw(st.sampled_from(FIELDS)))
    elif kind == "extra":
        event[draw(st.text(min_size=1, max_size=10))] = draw(any_value)
    elif kind == "huge_string":
        event[draw(st.sampled_from(("tenant_id", "decision_id", "task_type")))] = "x" * draw(
            st.sampled_from([201, 70_000, 2_000_000])
        )
    elif kind == "huge_array":
        event["candidate_models"] = ["a"] * draw(st.sampled_from([65, 100_000]))
    elif kind == "unicode":
        event[draw(st.sampled_from(("tenant_id", "decision_id", "chosen_model")))] = draw(
            st.text(min_size=1, max_size=30)
        )
    elif kind == "wild_ts":
        event["ts"] = draw(wild_ts)
    elif kind == "dup_id":  # an id used before, most likely with other content
        event["decision_id"] = f"dup-{draw(st.integers(0, 50))}"
    elif kind == "no_data":
        return {b"payload": b"x"}
    if kind == "bad_json":
        text = json.dumps(event)
        return {b"data": text[: draw(st.integers(0, len(text) - 1))].encode()}
    if kind == "nan":
        name = draw(st.sampled_from(("cost_usd", "latency_ms", "quality_score")))
        event[name] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    if kind == "not_object":
        return {b"data": json.dumps(draw(any_value)).encode()}
    if kind == "bytes":
        return {b"data": draw(st.binary(max_size=200))}
    try:
        payload = json.dumps(event, allow_nan=True).encode("utf-8", errors="surrogatepass")
    except (TypeError, ValueError):
        payload = repr(event).encode("utf-8", errors="surrogatepass")
    return {b"data": payload}


def _sent_decision(payload: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def test_fuzzed_routing_events_are_ingested_or_dead_lettered(
    rel_settings: Settings, figures
) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    client = open_redis(rel_settings)
    runs = 0

    def ingest_backlog() -> None:
        nonlocal runs
        for day in sorted(backlog_days(client) | {DAY}):
            ingest_day(lh, client, day, audit=gx_audit, wait_for_others_s=0)
            runs += 1

    started = time.perf_counter()
    sent = publish_fuzzed(
        client,
        STREAM,
        entry(),
        events=EVENTS,
        seed_value=20261201,
        prefix="f",
        ingest=ingest_backlog,
    )
    ingest_backlog()
    elapsed = time.perf_counter() - started
    pending = stream_backlog(client)
    rejected = lh.read("routing_decisions_rejected").to_pylist()
    counts = account(
        sent,
        lh.read("routing_decisions").to_pylist(),
        rejected,
        key="decision_id",
        same=lambda got, want: all(
            got[k] == want.get(k) for k in ("tenant_id", "prompt_tokens", "chosen_model")
        ),
    )
    dead = {r["stream_id"]: r["reason"] for r in rejected}
    figures(
        events=len(sent),
        stored=counts["stored"],
        dead_lettered=counts["dead"],
        replays=counts["replays"],
        unaccounted=counts["unaccounted"],
        pending=pending,
        stored_not_as_sent=counts["mismatched"],
        ingest_runs=runs,
        seconds=round(elapsed, 1),
        top_reasons=Counter(" ".join(r.split()[:3]) for r in dead.values()).most_common(8),
    )
    assert len(sent) >= EVENTS * 0.99  # hypothesis may repeat a few identical examples
    assert counts["unaccounted"] == 0 and pending == 0 and counts["mismatched"] == 0


# ------------------------------------------------------------------------ memory event stream

MEMORY_STREAM = "aura:events:memory"
DAY_MS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)


@st.composite
def memory_entry(draw: st.DrawFn) -> dict[bytes, bytes]:
    """One entry of the memory stream, hostile or not (``__fresh__`` ids are replaced)."""
    event: dict[str, Any] = {
        "event_id": FRESH,
        "ts_ms": DAY_MS + draw(st.integers(0, 2 * 86_400_000 - 1)),
        "tenant_id": draw(st.sampled_from(["acme", "globex", "t_1"])),
        "op": draw(st.sampled_from(["store", "forget", "forget_tenant"])),
        "memory_id": FRESH,
        "content": draw(st.text(max_size=40)),
        "metadata": draw(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
        "importance": draw(st.floats(0, 1)),
        "expires_ms": None,
        "signature": None,
    }
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid",
                "valid",
                "wrong_type",
                "missing",
                "bad_json",
                "huge",
                "wild_ts",
                "bad_tenant",
                "nan",
                "no_data",
                "not_object",
                "deep",
            ]
        )
    )
    if kind == "wrong_type":
        event[draw(st.sampled_from(sorted(event)))] = draw(any_value)
    elif kind == "missing":
        event.pop(draw(st.sampled_from(["event_id", "ts_ms", "tenant_id", "op"])))
    elif kind == "huge":
        event["content"] = "x" * draw(st.sampled_from([70_000, 1_000_000]))
    elif kind == "wild_ts":
        event[draw(st.sampled_from(["ts_ms", "expires_ms"]))] = draw(
            st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5))
        )
    elif kind == "bad_tenant":
        event["tenant_id"] = draw(st.sampled_from(["", "a:b", "a*", "..", "x" * 200, "a\x00"]))
    elif kind == "nan":
        event["importance"] = draw(st.sampled_from([math.nan, math.inf, 2.0, -1.0]))
    elif kind == "no_data":
        return {b"other": b"x"}
    elif kind == "not_object":
        return {b"data": json.dumps(draw(any_value)).encode()}
    elif kind == "deep":
        return {b"data": b"[" * 100_000}
    text = json.dumps(event, allow_nan=True)
    if kind == "bad_json":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return {b"data": text.encode("utf-8", errors="surrogatepass")}


def _memory_backlog(client: Any) -> int:
    groups = client.xinfo_groups(MEMORY_STREAM) if client.exists(MEMORY_STREAM) else []
    return sum(int(g["pending"]) + int(g.get("lag") or 0) for g in groups)


def _memory_days(client: Any) -> set[date]:
    """Days named by the entries still unacknowledged (best effort, like a sensor)."""
    days = set()
    for _, fields in client.xrange(MEMORY_STREAM):
        try:
            ms = json.loads(fields.get(b"data", b""))["ts_ms"]
            days.add(datetime.fromtimestamp(int(ms) / 1000, UTC).date())
        except Exception:  # malformed: the ingest of any day dead-letters it
            continue
    return {d for d in days if date(2024, 1, 1) <= d <= date.today() + timedelta(days=1)}


def test_fuzzed_memory_events_are_ingested_or_dead_lettered(
    rel_settings: Settings, figures
) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.memory import ingest_memory_events

    lh = Lakehouse(rel_settings)
    client = open_redis(rel_settings)
    sent: dict[str, dict[bytes, bytes]] = {}
    runs = 0

    def ingest_backlog() -> None:
        nonlocal runs
        for day in sorted(_memory_days(client) | {DAY}):
            ingest_memory_events(lh, client, day, audit=gx_audit)
            runs += 1

    @seed(20261202)
    @settings(
        max_examples=EVENTS // PER_EXAMPLE,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(
            st.tuples(memory_entry(), st.integers(0, 19)),
            min_size=PER_EXAMPLE,
            max_size=PER_EXAMPLE,
        )
    )
    def publish(drawn: list[tuple[dict[bytes, bytes], int]]) -> None:
        for fields, again in drawn:
            if again == 0 and sent:
                fields = list(sent.values())[len(sent) // 2]
            elif b"data" in fields:
                fresh = f'"{uuid.UUID(int=len(sent) + 1)}"'.encode()  # memory ids are UUIDs
                fields = {b"data": fields[b"data"].replace(f'"{FRESH}"'.encode(), fresh)}
            sent[client.xadd(MEMORY_STREAM, fields).decode()] = fields
            if len(sent) % INGEST_EVERY == 0:
                ingest_backlog()

    started = time.perf_counter()
    publish()
    ingest_backlog()
    elapsed = time.perf_counter() - started
    pending = _memory_backlog(client)
    stored = {r["stream_id"]: r for r in lh.read("memory_events").to_pylist()}
    by_event = {r["event_id"]: r for r in stored.values()}
    rejected = lh.read("memory_events_rejected").to_pylist()
    dead = {r["stream_id"]: r["reason"] for r in rejected}
    # A malformed payload published again is recorded once, under its first entry id (the
    # digest is of the whole payload; the stored raw is cut at 4 KiB).
    dead_payloads = {r.get("payload_sha256") for r in rejected} - {None}
    counts = Counter()
    for sid, fields in sent.items():
        want = _sent_decision(fields.get(b"data", b""))
        if sid in stored:
            counts["stored"] += 1
            counts["mismatched"] += not _same_memory_event(stored[sid], want)
        elif sid in dead and dead[sid]:
            counts["dead"] += 1
        else:  # a replay: the same event is stored with equal content
            event_id = want.get("event_id") if want else None
            if isinstance(event_id, str) and _same_memory_event(by_event.get(event_id), want):
                counts["replays"] += 1
            elif payload_digests(fields) & dead_payloads:
                counts["dead"] += 1
            else:
                counts["unaccounted"] += 1
    figures(
        events=len(sent),
        stored=counts["stored"],
        dead_lettered=counts["dead"],
        replays=counts["replays"],
        unaccounted=counts["unaccounted"],
        pending=pending,
        stored_not_as_sent=counts["mismatched"],
        ingest_runs=runs,
        seconds=round(elapsed, 1),
        top_reasons=Counter(" ".join(r.split()[:3]) for r in dead.values()).most_common(6),
    )
    assert counts["unaccounted"] == 0 and pending == 0 and counts["mismatched"] == 0
    assert counts["stored"] > 0 and counts["dead"] > 0


def _same_memory_event(got: dict[str, Any] | None, want: dict[str, Any] | None) -> bool:
    """A stored ``memory_events`` row holds what this payload sent."""
    if got is None or want is None:
        return False
    keys = ("event_id", "tenant_id", "op", "content")
    return all(got[k] == want.get(k) for k in keys)
