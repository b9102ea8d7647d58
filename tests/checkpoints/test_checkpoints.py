"""The AURA savers under real LangGraph graphs (deterministic nodes, no LLM)."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from lakehouse.checkpoints import AsyncAuraCheckpointSaver, AuraCheckpointSaver
from lakehouse.exceptions import ConfigurationError


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    count: int


def _graph(checkpointer: object, *, ask: bool = False):  # type: ignore[no-untyped-def]
    def plan(state: State) -> dict[str, object]:
        return {"log": ["plan"], "count": state["count"] + 1}

    def act(state: State) -> dict[str, object]:
        if ask:
            answer = interrupt("approve?")
            return {"log": [f"act:{answer}"], "count": state["count"] + 1}
        return {"log": ["act"], "count": state["count"] + 1}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("act", act)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=checkpointer)  # type: ignore[arg-type]


def test_graph_state_history_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hot.db'}"
    config = {"configurable": {"thread_id": "t1"}}
    with AuraCheckpointSaver.from_conn_string(url) as saver:
        saver.setup()
        graph = _graph(saver)
        graph.invoke({"log": [], "count": 0}, config)
        graph.invoke({"log": ["again"], "count": 10}, config)
    with AuraCheckpointSaver.from_conn_string(url) as saver:
        state = _graph(saver).get_state(config)
        assert state.values["log"] == ["plan", "act", "again", "plan", "act"]
        assert state.values["count"] == 12
        history = list(_graph(saver).get_state_history(config))
        assert len(history) == 8  # input, plan, act (+ the 'input' step) per invocation
        assert [h.metadata["step"] for h in history] == sorted(
            (h.metadata["step"] for h in history), reverse=True
        )


def test_interrupt_and_resume_across_savers(tmp_path: Path) -> None:
    url = str(tmp_path / "hot.db")
    config = {"configurable": {"thread_id": "approval"}}
    with AuraCheckpointSaver.from_conn_string(url) as saver:
        saver.setup()
        result = _graph(saver, ask=True).invoke({"log": [], "count": 0}, config)
        assert "__interrupt__" in result

    async def resume() -> dict[str, object]:
        async with AsyncAuraCheckpointSaver.from_conn_string(url) as saver:
            return await _graph(saver, ask=True).ainvoke(Command(resume="yes"), config)

    final = asyncio.run(resume())
    assert final["log"] == ["plan", "act:yes"]


def test_time_travel_fork_from_past_checkpoint(tmp_path: Path) -> None:
    config = {"configurable": {"thread_id": "fork"}}
    with AuraCheckpointSaver.from_conn_string(str(tmp_path / "hot.db")) as saver:
        saver.setup()
        graph = _graph(saver)
        graph.invoke({"log": [], "count": 0}, config)
        after_plan = next(h for h in graph.get_state_history(config) if h.next == ("act",))
        forked = graph.invoke(None, after_plan.config)
        assert forked["log"] == ["plan", "act"]
        head = graph.get_state(config)
        assert head.parent_config is not None
        parent = graph.get_state(head.parent_config)
        assert (
            parent.parent_config["configurable"]["checkpoint_id"]
            == (after_plan.config["configurable"]["checkpoint_id"])
        )


def test_large_values_are_stored_once_per_version(tmp_path: Path) -> None:
    """An unchanged big channel value is not re-written by later checkpoints."""
    config = {"configurable": {"thread_id": "big"}}
    with AuraCheckpointSaver.from_conn_string(str(tmp_path / "hot.db")) as saver:
        saver.setup()
        graph = _graph(saver)
        graph.invoke({"log": ["x" * 10_000], "count": 0}, config)
        counts = saver._exec.run(_count_rows(saver))
        # 4 checkpoints, but the log channel changed only 3 times (input, plan, act).
        assert counts[0] == 4
        assert counts[1] <= 4


def _count_rows(saver: AuraCheckpointSaver):  # type: ignore[no-untyped-def]
    from lakehouse.checkpoints._exec import Stmt

    rows = yield Stmt(saver._exec.dialect.sql("count_rows"), fetch=True)
    return rows[0]


def test_schema_is_postgres_only(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigurationError, match="PostgreSQL only"),
        AuraCheckpointSaver.from_conn_string(str(tmp_path / "x.db"), schema="s"),
    ):
        pass


@pytest.mark.servers
def test_graphs_on_postgres_sync_and_async(tmp_path: Path) -> None:
    """Both savers on PostgreSQL, including the async saver's sync API from another thread."""
    import uuid

    import psycopg
    from helpers import PG_URL, pg_unreachable_reason

    if reason := pg_unreachable_reason():
        pytest.skip(reason)
    schema = f"t_graph_{uuid.uuid4().hex[:10]}"
    config = {"configurable": {"thread_id": "pg"}}
    try:
        with AuraCheckpointSaver.from_conn_string(PG_URL, schema=schema) as saver:
            saver.setup()
            _graph(saver, ask=True).invoke({"log": [], "count": 0}, config)

        async def resume() -> tuple[dict[str, object], int]:
            async with AsyncAuraCheckpointSaver.from_conn_string(PG_URL, schema=schema) as saver:
                graph = _graph(saver, ask=True)
                final = await graph.ainvoke(Command(resume="ok"), config)
                history = await asyncio.to_thread(lambda: list(graph.get_state_history(config)))
                return final, len(history)

        final, steps = asyncio.run(resume())
        assert final["log"] == ["plan", "act:ok"]
        assert steps == 4
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
