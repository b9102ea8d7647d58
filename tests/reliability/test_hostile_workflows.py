"""Hostile input on ``aura:events:workflows``: each fuzzed trace is ingested or dead-lettered.

Every example publishes a batch of workflow-trace events drawn from valid traces and their
mutations: bad JSON, wrong types, NaN and infinities, numbers too large for a column, huge
strings, node and edge lists, unicode and control characters, far-past and far-future times,
duplicate run ids with the same or other content, edges to unknown nodes, errors above calls,
missing ``data`` fields, missing and extra fields. The days with a backlog are ingested (as the
sensor asks) with the real great-expectations audit while events keep arriving. Afterwards
every entry is exactly one of: stored (its row equals what was sent), a dead letter with a
reason, or a replay of a stored run with equal content; nothing is pending (only days that
have a Dagster partition are ingested, as the sensor's runs would be), no run failed, no run id
is stored twice, and every stored dead letter's payload is bounded.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st

from lakehouse import Lakehouse, Settings
from lakehouse.ingest.guards import MAX_RAW_CHARS
from lakehouse.stores import open_redis
from lakehouse.topology.events import STREAM
from lakehouse.topology.ingest import backlog_days, ingest_day, stream_backlog
from quality.audit import gx_audit
from reliability.harness import FRESH, account, any_value, publish_fuzzed, scaled, wild_ts

pytestmark = pytest.mark.reliability

DAY = date(2026, 11, 20)
EVENTS = scaled(10_000)
FIELDS = ("run_id", "ts", "tenant_id", "workflow", "status", "nodes", "edges")
EDGE_FIELDS = ("src", "dst", "calls", "latency_ms", "errors")
KINDS = [
    "valid",
    "valid",
    "valid",
    "wrong_type",
    "missing",
    "extra",
    "bad_json",
    "nan",
    "huge_string",
    "huge_nodes",
    "huge_edges",
    "unicode",
    "wild_ts",
    "no_data",
    "not_object",
    "bytes",
    "dup_id",
    "bad_edge",
    "bad_node",
    "big_number",
    "deep",
]

valid_ts = st.integers(0, 2 * 86_400 - 1).map(
    lambda s: (datetime(2026, 11, 20, tzinfo=UTC) + timedelta(seconds=s)).isoformat()
)
far_ts = st.one_of(
    wild_ts,
    st.sampled_from(["2099-01-01T00:00:00+00:00", "2001-01-01T00:00:00+00:00"]),
    st.integers(-(2**70), 2**70),
)
node_ids = st.sampled_from(["plan", "route", "tools", "search", "sql", "fallback", "answer"])


@st.composite
def valid_run(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(node_ids, min_size=1, max_size=5, unique=True))
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=6, unique=True)
    )
    edges = []
    for src, dst in pairs:
        calls = draw(st.integers(1, 2**40))
        edges.append(
            {
                "src": src,
                "dst": dst,
                "calls": calls,
                "latency_ms": draw(st.floats(0, 1e9)),
                "errors": draw(st.integers(0, calls)),
            }
        )
    return {
        "run_id": FRESH,
        "ts": draw(valid_ts),
        "tenant_id": draw(st.sampled_from(["acme", "globex", "t-1"])),
        "workflow": draw(st.sampled_from(["support", "research"])),
        "status": draw(st.sampled_from(["ok", "error", "interrupted"])),
        "nodes": [{"id": i, "kind": draw(st.sampled_from(["agent", "tool"]))} for i in ids],
        "edges": edges,
    }


@st.composite
def entry(draw: st.DrawFn) -> dict[bytes, bytes]:
    """One stream entry's fields, hostile or not."""
    run = draw(valid_run())
    kind = draw(st.sampled_from(KINDS))
    if kind == "wrong_type":
        run[draw(st.sampled_from(FIELDS))] = draw(any_value)
    elif kind == "missing":
        run.pop(draw(st.sampled_from(FIELDS)))
    elif kind == "extra":
        run[draw(st.text(min_size=1, max_size=10))] = draw(any_value)
    elif kind == "huge_string":
        run[draw(st.sampled_from(("run_id", "tenant_id", "workflow")))] = "x" * draw(
            st.sampled_from([257, 70_000, 2_000_000])
        )
    elif kind == "huge_nodes":
        count = draw(st.sampled_from([300, 10_001, 60_000]))
        run["nodes"] = [{"id": f"n{i}", "kind": "agent"} for i in range(count)]
    elif kind == "huge_edges":
        node = run["nodes"][0]["id"]
        edge = {"src": node, "dst": node, "calls": 1, "latency_ms": 1.0, "errors": 0}
        run["edges"] = [edge] * draw(st.sampled_from([2, 5_000, 100_001]))
    elif kind == "unicode":
        target = draw(st.sampled_from(("run_id", "tenant_id", "workflow", "node")))
        value = draw(st.text(min_size=1, max_size=30))
        if target == "node":
            run["nodes"].append({"id": value, "kind": "agent"})
        else:
            run[target] = value
    elif kind == "wild_ts":
        run["ts"] = draw(far_ts)
    elif kind == "dup_id":  # a run id used before, most likely with other content
        run["run_id"] = f"dup-{draw(st.integers(0, 50))}"
    elif kind == "bad_edge":
        edge = {"src": run["nodes"][0]["id"], "dst": run["nodes"][-1]["id"]}
        edge |= {"calls": 1, "latency_ms": 1.0, "errors": 0}
        field = draw(st.sampled_from(EDGE_FIELDS + ("weight",)))
        edge[field] = draw(st.one_of(any_value, st.sampled_from(["nowhere", -1, 0, 2, True])))
        run["edges"] = [edge]
    elif kind == "bad_node":
        run["nodes"].append(
            draw(
                st.one_of(
                    any_value,
                    st.fixed_dictionaries({"id": any_value, "kind": any_value}),
                    st.just(dict(run["nodes"][0])),
                )
            )
        )
    elif kind == "no_data":
        return {b"payload": b"x"}
    elif kind == "not_object":
        return {b"data": json.dumps(draw(any_value)).encode()}
    elif kind == "bytes":
        return {b"data": draw(st.binary(max_size=200))}
    elif kind == "deep":
        return {b"data": b"[" * draw(st.sampled_from([1_000, 100_000]))}
    text = json.dumps(run, allow_nan=True)
    if kind == "big_number":  # numbers no 64-bit integer or double holds
        field = draw(st.sampled_from(("calls", "errors", "latency_ms")))
        big = draw(st.sampled_from(["1" + "0" * 400, "9223372036854775808", "1e400", "-0"]))
        node = run["nodes"][0]["id"]
        edge = {"src": node, "dst": node, "calls": 5, "latency_ms": 1.0, "errors": 0}
        edge[field] = f"@{field}@"
        run["edges"] = [edge]
        text = json.dumps(run).replace(f'"@{field}@"', big)
    elif kind == "nan":
        node = run["nodes"][0]["id"]
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        run["edges"] = [{"src": node, "dst": node, "calls": 1, "latency_ms": value, "errors": 0}]
        text = json.dumps(run, allow_nan=True)
    elif kind == "bad_json":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return {b"data": text.encode("utf-8", errors="surrogatepass")}


def _same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """A stored ``workflow_runs`` row holds exactly the run that was sent."""
    try:
        ts = datetime.fromisoformat(want["ts"])
        edges = [dict(e, latency_ms=float(e["latency_ms"])) for e in want["edges"]]
    except (KeyError, TypeError, ValueError):
        return False
    fields = ("run_id", "tenant_id", "workflow", "status", "nodes")
    return got["ts"] == ts and got["edges"] == edges and all(got[k] == want[k] for k in fields)


def test_fuzzed_workflow_events_are_ingested_or_dead_lettered(
    rel_settings: Settings, figures
) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    client = open_redis(rel_settings)
    runs = 0

    def ingest_backlog() -> None:
        """What the sensor starts: one run per backlog day that has a Dagster partition."""
        nonlocal runs
        first, last = rel_settings.partitions_start, datetime.now(UTC).date()
        for day in sorted(d for d in backlog_days(client) | {DAY} if first <= d <= last):
            ingest_day(lh, client, day, audit=gx_audit)
            runs += 1

    started = time.perf_counter()
    sent = publish_fuzzed(
        client,
        STREAM,
        entry(),
        events=EVENTS,
        seed_value=20261203,
        prefix="w",
        ingest=ingest_backlog,
    )
    ingest_backlog()
    elapsed = time.perf_counter() - started
    pending = stream_backlog(client)
    stored = lh.read("workflow_runs").to_pylist()
    rejected = lh.read("workflow_runs_rejected").to_pylist()
    counts = account(sent, stored, rejected, key="run_id", same=_same)
    dead = {r["stream_id"]: r["reason"] for r in rejected}
    longest_raw = max((len(r["raw"] or "") for r in rejected), default=0)
    run_ids = [r["run_id"] for r in stored]
    figures(
        events=len(sent),
        stored=counts["stored"],
        dead_lettered=counts["dead"],
        replays=counts["replays"],
        unaccounted=counts["unaccounted"],
        pending=pending,
        stored_not_as_sent=counts["mismatched"],
        duplicated_run_ids=len(run_ids) - len(set(run_ids)),
        longest_dead_letter_chars=longest_raw,
        ingest_runs=runs,
        seconds=round(elapsed, 1),
        top_reasons=Counter(" ".join(r.split()[:5]) for r in dead.values()).most_common(8),
    )
    assert len(sent) >= EVENTS * 0.99  # hypothesis may repeat a few identical examples
    assert counts["unaccounted"] == 0 and pending == 0 and counts["mismatched"] == 0
    assert len(run_ids) == len(set(run_ids)), "a run id is stored twice"
    assert longest_raw <= MAX_RAW_CHARS + 100, "a dead letter keeps an unbounded payload"
