"""Helpers of the reliability suite: sizes, a Redis server of its own, and a process killer.

Every test here attacks a promise ("never lose data") and prints what it measured as one JSON
line (``figures``). Sizes are multiplied by ``AURA_RELIABILITY_SCALE`` (1 in CI; the full run,
``make reliability-full``, uses the issue's sizes). Figures are also appended to the file
``AURA_RELIABILITY_OUT`` names, from which ``python tests/reliability/report.py`` rewrites the
table of ``RELIABILITY.md``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import redis

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
        os.kill(proc.pid, signal.SIGKILL)
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
            "stream_id": [None] * n,
            "ingested_at": [None] * n,
        },
        schema=ROUTING_DECISIONS.arrow_schema,
    )
