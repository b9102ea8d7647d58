"""Trace events from real LangGraph runs, seeded, with an injectable regime change."""

from __future__ import annotations

import json
from datetime import date

import pytest
import redis

from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.topology.events import FIELD, STREAM, parse_workflow_event
from lakehouse.topology.tda import event_signature

START = date(2026, 11, 1)


def test_events_are_valid_seeded_and_trace_the_graph() -> None:
    events = list(simulate_workflow_events(START, 2, 15, seed=4))
    again = list(simulate_workflow_events(START, 2, 15, seed=4))
    assert events == again
    assert events != list(simulate_workflow_events(START, 2, 15, seed=5))
    parsed = [parse_workflow_event(json.dumps(e)) for e in events]
    assert [p["ts"].date() for p in parsed] == [START] * 15 + [date(2026, 11, 2)] * 15
    for event in parsed:
        kinds = {n["id"]: n["kind"] for n in event["nodes"]}
        assert {"plan", "route", "tools"} <= set(kinds)
        assert "fallback" not in kinds
        pairs = {(e["src"], e["dst"]) for e in event["edges"]}
        assert ("plan", "route") in pairs and ("route", "tools") in pairs
        assert all(kinds[d] == "tool" for s, d in pairs if s == "tools" and d != "tools")
    assert {e["status"] for e in events} <= {"ok", "error", "interrupted"}


def test_the_regime_change_grows_a_retry_loop_from_its_day() -> None:
    events = list(simulate_workflow_events(START, 2, 40, seed=1, regime_change_at=1))
    before, after = events[:40], events[40:]
    assert not any(n["id"] == "fallback" for e in before for n in e["nodes"])
    looped = [e for e in after if any(n["id"] == "fallback" for n in e["nodes"])]
    assert len(looped) >= 10
    for event in looped:
        pairs = {(e["src"], e["dst"]) for e in event["edges"]}
        assert ("fallback", "route") in pairs
    # The loop tools -> tool -> fallback -> route -> tools is an H1 class the flag complex keeps.
    mean_b1 = [sum(event_signature(e).betti_1 for e in es) / len(es) for es in (before, after)]
    assert mean_b1[1] > mean_b1[0] + 0.3


def test_publish_to_the_stream_one_data_field(redis_client: redis.Redis) -> None:
    events = list(simulate_workflow_events(START, 1, 5, seed=2))
    assert publish_workflow_events(redis_client, events) == 5
    entries = redis_client.xrange(STREAM)
    assert len(entries) == 5
    assert all(set(fields) == {FIELD.encode()} for _, fields in entries)
    assert [parse_workflow_event(f[FIELD.encode()])["run_id"] for _, f in entries] == [
        e["run_id"] for e in events
    ]


@pytest.mark.slow
def test_the_cycle_only_regime_rewires_revisions_and_keeps_the_counts() -> None:
    plain = list(simulate_workflow_events(START, 2, 60, seed=3, regime_change_at=None))
    replan = list(
        simulate_workflow_events(START, 2, 60, seed=3, regime_change_at=1, regime="replan")
    )
    assert plain[:60] == replan[:60]
    rewired = 0
    for a, b in zip(plain[60:], replan[60:], strict=True):
        assert a["run_id"] == b["run_id"]
        assert sorted(n["id"] for n in a["nodes"]) == sorted(n["id"] for n in b["nodes"])
        assert len(a["edges"]) == len(b["edges"])
        pairs_a = {(e["src"], e["dst"]) for e in a["edges"]}
        pairs_b = {(e["src"], e["dst"]) for e in b["edges"]}
        if pairs_a != pairs_b:
            rewired += 1
            # The revision's reflect -> tools became reflect -> route: a triangle became a
            # chordless 4-cycle, which the flag complex keeps as an H1 class.
            assert ("reflect", "tools") in pairs_a and ("reflect", "route") in pairs_b
            assert event_signature(b).betti_1 > event_signature(a).betti_1
    assert rewired >= 2


def test_an_unknown_regime_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown regime"):
        next(simulate_workflow_events(START, 1, 1, seed=3, regime_change_at=0, regime="loops"))
