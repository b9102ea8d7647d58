"""Crashes: kill -9 at seeded random points; nothing partial is visible, nothing is lost.

Five operations are killed at a random moment (seeded, uniform over a measured uncrashed run)
in a child process: stream ingest, write-audit-publish, checkpoint archive-and-trim, table
compaction and memory compaction. After each kill the state is checked (readable tables, no
partial snapshot on main, every acknowledged event / archived checkpoint / stored memory still
somewhere); then the operation runs again to the end ("the next run") and the result must be
exact: every event once, every checkpoint once, every memory once. At the end, orphan cleanup
and ref expiry remove what the killed runs left (issue 9 item 7) and the data is unchanged.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.ingest.streams import StreamConsumer
from lakehouse.maintenance import compact, remove_orphans
from lakehouse.publish.wap import write_audit_publish
from lakehouse.routing import GROUP, ROUTING_DECISIONS, STREAM, ingest_day, stream_backlog
from lakehouse.stores import open_redis
from lakehouse.table import refs
from reliability.harness import run_and_kill, run_to_end, scaled

pytestmark = pytest.mark.reliability

DAY = date(2026, 11, 20)
TABLE = ROUTING_DECISIONS.name
SEED = 20261201


@dataclass(frozen=True)
class _Passed:
    success: bool = True

    def summary(self) -> str:
        return "passed"


def passing_audit(*_: Any) -> _Passed:
    """The audit is not under attack here: every written batch passes."""
    return _Passed()


def _event(i: int, tag: str) -> str:
    import json

    ts = datetime(2026, 11, 20, 8, tzinfo=UTC) + timedelta(seconds=i)
    return json.dumps(
        {
            "decision_id": f"{tag}-{i}",
            "ts": ts.isoformat(),
            "tenant_id": "acme",
            "task_type": "chat",
            "prompt_tokens": i,
            "candidate_models": ["a", "b"],
            "chosen_model": "a",
            "cost_usd": 0.01,
            "latency_ms": 100.0,
            "quality_score": 0.5,
            "fallback_used": False,
        }
    )


def _rows(ids: list[str], day: date = DAY) -> pa.Table:
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    n = len(ids)
    cols: dict[str, list[Any]] = {
        "decision_id": ids,
        "ts": [ts + timedelta(milliseconds=i) for i in range(n)],
        "tenant_id": ["t"] * n,
        "task_type": ["chat"] * n,
        "prompt_tokens": list(range(n)),
        "candidate_models": [["a"]] * n,
        "chosen_model": ["a"] * n,
        "cost_usd": [0.0] * n,
        "latency_ms": [1.0] * n,
        "quality_score": [0.5] * n,
        "fallback_used": [False] * n,
        "propensity": [None] * n,
        "router": [None] * n,
        "stream_id": [None] * n,
        "ingested_at": [None] * n,
    }
    return pa.Table.from_pydict(cols, schema=ROUTING_DECISIONS.arrow_schema)


def _delays(n: int, longest: float, salt: int) -> list[float]:
    rng = random.Random(SEED + salt)
    return [rng.uniform(0, longest) for _ in range(n)]


def _timed(target: Any, args: tuple[Any, ...]) -> float:
    started = time.perf_counter()
    run_to_end(target, args)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------- ingest


def _ingest_child(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    client = open_redis(settings)
    reader = StreamConsumer(client, STREAM, GROUP, claim_idle_ms=0)
    ingest_day(Lakehouse(settings), client, DAY, audit=passing_audit, reader=reader)


def _acknowledged(client: Any, sent: dict[str, str]) -> set[str]:
    """Decision ids whose entries the group has acknowledged (delivered and not pending)."""
    info = next(g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP.encode())
    last = info["last-delivered-id"].decode()
    pending = {
        p["message_id"].decode() for p in client.xpending_range(STREAM, GROUP, "-", "+", 1_000_000)
    }

    def order(sid: str) -> tuple[int, int]:
        ms, seq = sid.split("-")
        return int(ms), int(seq)

    return {d for sid, d in sent.items() if order(sid) <= order(last) and sid not in pending}


def test_kill_during_stream_ingest(rel_settings: Settings, rel_env, figures) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    client = open_redis(rel_settings)
    trials, batch = scaled(35), 300
    sent: dict[str, str] = {}  # stream id -> decision id

    def send(tag: str) -> None:
        for i in range(batch):
            sid = client.xadd(STREAM, {"data": _event(i, tag)}).decode()
            sent[sid] = f"{tag}-{i}"

    send("warm")
    _timed(_ingest_child, (rel_env,))  # creates the tables
    send("warm2")
    longest = _timed(_ingest_child, (rel_env,)) * 1.2
    killed = partial = lost = 0
    for t, delay in enumerate(_delays(trials, longest, 1)):
        before = lh.read(TABLE).num_rows
        send(f"t{t}")
        killed += run_and_kill(_ingest_child, (rel_env,), delay)
        ids = lh.read(TABLE).column("decision_id").to_pylist()
        partial += len(ids) not in (before, before + batch)
        assert len(ids) == len(set(ids)), "a killed ingest left duplicates on main"
        lost += len(_acknowledged(client, sent) - set(ids))
        ingest_day(
            lh,
            client,
            DAY,
            audit=passing_audit,
            reader=StreamConsumer(client, STREAM, GROUP, claim_idle_ms=0),
        )
    ids = lh.read(TABLE).column("decision_id").to_pylist()
    duplicated = len(ids) - len(set(ids))
    missing = len(set(sent.values()) - set(ids))
    figures(
        trials=trials,
        killed=killed,
        events=len(sent),
        partial_snapshots=partial,
        acknowledged_lost=lost,
        missing_after_rerun=missing,
        duplicated=duplicated,
        backlog=stream_backlog(client),
        max_delay_s=round(longest, 2),
    )
    assert (partial, lost, missing, duplicated, stream_backlog(client)) == (0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------------- WAP


def _wap_child(env: dict[str, str], tag: str) -> None:
    lh = Lakehouse(Settings.from_env(env))
    rows = _rows([f"{tag}-{i}" for i in range(200)])
    write_audit_publish(
        lh, TABLE, rows, audit=passing_audit, day=DAY, lineage=Lineage(asset=TABLE, run_id=tag)
    )


def test_kill_during_write_audit_publish(rel_settings: Settings, rel_env, figures) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    trials = scaled(30)
    longest = _timed(_wap_child, (rel_env, "warm")) * 1.2
    current = "warm"
    killed = partial = 0
    for t, delay in enumerate(_delays(trials, longest, 2)):
        tag = f"t{t}"
        killed += run_and_kill(_wap_child, (rel_env, tag), delay)
        tags = Counter(
            i.rsplit("-", 1)[0] for i in lh.read(TABLE).column("decision_id").to_pylist()
        )
        # main holds the whole previous day or the whole new one, never a mix or a part
        ok = tags in (Counter({current: 200}), Counter({tag: 200}))
        partial += not ok
        _wap_child(rel_env, tag)  # the next run
        current = tag
        assert Counter(lh.read(TABLE).column("decision_id").to_pylist()) == Counter(
            f"{tag}-{i}" for i in range(200)
        )
    table = lh.table(TABLE)
    leftover = [r.name for r in refs.list_refs(table) if r.name.startswith("audit-")]
    expired = refs.expire_refs(table, now_ms=int(time.time() * 1000) + 8 * 86_400_000)
    orphans = remove_orphans(lh, TABLE, grace=timedelta(0))
    after = lh.read(TABLE).column("decision_id").to_pylist()
    figures(
        trials=trials,
        killed=killed,
        partial_snapshots=partial,
        audit_branches_left_by_kills=len(leftover),
        audit_branches_expired=len([n for n in expired if n.startswith("audit-")]),
        orphan_files_removed=orphans.files_deleted,
        max_delay_s=round(longest, 2),
    )
    assert partial == 0
    assert not [r.name for r in refs.list_refs(table) if r.name.startswith("audit-")]
    assert sorted(after) == sorted(f"{current}-{i}" for i in range(200))


# ---------------------------------------------------------------------------------- compaction


def _compact_child(env: dict[str, str]) -> None:
    compact(Lakehouse(Settings.from_env(env)), TABLE, min_files=2)


def test_kill_during_table_compaction(rel_settings: Settings, rel_env, figures) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    trials = scaled(15)
    expected: list[str] = []

    def add_small_files(tag: str, files: int = 12) -> None:
        for f in range(files):
            ids = [f"{tag}-{f}-{i}" for i in range(20)]
            lh.append(TABLE, _rows(ids))
            expected.extend(ids)

    add_small_files("warm")
    longest = _timed(_compact_child, (rel_env,)) * 1.2
    killed = changed = 0
    for t, delay in enumerate(_delays(trials, longest, 3)):
        add_small_files(f"t{t}")
        killed += run_and_kill(_compact_child, (rel_env,), delay)
        changed += Counter(lh.read(TABLE).column("decision_id").to_pylist()) != Counter(expected)
        _compact_child(rel_env)
        assert Counter(lh.read(TABLE).column("decision_id").to_pylist()) == Counter(expected)
    orphans = remove_orphans(lh, TABLE, grace=timedelta(0))
    final = Counter(lh.read(TABLE).column("decision_id").to_pylist())
    figures(
        trials=trials,
        killed=killed,
        content_changed_after_kill=changed,
        rows=len(expected),
        orphan_files_removed=orphans.files_deleted,
        max_delay_s=round(longest, 2),
    )
    assert changed == 0 and final == Counter(expected)


# ---------------------------------------------------------------------------------- checkpoints


def _archive_child(env: dict[str, str], hot: str, day: str) -> None:
    from lakehouse.checkpoints import AuraCheckpointSaver, RetentionPolicy
    from lakehouse.checkpoints.archive import archive_and_trim

    lh = Lakehouse(Settings.from_env(env))
    with AuraCheckpointSaver.from_conn_string(hot) as saver:
        archive_and_trim(lh, saver, date.fromisoformat(day), RetentionPolicy(keep_last=1))


def _hot_keys(hot: str) -> set[tuple[str, str, str]]:
    from lakehouse.checkpoints import AuraCheckpointSaver

    with AuraCheckpointSaver.from_conn_string(hot) as saver:
        return {
            (
                c.config["configurable"]["thread_id"],
                c.config["configurable"]["checkpoint_ns"],
                c.config["configurable"]["checkpoint_id"],
            )
            for c in saver.list(None)
        }


def _archived_keys(lh: Lakehouse) -> list[tuple[str, str, str]]:
    rows = (
        lh.read("workflow_checkpoints")
        .select(["thread_id", "checkpoint_ns", "checkpoint_id"])
        .to_pylist()
    )
    return [(r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"]) for r in rows]


def test_kill_during_checkpoint_archive(rel_settings: Settings, rel_env, tmp_path, figures) -> None:  # type: ignore[no-untyped-def]
    from helpers import graph_builder, thread_config

    from lakehouse.checkpoints import AuraCheckpointSaver, RetentionPolicy
    from lakehouse.checkpoints.archive import archive_and_trim

    lh = Lakehouse(rel_settings)
    hot = str(tmp_path / "hot.db")
    trials = scaled(15)
    everything: set[tuple[str, str, str]] = set()

    def populate(tag: str) -> None:
        with AuraCheckpointSaver.from_conn_string(hot) as saver:
            saver.setup()
            graph = graph_builder().compile(checkpointer=saver)
            for t in range(3):
                for run in range(2):
                    graph.invoke(
                        {"messages": [{"role": "user", "content": f"q{run}"}], "step": 0},
                        thread_config(f"{tag}-{t}"),
                    )
        everything.update(_hot_keys(hot))

    today = datetime.now(UTC).date().isoformat()
    populate("warm")
    longest = _timed(_archive_child, (rel_env, hot, today)) * 1.2
    killed = lost = 0
    for t, delay in enumerate(_delays(trials, longest, 4)):
        populate(f"t{t}")
        killed += run_and_kill(_archive_child, (rel_env, hot, today), delay)
        lost += len(everything - _hot_keys(hot) - set(_archived_keys(lh)))
        with AuraCheckpointSaver.from_conn_string(hot) as saver:  # the next run
            archive_and_trim(lh, saver, date.fromisoformat(today), RetentionPolicy(keep_last=1))
    archived = _archived_keys(lh)
    duplicated = len(archived) - len(set(archived))
    missing = len(everything - set(archived))
    figures(
        trials=trials,
        killed=killed,
        checkpoints=len(everything),
        lost_after_kill=lost,
        missing_after_rerun=missing,
        duplicated=duplicated,
        max_delay_s=round(longest, 2),
    )
    assert (lost, missing, duplicated) == (0, 0, 0)


# ---------------------------------------------------------------------------------- memory


def _memory_child(env: dict[str, str], now_iso: str) -> None:
    from lakehouse.memory import MemoryStore

    now = datetime.fromisoformat(now_iso)
    with MemoryStore(Settings.from_env(env)) as mem:
        mem.compact(now=now, hot_max_age=timedelta(0), warm_max_age=timedelta(0))


def test_kill_during_memory_compaction(rel_settings: Settings, rel_env, figures) -> None:  # type: ignore[no-untyped-def]
    from lakehouse.memory import MemoryStore

    trials = scaled(15)
    stored: list[str] = []
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()

    def store(tag: str) -> None:
        with MemoryStore(rel_settings) as mem:
            stored.extend(mem.store("acme", f"{tag} memory {i}") for i in range(8))

    def where() -> Counter[str]:
        with MemoryStore(rel_settings) as mem:
            places: Counter[str] = Counter()
            places.update(mem.hot.ids("acme"))
            places.update(m.id for m in mem.warm.scan("acme"))
            places.update(mem.cold.table.scan().to_arrow()["memory_id"].to_pylist())
            lost_now = [i for i in stored if mem.get("acme", i) is None]
        return places, lost_now  # type: ignore[return-value]

    store("warm")
    longest = _timed(_memory_child, (rel_env, later)) * 1.2
    killed = lost = 0
    for t, delay in enumerate(_delays(trials, longest, 5)):
        store(f"t{t}")
        killed += run_and_kill(_memory_child, (rel_env, later), delay)
        _, missing_now = where()
        lost += len(missing_now)
        _memory_child(rel_env, later)  # the next run
    places, missing = where()
    duplicated = sum(1 for i in stored if places[i] > 1)
    figures(
        trials=trials,
        killed=killed,
        memories=len(stored),
        lost_after_kill=lost,
        missing_after_rerun=len(missing),
        in_two_tiers_after_rerun=duplicated,
        max_delay_s=round(longest, 2),
    )
    assert (lost, len(missing), duplicated) == (0, 0, 0)
