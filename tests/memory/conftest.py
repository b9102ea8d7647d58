"""Fixtures of the memory tests: a MemoryStore on the test's Redis and Qdrant Edge shards, and a
real redis-server on its own port that a test can stop and start again."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from helpers import dead_port

from lakehouse import Settings
from lakehouse.memory import MemoryStore


@pytest.fixture
def mem(settings: Settings, redis_client) -> Iterator[MemoryStore]:  # type: ignore[no-untyped-def]
    store = MemoryStore(settings, redis_client=redis_client)
    yield store
    store.close()


class RedisServer:
    """A real redis-server on its own port, which a test can stop and start again."""

    def __init__(self) -> None:
        self.port = dead_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (empty: it keeps nothing on disk) and wait until it answers."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary")
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def mem_on_server(settings: Settings, server: RedisServer) -> Iterator[MemoryStore]:
    store = MemoryStore(dataclasses.replace(settings, redis_url=server.url))
    yield store
    store.close()
