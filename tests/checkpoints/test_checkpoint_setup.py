"""The checkpointer's setup() under concurrent callers, and its connect timeout."""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid

import pytest
from helpers import PG_URL, SERVERS, silent_server

from lakehouse.checkpoints._exec import CONNECT_TIMEOUT_S, pg_conninfo
from lakehouse.checkpoints.saver.sync import AuraCheckpointSaver
from lakehouse.exceptions import AuraError

WORKERS = 8


def _setup(schema: str, barrier, errors) -> None:  # type: ignore[no-untyped-def]
    try:
        with AuraCheckpointSaver.from_conn_string(PG_URL, schema=schema) as saver:
            barrier.wait(timeout=30)
            saver.setup()
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.process
@pytest.mark.skipif(not SERVERS, reason="needs PostgreSQL (the server pass)")
def test_eight_concurrent_setups_on_a_fresh_schema_all_succeed() -> None:
    import psycopg

    schema = f"cp_{uuid.uuid4().hex[:10]}"
    ctx = mp.get_context("fork")
    barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_setup, args=(schema, barrier, errors)) for _ in range(WORKERS)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert failures == []
        assert [p.exitcode for p in procs] == [0] * WORKERS
        with psycopg.connect(pg_conninfo(PG_URL)) as con:
            versions = con.execute(
                f'SELECT v FROM "{schema}".aura_checkpoint_migrations ORDER BY v'
            ).fetchall()
        assert [v for (v,) in versions] == list(range(len(versions))) and versions
    finally:
        with psycopg.connect(pg_conninfo(PG_URL), autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_checkpoint_urls_get_a_connect_timeout_unless_set() -> None:
    assert f"connect_timeout={CONNECT_TIMEOUT_S}" in pg_conninfo("postgresql://u:p@db:5432/aura")
    assert "connect_timeout=2" in pg_conninfo("postgresql://u@db/a?connect_timeout=2")
    assert pg_conninfo("postgresql://u@db/a?connect_timeout=2").count("connect_timeout") == 1


@pytest.mark.process
def test_checkpoint_store_on_a_silent_postgres_fails_fast() -> None:
    with silent_server() as port:
        started = time.monotonic()
        with (
            pytest.raises(AuraError, match="AURA_PG_URL"),
            AuraCheckpointSaver.from_conn_string(f"postgresql://aura:pw@127.0.0.1:{port}/aura"),
        ):
            pass
        elapsed = time.monotonic() - started
    assert elapsed < 4 * CONNECT_TIMEOUT_S
