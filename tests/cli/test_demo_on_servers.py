"""Production mode: the same demo, with only environment variables changed, on the servers.

PostgreSQL holds the Iceberg catalog and the Dagster run/event storage, the Redis server the
event stream. The demo runs as a user runs it (a new process); the test then reads PostgreSQL
directly to find the demo's runs and tables there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import PG_URL, REDIS_URL, ROOT, SERVERS


def _unreachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at AURA_TEST_PG_URL ({type(exc).__name__})"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at AURA_TEST_REDIS_URL ({type(exc).__name__})"
    return None


@pytest.mark.process
@pytest.mark.servers
@pytest.mark.slow
def test_demo_runs_on_postgres_and_redis(tmp_path: Path) -> None:
    if not SERVERS:
        pytest.skip("production mode runs in the server pass (AURA_TEST_SERVERS=1)")
    if reason := _unreachable():
        pytest.skip(f"{reason}: start the servers (see .ci/run) to test production mode")
    catalog = f"t_prod_{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    env |= {
        "AURA_HOME": str(tmp_path / "aura"),
        "AURA_PG_URL": PG_URL,
        "AURA_CATALOG_NAME": catalog,
        "AURA_REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }
    try:
        out = subprocess.run(
            [sys.executable, "-m", "aura_assets.cli", "demo", "--days", "1", "--per-day", "200"]
            + ["--workflows", "0"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        run_ids = re.findall(r"routing_ingest run ([0-9a-f-]{36})", out.stdout)
        assert run_ids, out.stdout
        with psycopg.connect(PG_URL) as conn:
            runs = conn.execute(
                "SELECT run_id, pipeline_name, status FROM runs WHERE run_id = ANY(%s)",
                (run_ids,),
            ).fetchall()
            tables = conn.execute(
                "SELECT table_name FROM iceberg_tables WHERE catalog_name = %s", (catalog,)
            ).fetchall()
        assert {(r[0], r[1], r[2]) for r in runs} == {
            (run_id, "routing_ingest", "SUCCESS") for run_id in run_ids
        }
        assert "routing_decisions" in {t[0] for t in tables}
        # Nothing of the instance's storage went to the SQLite files under AURA_HOME.
        assert not list((tmp_path / "aura" / "dagster").glob("**/runs.db"))
        assert client.xlen("aura:events:routing") == 200
    finally:
        client.flushdb()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for table in ("iceberg_tables", "iceberg_namespace_properties"):
                conn.execute(f"DELETE FROM {table} WHERE catalog_name = %s", (catalog,))
