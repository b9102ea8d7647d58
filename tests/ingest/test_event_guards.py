"""No stream event can stop the routing pipeline: hostile values, out-of-range days, duplicates.

Each test names the behaviour it guards; all run on a real Redis stream and real Iceberg.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest
from helpers import decision, payload

from aura_assets.resources import RESOURCES
from aura_assets.routing.sensors import routing_stream_sensor
from lakehouse import Lakehouse
from lakehouse.ingest import guards
from lakehouse.ingest.streams import Parsed, to_arrow_or_dead_letters
from lakehouse.routing import STREAM, event_day, ingest_day, parse_entries, stream_backlog
from lakehouse.routing.events import decisions_to_arrow
from lakehouse.simulate.routing import publish
from quality.audit import gx_audit

DAY = date(2026, 11, 20)


def _rejected(lh: Lakehouse) -> dict[str, str]:
    rows = lh.read("routing_decisions_rejected").to_pylist()
    return {r["raw"]: r["reason"] for r in rows}


def _ingest_with(lh: Lakehouse, client, bad: list[str]) -> tuple[object, dict[str, str]]:  # type: ignore[no-untyped-def]
    publish(client, [payload(decision(i)) for i in range(5)] + bad)
    report = ingest_day(lh, client, DAY, audit=gx_audit)
    return report, _rejected(lh)


def test_overflowing_timestamps_are_dead_letters_and_the_day_is_ingested(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    bad = [
        payload(decision(90, ts="0001-01-01T00:30:00+01:00")),
        payload(decision(91, ts="9999-12-31T23:30:00-01:00")),
    ]
    report, rejected = _ingest_with(lakehouse, redis_client, bad)
    assert (report.written, report.rejected) == (5, 2)  # type: ignore[attr-defined]
    assert "outside the representable range" in rejected[bad[0]]
    assert "outside the representable range" in rejected[bad[1]]
    assert stream_backlog(redis_client) == 0


def test_prompt_tokens_beyond_int64_is_a_dead_letter(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    bad = [payload(decision(90, prompt_tokens=2**63)), payload(decision(91, prompt_tokens=10**30))]
    report, rejected = _ingest_with(lakehouse, redis_client, bad)
    assert report.rejected == 2  # type: ignore[attr-defined]
    for raw in bad:
        assert "prompt_tokens" in rejected[raw]
    assert lakehouse.read("routing_decisions").num_rows == 5


@pytest.mark.parametrize("year", [1, 1900, 2023, 2200, 9999])
def test_valid_events_outside_the_partitions_are_dead_letters_never_pending(
    lakehouse: Lakehouse, redis_client, year: int
) -> None:  # type: ignore[no-untyped-def]
    event = payload(decision(90, ts=f"{year:04d}-06-01T12:00:00+00:00"))
    assert event_day(event.encode()) is None  # the sensor asks for no run of that day
    report, rejected = _ingest_with(lakehouse, redis_client, [event])
    assert report.rejected == 1  # type: ignore[attr-defined]
    assert "first day partition" in rejected[event] or "future" in rejected[event]
    assert stream_backlog(redis_client) == 0


def test_time_window_is_first_partition_to_now_plus_allowance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AURA_PARTITIONS_START", "2024-01-01")  # the Dagster partitions' start
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    ok = now + guards.FUTURE_ALLOWANCE - timedelta(seconds=1)
    assert guards.check_timestamp("ts", ok.isoformat(), now=now) == ok
    assert guards.check_timestamp("ts", "2024-01-01T00:00:00+00:00", now=now)
    for bad in ("2023-12-31T23:59:59+00:00", (now + timedelta(hours=2)).isoformat()):
        with pytest.raises(guards.InvalidEvent):
            guards.check_timestamp("ts", bad, now=now)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"tenant_id": "x" * 2_000_000}, "bytes, more than"),
        ({"tenant_id": "acme\x00evil"}, "unprintable character U+0000"),
        ({"tenant_id": "acme\u202egpj.exe"}, "unprintable character U+202E"),
        ({"decision_id": "d" * 201}, "more than the 200 allowed"),
        ({"chosen_model": "a\u200bb", "candidate_models": ["a\u200bb"]}, "U+200B"),
        ({"candidate_models": ["m"] * 65, "chosen_model": "m"}, "65 items"),
        ({"cost_usd": 1e309}, "infinity"),
        ({"latency_ms": -1}, "latency_ms must be >= 0"),
    ],
)
def test_hostile_values_are_dead_letters_with_reasons(
    changes: dict[str, object], reason: str
) -> None:
    raw = json.dumps(decision(1, **changes)).replace("Infinity", "1e999")
    batch = parse_entries([(b"1-0", {b"data": raw.encode()})])
    assert not batch.decisions
    assert reason in batch.rejections[0].reason
    assert len(batch.rejections[0].raw or "") <= guards.MAX_RAW_CHARS + 100


def test_no_entry_content_makes_parsing_raise() -> None:
    hostile: list[tuple[bytes, dict | None]] = [
        (b"1-0", None),
        (b"2-0", {b"other": b"x"}),
        (b"3-0", {b"data": b"\xff\xfe not utf-8"}),
        (b"4-0", {b"data": b"[" * 100_000}),
        (b"5-0", {b"data": b'"\\ud800"'}),
        (b"6-0", {b"data": b"NaN"}),
        (b"7-0", {b"data": json.dumps(decision(1, ts=12)).encode()}),
        (b"8-0", {b"data": json.dumps(decision(1, ts="x" * 10_000)).encode()}),
        (b"9-0", {b"data": json.dumps(decision(1, quality_score=[1])).encode()}),
        (b"10-0", {b"data": json.dumps({**decision(1), "decision_id": {"$gt": ""}}).encode()}),
    ]
    batch = parse_entries(hostile)
    assert not batch.decisions
    assert [r.stream_id for r in batch.rejections] == [e[0].decode() for e in hostile]
    assert all(r.reason for r in batch.rejections)


def test_a_record_that_does_not_convert_costs_only_itself() -> None:
    good = {**decision(1), "ts": datetime(2026, 11, 20, tzinfo=UTC), "stream_id": "1-0"}
    bad = {**good, "decision_id": "d-x", "prompt_tokens": 2**64, "stream_id": "2-0"}
    now = datetime.now(UTC)
    table, dead = to_arrow_or_dead_letters(
        [Parsed("1-0", good, "{}"), Parsed("2-0", bad, "{}")],
        lambda ds: decisions_to_arrow(ds, now),
    )
    assert table.num_rows == 1 and isinstance(table, pa.Table)
    assert [d.stream_id for d in dead] == ["2-0"]
    assert "does not fit the table" in dead[0].reason


def test_sensor_never_raises_on_stream_content(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    publish(
        redis_client,
        [
            payload(decision(1, ts="0001-01-01T00:30:00+01:00")),
            payload(decision(2, ts="9999-12-31T23:30:00-01:00")),
            payload(decision(3, ts="2200-01-01T00:00:00+00:00")),
            "\xff[[[",
            payload(decision(4)),
        ],
    )
    redis_client.xadd(STREAM, {b"no-data": b"1"})
    with dg.build_sensor_context(resources=RESOURCES) as context:
        result = routing_stream_sensor(context)
    assert [r.partition_key for r in result.run_requests] == [DAY.isoformat()]


def test_decision_id_is_unique_across_days(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    first = decision(1)
    publish(redis_client, [payload(first)])
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    # The same id on a later day: another decision under a used id, refused, never a 2nd row.
    later = decision(1, day=DAY + timedelta(days=1), decision_id=first["decision_id"])
    publish(redis_client, [payload(later)])
    report = ingest_day(lakehouse, redis_client, DAY + timedelta(days=1), audit=gx_audit)
    assert (report.written, report.conflicts, report.rejected) == (0, 1, 1)
    reason = _rejected(lakehouse)
    assert any("conflicting duplicate" in r and "differs in ts" in r for r in reason.values())
    assert lakehouse.read("routing_decisions").num_rows == 1
    assert stream_backlog(redis_client) == 0


def test_an_exact_replay_is_recognised_and_acknowledged(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    events = [decision(i) for i in range(3)]
    publish(redis_client, [payload(e) for e in events])
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    publish(redis_client, [payload(e) for e in events])
    report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (report.replays, report.conflicts, report.written) == (3, 0, 0)
    assert report.write is None
    assert stream_backlog(redis_client) == 0


@pytest.mark.parametrize("stored_first", [True, False])
def test_conflicting_duplicate_goes_to_dead_letters(
    lakehouse: Lakehouse, redis_client, stored_first: bool
) -> None:  # type: ignore[no-untyped-def]
    original = decision(1)
    other = decision(1, chosen_model="large", cost_usd=9.0)
    if stored_first:  # the conflict arrives in a later run
        publish(redis_client, [payload(original)])
        ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
        publish(redis_client, [payload(other)])
    else:  # both in one batch: the first is kept, the second is a dead letter
        publish(redis_client, [payload(original), payload(other)])
    report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert report.conflicts == 1
    rows = lakehouse.read("routing_decisions").to_pylist()
    assert [(r["decision_id"], r["chosen_model"]) for r in rows] == [("d-20261120-1", "small")]
    (reason,) = _rejected(lakehouse).values()
    assert "differs in chosen_model, cost_usd" in reason
    assert stream_backlog(redis_client) == 0


def test_a_run_does_not_succeed_while_another_run_holds_its_day(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    import threading

    from lakehouse.ingest.streams import StreamConsumer
    from lakehouse.routing import GROUP

    publish(redis_client, [payload(decision(i)) for i in range(6)])
    # Another day's run has read every entry (this day's included) and is still working.
    other = StreamConsumer(redis_client, STREAM, GROUP, consumer="run-other-day")
    held = [e[0] for e in other.read_unacked()]
    assert len(held) == 6
    releaser = threading.Timer(1.0, other.release, args=(held,))  # it hands them back later
    releaser.start()
    try:
        report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit, wait_for_others_s=30)
    finally:
        releaser.join()
    assert (report.written, report.held_elsewhere) == (6, 0)
    assert stream_backlog(redis_client) == 0


def test_entries_held_too_long_are_reported_not_hidden(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.ingest.streams import StreamConsumer
    from lakehouse.routing import GROUP

    publish(redis_client, [payload(decision(i)) for i in range(3)])
    list(StreamConsumer(redis_client, STREAM, GROUP, consumer="run-slow").read_unacked())
    report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit, wait_for_others_s=0.5)
    assert (report.written, report.held_elsewhere) == (0, 3)


def test_memory_ingest_survives_hostile_entries(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.ingest.streams import GROUP
    from lakehouse.memory import ingest_memory_events
    from quality.audit import gx_audit

    day_ms = int(datetime(2026, 11, 20, 9, tzinfo=UTC).timestamp() * 1000)

    def event(i: int, **changes: object) -> bytes:
        base = {
            "event_id": f"e{i}",
            "ts_ms": day_ms + i,
            "tenant_id": "acme",
            "op": "store",
            "memory_id": str(uuid.UUID(int=i)),  # memory ids are UUIDs
            "content": "hello",
        }
        return json.dumps(base | changes).encode()

    hostile = [
        b"[" * 100_000,  # RecursionError in the JSON parser
        event(10, ts_ms=10**20),  # OverflowError converting the time
        event(11, expires_ms=-(10**30)),
        event(12, tenant_id=12),
        event(13, content={"not": "text"}),
        event(14, importance=float("nan")),
        event(15, tenant_id="a" * 2_000_000),
    ]
    for payload_ in [event(1), event(2), *hostile]:
        redis_client.xadd("aura:events:memory", {b"data": payload_})
    report = ingest_memory_events(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (report.written, report.rejected) == (2, len(hostile))
    assert redis_client.xpending("aura:events:memory", GROUP)["pending"] == 0
