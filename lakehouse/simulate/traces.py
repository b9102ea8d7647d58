"""Workflow-trace events from real LangGraph runs of the agent simulator, seeded.

Each run is one thread of :func:`lakehouse.simulate.agents.build_agent_graph` (1-3 turns, each one
``stream`` of the compiled graph on LangGraph's in-memory checkpointer, which its ``interrupt``
needs); the trace is what the run did, read from the graph's ``updates`` stream:

* **nodes**: the graph nodes the run visited (kind ``agent``) and the tools the ``tools`` agent
  called (kind ``tool``, named by the tool: ``search``, ``sql``, ...).
* **edges**: the run's transitions ``a -> b`` in visit order, aggregated over turns: a tool call
  is ``tools -> <tool>`` followed by ``<tool> -> <next node>`` (the result flows to the next step).
  ``calls`` counts the transitions, ``errors`` the failed calls into a tool, ``latency_ms`` is the
  mean latency of the destination step: a tool's simulated latency from the run's state, and
  log-normal (median 40 ms, sigma 0.4) for agent steps, drawn from the run's seed.
* **status**: ``interrupted`` when the run stopped for a human approval that never came (the
  approval tool of :mod:`lakehouse.simulate.agents`; 80 % are resumed), ``error`` when at least
  half of
  its tool calls failed, else ``ok``.

Regimes: before day ``regime_change_at`` the plain graph runs; from that day on the graph has the
``fallback`` agent (``build_agent_graph(fallback=True)``): a failed tool call, or one slower
than a 500 ms budget, goes
``tools -> <tool> -> fallback -> route -> tools``, a retry loop through the router. In the
undirected trace this is a chordless 4-cycle, an H1 class the plain graph never has (its cycles
are triangles, which the flag complex fills); the retried call adds a visit. Tool failure rate,
latency distribution and the rest are unchanged. This is the default regime, ``fallback``.

Regime ``replan`` (cycle-only): from that day on a revision asked by ``reflect`` goes back to
``route`` before ``tools`` (``build_agent_graph(replan=True)``) instead of straight to ``tools``.
The run visits the same agents and tools and its trace has the same number of edges
(``reflect -> route`` replaces ``reflect -> tools``; ``route -> tools`` is taken once more), and
both steps are agent steps with the same latency law; but the undirected triangle
``tools - <tool> - reflect`` (filled) becomes the chordless 4-cycle
``route - tools - <tool> - reflect``, an H1 class. Only revised runs (a low reflect score) change.

The same seed gives the same events; run ids are ``{prefix}-{YYYYMMDD}-{i:05d}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from lakehouse.simulate.agents import (
    APPROVAL_RATE,
    APPROVE_RATE,
    RESUME_RATE,
    build_agent_graph,
    turn_request,
)
from lakehouse.simulate.routing import TASK_WEIGHTS, TASKS, TENANTS
from lakehouse.stores import RedisClient
from lakehouse.topology.events import FIELD, STREAM, dump_workflow_event

AGENT_LATENCY_MEDIAN_MS = 40.0
AGENT_LATENCY_SIGMA = 0.4
REGIMES = {"fallback": {"fallback": True}, "replan": {"replan": True}}
"""The injectable regime changes: :func:`~lakehouse.simulate.agents.build_agent_graph` flags of
each."""


@dataclass(frozen=True)
class _Run:
    run_id: str
    ts: datetime
    tenant: str
    task: str
    turns: int
    approval: bool
    resume: bool
    approve: bool
    seed: int


class TraceSimulator:
    """Runs agent threads on the plain graph or a regime's graph and traces them as events."""

    def __init__(self) -> None:
        self._graphs: dict[str | None, CompiledStateGraph] = {}

    def _graph(self, regime: str | None) -> CompiledStateGraph:
        if regime not in self._graphs:
            flags = {} if regime is None else REGIMES[regime]
            self._graphs[regime] = build_agent_graph(**flags).compile(checkpointer=InMemorySaver())
        return self._graphs[regime]

    def trace(self, run: _Run, *, regime: str | None = None) -> dict[str, Any]:
        """Run one thread on the plain graph (``regime=None``) or a regime's; its event."""
        graph = self._graph(regime)
        config = RunnableConfig(configurable={"thread_id": run.run_id})
        rng = np.random.default_rng([run.seed, 11])
        kinds: dict[str, str] = {}
        calls: dict[tuple[str, str], list[float]] = {}
        errors: dict[tuple[str, str], int] = {}
        tool_calls = failed = 0
        status = "ok"

        def step(prev: str | None, node: str, latency: float, error: bool = False) -> str:
            if prev is not None:
                calls.setdefault((prev, node), []).append(latency)
                errors[(prev, node)] = errors.get((prev, node), 0) + int(error)
            return node

        def agent_latency() -> float:
            return float(rng.lognormal(np.log(AGENT_LATENCY_MEDIAN_MS), AGENT_LATENCY_SIGMA))

        for turn in range(run.turns):
            inputs: Any = _turn_input(run, turn)
            prev: str | None = None
            while True:
                interrupted = False
                for chunk in graph.stream(inputs, config, stream_mode="updates", durability="exit"):
                    for node, update in chunk.items():
                        if node == "__interrupt__":
                            interrupted = True
                            continue
                        kinds.setdefault(node, "agent")
                        prev = step(prev, node, agent_latency())
                        for result in (update or {}).get("tool_results", []):
                            tool = result["tool"]
                            kinds.setdefault(tool, "tool")
                            tool_calls += 1
                            failed += not result["ok"]
                            prev = step(prev, tool, result["latency_ms"], not result["ok"])
                if not interrupted:
                    break
                if not run.resume:
                    status = "interrupted"
                    break
                inputs = Command(resume={"approved": run.approve, "reason": "outside window"})
            if status == "interrupted":
                break
        if status == "ok" and tool_calls and 2 * failed >= tool_calls:
            status = "error"
        return {
            "run_id": run.run_id,
            "ts": run.ts.isoformat(),
            "tenant_id": run.tenant,
            "workflow": run.task,
            "status": status,
            "nodes": [{"id": n, "kind": k} for n, k in kinds.items()],
            "edges": [
                {
                    "src": src,
                    "dst": dst,
                    "calls": len(lat),
                    "latency_ms": round(float(np.mean(lat)), 3),
                    "errors": errors[(src, dst)],
                }
                for (src, dst), lat in calls.items()
            ],
        }


def _turn_input(run: _Run, turn: int) -> dict[str, Any]:
    rng = np.random.default_rng([run.seed, 3, turn])
    approval = run.approval and turn == run.turns - 1
    request = turn_request(rng, run.tenant, run.task, turn, approval=approval)
    return {"request": request, "messages": [{"role": "user", "name": run.tenant, "content": ""}]}


def _runs(day: date, per_day: int, seed: int, prefix: str) -> list[_Run]:
    rng = np.random.default_rng([seed, day.toordinal()])
    zipf = 1 / np.arange(1, len(TENANTS) + 1) ** 1.1
    tenant = rng.choice(len(TENANTS), size=per_day, p=zipf / zipf.sum())
    task = rng.choice(len(TASKS), size=per_day, p=TASK_WEIGHTS)
    turns = 1 + rng.binomial(2, 0.3, size=per_day)
    draws = rng.uniform(size=(per_day, 3))
    offsets = np.sort(rng.uniform(0, 86_400, size=per_day))
    seeds = rng.integers(2**31, size=per_day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [
        _Run(
            run_id=f"{prefix}-{day:%Y%m%d}-{i:05d}",
            ts=start + timedelta(seconds=round(float(offsets[i]), 3)),
            tenant=TENANTS[tenant[i]],
            task=TASKS[task[i]],
            turns=int(turns[i]),
            approval=bool(draws[i, 0] < APPROVAL_RATE),
            resume=bool(draws[i, 1] < RESUME_RATE),
            approve=bool(draws[i, 2] < APPROVE_RATE),
            seed=int(seeds[i]),
        )
        for i in range(per_day)
    ]


def simulate_workflow_events(
    start: date,
    days: int,
    per_day: int,
    seed: int,
    *,
    regime_change_at: int | None = None,
    regime: str = "fallback",
    prefix: str = "w",
) -> Iterator[dict[str, Any]]:
    """Yield ``per_day`` workflow-trace events for each of ``days`` days from ``start``.

    Args:
        start: The first day.
        days: Number of days.
        per_day: Runs per day.
        seed: Seed of every draw.
        regime_change_at: Day index (0 = ``start``) from which ``regime``'s graph runs;
            ``None`` keeps the plain graph throughout.
        regime: A key of :data:`REGIMES`: ``fallback`` (a retry loop through a new agent) or
            ``replan`` (cycle-only: same agents and edge count, cycles rewired).
        prefix: Run id prefix.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; use one of {sorted(REGIMES)}")
    sim = TraceSimulator()
    for d in range(days):
        day = start + timedelta(days=d)
        changed = regime_change_at is not None and d >= regime_change_at
        for run in _runs(day, per_day, seed, prefix):
            yield sim.trace(run, regime=regime if changed else None)


def perturbed_runs(
    events: Sequence[Mapping[str, Any]], n: int, *, sigma: float = 0.5, seed: int = 2
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` perturbed copies of randomly drawn ``events`` (for retrieval at scale).

    A copy has its base's nodes and edges, each edge's call count and latency scaled by a
    log-normal factor (``sigma``; calls rounded, at least 1), which moves the H0 deaths and H1
    births; its run id is the base's with ``-pNNNNNN``. A LangGraph run costs about 7 ms, a copy
    almost nothing.
    """
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = events[int(rng.integers(len(events)))]
        calls = rng.lognormal(0.0, sigma, size=len(base["edges"]))
        latency = rng.lognormal(0.0, sigma, size=len(base["edges"]))
        edges = [
            {**e, "calls": max(1, round(e["calls"] * c)), "latency_ms": e["latency_ms"] * t}
            for e, c, t in zip(base["edges"], calls, latency, strict=True)
        ]
        yield {**base, "run_id": f"{base['run_id']}-p{i:06d}", "edges": edges}


def publish_workflow_events(
    client: RedisClient, events: Iterable[Mapping[str, Any]], *, stream: str = STREAM
) -> int:
    """``XADD`` each event to ``stream`` (one field ``data``) in pipelined batches; the count."""
    sent = 0
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, {FIELD: dump_workflow_event(event)})
        sent += 1
        if sent % 500 == 0:
            pipe.execute()
    pipe.execute()
    return sent
