"""Every connection has a timeout: a silent server gives a clear error naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, silent_server

from lakehouse.table.catalog import with_timeouts

# Generous bound for a loaded 2-core machine; the configured timeouts are 5 s (connect) and
# 5 s (Redis reply). Without them each command hangs for minutes.
HANG = 30


def aura(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from aura_assets.cli import main; main()"
    base = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=base | {"PYTHONPATH": str(ROOT)} | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


@pytest.mark.process
def test_catalog_on_a_silent_postgres_fails_fast(tmp_path: Path) -> None:
    with silent_server() as port:
        url = f"postgresql://aura:pw@127.0.0.1:{port}/aura"
        result = aura(["tables"], {"AURA_HOME": str(tmp_path), "AURA_PG_URL": url})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "AURA_PG_URL" in error[0] and "timeout" in error[0], error


@pytest.mark.process
def test_redis_on_a_silent_server_fails_fast(tmp_path: Path) -> None:
    with silent_server() as port:
        env = {"AURA_HOME": str(tmp_path), "AURA_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        result = aura(["simulate", "--days", "1", "--per-day", "1"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "AURA_REDIS_URL" in error[0] and "Timeout" in error[0], error


def test_postgres_urls_get_timeouts_unless_set() -> None:
    url = with_timeouts("postgresql+psycopg://u:p@db:5432/aura")
    assert "connect_timeout=5" in url and "statement_timeout" in url and "u:p@db" in url
    assert "connect_timeout=2" in with_timeouts("postgresql+psycopg://db/a?connect_timeout=2")
    assert with_timeouts("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.skipif(os.environ.get("AURA_TEST_SERVERS") != "1", reason="needs PostgreSQL")
def test_catalog_with_timeouts_still_works_on_postgres(aura_env, settings) -> None:  # type: ignore[no-untyped-def]
    # The test's own catalog name (dropped at teardown by the settings fixture): the default
    # one may hold tables of other runs whose files are gone.
    result = aura(["tables"], aura_env)
    assert result.returncode == 0, result.stderr
