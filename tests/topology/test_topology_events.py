"""The workflow-trace event contract: valid events parse, every violation says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.exceptions import ValidationError
from lakehouse.topology.events import (
    WORKFLOW_RUNS_SCHEMA,
    WorkflowEventError,
    dump_workflow_event,
    parse_workflow_event,
    workflow_runs_to_arrow,
)


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "run_id": "w-1",
        "ts": "2026-11-20T14:05:00+00:00",
        "tenant_id": "acme",
        "workflow": "support",
        "status": "ok",
        "nodes": [{"id": "plan", "kind": "agent"}, {"id": "search", "kind": "tool"}],
        "edges": [{"src": "plan", "dst": "search", "calls": 3, "latency_ms": 120.5, "errors": 0}],
    }
    event.update(changes)
    return event


def _edge(**changes: Any) -> list[dict[str, Any]]:
    return [
        {"src": "plan", "dst": "search", "calls": 3, "latency_ms": 120.5, "errors": 0} | changes
    ]


def test_the_issue_example_parses() -> None:
    event = parse_workflow_event(json.dumps(_event()).encode())
    assert event["ts"] == datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
    assert event["edges"][0] == {
        "src": "plan",
        "dst": "search",
        "calls": 3,
        "latency_ms": 120.5,
        "errors": 0,
    }
    assert parse_workflow_event(dump_workflow_event(event)) == event


def test_offsets_are_normalised_to_utc_and_cycles_and_self_loops_allowed() -> None:
    edges = [
        {"src": "plan", "dst": "search", "calls": 1, "latency_ms": 1, "errors": 0},
        {"src": "search", "dst": "plan", "calls": 2, "latency_ms": 0, "errors": 2},
        {"src": "plan", "dst": "plan", "calls": 1, "latency_ms": 3.5, "errors": 0},
    ]
    event = parse_workflow_event(json.dumps(_event(ts="2026-11-20T16:05:00+02:00", edges=edges)))
    assert event["ts"] == datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
    assert len(event["edges"]) == 3 and event["edges"][0]["latency_ms"] == 1.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not JSON"),
        ("[]", "must be a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps(_event(extra=1)), "unknown fields ['extra']"),
        (json.dumps({k: v for k, v in _event().items() if k != "ts"}), "missing fields ['ts']"),
        (json.dumps(_event(run_id="")), "run_id must not be empty"),
        (json.dumps(_event(run_id=7)), "run_id must be a string"),
        (json.dumps(_event(tenant_id="a\nb")), "control characters"),
        (json.dumps(_event(workflow="x" * 300)), "longer than 256"),
        (json.dumps(_event(status="done")), "status 'done' is not one of"),
        (json.dumps(_event(ts="yesterday")), "not ISO 8601"),
        (json.dumps(_event(ts="2026-11-20T14:05:00")), "no UTC offset"),
        (json.dumps(_event(ts="1970-01-01T00:00:00+00:00")), "year 1970 is outside 2000..2100"),
        (json.dumps(_event(ts="2999-01-01T00:00:00+00:00")), "year 2999 is outside"),
        (json.dumps(_event(ts=1763647500)), "ts must be an ISO 8601 string"),
        (json.dumps(_event(nodes=[])), "nodes must not be empty"),
        (json.dumps(_event(nodes={"id": "a"})), "nodes must be a list"),
        (json.dumps(_event(nodes=["plan"])), "nodes[0] must be an object"),
        (json.dumps(_event(nodes=[{"id": "plan"}])), "nodes[0].kind must be a string"),
        (
            json.dumps(_event(nodes=[{"id": "a", "kind": "agent"}, {"id": "a", "kind": "tool"}])),
            "duplicate node id 'a'",
        ),
        (json.dumps(_event(edges=_edge(dst="nowhere"))), "unknown node 'nowhere'"),
        (json.dumps(_event(edges=_edge() + _edge())), "duplicate edge"),
        (json.dumps(_event(edges=_edge(calls=-1))), "calls must not be negative"),
        (json.dumps(_event(edges=_edge(calls=0))), "calls must be at least 1"),
        (json.dumps(_event(edges=_edge(calls=2.5))), "calls must be an integer"),
        (json.dumps(_event(edges=_edge(calls=True))), "calls must be an integer"),
        (json.dumps(_event(edges=_edge(errors=-2))), "errors must not be negative"),
        (json.dumps(_event(edges=_edge(errors=4))), "errors (4) exceed its calls (3)"),
        (json.dumps(_event(edges=_edge(latency_ms=-1))), "finite and >= 0"),
        (json.dumps(_event(edges=_edge(latency_ms="fast"))), "latency_ms must be a number"),
        (json.dumps(_event(edges=_edge(weight=1))), "unknown fields ['weight']"),
        (json.dumps(_event(edges=_edge())).replace("120.5", "NaN"), "NaN is not a JSON number"),
        (json.dumps(_event(edges=_edge())).replace("120.5", "Infinity"), "Infinity is not"),
        (json.dumps(_event(edges=_edge())).replace("120.5", "1e999"), "finite and >= 0"),
        (json.dumps(_event(workflow="w" + " " * (1 << 20))), "exceeds 1048576 bytes"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        (json.dumps(_event(ts="2099-01-01T00:00:00+00:00")), "in the future"),
        (json.dumps(_event(ts="2001-01-01T00:00:00+00:00")), "before the first day partition"),
        (json.dumps(_event(tenant_id="a\u202eb")), "unprintable character U+202E"),
        (json.dumps(_event(run_id="a\ud800")), "unprintable character U+D800"),
        (json.dumps(_event(edges=_edge())).replace("120.5", "1" + "0" * 400), "finite and >= 0"),
        (json.dumps(_event(edges=_edge(calls=2**63))), "calls is out of range"),
    ],
)
def test_violations_are_refused_with_the_reason(raw: str | bytes, reason: str) -> None:
    with pytest.raises(WorkflowEventError) as err:
        parse_workflow_event(raw)
    assert reason in err.value.reason
    assert isinstance(err.value, ValueError) and isinstance(err.value, ValidationError)


def test_arrow_table_has_the_documented_schema() -> None:
    events = [
        parse_workflow_event(json.dumps(_event(run_id=f"w-{i}", tenant_id=t)))
        for i, t in enumerate(["acme", "globex"])
    ]
    table = workflow_runs_to_arrow(events)
    assert table.schema == WORKFLOW_RUNS_SCHEMA
    assert table.num_rows == 2
    assert table.schema.field("edges").type.value_type == pa.struct(
        [
            pa.field("src", pa.string(), False),
            pa.field("dst", pa.string(), False),
            pa.field("calls", pa.int64(), False),
            pa.field("latency_ms", pa.float64(), False),
            pa.field("errors", pa.int64(), False),
        ]
    )
    assert table.column("edges").to_pylist()[1] == events[1]["edges"]
    assert table.column("nodes").to_pylist()[0][1] == {"id": "search", "kind": "tool"}
    assert table.column("tenant_id").to_pylist() == ["acme", "globex"]
