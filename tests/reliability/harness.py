"""Helpers of the reliability suite: sizes, a Redis server of its own, and a process killer.

Every test here attacks a promise ("never lose data") and prints what it measured as one JSON
line (``figures``). Sizes are multiplied by ``AURA_RELIABILITY_SCALE`` (1 in CI; the full run,
``make reliability-full``, uses the issue's sizes). Figures are also appended to the file
``AURA_RELIABILITY_OUT`` names, from which ``python tests/reliability/report.py`` rewrites the
table of ``RELIABILITY.md``.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import redis
from hypothesis import strategies as st

from lakehouse.ingest.streams import raw_text
from lakehouse.routing import ROUTING_DECISIONS

SCALE = float(os.environ.get("AURA_RELIABILITY_SCALE", "1"))
SERVERS = os.environ.get("AURA_TEST_SERVERS") == "1"
PRELOAD = [
    "lakehouse",
    "lakehouse.routing",
    "lakehouse.maintenance",
    "lakehouse.memory",
    "lakehouse.checkpoints",
    "pyiceberg.table",
    "pyarrow.parquet",
    "redis",
]


def scaled(n: int) -> int:
    """``n`` times the suite's scale (at least 1)."""
    return max(1, round(n * SCALE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server on its own port, persisting every write (AOF, fsync always)."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=10)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of the test's own (initdb in ``directory``, its own port).

    Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
    """

    directory: Path
    port: int
    running: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        binary = shutil.which(args[0]) or args[0]
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, binary, *args[1:]], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        data = str(self.directory / "data")
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        data, log = str(self.directory / "data"), str(self.directory / "server.log")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as a crash; ``fast``: connections dropped)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop")
            self.running = False


_CONTEXT: Any = None


def process_context() -> Any:
    """A forkserver context whose server has imported the library once (cheap, clean children)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def _run(target: Callable[..., None], args: tuple[Any, ...], started: Any) -> None:
    started.set()
    target(*args)


def run_and_kill(
    target: Callable[..., None], args: tuple[Any, ...], delay: float, *, timeout: float = 120
) -> bool:
    """Run ``target(*args)`` in a fresh process and SIGKILL it ``delay`` seconds after it starts.

    Returns whether it was killed (False: it finished first). A child that fails on its own
    fails the test.
    """
    ctx = process_context()
    started = ctx.Event()
    proc = ctx.Process(target=_run, args=(target, args, started))
    proc.start()
    if not started.wait(60):
        proc.kill()
        raise RuntimeError("the child process did not start")
    proc.join(delay)
    killed = proc.is_alive()
    if killed:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the check and the kill: it finished first
            killed = False
    proc.join(timeout)
    if not killed and proc.exitcode != 0:
        raise AssertionError(f"{target.__name__} failed on its own (exit {proc.exitcode})")
    return killed


def run_to_end(target: Callable[..., None], args: tuple[Any, ...], timeout: float = 300) -> None:
    """Run ``target(*args)`` in a fresh process to completion; its failure fails the test."""
    ctx = process_context()
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        raise AssertionError(f"{target.__name__} did not finish within {timeout} s")
    assert proc.exitcode == 0, f"{target.__name__} failed (exit {proc.exitcode})"


def decision_rows(ids: list[str], day: date) -> pa.Table:
    """Valid routing decisions with the given ids on ``day``, a second apart."""
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    n = len(ids)
    return pa.Table.from_pydict(
        {
            "decision_id": ids,
            "ts": [ts + timedelta(seconds=i) for i in range(n)],
            "tenant_id": ["t"] * n,
            "task_type": ["chat"] * n,
            "prompt_tokens": [1] * n,
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
        },
        schema=ROUTING_DECISIONS.arrow_schema,
    )


any_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=50),
    ),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
"""Any JSON-ish value (hypothesis): what a fuzzed field may hold instead of its type."""
wild_ts = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
        ),
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "2026-11-20T10:00:00",
            "2026-13-40T99:00:00+00:00",
            "",
        ]
    ),
)
"""Event times far in the past and future, across offsets, naive or malformed."""


def payload_digests(fields: dict[bytes, bytes]) -> set[str]:
    """The digests a dead letter of this entry may carry: SHA-256 of its whole payload (or of
    all its fields when it has none), as ``streams.DeadLetter`` computes it; the stored ``raw``
    is cut, the digest never is."""
    texts = {raw_text(fields.get(b"data")), raw_text(fields)} - {None}
    return {hashlib.sha256(t.encode()).hexdigest() for t in texts if t is not None}


FRESH = "__fresh__"
"""A fuzzed payload's id placeholder, replaced by a new id when published (hypothesis repeats)."""
PER_EXAMPLE = 5


def publish_fuzzed(
    client: redis.Redis,
    stream: str,
    entries: st.SearchStrategy[dict[bytes, bytes]],
    *,
    events: int,
    seed_value: int,
    prefix: str,
    ingest: Callable[[], None],
) -> dict[str, dict[bytes, bytes]]:
    """Publish about ``events`` fuzzed entries to ``stream``; ``ingest()`` five times meanwhile.

    Entries come ``PER_EXAMPLE`` to a hypothesis example; one in twenty is an earlier entry
    re-sent as it was (a producer retry). Returns the entries published, by entry id.
    """
    from hypothesis import HealthCheck, Phase, given, seed, settings

    sent: dict[str, dict[bytes, bytes]] = {}
    every = max(1, events // 5)

    @seed(seed_value)
    @settings(
        max_examples=max(1, events // PER_EXAMPLE),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.tuples(entries, st.integers(0, 19)), min_size=PER_EXAMPLE, max_size=5))
    def publish(drawn: list[tuple[dict[bytes, bytes], int]]) -> None:
        for fields, again in drawn:
            if again == 0 and sent:  # the producer re-sends an earlier entry as it was
                fields = list(sent.values())[len(sent) // 2]
            elif b"data" in fields:
                fresh = f'"{prefix}-{len(sent)}"'.encode()
                fields = {b"data": fields[b"data"].replace(f'"{FRESH}"'.encode(), fresh)}
            sent[client.xadd(stream, fields).decode()] = fields
            if len(sent) % every == 0:  # events keep arriving between runs
                ingest()

    publish()
    return sent


def sent_object(payload: bytes | None) -> dict[str, Any] | None:
    """A published payload as the JSON object it holds, None when it holds none."""
    import orjson

    try:
        value = orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def account(
    sent: dict[str, dict[bytes, bytes]],
    stored: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    *,
    key: str,
    same: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> Counter[str]:
    """Where each published entry went: ``stored``, ``dead``, ``replays`` or ``unaccounted``.

    An entry is stored (under its entry id; ``mismatched`` counts rows that ``same`` says differ
    from what was sent), a dead letter (under its entry id, or its payload recorded once under
    another id), or a replay: its ``key`` is stored with content ``same`` accepts.
    """
    by_sid = {r["stream_id"]: r for r in stored}
    by_key = {r[key]: r for r in stored}
    dead = {r["stream_id"]: r["reason"] for r in rejected}
    dead_payloads = {r.get("payload_sha256") for r in rejected} - {None}
    counts = Counter[str]()
    for sid, fields in sent.items():
        want = sent_object(fields.get(b"data"))
        if sid in by_sid:
            counts["stored"] += 1
            counts["mismatched"] += want is None or not same(by_sid[sid], want)
        elif dead.get(sid):
            counts["dead"] += 1
        elif want is not None and _replay(by_key.get(_hashable(want.get(key))), want, same):
            counts["replays"] += 1
        elif payload_digests(fields) & dead_payloads:
            counts["dead"] += 1
        else:
            counts["unaccounted"] += 1
    return counts


def _hashable(value: object) -> object:
    return value if isinstance(value, str | int) else None


def _replay(
    stored: dict[str, Any] | None,
    want: dict[str, Any],
    same: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> bool:
    return stored is not None and same(stored, want)
