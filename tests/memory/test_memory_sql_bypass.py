"""``aura sql --tenant T`` cannot read around the tenant views: files, catalog objects, query()."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from aura_assets.cli import main
from lakehouse import Settings
from lakehouse.exceptions import ReadOnlyError
from lakehouse.memory import MemoryStore, ingest_memory_events
from lakehouse.publish.wap import accept_all
from lakehouse.sql import SqlSession, connect

SECRET = "beta-secret-7f3a"


@pytest.fixture
def spread(mem: MemoryStore) -> Iterator[dict[str, str]]:
    """alpha and beta memories in every Iceberg memory table; the paths an attacker would use."""
    now = datetime.now(UTC)
    mem.store("alpha", "alpha row")
    mem.store("beta", SECRET)
    ingest_memory_events(mem.lakehouse, mem.redis, now.date(), audit=accept_all)
    mem.compact(now=now + timedelta(hours=2))
    mem.compact(now=now + timedelta(hours=2), warm_max_points=0)
    table = mem.cold.table
    snapshot = table.current_snapshot()
    assert snapshot is not None
    location = table.location().removeprefix("file://")
    yield {
        "metadata": table.metadata_location.removeprefix("file://"),
        "location": location,
        "warehouse": mem.settings.warehouse.removeprefix("file://"),
        "data_file": next(iter(table.inspect.files().column("file_path").to_pylist())),
        "snapshot": str(snapshot.snapshot_id),
        "events_metadata": mem.lakehouse.table("memory_events").metadata_location.removeprefix(
            "file://"
        ),
    }


def _attacks(p: dict[str, str]) -> list[str]:
    meta, loc, wh, data = p["metadata"], p["location"], p["warehouse"], p["data_file"]
    return [
        f"SELECT * FROM iceberg_scan('{meta}')",
        f"SELECT * FROM iceberg_scan('{p['events_metadata']}')",
        f"SELECT * FROM iceberg_scan('{meta}', snapshot_from_id => {p['snapshot']})",
        f"SELECT * FROM read_parquet('{wh}/**/*.parquet')",
        f"SELECT * FROM read_parquet(['{data}'])",
        f"SELECT * FROM parquet_scan('{data}')",
        f"FROM '{data}'",
        f"SELECT * FROM '{loc}/data/**/*.parquet'",
        f"SELECT * FROM glob('{wh}/**')",
        f"SELECT * FROM iceberg_metadata('{meta}')",
        f"SELECT * FROM iceberg_snapshots('{meta}')",
        f"SELECT * FROM parquet_metadata('{data}')",
        f"SELECT * FROM parquet_schema('{data}')",
        f"SELECT * FROM read_json('{meta}')",
        f"SELECT * FROM read_json_auto('{meta}')",
        f"SELECT * FROM read_csv('{meta}')",
        f"SELECT * FROM read_text('{meta}')",
        f"SELECT * FROM read_blob('{data}')",
        f"SELECT * FROM read_avro('{loc}/metadata/x.avro')",
        f"SELECT * FROM query('SELECT * FROM iceberg_scan(''{meta}'')')",
        "SELECT * FROM query_table('memories')",
        # hidden inside subqueries, CTEs, joins, lateral, set operations, EXPLAIN
        f"SELECT content FROM memories WHERE tenant_id IN (SELECT tenant_id FROM "
        f"read_parquet('{data}'))",
        f"WITH x AS (SELECT * FROM read_parquet('{data}')) SELECT * FROM x",
        f"SELECT * FROM memories UNION ALL SELECT * FROM iceberg_scan('{meta}')",
        f"SELECT (SELECT string_agg(content) FROM read_parquet('{data}'))",
        f"SELECT * FROM memories m, LATERAL (SELECT * FROM read_parquet('{data}')) r",
        f"SELECT * FROM memories_at_snapshot((SELECT max(1) FROM read_text('{meta}')))",
        f"EXPLAIN ANALYZE SELECT * FROM read_parquet('{data}')",
        f"DESCRIBE SELECT * FROM read_parquet('{data}')",
        f"SUMMARIZE SELECT * FROM read_parquet('{data}')",
        f"SELECT * FROM main.read_parquet('{data}')",
        f"SELECT * FROM \"READ_PARQUET\"('{data}')",
        # catalog objects that are not tenant views (view SQL names the files)
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM duckdb_functions()",
        "SELECT * FROM information_schema.views",
        "SELECT * FROM system.main.duckdb_views",
        "SELECT * FROM pg_catalog.pg_views",
        "SELECT * FROM memory.main.memories_x",
        "SELECT * FROM temp.main.memories",
        "SELECT * FROM memories AT (VERSION => 1)",
        "SELECT json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
        "PIVOT memories ON tenant_id USING count(*)",
        "SHOW memories_at",
        # a CTE name in one scope does not whitelist the name elsewhere
        "SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT * FROM duckdb_views), "
        "information_schema.tables",
    ]


def test_tenant_session_refuses_every_bypass(mem: MemoryStore, spread: dict[str, str]) -> None:
    settings = mem.settings
    with connect(settings) as everyone:  # without --tenant the same reads do see beta
        rows = everyone.arrow(f"SELECT content FROM read_parquet('{spread['data_file']}')")
        assert SECRET in rows.column("content").to_pylist()
    with connect(settings, tenant="alpha") as alpha:
        for attack in _attacks(spread):
            with pytest.raises(ReadOnlyError, match="refused"):
                alpha.execute(attack)
            with pytest.raises(ReadOnlyError):
                alpha.statements(f"SELECT 1; {attack}")
        _allowed_queries_still_work(alpha, spread)


def _allowed_queries_still_work(alpha: SqlSession, p: dict[str, str]) -> None:
    for query in (
        "SELECT content FROM memories",
        "SELECT content FROM aura.memories",
        "SELECT content FROM MEMORIES",
        "WITH m AS (SELECT * FROM memories) SELECT content FROM m",
        f"SELECT content FROM memories_at_snapshot({p['snapshot']})",
        "SELECT content FROM memories_at_ref('main')",
        "SELECT content FROM memories, range(1)",
        "SELECT content FROM memories WHERE tenant_id IN (SELECT tenant_id FROM memory_events)",
    ):
        assert alpha.arrow(query).column("content").to_pylist() == ["alpha row"], query
    # The tenant filter runs before the user's predicates: an error() on another tenant's row
    # (its message would carry the content) is never evaluated.
    for source in ("memories", "memories_at_ref('main')", "memory_events"):
        leak = f"SELECT content FROM {source} WHERE CASE WHEN tenant_id <> 'alpha' "
        leak += "THEN error(content) ELSE content IS NOT NULL END"
        assert set(alpha.arrow(leak).column("content").to_pylist()) == {"alpha row"}, source
    assert alpha.arrow("SELECT count(*) AS n FROM aura_snapshots").num_rows == 1
    assert alpha.arrow("DESCRIBE memories").num_rows > 0
    assert alpha.arrow("SHOW TABLES").num_rows > 0
    assert alpha.arrow("EXPLAIN SELECT * FROM memories").num_rows > 0


def test_tenant_cli_refuses_file_reads_in_one_line(
    spread: dict[str, str], in_aura_env: Settings
) -> None:
    out = CliRunner().invoke(
        main,
        ["sql", "--tenant", "alpha", f"SELECT * FROM iceberg_scan('{spread['metadata']}')"],
    )
    assert out.exit_code != 0
    assert SECRET not in out.output
    error = [line for line in out.output.splitlines() if line.strip()]
    assert len(error) == 1 and "refused table function iceberg_scan()" in error[0], out.output


@pytest.mark.parametrize(
    "option",
    [("--as-of", "FUTURE"), ("--ref", "main"), ("--snapshot", "memories=SNAPSHOT")],
    ids=["as-of", "ref", "snapshot"],
)
def test_tenant_time_travel_stays_filtered(
    spread: dict[str, str], in_aura_env: Settings, option: tuple[str, str]
) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    flag, value = option[0], option[1].replace("FUTURE", future)
    value = value.replace("SNAPSHOT", spread["snapshot"])
    for query in ("SELECT content FROM memories", "SELECT content FROM memory_events"):
        out = CliRunner().invoke(
            main, ["sql", "--tenant", "alpha", flag, value, "--format", "json", query]
        )
        assert out.exit_code == 0, out.output
        assert "alpha row" in out.output and SECRET not in out.output, (flag, query, out.output)
        out = CliRunner().invoke(
            main,
            [
                "sql",
                "--tenant",
                "alpha",
                flag,
                value,
                f"SELECT * FROM read_parquet('{spread['data_file']}')",
            ],
        )
        assert out.exit_code != 0 and SECRET not in out.output
