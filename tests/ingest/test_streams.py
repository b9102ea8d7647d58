"""The stream consumer mechanism and dead letters, on a real Redis and real Iceberg."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from datetime import date

import orjson
from helpers import decision, payload

from lakehouse import Lakehouse, Lineage
from lakehouse.ingest.streams import (
    GROUP,
    DeadLetter,
    StreamConsumer,
    consumer_is_dead,
    consumer_name,
    parse_stream_entries,
    record_dead_letters,
)
from lakehouse.routing import ROUTING_DECISIONS_REJECTED, event_day

STREAM = "test:events"


def _add(client, n: int, day: date = date(2026, 11, 20)) -> list[str]:  # type: ignore[no-untyped-def]
    return [client.xadd(STREAM, {"data": payload(decision(i, day))}).decode() for i in range(n)]


def _ids(entries) -> list[str]:  # type: ignore[no-untyped-def]
    return [e[0].decode() for e in entries]


def test_stale_pending_entries_of_a_dead_consumer_are_claimed(redis_client) -> None:  # type: ignore[no-untyped-def]
    sent = _add(redis_client, 5)
    dead = StreamConsumer(redis_client, STREAM, consumer="dead", claim_idle_ms=100)
    assert _ids(dead.read_unacked()) == sent  # read, then the run died before XACK

    patient = StreamConsumer(redis_client, STREAM, claim_idle_ms=100)
    assert _ids(patient.read_unacked()) == []  # too fresh: the other run may still be working
    time.sleep(0.2)
    more = _add(redis_client, 2)
    assert _ids(patient.read_unacked()) == sent + more  # stale ones first, then the new ones
    assert patient.backlog() == 7
    patient.ack(sent + more)
    assert patient.backlog() == 0
    assert _ids(StreamConsumer(redis_client, STREAM, claim_idle_ms=0).read_unacked()) == []


def test_entries_of_a_run_whose_process_is_gone_are_taken_at_once(redis_client) -> None:  # type: ignore[no-untyped-def]
    here = socket.gethostname()
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = f"run-killed@{here}:{ended.stdout.strip()}:{int(time.time()) - 5}"
    sent = _add(redis_client, 5)
    assert _ids(StreamConsumer(redis_client, STREAM, consumer=gone).read_unacked()) == sent

    # Idle for milliseconds only, yet taken: its run's process on this host has ended.
    reader = StreamConsumer(redis_client, STREAM)  # the default claim idle time (60 s)
    assert reader.pending_of_day(event_day, date(2026, 11, 20)) == (5, 0)
    assert _ids(reader.read_unacked()) == sent
    reader.ack(sent)
    assert reader.backlog() == 0


def test_only_a_run_of_this_host_whose_process_ended_is_presumed_dead() -> None:
    here, me = socket.gethostname(), consumer_name()
    assert me.split("@")[1].startswith(f"{here}:{os.getpid()}:")
    assert not consumer_is_dead(me)  # alive
    assert not consumer_is_dead(me.replace(f"@{here}:", "@elsewhere:"))  # another host: idle time
    assert not consumer_is_dead("run-0123456789ab")  # an older name: idle time
    assert not consumer_is_dead(f"{GROUP}:released")
    pid, started = me.rsplit(":", 2)[1:]
    assert consumer_is_dead(
        me.replace(f":{pid}:{started}", f":{pid}:{int(started) - 100}")
    )  # reused pid


def test_own_pending_entries_are_read_again(redis_client) -> None:  # type: ignore[no-untyped-def]
    sent = _add(redis_client, 3)
    reader = StreamConsumer(redis_client, STREAM)
    assert _ids(reader.read_unacked()) == sent
    assert _ids(reader.read_unacked()) == sent  # still unacknowledged: delivered again
    reader.ack(sent[:2])
    assert _ids(reader.read_unacked()) == sent[2:]


def test_released_entries_go_to_the_next_run_at_once(redis_client) -> None:  # type: ignore[no-untyped-def]
    sent = _add(redis_client, 4)
    first = StreamConsumer(redis_client, STREAM)
    assert _ids(first.read_unacked()) == sent
    first.ack(sent[:1])
    first.release(sent[1:])  # e.g. events of another day
    assert first.backlog() == 3

    second = StreamConsumer(redis_client, STREAM)  # default idle time: a minute
    assert _ids(second.read_unacked()) == sent[1:]


def test_backlog_days_without_claiming(redis_client) -> None:  # type: ignore[no-untyped-def]
    _add(redis_client, 2, date(2026, 11, 20))
    reader = StreamConsumer(redis_client, STREAM)
    pending = _ids(reader.read_unacked())
    _add(redis_client, 1, date(2026, 11, 21))
    redis_client.xadd(STREAM, {"data": "{not json"})
    assert reader.backlog_days(event_day) == {date(2026, 11, 20), date(2026, 11, 21)}
    assert redis_client.xpending(STREAM, reader.group)["pending"] == len(pending) == 2
    assert reader.backlog() == 4  # two pending, two never delivered: nothing was claimed


def test_dead_letters_are_recorded_once(lakehouse: Lakehouse) -> None:
    table = ROUTING_DECISIONS_REJECTED.name
    lineage = Lineage(run_id="r1")
    dead = [DeadLetter("1-0", "{not json", "invalid JSON"), DeadLetter("2-0", None, "deleted")]
    first = record_dead_letters(lakehouse, table, STREAM, dead, lineage)
    assert first is not None and first.rows == 2
    again = dead + [DeadLetter("3-0", "[]", "not an object")]
    second = record_dead_letters(lakehouse, table, STREAM, again, lineage)
    assert second is not None and second.rows == 1
    assert record_dead_letters(lakehouse, table, STREAM, again, lineage) is None
    other_stream = record_dead_letters(lakehouse, table, "other", dead[:1], lineage)
    assert other_stream is not None and other_stream.rows == 1  # the key is (stream, stream_id)
    rows = lakehouse.read(table).to_pylist()
    assert sorted((r["stream"], r["stream_id"], r["reason"]) for r in rows) == [
        ("other", "1-0", "invalid JSON"),
        (STREAM, "1-0", "invalid JSON"),
        (STREAM, "2-0", "deleted"),
        (STREAM, "3-0", "not an object"),
    ]


def test_a_republished_identical_payload_is_recorded_once(lakehouse: Lakehouse) -> None:
    """Re-running a workload publishes the same malformed payloads under new entry ids."""
    table = ROUTING_DECISIONS_REJECTED.name
    lineage = Lineage(run_id="r1")
    first = [DeadLetter("1-0", "{not json", "invalid JSON"), DeadLetter("2-0", "[]", "not obj")]
    assert record_dead_letters(lakehouse, table, STREAM, first, lineage).rows == 2
    replay = [
        DeadLetter("9-0", "{not json", "invalid JSON"),
        DeadLetter("9-1", "[]", "not obj"),
        DeadLetter("9-2", "[]", "not obj"),  # the same payload twice in one batch
        DeadLetter("9-3", "{other", "invalid JSON"),
        DeadLetter("9-4", None, "deleted"),
    ]
    again = record_dead_letters(lakehouse, table, STREAM, replay, lineage)
    assert again is not None and again.rows == 2  # only "{other" and the payload-less entry
    rows = lakehouse.read(table).to_pylist()
    assert sorted(r["stream_id"] for r in rows) == ["1-0", "2-0", "9-3", "9-4"]
    assert all(r["payload_sha256"] for r in rows if r["raw"] is not None)


def test_oversized_payloads_that_differ_past_the_cut_are_two_dead_letters(
    lakehouse: Lakehouse,
) -> None:
    """The digest is of the whole payload, not of the stored raw (cut at 4 KiB)."""
    big = '{"decision_id": "d", "pad": "' + "x" * 70_000 + '"}'
    other = big[:-3] + 'y"}'
    _, dead = parse_stream_entries(
        [(b"1-0", {b"data": big.encode()}), (b"2-0", {b"data": other.encode()})], orjson.loads
    )
    assert [d.payload_sha256 for d in dead] == [
        hashlib.sha256(big.encode()).hexdigest(),
        hashlib.sha256(other.encode()).hexdigest(),
    ]
    table = ROUTING_DECISIONS_REJECTED.name
    assert record_dead_letters(lakehouse, table, STREAM, dead, Lineage(run_id="r1")).rows == 2
    rows = lakehouse.read(table).to_pylist()
    assert {r["payload_sha256"] for r in rows} == {d.payload_sha256 for d in dead}
    assert all(len(r["raw"]) < 5000 and "truncated" in r["raw"] for r in rows)  # cut when kept
