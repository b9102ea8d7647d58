"""Silent loss: every stream entry ends in its table or in its dead-letter table with a reason.

Hostile entries that each used to lose data without a trace (issue 21, items 6 and 15), tried
on every stream domain (routing decisions, workflow runs, memory events) through the domain's
own ingest path on the embedded stores:

* an entry with two ``data`` fields (Redis keeps both; redis-py's reply kept only the last);
* a JSON object with a key given twice (the parser kept the last value);
* one key (``decision_id``, ``run_id``, ``event_id``) sent again with other content;
* workflow numbers each valid alone whose mean overflowed to ``mean_latency_ms = Infinity``.

Plus: an event error is an ``AuraError`` (callers catch one hierarchy).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from helpers import decision

from lakehouse import Lakehouse
from lakehouse.exceptions import AuraError
from lakehouse.publish.wap import accept_all

pytestmark = pytest.mark.reliability

DAY = date(2026, 11, 20)
NOON_MS = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)


def _routing(i: int, **changes: Any) -> dict[str, Any]:
    return decision(i, DAY, **changes)


def _workflow(i: int, **changes: Any) -> dict[str, Any]:
    event = {
        "run_id": f"w-{i}",
        "ts": f"2026-11-20T12:{i % 60:02d}:00+00:00",
        "tenant_id": "acme",
        "workflow": "support",
        "status": "ok",
        "nodes": [{"id": "plan", "kind": "agent"}, {"id": "search", "kind": "tool"}],
        "edges": [{"src": "plan", "dst": "search", "calls": 3, "latency_ms": 120.5, "errors": 0}],
    }
    return event | changes


def _memory(i: int, **changes: Any) -> dict[str, Any]:
    event = {
        "event_id": f"e-{i}",
        "ts_ms": NOON_MS + i,
        "tenant_id": "acme",
        "op": "store",
        "memory_id": f"00000000-0000-4000-8000-{i:012d}",
        "content": f"note {i}",
    }
    return event | changes


def _ingest_routing(lh: Lakehouse, client: Any) -> Any:
    from lakehouse.routing import ingest_day

    return ingest_day(lh, client, DAY, audit=accept_all)


def _ingest_workflows(lh: Lakehouse, client: Any) -> Any:
    from lakehouse.topology.ingest import ingest_day

    return ingest_day(lh, client, DAY, audit=accept_all)


def _ingest_memory(lh: Lakehouse, client: Any) -> Any:
    from lakehouse.memory import ingest_memory_events

    return ingest_memory_events(lh, client, DAY, audit=accept_all)


@dataclass(frozen=True)
class Domain:
    stream: str
    table: str
    key: str
    event: Callable[..., dict[str, Any]]
    ingest: Callable[[Lakehouse, Any], Any]
    other_content: dict[str, Any]

    @property
    def rejected(self) -> str:
        return f"{self.table}_rejected"


DOMAINS = {
    "routing": Domain(
        "aura:events:routing",
        "routing_decisions",
        "decision_id",
        _routing,
        _ingest_routing,
        {"chosen_model": "large"},
    ),
    "workflows": Domain(
        "aura:events:workflows",
        "workflow_runs",
        "run_id",
        _workflow,
        _ingest_workflows,
        {"status": "error"},
    ),
    "memory": Domain(
        "aura:events:memory",
        "memory_events",
        "event_id",
        _memory,
        _ingest_memory,
        {"content": "another text under the same event id"},
    ),
}


@pytest.fixture(params=sorted(DOMAINS))
def domain(request: pytest.FixtureRequest) -> Domain:
    return DOMAINS[request.param]


def _accounting(lh: Lakehouse, domain: Domain, ids: list[str]) -> dict[str, Any]:
    """Where each entry id ended: stored rows and dead letters (with reasons), and the lost."""
    stored = lh.read(domain.table).to_pylist()
    rejected = {r["stream_id"]: r for r in lh.read(domain.rejected).to_pylist()}
    in_table = {r["stream_id"] for r in stored}
    return {
        "stored": stored,
        "rejected": rejected,
        "lost": [i for i in ids if i not in in_table and i not in rejected],
    }


def test_an_entry_with_two_data_fields_is_a_dead_letter_keeping_both_payloads(
    lakehouse: Lakehouse, redis_client: Any, domain: Domain, figures: Any
) -> None:
    first = json.dumps(domain.event(1))
    second = json.dumps(domain.event(2))
    entry = redis_client.execute_command(
        "XADD", domain.stream, "*", "data", first, "data", second
    ).decode()
    report = domain.ingest(lakehouse, redis_client)
    seen = _accounting(lakehouse, domain, [entry])
    figures(domain=domain.stream, stored=len(seen["stored"]), dead_letters=len(seen["rejected"]))
    assert seen["stored"] == [] and seen["lost"] == []
    letter = seen["rejected"][entry]
    assert "2 'data' fields" in letter["reason"]
    assert json.loads(letter["raw"]) == {"data": [first, second]}  # neither payload lost
    assert report.rejected == 1
    assert redis_client.xpending(domain.stream, "aura-lakehouse")["pending"] == 0


def test_a_json_key_given_twice_is_refused_not_resolved_silently(
    lakehouse: Lakehouse, redis_client: Any, domain: Domain, figures: Any
) -> None:
    valid = json.dumps(domain.event(1))
    twice = '{"tenant_id": "victim", ' + valid[1:]  # parsers keep the last: "acme"
    nested = json.dumps(domain.event(2))
    if domain.table == "workflow_runs":  # a key repeated inside a nested object too
        nested = nested.replace('"kind": "tool"', '"kind": "tool", "kind": "agent"')
    else:
        nested = nested[:-1] + ', "tenant_id": "acme"}'
    ids = [redis_client.xadd(domain.stream, {"data": p}).decode() for p in (twice, nested)]
    domain.ingest(lakehouse, redis_client)
    seen = _accounting(lakehouse, domain, ids)
    figures(domain=domain.stream, stored=len(seen["stored"]), dead_letters=len(seen["rejected"]))
    assert seen["stored"] == [] and seen["lost"] == []
    for entry in ids:
        assert "duplicate key" in seen["rejected"][entry]["reason"]


def test_a_key_sent_again_with_other_content_is_a_conflict_dead_letter_in_every_domain(
    lakehouse: Lakehouse, redis_client: Any, domain: Domain, figures: Any
) -> None:
    original = domain.event(1)
    changed = original | domain.other_content
    # In one batch, and again in a later run (against the stored row).
    ids = [
        redis_client.xadd(domain.stream, {"data": json.dumps(e)}).decode()
        for e in (original, changed)
    ]
    domain.ingest(lakehouse, redis_client)
    # Spelled differently (an identical payload would be recorded once, under the first id).
    again = json.dumps(changed, separators=(",", ":"))
    ids.append(redis_client.xadd(domain.stream, {"data": again}).decode())
    report = domain.ingest(lakehouse, redis_client)
    seen = _accounting(lakehouse, domain, ids)
    figures(domain=domain.stream, stored=len(seen["stored"]), dead_letters=len(seen["rejected"]))
    assert seen["lost"] == []
    assert [r["stream_id"] for r in seen["stored"]] == [ids[0]]  # the first version is kept
    for entry in ids[1:]:
        reason = seen["rejected"][entry]["reason"]
        assert f"conflicting duplicate: {domain.key}" in reason, reason
    assert report.conflicts == 1
    assert redis_client.xpending(domain.stream, "aura-lakehouse")["pending"] == 0


def test_extreme_workflow_latencies_are_refused_at_the_guard_not_stored_as_infinity(
    lakehouse: Lakehouse, redis_client: Any, figures: Any
) -> None:
    from lakehouse.topology.history import history_day

    domain = DOMAINS["workflows"]
    huge = 1.5e308  # finite and valid alone; the mean of two overflows a double
    nodes = [{"id": "a", "kind": "agent"}, {"id": "b", "kind": "tool"}]
    extreme = domain.event(
        1,
        nodes=nodes,
        edges=[
            {"src": "a", "dst": "b", "calls": 1, "latency_ms": huge, "errors": 0},
            {"src": "b", "dst": "a", "calls": 1, "latency_ms": huge, "errors": 0},
        ],
    )
    events = [extreme] + [domain.event(i) for i in range(2, 6)]
    ids = [redis_client.xadd(domain.stream, {"data": json.dumps(e)}).decode() for e in events]
    domain.ingest(lakehouse, redis_client)
    history_day(lakehouse, DAY, audit=accept_all)
    seen = _accounting(lakehouse, domain, ids)
    latencies = lakehouse.read("topology_history").column("mean_latency_ms").to_pylist()
    figures(stored=len(seen["stored"]), dead_letters=len(seen["rejected"]), runs=len(latencies))
    assert seen["lost"] == [] and len(latencies) == 4
    assert all(math.isfinite(x) for x in latencies)
    assert "latency_ms" in seen["rejected"][ids[0]]["reason"]


def test_an_invalid_event_is_an_aura_error_in_every_domain() -> None:
    from lakehouse.memory.events import parse_event as memory_event
    from lakehouse.routing import parse_event as routing_event
    from lakehouse.topology.events import parse_workflow_event

    for parse in (routing_event, memory_event, parse_workflow_event):
        with pytest.raises(AuraError, match="JSON"):
            parse(b"{not json")


def test_a_dead_letter_holding_two_payloads_is_erased_with_the_tenant_it_names(
    settings: Any, redis_client: Any, figures: Any
) -> None:
    from lakehouse.memory import MemoryStore

    domain = DOMAINS["memory"]
    mem = MemoryStore(settings, redis_client=redis_client)
    try:
        victim = json.dumps(domain.event(1, tenant_id="victim"))
        other = json.dumps(domain.event(2))
        redis_client.execute_command("XADD", domain.stream, "*", "data", victim, "data", other)
        domain.ingest(mem.lakehouse, redis_client)
        before = [r["raw"] for r in mem.lakehouse.read(domain.rejected).to_pylist()]
        mem.forget_tenant("victim")
        after = [r["raw"] for r in mem.lakehouse.read(domain.rejected).to_pylist()]
    finally:
        mem.close()
    figures(dead_letters_before=len(before), dead_letters_after=len(after))
    assert len(before) == 1 and "victim" in before[0]  # recorded, both payloads kept
    assert not any("victim" in r for r in after)  # and erased with the tenant
