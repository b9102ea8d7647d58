"""The workflow simulator: real LangGraph graphs checkpointed by the AURA saver (real stores)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from lakehouse import Settings
from lakehouse.checkpoints import AuraCheckpointSaver
from lakehouse.simulate.agents import (
    APPROVAL_TOOL,
    WorkflowReport,
    build_agent_graph,
    run_workflows,
)

# Seed 7 with 12 threads: two interrupted threads resumed, one left pending, three forked.
SEED = 7
THREADS = 12


def _cfg(thread_id: str) -> RunnableConfig:
    return RunnableConfig(configurable={"thread_id": thread_id})


@pytest.fixture
def run(settings: Settings) -> Iterator[Any]:
    """Runs the simulator under unique thread ids; deletes every thread it made afterwards."""
    made: list[str] = []

    def _run(seed: int = SEED, threads: int = THREADS) -> WorkflowReport:
        report = run_workflows(settings, threads, seed, prefix=f"twf-{uuid.uuid4().hex[:10]}")
        made.extend(report.thread_ids)
        return report

    yield _run
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        for thread_id in made:
            saver.delete_thread(thread_id)


def _value(channel: str, value: Any) -> str:
    """A pending write without its ids (an interrupt's id hashes the task id)."""
    return repr([i.value for i in value] if channel == "__interrupt__" else value)


def _structure(saver: AuraCheckpointSaver, report: WorkflowReport) -> list[list[tuple]]:
    """Each thread's history without ids and timestamps: what a seed must reproduce."""
    out = []
    for thread_id in report.thread_ids:
        history = list(saver.list(_cfg(thread_id)))
        ids = [t.checkpoint["id"] for t in history]
        out.append(
            [
                (
                    t.metadata.get("source"),
                    t.metadata.get("step"),
                    ids.index(t.parent_config["configurable"]["checkpoint_id"])
                    if t.parent_config
                    else None,
                    tuple(sorted(t.checkpoint["channel_versions"])),
                    sorted((w[1], _value(w[1], w[2])) for w in t.pending_writes or []),
                    repr(sorted(t.checkpoint["channel_values"].items())),
                )
                for t in history
            ]
        )
    return out


def test_runs_real_graphs_into_readable_checkpoints(settings: Settings, run: Any) -> None:
    report = run()
    assert report.threads == THREADS and len(set(report.thread_ids)) == THREADS
    assert report.interrupted == 3 and report.resumed == 2 and report.pending == 1
    assert report.forked == 3
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        graph = build_agent_graph().compile(checkpointer=saver)
        counted = 0
        sources: set[str] = set()
        for thread_id in report.thread_ids:
            history = list(saver.list(_cfg(thread_id)))
            counted += len(history)
            sources |= {str(t.metadata.get("source")) for t in history}
            latest = saver.get_tuple(_cfg(thread_id))
            assert latest is not None and latest.checkpoint["id"] == history[0].checkpoint["id"]
            # Any past checkpoint is readable by id, with its parent link.
            oldest = saver.get_tuple(history[-1].config)
            assert oldest is not None and oldest.parent_config is None
            state = graph.get_state(_cfg(thread_id)).values
            assert state["messages"][0]["role"] == "user"
            assert state["tool_results"] and state["model"] in state["candidates"]
        assert counted == report.checkpoints
        # Inputs, loop steps and the forks' state updates were all checkpointed.
        assert {"input", "loop", "update"} <= sources


def test_same_seed_same_checkpoint_structure(settings: Settings, run: Any) -> None:
    first, second = run(), run()
    assert first.thread_ids != second.thread_ids
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        assert _structure(saver, first) == _structure(saver, second)
    other = run(seed=SEED + 1)
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        assert _structure(saver, other) != _structure(saver, first)


def test_interrupted_thread_resumes(settings: Settings, run: Any) -> None:
    report = run()
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        graph = build_agent_graph().compile(checkpointer=saver)
        waiting = [t for t in report.thread_ids if graph.get_state(_cfg(t)).next == ("tools",)]
        assert len(waiting) == report.pending == 1
        state = graph.get_state(_cfg(waiting[0]))
        (question,) = [i.value for task in state.tasks for i in task.interrupts]
        assert question["tool"] == APPROVAL_TOOL
        final = graph.invoke(Command(resume={"approved": True}), _cfg(waiting[0]))
        assert {"tool": APPROVAL_TOOL, "ok": True} in [
            {"tool": r["tool"], "ok": r["ok"]} for r in final["tool_results"]
        ]
        assert final["messages"][-1]["role"] == "assistant"
        assert graph.get_state(_cfg(waiting[0])).next == ()
