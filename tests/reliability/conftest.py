"""Fixtures of the reliability suite: its own Redis server, the test's settings, and figures.

Every test here attacks a promise ("never lose data") and prints what it measured as one JSON
line (``figures``); see ``harness`` for sizes (``AURA_RELIABILITY_SCALE``) and the process killer.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse import Settings
from reliability.harness import SCALE, PostgresServer, RedisServer, free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of the suite's own, which tests may stop and start."""
    import tempfile

    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
    directory = Path(tempfile.mkdtemp(prefix="aura-reliability-pg-"))
    server = PostgresServer(directory, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("fast")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rel_env(aura_env: dict[str, str], redis_server: RedisServer) -> dict[str, str]:
    """The test's AURA_* variables, with Redis on the suite's own server (flushed)."""
    if redis_server.process is None:
        redis_server.start()
    redis_server.client().flushall()
    return aura_env | {"AURA_REDIS_URL": redis_server.url}


@pytest.fixture
def rel_settings(rel_env: dict[str, str], settings: Settings) -> Settings:
    return Settings.from_env(rel_env)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Report this test's figures as one JSON line (terminal, and AURA_RELIABILITY_OUT)."""

    def report(**values: Any) -> dict[str, Any]:
        line = {"test": request.node.name, "scale": SCALE, **values}
        text = json.dumps(line, default=str)
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            sys.stdout.write(f"\n{text}\n")
            sys.stdout.flush()
        out = os.environ.get("AURA_RELIABILITY_OUT")
        if out:
            with open(out, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        return line

    return report
