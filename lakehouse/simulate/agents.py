"""A seeded workflow simulator: real LangGraph graphs of an agent platform, checkpointed by AURA.

Each simulated thread is one conversation between a tenant's user and an agent. The agent is a
LangGraph ``StateGraph`` whose nodes are deterministic functions of the state (no LLM calls)::

    START -> plan -> route -> tools -> reflect -> answer -> END
                                ^  |       |
                                '--'-------'  (next planned call / revise)

* **plan** reads the user's request and plans 1-4 tool calls.
* **route** picks a model the way the router does (see :mod:`lakehouse.simulate.routing`).
* **tools** runs one planned call per visit and loops until the plan is done.
* **reflect** scores the draft; a low score plans one more call (revise).
* **answer** writes the reply and adds the turn's cost.

The graph is compiled with :class:`~lakehouse.checkpoints.AuraCheckpointSaver` on the configured
hot store, so a run leaves the checkpoints, channel versions and pending writes a production agent
would: multi-turn threads, interrupted threads waiting for a human, resumed threads and forks.

Distributions (per thread unless noted):

* **tenants**: the routing simulator's 12 tenants with Zipf(1.1) weights.
* **task types**: the routing mix (code 35 %, chat 30 %, summarize 15 %, extract 12 %,
  reason 8 %).
* **turns**: 1 + Binomial(2, 0.3) user messages (1-3); each turn is one graph invocation.
* **prompt tokens** (per turn): log-normal (median 550, sigma 0.8), clipped to [1, 32000]; the
  user message has about 4 characters per token.
* **tool calls planned** (per turn): 1-4 with weights 40/30/20/10 %, one more (at most 4) for
  ``code`` and ``reason`` tasks.
* **tools**: search 30 %, retrieve 25 %, code_exec 20 %, sql 15 %, calculator 10 %; a result is
  text of log-normal size (median 600 characters, sigma 0.7), its latency log-normal (median
  300 ms, sigma 0.5); 6 % of calls fail with an error result.
* **model**: 2-4 of the routing simulator's models are candidates; the best quality-minus-cost
  score for the task wins, with 10 % exploration (a random candidate).
* **reflect score**: the model's base quality + the task adjustment + normal(0, 0.05) - 0.1 per
  failed call of the turn, clipped to [0, 1]; below 0.75 the agent revises (one more call) once
  per turn while fewer than 4 calls ran.
* **approval**: 15 % of threads end their last turn's plan with a side-effecting
  ``apply_change`` call that interrupts for human approval. Once every thread has run, 80 % of
  the interrupted threads are resumed (approved 85 %, rejected otherwise); the rest stay
  interrupted, as threads waiting for a human do.
* **forks**: 10 % of the completed threads are time-travelled: the checkpoint after ``route`` in
  their last turn is updated to another candidate model and run again (a second branch of the
  same thread).

The same seed and thread prefix give the same threads, states and checkpoint structure; only
LangGraph's checkpoint ids and timestamps (the time of the run) differ.
"""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from lakehouse.checkpoints import AuraCheckpointSaver
from lakehouse.settings import Settings
from lakehouse.simulate.routing import MODELS, TASK_QUALITY, TASK_WEIGHTS, TASKS, TENANTS

TOOLS = ("search", "retrieve", "code_exec", "sql", "calculator")
TOOL_WEIGHTS = (0.30, 0.25, 0.20, 0.15, 0.10)
APPROVAL_TOOL = "apply_change"
PLAN_SIZE_WEIGHTS = (0.40, 0.30, 0.20, 0.10)
MAX_CALLS = 4
TOOL_FAILURE_RATE = 0.06
REVISE_BELOW = 0.75
APPROVAL_RATE = 0.15
RESUME_RATE = 0.80
APPROVE_RATE = 0.85
FORK_RATE = 0.10
MAX_FALLBACKS = 2
FALLBACK_LATENCY_MS = 500.0
_WORDS = (  # noqa: SIM905 - a word list reads better as one string
    "agent customer invoice latency model vector cache table schema report quarter revenue "
    "deploy rollback error budget retry index query join partition snapshot branch metric "
    "prompt token context summary draft review policy tenant region cost quality"
).split()
_NODES = {"plan": 1, "route": 2, "tools": 3, "reflect": 4, "answer": 5, "fallback": 6}


class AgentState(TypedDict, total=False):
    """State of the simulated agent; lists with ``operator.add`` accumulate across turns."""

    request: dict[str, Any]
    messages: Annotated[list[dict[str, Any]], operator.add]
    plan: list[str]
    candidates: list[str]
    model: str
    iteration: int
    revised: bool
    tool_results: Annotated[list[dict[str, Any]], operator.add]
    scores: Annotated[list[float], operator.add]
    cost_usd: float
    fallbacks: int


@dataclass(frozen=True)
class WorkflowReport:
    """What :func:`run_workflows` did."""

    threads: int
    turns: int
    tool_calls: int
    interrupted: int
    resumed: int
    pending: int
    forked: int
    checkpoints: int
    seconds: float
    prefix: str
    thread_ids: tuple[str, ...]

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"{self.threads} workflow threads {self.prefix}-* ({self.turns} turns, "
            f"{self.tool_calls} tool calls, "
            f"{self.interrupted} interrupted / {self.resumed} resumed / {self.pending} pending, "
            f"{self.forked} forked): {self.checkpoints} checkpoints in {self.seconds:.1f}s"
        )


@dataclass(frozen=True)
class _Script:
    """The per-thread draws made up front (the rest is drawn by the nodes from the state)."""

    tenant: str
    task: str
    turns: int
    approval: bool
    resume: bool
    approve: bool
    fork: bool


def _rng(state: AgentState, node: str) -> np.random.Generator:
    """A generator determined by the request, the node and the loop position."""
    req = state["request"]
    return np.random.default_rng(
        [req["seed"], req["turn"], _NODES[node], state.get("iteration", 0)]
    )


def _text(rng: np.random.Generator, chars: int) -> str:
    words = rng.choice(_WORDS, size=max(1, chars // 7))
    return " ".join(words.tolist())[:chars]


def _plan(state: AgentState) -> dict[str, Any]:
    rng = _rng(state, "plan")
    req = state["request"]
    size = int(rng.choice(4, p=PLAN_SIZE_WEIGHTS)) + 1
    if req["task"] in ("code", "reason"):
        size = min(size + 1, MAX_CALLS)
    calls = [str(t) for t in rng.choice(TOOLS, size=size, p=TOOL_WEIGHTS)]
    if req["approval"]:
        calls = calls[: MAX_CALLS - 1] + [APPROVAL_TOOL]
    note = {"role": "assistant", "name": "planner", "content": f"plan: {' -> '.join(calls)}"}
    return {"plan": calls, "iteration": 0, "revised": False, "messages": [note]}


def _route(state: AgentState) -> dict[str, Any]:
    rng = _rng(state, "route")
    req = state["request"]
    names = list(MODELS)
    k = int(rng.integers(2, 5))
    candidates = [names[i] for i in sorted(rng.choice(len(names), size=k, replace=False))]
    if rng.uniform() < 0.10:
        model = candidates[int(rng.integers(k))]
    else:
        tokens = req["prompt_tokens"]
        noise = rng.normal(0, 0.02, size=k)
        scores = [
            MODELS[m][2] - 8 * MODELS[m][0] * tokens / 1000 + float(e)
            for m, e in zip(candidates, noise, strict=True)
        ]
        model = candidates[int(np.argmax(scores))]
    return {"candidates": candidates, "model": model}


def _tools(state: AgentState) -> dict[str, Any]:
    i = state["iteration"]
    tool = state["plan"][i]
    rng = _rng(state, "tools")
    args = {"query": _text(rng, 60), "turn": state["request"]["turn"]}
    latency = round(float(rng.lognormal(np.log(300), 0.5)), 1)
    if tool == APPROVAL_TOOL:
        decision = interrupt({"tool": tool, "args": args, "question": "Apply this change?"})
        ok = bool(decision.get("approved"))
        output = "change applied" if ok else f"change rejected: {decision.get('reason', '')}"
    else:
        ok = bool(rng.uniform() >= TOOL_FAILURE_RATE)
        size = int(rng.lognormal(np.log(600), 0.7))
        output = _text(rng, size) if ok else "error: upstream timeout after 30s"
    result = {"tool": tool, "args": args, "ok": ok, "latency_ms": latency, "output": output}
    call = {"role": "tool", "name": tool, "content": output[:200]}
    return {"tool_results": [result], "messages": [call], "iteration": i + 1}


def _after_tools(state: AgentState) -> str:
    return "tools" if state["iteration"] < len(state["plan"]) else "reflect"


def _after_tools_fallback(state: AgentState) -> str:
    """Like :func:`_after_tools`, but a failed or slow call escalates to ``fallback``."""
    last = state["tool_results"][-1]
    if (
        (not last["ok"] or last["latency_ms"] > FALLBACK_LATENCY_MS)
        and last["tool"] != APPROVAL_TOOL
        and state.get("fallbacks", 0) < MAX_FALLBACKS
    ):
        return "fallback"
    return _after_tools(state)


def _fallback(state: AgentState) -> dict[str, Any]:
    """Plan the failed call again; the graph then goes back to ``route`` for another model."""
    i = state["iteration"]
    failed = state["plan"][i - 1]
    note = {"role": "assistant", "name": "fallback", "content": f"retry {failed} after error"}
    plan = [*state["plan"][:i], failed, *state["plan"][i:]]
    return {"plan": plan, "fallbacks": state.get("fallbacks", 0) + 1, "messages": [note]}


def _reflect(state: AgentState) -> dict[str, Any]:
    rng = _rng(state, "reflect")
    req = state["request"]
    calls = state["iteration"]
    failed = sum(not r["ok"] for r in state["tool_results"][-calls:])
    base = MODELS[state["model"]][2] + TASK_QUALITY[req["task"]]
    score = round(float(np.clip(base + rng.normal(0, 0.05) - 0.1 * failed, 0, 1)), 4)
    update: dict[str, Any] = {"scores": [score]}
    if score < REVISE_BELOW and not state.get("revised") and calls < MAX_CALLS:
        extra = str(rng.choice(TOOLS, p=TOOL_WEIGHTS))
        update |= {"plan": [*state["plan"], extra], "revised": True}
    return update


def _after_reflect(state: AgentState) -> str:
    return "tools" if state["iteration"] < len(state["plan"]) else "answer"


def _after_reflect_replan(state: AgentState) -> str:
    """Like :func:`_after_reflect`, but a revision goes back to ``route`` for a model choice."""
    return "route" if state["iteration"] < len(state["plan"]) else "answer"


def _answer(state: AgentState) -> dict[str, Any]:
    rng = _rng(state, "answer")
    req = state["request"]
    price = MODELS[state["model"]][0]
    tokens = req["prompt_tokens"] + sum(len(r["output"]) // 4 for r in state["tool_results"])
    cost = round(tokens / 1000 * price * float(rng.lognormal(0, 0.1)), 6)
    reply = {
        "role": "assistant",
        "name": state["model"],
        "content": _text(rng, int(rng.lognormal(np.log(800), 0.5))),
    }
    return {"messages": [reply], "cost_usd": round(state.get("cost_usd", 0.0) + cost, 6)}


def build_agent_graph(*, fallback: bool = False, replan: bool = False) -> StateGraph:
    """The agent's graph, uncompiled: compile it with a checkpointer to run it.

    Args:
        fallback: Add a ``fallback`` agent: a failed tool call, or one slower than
            ``FALLBACK_LATENCY_MS`` (a timeout budget; at most ``MAX_FALLBACKS`` per
            thread) goes to ``fallback``, which plans the call again and sends the turn back to
            ``route`` for another model choice (``tools -> fallback -> route -> tools``): the
            retry loop the topology simulator injects as a regime change.
        replan: A revision asked by ``reflect`` goes back to ``route`` (which picks a model
            again, then ``tools``) instead of straight to ``tools``: the same agents and tools,
            one transition swapped (``reflect -> route`` for ``reflect -> tools``), so the
            trace's cycles change while its node and edge counts do not.
    """
    builder = StateGraph(AgentState)
    builder.add_node("plan", _plan)
    builder.add_node("route", _route)
    builder.add_node("tools", _tools)
    builder.add_node("reflect", _reflect)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "route")
    builder.add_edge("route", "tools")
    if fallback:
        builder.add_node("fallback", _fallback)
        builder.add_edge("fallback", "route")
        builder.add_conditional_edges(
            "tools", _after_tools_fallback, ["tools", "reflect", "fallback"]
        )
    else:
        builder.add_conditional_edges("tools", _after_tools, ["tools", "reflect"])
    if replan:
        builder.add_conditional_edges("reflect", _after_reflect_replan, ["route", "answer"])
    else:
        builder.add_conditional_edges("reflect", _after_reflect, ["tools", "answer"])
    builder.add_edge("answer", END)
    return builder


def _scripts(threads: int, seed: int) -> list[_Script]:
    rng = np.random.default_rng([seed, 2])
    zipf = 1 / np.arange(1, len(TENANTS) + 1) ** 1.1
    tenant = rng.choice(len(TENANTS), size=threads, p=zipf / zipf.sum())
    task = rng.choice(len(TASKS), size=threads, p=TASK_WEIGHTS)
    turns = 1 + rng.binomial(2, 0.3, size=threads)
    draws = rng.uniform(size=(threads, 4))
    return [
        _Script(
            tenant=TENANTS[tenant[i]],
            task=TASKS[task[i]],
            turns=int(turns[i]),
            approval=bool(draws[i, 0] < APPROVAL_RATE),
            resume=bool(draws[i, 1] < RESUME_RATE),
            approve=bool(draws[i, 2] < APPROVE_RATE),
            fork=bool(draws[i, 3] < FORK_RATE),
        )
        for i in range(threads)
    ]


def _thread(thread_id: str) -> RunnableConfig:
    return RunnableConfig(configurable={"thread_id": thread_id})


def turn_request(
    rng: np.random.Generator, tenant: str, task: str, turn: int, *, approval: bool
) -> dict[str, Any]:
    """The request of one turn of the agent graph: a lognormal prompt size around 550 tokens."""
    return {
        "tenant": tenant,
        "task": task,
        "turn": turn,
        "prompt_tokens": int(np.clip(rng.lognormal(np.log(550), 0.8), 1, 32_000)),
        "approval": approval,
        "seed": int(rng.integers(2**31)),
    }


def _turn_input(script: _Script, seed: int, index: int, turn: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 3, index, turn])
    approval = script.approval and turn == script.turns - 1
    request = turn_request(rng, script.tenant, script.task, turn, approval=approval)
    content = _text(rng, 4 * request["prompt_tokens"])
    return {
        "request": request,
        "messages": [{"role": "user", "name": script.tenant, "content": content}],
    }


def _fork(graph: CompiledStateGraph, config: RunnableConfig) -> None:
    """Re-run the last turn from its ``route`` checkpoint with another candidate model."""
    after_route = next(
        s
        for s in graph.get_state_history(config)
        if s.next == ("tools",) and s.values.get("iteration") == 0
    )
    candidates = after_route.values["candidates"]
    model = candidates[(candidates.index(after_route.values["model"]) + 1) % len(candidates)]
    forked = graph.update_state(after_route.config, {"model": model}, as_node="route")
    graph.invoke(None, forked)


def run_workflows(
    settings: Settings,
    threads: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
    *,
    prefix: str | None = None,
) -> WorkflowReport:
    """Run ``threads`` simulated agent threads on the configured checkpoint hot store.

    Args:
        settings: Where the hot store is (``AURA_PG_URL``, else SQLite in ``AURA_HOME``).
        threads: Number of conversation threads.
        seed: Seed of every draw; the same seed gives the same checkpoint structure.
        progress: Called with one line after each phase (run, resume, fork).
        prefix: Thread ids are ``{prefix}-{i:04d}``; by default ``wf-`` plus a random run tag,
            so a second run never appends to the threads of the first.

    Returns:
        Counts of what ran and the thread ids.
    """
    started = time.perf_counter()
    prefix = prefix or f"wf-{uuid.uuid4().hex[:8]}"
    scripts = _scripts(threads, seed)
    ids = tuple(f"{prefix}-{i:04d}" for i in range(threads))
    say = progress or (lambda _line: None)
    turns = interrupted = resumed = forked = 0
    waiting: list[int] = []
    # New threads never read archived checkpoints: skip the archive read-through.
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        graph = build_agent_graph().compile(checkpointer=saver)
        for i, script in enumerate(scripts):
            config = _thread(ids[i])
            for turn in range(script.turns):
                result = graph.invoke(_turn_input(script, seed, i, turn), config)
                turns += 1
                if "__interrupt__" in result:
                    waiting.append(i)
        interrupted = len(waiting)
        stopped = set(waiting)
        say(f"ran {threads} threads, {turns} turns; {interrupted} waiting for approval")
        for i in waiting:
            if scripts[i].resume:
                decision = {"approved": scripts[i].approve, "reason": "outside change window"}
                graph.invoke(Command(resume=decision), _thread(ids[i]))
                resumed += 1
        for i, script in enumerate(scripts):
            if script.fork and i not in stopped:
                _fork(graph, _thread(ids[i]))
                forked += 1
        say(f"resumed {resumed} interrupted threads, forked {forked}")
        tool_calls = checkpoints = 0
        for thread_id in ids:
            config = _thread(thread_id)
            checkpoints += len(list(saver.list(config)))
            tool_calls += len(graph.get_state(config).values.get("tool_results", []))
    return WorkflowReport(
        threads=threads,
        turns=turns,
        tool_calls=tool_calls,
        interrupted=interrupted,
        resumed=resumed,
        pending=interrupted - resumed,
        forked=forked,
        checkpoints=checkpoints,
        seconds=time.perf_counter() - started,
        prefix=prefix,
        thread_ids=ids,
    )
