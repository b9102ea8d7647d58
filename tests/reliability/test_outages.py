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
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta

import pytest

from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.routing import GROUP, ROUTING_DECISIONS, STREAM, ingest_day, stream_backlog
from lakehouse.stores import open_redis
from lakehouse.streams import StreamConsumer
from reliability.harness import SERVERS, RedisServer, decision_rows, process_context, scaled

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
