"""Checkpointer latency against LangGraph's AsyncPostgresSaver, and the archive size ratio.

``python -m bench checkpoints``. Both savers run in one process on the same PostgreSQL
(``AURA_BENCH_PG_URL``, default the local test database), each in its own throw-away schema; their
operations are interleaved so machine noise hits both alike. ``checkpoints.list_hot_thread``
lists a thread with nothing archived while our saver has an Iceberg archive attached (the
issue's target: p50 ratio <= 1.5). The archive ratio comes from real LangGraph graph runs
archived into a temporary lakehouse.
"""

from __future__ import annotations

import asyncio
import operator
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypedDict

from bench import emit

PG_URL = os.environ.get("AURA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
N = int(os.environ.get("AURA_BENCH_CHECKPOINT_N", "1000"))
WARMUP = 50
LIST_N = int(os.environ.get("AURA_BENCH_LIST_N", "300"))
LIST_CHECKPOINTS = 20  # checkpoints in the listed thread


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _checkpoint(saver: Any, step: int, versions: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from langgraph.checkpoint.base import empty_checkpoint

    messages = [
        {"role": "user" if i % 2 else "ai", "content": f"message {i} " * 20} for i in range(8)
    ]
    cp = empty_checkpoint()
    cp["channel_values"] = {"messages": messages, "step": step, "route": "act"}
    new = {ch: saver.get_next_version(versions.get(ch), None) for ch in ("messages", "step")}
    versions.update(new)
    cp["channel_versions"] = dict(versions)
    cp["versions_seen"] = {"plan": {"messages": versions["messages"]}}
    return cp, new


async def _latency() -> None:
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    from lakehouse.checkpoints import AsyncAuraCheckpointSaver

    ours_schema = f"bench_aura_{uuid.uuid4().hex[:8]}"
    theirs_schema = f"bench_lg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{theirs_schema}"')
    try:
        async with (
            AsyncAuraCheckpointSaver.from_conn_string(PG_URL, schema=ours_schema) as ours,
            await psycopg.AsyncConnection.connect(
                PG_URL,
                autocommit=True,
                prepare_threshold=0,
                row_factory=dict_row,
                options=f"-c search_path={theirs_schema}",
            ) as conn,
        ):
            theirs = AsyncPostgresSaver(conn)
            await ours.setup()
            await theirs.setup()
            savers = {"aura": ours, "langgraph": theirs}
            state: dict[str, dict[str, Any]] = {
                name: {
                    "config": {"configurable": {"thread_id": f"bench-{name}", "checkpoint_ns": ""}},
                    "versions": {},
                }
                for name in savers
            }
            times: dict[str, dict[str, list[float]]] = {
                name: {"put": [], "get": []} for name in savers
            }
            for i in range(WARMUP + N):
                order = list(savers) if i % 2 else list(reversed(savers))
                for name in order:
                    saver, st = savers[name], state[name]
                    cp, new = _checkpoint(saver, i, st["versions"])
                    t0 = time.perf_counter()
                    st["config"] = await saver.aput(
                        st["config"], cp, {"source": "loop", "step": i}, new
                    )
                    t1 = time.perf_counter()
                    latest: Any = {
                        "configurable": {"thread_id": f"bench-{name}", "checkpoint_ns": ""}
                    }
                    found = await saver.aget_tuple(latest)
                    t2 = time.perf_counter()
                    assert found is not None and found.checkpoint["id"] == cp["id"]
                    if i >= WARMUP:
                        times[name]["put"].append((t1 - t0) * 1000)
                        times[name]["get"].append((t2 - t1) * 1000)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{ours_schema}" CASCADE')
            admin.execute(f'DROP SCHEMA IF EXISTS "{theirs_schema}" CASCADE')
    for op in ("put", "get"):
        for label, q in (("p50", 0.5), ("p95", 0.95)):
            ours_v = _quantile(times["aura"][op], q)
            theirs_v = _quantile(times["langgraph"][op], q)
            emit(
                f"checkpoints.{op}.{label}",
                ours_v,
                "ms",
                baseline=theirs_v,
                baseline_name="AsyncPostgresSaver",
                n=N,
            )
        emit(
            f"checkpoints.{op}.mean",
            statistics.fmean(times["aura"][op]),
            "ms",
            baseline=statistics.fmean(times["langgraph"][op]),
            baseline_name="AsyncPostgresSaver",
            n=N,
        )


async def _list_hot_thread() -> None:
    """``alist`` of a thread with nothing archived, archive attached, against AsyncPostgresSaver."""
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    from lakehouse import Lakehouse, Settings
    from lakehouse.checkpoints import AsyncAuraCheckpointSaver, CheckpointArchive

    ours_schema = f"bench_aura_{uuid.uuid4().hex[:8]}"
    theirs_schema = f"bench_lg_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{theirs_schema}"')
    try:
        with tempfile.TemporaryDirectory() as home:
            archive = CheckpointArchive(Lakehouse(Settings.from_env({"AURA_HOME": home})))
            async with (
                AsyncAuraCheckpointSaver.from_conn_string(
                    PG_URL, schema=ours_schema, archive=archive
                ) as ours,
                await psycopg.AsyncConnection.connect(
                    PG_URL,
                    autocommit=True,
                    prepare_threshold=0,
                    row_factory=dict_row,
                    options=f"-c search_path={theirs_schema}",
                ) as conn,
            ):
                theirs = AsyncPostgresSaver(conn)
                await ours.setup()
                await theirs.setup()
                savers = {"aura": ours, "langgraph": theirs}
                configs: dict[str, Any] = {}
                for name, saver in savers.items():
                    config: Any = {"configurable": {"thread_id": "bench-list", "checkpoint_ns": ""}}
                    versions: dict[str, Any] = {}
                    for i in range(LIST_CHECKPOINTS):
                        cp, new = _checkpoint(saver, i, versions)
                        config = await saver.aput(config, cp, {"source": "loop", "step": i}, new)
                    configs[name] = {"configurable": {"thread_id": "bench-list"}}
                times: dict[str, list[float]] = {name: [] for name in savers}
                for i in range(WARMUP + LIST_N):
                    order = list(savers) if i % 2 else list(reversed(savers))
                    for name in order:
                        t0 = time.perf_counter()
                        found = [t async for t in savers[name].alist(configs[name])]
                        elapsed = (time.perf_counter() - t0) * 1000
                        assert len(found) == LIST_CHECKPOINTS, (name, len(found))
                        if i >= WARMUP:
                            times[name].append(elapsed)
                # The archive was attached but never opened: nothing was archived.
                assert "catalog" not in vars(archive.lakehouse)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{ours_schema}" CASCADE')
            admin.execute(f'DROP SCHEMA IF EXISTS "{theirs_schema}" CASCADE')
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        emit(
            f"checkpoints.list_hot_thread.{label}"
            if label != "p50"
            else "checkpoints.list_hot_thread",
            _quantile(times["aura"], q),
            "ms",
            baseline=_quantile(times["langgraph"], q),
            baseline_name="AsyncPostgresSaver.alist",
            n=LIST_N,
            checkpoints=LIST_CHECKPOINTS,
            **({"quantile": "p50", "goal": 1.5} if label == "p50" else {"quantile": label}),
        )


class _State(TypedDict):
    messages: Annotated[list[dict[str, str]], operator.add]
    notes: str
    step: int


def _archive_ratio() -> None:
    from langgraph.graph import END, START, StateGraph

    from lakehouse import Lakehouse, Settings
    from lakehouse.checkpoints import (
        AuraCheckpointSaver,
        CheckpointArchive,
        archive_bytes,
        archive_checkpoints,
    )

    def node(name: str) -> Any:
        def run(state: _State) -> dict[str, Any]:
            reply = f"{name}: deterministic answer to step {state['step']}. " * 6
            return {"messages": [{"role": name, "content": reply}], "step": state["step"] + 1}

        return run

    builder = StateGraph(_State)
    for name in ("plan", "retrieve", "act", "review"):
        builder.add_node(name, node(name))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "retrieve")
    builder.add_edge("retrieve", "act")
    builder.add_edge("act", "review")
    builder.add_edge("review", END)
    with tempfile.TemporaryDirectory() as home:
        lakehouse = Lakehouse(Settings.from_env({"AURA_HOME": home}))
        with AuraCheckpointSaver.from_conn_string(
            f"{home}/hot.db", archive=CheckpointArchive(lakehouse)
        ) as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)
            days: set[date] = set()
            for t in range(20):
                config: Any = {"configurable": {"thread_id": f"t{t}"}}
                for turn in range(5):
                    graph.invoke(
                        {
                            "messages": [{"role": "user", "content": f"turn {turn}"}],
                            "notes": "context " * 200,
                            "step": 0,
                        },
                        config,
                    )
                days.add(datetime.now(UTC).date())
            t0 = time.perf_counter()
            results = [archive_checkpoints(lakehouse, saver, day) for day in sorted(days)]
            seconds = time.perf_counter() - t0
        raw = sum(r.raw_bytes for r in results)
        stored = archive_bytes(lakehouse)
        emit(
            "checkpoints.archive.size_ratio",
            stored / raw,
            "ratio",
            archive_bytes=stored,
            raw_bytes=raw,
            checkpoints=sum(r.checkpoints for r in results),
            goal=0.6,
        )
        emit(
            "checkpoints.archive.seconds",
            seconds,
            "s",
            checkpoints=sum(r.checkpoints for r in results),
        )


def main() -> None:
    """Run the latency comparison (skipped without PostgreSQL) and the archive ratio."""
    import sys

    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        sys.stderr.write(f"checkpoints latency skipped: PostgreSQL unreachable ({exc})\n")
    else:
        asyncio.run(_latency())
        asyncio.run(_list_hot_thread())
    _archive_ratio()


if __name__ == "__main__":
    main()
