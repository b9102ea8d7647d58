"""Outages: the stores go away mid-run and come back; no acknowledged write is lost.

* Redis (a server this suite started on its own port, persisting with fsync always) is killed
  or stopped while an ingest runs in another process, then restarted: the entries that run had
  read are pending on its dead consumer, the next run reclaims them, and every event published
  before the outage is stored exactly once.
* PostgreSQL (the catalog; the server is shared, so the test puts a TCP proxy it controls
  between the client and the server) drops every connection mid-way through a series of
  commits, then comes back: each commit either succeeds or fails within a bounded time with an
  error naming the variable to check, no commit is half-applied, and commits succeed again once
  the server is back.
* PostgreSQL as the checkpoint hot store (a cluster this suite starts on its own port) is
  stopped as by a crash and started again while a graph runs threads on one saver: runs fail
  within a bounded time naming ``AURA_PG_URL`` (the saver reopens its connection a bounded
  number of times), no checkpoint is half-written, every acknowledged run's final state is
  there, and the same saver works again once the server is back.
* Qdrant unreachable (``AURA_QDRANT_URL`` at a dead port): the memory store still opens, reads
  answer from the hot and cold tiers and name the skipped warm tier, writes still land in
  Redis, erase and compaction refuse naming the variable, topology retrieval says what to do;
  when Qdrant answers again no acknowledged memory is lost.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.ingest.streams import StreamConsumer
from lakehouse.routing import GROUP, ROUTING_DECISIONS, STREAM, ingest_day, stream_backlog
from lakehouse.stores import open_redis
from reliability.harness import (
    SERVERS,
    PostgresServer,
    RedisServer,
    decision_rows,
    free_port,
    process_context,
    scaled,
)

pytestmark = pytest.mark.reliability

DAY = date(2026, 11, 20)
TABLE = ROUTING_DECISIONS.name


@pytest.fixture(autouse=True)
def _redis_back_up(redis_server: RedisServer) -> Iterator[None]:
    yield
    if redis_server.process is None:
        redis_server.start()


def _payload(i: int, tag: str) -> str:
    import json

    ts = datetime(2026, 11, 20, 8, tzinfo=UTC) + timedelta(milliseconds=i)
    return json.dumps(
        {
            "decision_id": f"{tag}-{i}",
            "ts": ts.isoformat(),
            "tenant_id": "acme",
            "task_type": "chat",
            "prompt_tokens": i,
            "candidate_models": ["a"],
            "chosen_model": "a",
            "cost_usd": 0.0,
            "latency_ms": 1.0,
            "quality_score": 0.5,
            "fallback_used": False,
        }
    )


class _Passed:
    success = True

    def summary(self) -> str:
        return "passed"


def _pass(*_: object) -> _Passed:
    return _Passed()


def _ingest_child(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    client = open_redis(settings)
    ingest_day(Lakehouse(settings), client, DAY, audit=_pass)


def test_redis_restarted_mid_ingest_loses_nothing(
    rel_settings: Settings, rel_env: dict[str, str], redis_server: RedisServer, figures
) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(rel_settings)
    rng = random.Random(20261201)
    trials, batch = scaled(6), 3000
    published: set[str] = set()
    child_failed = reclaimed = 0
    for t in range(trials):
        client = redis_server.client()
        if t == 0:
            client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        for start in range(0, batch, 500):
            pipe = client.pipeline()
            for i in range(start, start + 500):
                pipe.xadd(STREAM, {"data": _payload(i, f"t{t}")})
            pipe.execute()
        published |= {f"t{t}-{i}" for i in range(batch)}
        ctx = process_context()
        proc = ctx.Process(target=_ingest_child, args=(rel_env,))
        proc.start()
        deadline = time.monotonic() + 60
        while client.xpending(STREAM, GROUP)["pending"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the run has read its entries
        time.sleep(rng.uniform(0.0, 1.5))
        redis_server.stop(rng.choice([9, 15]))  # SIGKILL or SIGTERM
        time.sleep(0.5)
        redis_server.start()
        proc.join(180)
        assert not proc.is_alive(), "the ingest hung after Redis came back"
        child_failed += proc.exitcode != 0
        client = redis_server.client()
        pending_before = client.xpending(STREAM, GROUP)["pending"]
        report = ingest_day(
            lh,
            open_redis(rel_settings),
            DAY,
            audit=_pass,
            reader=StreamConsumer(client, STREAM, GROUP, claim_idle_ms=0),
        )
        reclaimed += min(pending_before, report.read)
    ids = lh.read(TABLE).column("decision_id").to_pylist()
    client = redis_server.client()
    figures(
        restarts=trials,
        events=len(published),
        ingests_failed_by_outage=child_failed,
        pending_reclaimed=reclaimed,
        lost=len(published - set(ids)),
        duplicated=len(ids) - len(set(ids)),
        backlog=stream_backlog(client),
    )
    assert published == set(ids) and len(ids) == len(set(ids))
    assert stream_backlog(client) == 0


# ------------------------------------------------------------------------------ PostgreSQL


class Proxy:
    """A TCP forwarder to ``upstream`` that the test can cut (every connection dropped)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if self.down.is_set():
                client.close()  # the server is "down": refuse
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down.set()
        with self.lock:
            for s in self.sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.cut()
        self.stopped.set()
        self.thread.join()
        self.listener.close()


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    proxy = Proxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.skipif(not SERVERS, reason="needs PostgreSQL (the server pass)")
def test_postgres_catalog_outage_is_bounded_clear_and_atomic(
    aura_env: dict[str, str], settings: Settings, figures
) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    url = urlsplit(aura_env["AURA_PG_URL"])
    commits = scaled(30)
    with proxy_to(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
        env = aura_env | {"AURA_PG_URL": proxied}
        lh = Lakehouse(Settings.from_env(env))
        lh.table(TABLE)
        outcomes: list[tuple[str, str, float, str]] = []
        # The outage starts and ends at moments unrelated to the commits (mid-commit too).
        started_at = time.perf_counter()
        cut_after, outage_s = 1.0, 2.5
        threading.Timer(cut_after, proxy.cut).start()
        threading.Timer(cut_after + outage_s, proxy.restore).start()
        back_at = started_at + cut_after + outage_s
        c = 0
        while c < commits or time.perf_counter() < back_at + 2:
            started = time.perf_counter()
            try:
                lh.append(
                    TABLE,
                    decision_rows([f"c{c}-{i}" for i in range(10)], date(2026, 11, 20)),
                    lineage=Lineage(run_id=f"c{c}"),
                )
                outcomes.append((f"c{c}", "ok", time.perf_counter() - started, ""))
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                outcomes.append((f"c{c}", "error", time.perf_counter() - started, message))
                time.sleep(0.05)
            c += 1
            assert c < 10_000
        after_restore = [
            o
            for o, t in zip(outcomes, _starts(outcomes, started_at), strict=True)
            if t > back_at + 0.5
        ]
    reader = Lakehouse(settings)  # straight to the server
    ids = reader.read(TABLE).column("decision_id").to_pylist()
    present = {i.rsplit("-", 1)[0] for i in ids}
    counts = {tag: sum(1 for i in ids if i.rsplit("-", 1)[0] == tag) for tag in present}
    half = [tag for tag, n in counts.items() if n != 10]
    lost = [tag for tag, status, *_ in outcomes if status == "ok" and tag not in present]
    errors = [o for o in outcomes if o[1] == "error"]
    unclear = [o for o in errors if not ("AURA_PG_URL" in o[3] or "AURA_CATALOG_URI" in o[3])]
    figures(
        commits=len(outcomes),
        ok=sum(1 for o in outcomes if o[1] == "ok"),
        failed_during_outage=len(errors),
        failed_after_restore=sum(1 for o in after_restore if o[1] == "error"),
        slowest_failure_s=round(max((o[2] for o in errors), default=0.0), 2),
        half_applied=len(half),
        acknowledged_lost=len(lost),
        errors_without_variable=len(unclear),
        example_error=errors[0][3][:200] if errors else "",
    )
    assert errors, "the outage was not noticed"
    assert not half and not lost
    assert max(o[2] for o in errors) < 30
    assert after_restore and all(o[1] == "ok" for o in after_restore), "no recovery"
    assert not unclear, unclear[:2]


def _starts(outcomes: list[tuple[str, str, float, str]], t0: float) -> list[float]:
    """Approximate start times of consecutive outcomes (each began when the last ended)."""
    starts, t = [], t0
    for _, status, seconds, _ in outcomes:
        starts.append(t)
        t += seconds + (0.05 if status == "error" else 0.0)
    return starts


# ---------------------------------------------------------------------------------- Qdrant


def test_qdrant_unreachable_degrades_as_documented_and_loses_nothing(
    rel_env: dict[str, str], figures
) -> None:  # type: ignore[no-untyped-def]
    """AURA_QDRANT_URL points at a dead port: memory reads fall back to hot and cold, writes
    still land in Redis, erase and compaction refuse naming AURA_QDRANT_URL, topology retrieval
    says what to do; once Qdrant answers again every acknowledged memory is there, and the
    memories written during the outage move to the warm tier."""
    from click.testing import CliRunner

    from aura_assets.cli import main
    from lakehouse.exceptions import StoreUnavailableError, TierUnavailableError
    from lakehouse.memory import MemoryStore
    from lakehouse.stores import open_qdrant

    up = Settings.from_env(rel_env)
    dead_env = rel_env | {"AURA_QDRANT_URL": f"http://127.0.0.1:{free_port()}"}
    dead = Settings.from_env(dead_env)
    n, now = scaled(40), datetime.now(UTC)
    tier_of: dict[str, str] = {}
    with MemoryStore(up) as mem:
        for i in range(n):
            tier_of[mem.store("acme", f"cold fact {i}", now=now - timedelta(days=60))] = "cold"
        mem.compact(now=now, hot_max_age=timedelta(0))
        mem.compact(now=now, warm_max_age=timedelta(days=30))
        for i in range(n):
            tier_of[mem.store("acme", f"warm fact {i}", now=now - timedelta(hours=3))] = "warm"
        mem.compact(now=now)
        assert {mem.get("acme", m).tier for m in tier_of} == {"cold", "warm"}  # type: ignore[union-attr]
    refusals: list[tuple[str, float, str]] = []
    with MemoryStore(dead) as mem:  # opens although Qdrant does not answer
        for i in range(n):
            tier_of[mem.store("acme", f"hot fact {i}")] = "hot"
        erased_one = mem.store("initech", "to be forgotten")
        hits = mem.search("acme", "fact", k=3 * n)
        readable = {m for m in tier_of if mem.get("acme", m) is not None}
        for what, call in (
            ("compact", lambda: mem.compact(now=now + timedelta(hours=2))),
            # An erase records its tombstone first, then refuses: another tenant's memories.
            ("forget", lambda: mem.forget("initech", erased_one)),
            ("forget_tenant", lambda: mem.forget_tenant("initech")),
        ):
            started = time.perf_counter()
            with pytest.raises(TierUnavailableError) as refused:
                call()
            refusals.append((what, time.perf_counter() - started, str(refused.value)))
        still_readable = {m for m in tier_of if mem.get("acme", m) is not None}
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError) as topo_error:
        open_qdrant(dead)
    topo_s = time.perf_counter() - started
    cli = CliRunner().invoke(main, ["topology", "similar", "w-1", "--tenant", "acme"], env=dead_env)
    with MemoryStore(up) as mem:  # Qdrant answers again
        back = {m for m in tier_of if mem.get("acme", m) is not None}
        mem.compact(now=datetime.now(UTC) + timedelta(hours=2))
        after_compaction = {m: mem.get("acme", m) for m in tier_of}
    lost = [m for m, got in after_compaction.items() if got is None]
    expected_live = {m for m, t in tier_of.items() if t != "warm"}
    figures(
        memories=len(tier_of),
        search_unavailable=list(hits.unavailable),
        search_hits=len(hits),
        hot_and_cold_found=len(expected_live & {h.memory.id for h in hits}),
        readable_while_down=len(readable),
        refused=[w for w, *_ in refusals],
        slowest_refusal_s=round(max(s for _, s, _ in refusals), 2),
        topology_error_s=round(topo_s, 2),
        readable_when_back=len(back),
        acknowledged_lost=len(lost),
        lost_by_tier=dict(Counter(tier_of[m] for m in lost)),
        example_error=refusals[0][2][:160],
    )
    assert hits.unavailable == ("warm",)
    assert {h.memory.id for h in hits} == expected_live  # every hot and cold memory answers
    assert readable == still_readable == expected_live
    assert all("AURA_QDRANT_URL" in message for *_, message in refusals), refusals
    assert max(s for _, s, _ in refusals) < 30
    assert "AURA_QDRANT_URL" in str(topo_error.value)
    assert cli.exit_code != 0 and "AURA_QDRANT_URL" in cli.output, cli.output
    assert back == set(tier_of) and not lost
    moved = {m for m, got in after_compaction.items() if got is not None and got.tier == "warm"}
    assert {m for m, t in tier_of.items() if t == "hot"} <= moved


# ------------------------------------------------------------- checkpoint hot store (Postgres)


def test_checkpoint_hot_store_restart_is_bounded_clear_and_loses_nothing(
    postgres_server: PostgresServer, figures
) -> None:  # type: ignore[no-untyped-def]
    """The suite's own PostgreSQL, the checkpoint hot store, is stopped (as a crash) and started
    while a graph keeps running threads on one saver: each run either finishes (acknowledged)
    or fails within a bounded time naming AURA_PG_URL; no checkpoint is half-written, every
    acknowledged run's final state is there, and the same saver works again once it is back."""
    from helpers import graph_builder, thread_config

    from lakehouse.checkpoints import AuraCheckpointSaver
    from lakehouse.checkpoints._exec import Stmt

    runs = scaled(40)
    source = {"messages": [{"role": "user", "content": "q"}], "step": 0}
    reference = graph_builder().compile().invoke(source)
    outcomes: list[tuple[str, str, float, str]] = []
    down_at, outage_s = 1.0, 2.5
    with AuraCheckpointSaver.from_conn_string(postgres_server.url) as saver:
        saver.setup()
        graph = graph_builder().compile(checkpointer=saver)
        started_at = time.perf_counter()
        stop = threading.Timer(down_at, postgres_server.stop)
        start = threading.Timer(down_at + outage_s, postgres_server.start)
        stop.start()
        start.start()
        back_at = started_at + down_at + outage_s
        i = 0
        while i < runs or time.perf_counter() < back_at + 3:
            thread, began = f"run-{i}", time.perf_counter()
            try:
                graph.invoke(source, thread_config(thread))
                outcomes.append((thread, "ok", time.perf_counter() - began, ""))
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                outcomes.append((thread, "error", time.perf_counter() - began, message))
                time.sleep(0.05)
            i += 1
            assert i < 10_000
        stop.join()
        start.join()
        after = [
            o
            for o, t in zip(outcomes, _starts(outcomes, started_at), strict=True)
            if t > back_at + 1
        ]
    with AuraCheckpointSaver.from_conn_string(postgres_server.url) as fresh:
        d = fresh._exec.dialect

        def half_written() -> Any:  # checkpoints naming channel values that are not stored
            rows = yield Stmt(
                d.render(
                    "SELECT count(*) FROM {checkpoints} c, {json_each}(c.blob_versions) v "
                    "WHERE NOT EXISTS (SELECT 1 FROM {blobs} b WHERE b.thread_id = c.thread_id "
                    "AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key "
                    "AND b.version = v.value)"
                ),
                fetch=True,
            )
            return int(rows[0][0])

        broken = fresh._exec.run(half_written())
        checked = graph_builder().compile(checkpointer=fresh)
        lost = [
            t
            for t, status, *_ in outcomes
            if status == "ok" and checked.get_state(thread_config(t)).values != reference
        ]
        undecodable = 0
        for t, *_ in outcomes:
            for item in fresh.list(thread_config(t)):
                undecodable += item.checkpoint is None
    errors = [o for o in outcomes if o[1] == "error"]
    unclear = [o for o in errors if "AURA_PG_URL" not in o[3]]
    figures(
        runs=len(outcomes),
        ok=len(outcomes) - len(errors),
        failed_during_outage=len(errors),
        failed_after_restart=sum(1 for o in after if o[1] == "error"),
        slowest_failure_s=round(max((o[2] for o in errors), default=0.0), 2),
        half_written_checkpoints=broken,
        acknowledged_lost=len(lost),
        errors_without_variable=len(unclear),
        example_error=errors[0][3][:200] if errors else "",
    )
    assert errors, "the outage was not noticed"
    assert broken == 0 and not lost and undecodable == 0
    assert max(o[2] for o in errors) < 30
    assert after and all(o[1] == "ok" for o in after), "the saver did not recover"
    assert not unclear, unclear[:2]
