"""Routing ingestion from a real Redis stream into real Iceberg tables."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from helpers import decision, duckdb_iceberg, payload, sorted_rows

from lakehouse import Lakehouse, Lineage
from lakehouse.ingest.streams import StreamConsumer
from lakehouse.routing import GROUP, STREAM, ingest_day, stream_backlog
from lakehouse.simulate.routing import publish
from quality.audit import gx_audit

DAY = date(2026, 11, 20)


def _publish(client, events) -> None:  # type: ignore[no-untyped-def]
    publish(client, (e if isinstance(e, str) else payload(e) for e in events))


def test_ingested_rows_match_what_was_sent_read_by_duckdb(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    sent = [decision(i) for i in range(50)]
    _publish(redis_client, sent)
    report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (report.written, report.rejected, report.deferred) == (50, 0, 0)

    table = lakehouse.table("routing_decisions")
    con = duckdb_iceberg()
    got = con.execute(
        "SELECT decision_id, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S+00:00') AS ts, "
        "tenant_id, task_type, prompt_tokens, candidate_models, chosen_model, cost_usd, "
        "latency_ms, quality_score, fallback_used FROM iceberg_scan(?) ORDER BY decision_id",
        [table.metadata_location],
    ).to_arrow_table()
    assert sorted_rows(got, "decision_id") == sorted(sent, key=lambda e: e["decision_id"])
    assert stream_backlog(redis_client) == 0


def test_replay_never_duplicates(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    events = [decision(i) for i in range(20)]
    _publish(redis_client, events)
    first = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    head = lakehouse.table("routing_decisions").current_snapshot()

    _publish(redis_client, events + [decision(20)])  # the router re-sent everything, plus one
    second = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (first.written, second.written, second.duplicates) == (20, 1, 20)
    assert lakehouse.read("routing_decisions").num_rows == 21

    third = ingest_day(
        lakehouse, redis_client, DAY, audit=gx_audit
    )  # nothing new: no new snapshot either
    assert third.read == 0 and third.write is None
    assert lakehouse.table("routing_decisions").current_snapshot().snapshot_id != head.snapshot_id
    assert lakehouse.info("routing_decisions").rows == 21


def test_crash_before_ack_loses_and_duplicates_nothing(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    events = [decision(i) for i in range(10)]
    _publish(redis_client, events)
    # A run read every entry and committed them, then died before XACK: entries stay pending.
    claimed = list(StreamConsumer(redis_client, STREAM, consumer="crashed").read_unacked())
    assert len(claimed) == 10
    # The next run takes over the dead run's entries once they are idle long enough.
    reader = StreamConsumer(redis_client, STREAM, claim_idle_ms=0)
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit, reader=reader)
    assert lakehouse.read("routing_decisions").num_rows == 10
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert lakehouse.read("routing_decisions").num_rows == 10


def test_malformed_events_land_in_dead_letters_with_reasons(
    lakehouse: Lakehouse, redis_client
) -> None:  # type: ignore[no-untyped-def]
    good = [decision(i) for i in range(5)]
    missing = decision(5)
    del missing["chosen_model"]
    bad = [
        "{not json",
        json.dumps([1, 2]),
        json.dumps(missing),
        payload(decision(6, prompt_tokens="812")),
        payload(decision(7, quality_score=1.5)),
        payload(decision(8, cost_usd=-1)),
        payload(decision(9, ts="2026-11-20T14:05:00")),
        payload(decision(10, chosen_model="other")),
        payload(decision(11, fallback_used="no")),
        payload(decision(12, decision_id="")),
    ]
    _publish(redis_client, good + bad)
    report = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (report.written, report.rejected) == (5, len(bad))

    rejected = lakehouse.read("routing_decisions_rejected").to_pylist()
    reasons = {row["raw"]: row["reason"] for row in rejected}
    assert set(reasons) == set(bad)  # the raw payload is kept exactly as received
    assert reasons["{not json"].startswith("invalid JSON")
    assert reasons[json.dumps(missing)] == "missing field(s): chosen_model"
    assert "prompt_tokens must be an integer" in reasons[bad[3]]
    assert "quality_score must be in [0, 1]" in reasons[bad[4]]
    assert "cost_usd must be >= 0" in reasons[bad[5]]
    assert "UTC offset" in reasons[bad[6]]
    assert "not among candidate_models" in reasons[bad[7]]
    assert "fallback_used" in reasons[bad[8]]
    assert "decision_id must be a non-empty string" in reasons[bad[9]]
    assert stream_backlog(redis_client) == 0

    # Re-delivery of the same entries (a crash before XACK) adds no second dead letter.
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert lakehouse.read("routing_decisions_rejected").num_rows == len(bad)


def test_other_days_wait_for_their_own_partition(lakehouse: Lakehouse, redis_client) -> None:  # type: ignore[no-untyped-def]
    other = date(2026, 11, 21)
    _publish(redis_client, [decision(i) for i in range(3)] + [decision(i, other) for i in range(4)])
    first = ingest_day(lakehouse, redis_client, DAY, audit=gx_audit)
    assert (first.written, first.deferred) == (3, 4)
    assert stream_backlog(redis_client) == 4
    second = ingest_day(lakehouse, redis_client, other, audit=gx_audit)
    assert second.written == 4 and stream_backlog(redis_client) == 0
    assert lakehouse.read("routing_decisions", day=other).num_rows == 4
    assert lakehouse.read("routing_decisions", day=DAY).num_rows == 3


@pytest.mark.parametrize("count", [1, 3])
def test_snapshots_name_the_writer(lakehouse: Lakehouse, redis_client, count: int) -> None:  # type: ignore[no-untyped-def]
    from lakehouse import Lineage

    _publish(redis_client, [decision(i) for i in range(count)])
    lineage = Lineage(
        asset="routing_decisions", partition=DAY.isoformat(), run_id="run-42", code_version="v7"
    )
    ingest_day(lakehouse, redis_client, DAY, audit=gx_audit, lineage=lineage)
    props = lakehouse.table("routing_decisions").current_snapshot().summary.additional_properties
    assert props["aura.run-id"] == "run-42"
    assert props["aura.asset"] == "routing_decisions"
    assert props["aura.partition"] == "2026-11-20"
    assert props["aura.code-version"] == "v7"


def test_concurrent_ingestion_of_one_day_keeps_every_decision(lakehouse: Lakehouse) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.routing import decisions_to_arrow, parse_entries, write_decisions

    def batch(start: int) -> pa.Table:
        events = [(f"{i}-0", {"data": payload(decision(i))}) for i in range(start, start + 40)]
        return decisions_to_arrow(parse_entries(events).decisions, datetime.now(UTC))

    lineage = Lineage(asset="routing_decisions", partition=DAY.isoformat())
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda s: write_decisions(
                    Lakehouse(lakehouse.settings), DAY, batch(s), lineage=lineage
                ),
                [0, 30, 60, 90],  # overlapping ranges: 130 distinct decisions
            )
        )
    assert sum(added for _, added, _ in results) == 130
    ids = lakehouse.read("routing_decisions").column("decision_id").to_pylist()
    assert len(ids) == len(set(ids)) == 130
