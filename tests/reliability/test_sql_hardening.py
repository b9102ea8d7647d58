"""`aura sql` hardening: tenant names stay hidden, runaway statements stop, errors are one line.

Issue 21 items 16 and 17 (sql part) and issue 22 item 6 (tenant validation), each reproduced:

* ``aura sql --tenant A`` showed other tenants' names through tables shown whole (the router
  model's one-hot feature names ``tenant=<id>``, quality results' sampled values) and through the
  metadata views (run ids, branch and tag names);
* a recursive CTE ran forever: there was no statement timeout;
* ``--output`` into a missing directory or ``/dev/full`` ended in a traceback;
* ``--tenant`` took any text, where the memory commands refuse ids that can alias a tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner, Result

from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.exceptions import AuraError
from lakehouse.sql import connect
from lakehouse.table.registry import spec_for

pytestmark = pytest.mark.reliability

VICTIM, ATTACKER = "victim-corp", "attacker-corp"
RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"


def _value(kind: pa.DataType) -> Any:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "x"
    if pa.types.is_integer(kind):
        return 1
    if pa.types.is_floating(kind):
        return 0.5
    if pa.types.is_boolean(kind):
        return False
    if pa.types.is_timestamp(kind):
        return datetime(2026, 11, 20, 9, tzinfo=UTC)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return []
    return None


def _row(table: str, **values: Any) -> pa.Table:
    schema = spec_for(table).arrow_schema
    row = {f.name: [values.get(f.name, _value(f.type))] for f in schema}
    return pa.Table.from_pydict(row, schema=schema)


def _sql(env: dict[str, str], *args: str) -> Result:
    from aura_assets.cli.sql import sql

    return CliRunner().invoke(sql, list(args), env=env)


def test_tenant_session_shows_no_other_tenant_name(lakehouse: Lakehouse, figures) -> None:  # type: ignore[no-untyped-def]
    lh = lakehouse
    lh.append(
        "router_models",
        _row(
            "router_models",
            version="v1",
            status="champion",
            features=["prompt_tokens", f"tenant={ATTACKER}", f"tenant={VICTIM}"],
            models=["small"],
            training_snapshot_ids=[1],
            metrics="{}",
        ),
        lineage=Lineage(asset="router_model", run_id=f"train-{VICTIM}"),
    )
    lh.append(
        "quality_results",
        _row(
            "quality_results",
            table_name="memories",
            unexpected_sample=json.dumps([VICTIM]),
            kwargs=json.dumps({"value_set": [VICTIM]}),
        ),
        lineage=Lineage(asset="quality", run_id=f"audit-of-{VICTIM}", partition=VICTIM),
    )
    lh.table("router_models").manage_snapshots().create_tag(
        lh.table("router_models").current_snapshot().snapshot_id,  # type: ignore[union-attr]
        f"before-{VICTIM}",
    ).commit()
    queries = [
        "SELECT * FROM router_models",
        "SELECT * FROM quality_results",
        "SELECT * FROM router_models_at_ref('main')",
        "SELECT * FROM aura_snapshots",
        "SELECT * FROM aura_refs",
        "SELECT * FROM aura_history",
        "SELECT * FROM aura_views",
    ]
    seen: list[str] = []
    leaks: list[str] = []
    with connect(lh.settings, tenant=ATTACKER) as session:
        for query in queries:
            text = json.dumps(session.arrow(query).to_pylist(), default=str)
            seen.append(text)
            if VICTIM in text:
                leaks.append(query)
        try:
            session.arrow("SELECT * FROM router_models_at_ref('nope')")
        except AuraError as exc:
            if VICTIM in str(exc):
                leaks.append("error of an unknown ref")
        features = session.execute("SELECT features FROM router_models").fetchall()
    try:
        connect(lh.settings, tenant=ATTACKER, ref="nope")
    except AuraError as exc:
        if VICTIM in str(exc):
            leaks.append("error of connect(ref=unknown)")
    figures(queries=len(queries) + 2, leaks=len(leaks), leaked_by=leaks)
    assert leaks == []
    assert features == [(None,)]  # the column is there, its names are not
    with connect(lh.settings) as session:  # without a tenant everything shows
        everything = session.execute("SELECT features FROM router_models").fetchall()
    assert f"tenant={VICTIM}" in everything[0][0]


def test_runaway_statement_is_stopped_with_a_clear_error(  # type: ignore[no-untyped-def]
    lakehouse: Lakehouse, aura_env: dict[str, str]
) -> None:
    from lakehouse.exceptions import QueryTimeoutError

    with connect(lakehouse.settings, statement_timeout=1) as session:
        with pytest.raises(QueryTimeoutError, match="--timeout"):
            session.execute(RUNAWAY)
        assert session.execute("SELECT 42").fetchall() == [(42,)]  # the session still works

    result = _sql(aura_env, "--timeout", "1", RUNAWAY)
    assert result.exit_code == 1
    assert result.output.startswith("Error: the statement ran longer than 1 s")
    assert len(result.output.strip().splitlines()) == 1
    help_text = _sql(aura_env, "--help").output
    assert "--timeout" in help_text and "default: 300" in help_text


@contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Files of this process cannot grow past ``limit`` bytes (a full disk, as writes see it)."""
    import resource
    import signal

    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.parametrize("target", ["missing/dir/out.parquet", "/dev/full", "full-disk.parquet"])
def test_output_that_cannot_be_written_is_one_line(  # type: ignore[no-untyped-def]
    lakehouse: Lakehouse, aura_env: dict[str, str], tmp_path: Path, target: str
) -> None:
    if target == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full (the full-disk case covers it)")
    lakehouse.ensure_all()  # the session opens on existing tables: only --output writes
    path = target if target.startswith("/") else str(tmp_path / target)
    query = "SELECT range AS i, md5(range::VARCHAR) AS h FROM range(200000)"
    with _file_size_limit(64 * 1024) if target.startswith("full") else nullcontext():
        result = _sql(aura_env, "--output", path, query)
    if target.startswith("full"):
        assert not Path(path).exists()  # no partial file left behind
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, OSError)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), result.output


@pytest.mark.parametrize("tenant", ["", "a:b", "*", "acme*", "../acme", "a b", "x" * 200])
def test_tenant_is_validated_like_the_memory_commands(  # type: ignore[no-untyped-def]
    lakehouse: Lakehouse, aura_env: dict[str, str], tenant: str
) -> None:
    from lakehouse.exceptions import ValidationError

    with pytest.raises(ValidationError, match="is not valid"):
        connect(lakehouse.settings, tenant=tenant)
    result = _sql(aura_env, "--tenant", tenant, "SELECT 1")
    assert result.exit_code != 0
    assert "is not valid" in result.output


def test_valid_tenant_still_reads_its_rows(lakehouse: Lakehouse, settings: Settings) -> None:
    with connect(settings, tenant="acme.corp@eu-1") as session:
        assert session.execute("SELECT count(*) FROM memories").fetchall() == [(0,)]
