"""SQL time travel in DuckDB (lakehouse.sql, `aura sql`), checked against pyiceberg's scans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import OBJSTORE, OBJSTORE_SKIP
from pyiceberg.types import StringType

from lakehouse import Lakehouse, Lineage
from lakehouse.exceptions import (
    ConfigurationError,
    ReadOnlyError,
    RefError,
    UnknownTableError,
)
from lakehouse.sql import SqlSession, TimeTravelError, connect
from lakehouse.table.catalog import close_catalog
from lakehouse.table.writer import conform

DAY1 = date(2026, 11, 20)
DAY2 = date(2026, 11, 21)
DECISIONS = "routing_decisions"
REJECTED = "routing_decisions_rejected"


def decisions(n: int, day: date, *, start: int = 0, model: str = "small") -> pa.Table:
    """``n`` routing decisions of ``day``; ids ``<day>-<start..>``, stream ids ``s-<i>``."""
    base = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    ids = range(start, start + n)
    return pa.table(
        {
            "decision_id": [f"{day}-{i}" for i in ids],
            "ts": pa.array([base + timedelta(seconds=i) for i in ids], pa.timestamp("us", "UTC")),
            "tenant_id": ["acme"] * n,
            "task_type": ["code"] * n,
            "prompt_tokens": [100 + i for i in ids],
            "candidate_models": [["large", "small"]] * n,
            "chosen_model": [model] * n,
            "cost_usd": [0.001 * i for i in ids],
            "latency_ms": [10.0 + i for i in ids],
            "quality_score": [0.9] * n,
            "fallback_used": [i % 2 == 0 for i in ids],
            "stream_id": [f"s-{i}" for i in ids],
        }
    )


def rejected(stream_ids: list[str], day: date) -> pa.Table:
    at = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    return pa.table(
        {
            "stream_id": stream_ids,
            "stream": ["aura:events:routing"] * len(stream_ids),
            "rejected_at": pa.array([at] * len(stream_ids), pa.timestamp("us", "UTC")),
            "reason": ["bad quality_score"] * len(stream_ids),
        }
    )


def moment(millis: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)


def rows(table: pa.Table, key: str = "decision_id") -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: str(row[key]))


@pytest.fixture
def lh(lakehouse: Lakehouse) -> Iterator[Lakehouse]:
    yield lakehouse
    close_catalog(lakehouse.catalog)


def session(lh: Lakehouse, **options: object) -> SqlSession:
    return connect(lh.settings, catalog=lh.catalog, **options)  # type: ignore[arg-type]


@pytest.fixture
def history(lh: Lakehouse) -> dict[str, int]:
    """routing_decisions: append day 1, append day 2, overwrite day 1 (DELETE + APPEND)."""
    lh.append(DECISIONS, decisions(5, DAY1), lineage=Lineage(asset="test", run_id="r1"))
    lh.append(DECISIONS, decisions(4, DAY2), lineage=Lineage(asset="test", run_id="r2"))
    lh.overwrite_day(
        DECISIONS,
        decisions(3, DAY1, start=100),
        DAY1,
        lineage=Lineage(asset="test", partition=str(DAY1), run_id="r3"),
    )
    first, second, delete, last = (s.snapshot_id for s in lh.table(DECISIONS).snapshots())
    return {"first": first, "second": second, "delete": delete, "last": last}


def test_current_main_and_empty_tables(lh: Lakehouse, history: dict[str, int]) -> None:
    with session(lh) as s:
        got = s.arrow(f"SELECT * FROM {DECISIONS}")
        assert rows(got) == rows(lh.table(DECISIONS).scan().to_arrow())
        assert s.execute(f"SELECT count(*) FROM aura.{DECISIONS}").fetchone() == (7,)
        assert s.views[DECISIONS].reader == ("attached" if OBJSTORE else "read_parquet")
        assert s.views[DECISIONS].snapshot_id == history["last"]
        # A registered table without any snapshot is an empty view with its columns.
        empty = s.arrow(f"SELECT * FROM {REJECTED}")
        assert empty.num_rows == 0
        assert empty.column_names == lh.spec(REJECTED).arrow_schema.names


def test_as_of_returns_exactly_main_at_that_time(lh: Lakehouse, history: dict[str, int]) -> None:
    table = lh.table(DECISIONS)
    for name in ("first", "second", "last"):
        snapshot = table.snapshot_by_id(history[name])
        assert snapshot is not None
        expected = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
        with session(lh, as_of=moment(snapshot.timestamp_ms)) as s:
            assert s.views[DECISIONS].snapshot_id == snapshot.snapshot_id
            assert rows(s.arrow(f"SELECT * FROM {DECISIONS}")) == rows(expected)
            # The macro resolves the same moment inside a query.
            at = f"{DECISIONS}_at(TIMESTAMPTZ '{moment(snapshot.timestamp_ms).isoformat()}')"
            assert rows(s.arrow(f"SELECT * FROM {at}")) == rows(expected)


def test_as_of_never_lands_inside_a_commit(lh: Lakehouse, history: dict[str, int]) -> None:
    table = lh.table(DECISIONS)
    delete = table.snapshot_by_id(history["delete"])
    last = table.snapshot_by_id(history["last"])
    assert delete is not None and last is not None
    assert delete.summary is not None and last.summary is not None
    assert delete.summary["aura.commit"] == last.summary["aura.commit"]
    # At the DELETE's time the commit was not visible yet (or, same millisecond, complete).
    visible = history["last"] if last.timestamp_ms == delete.timestamp_ms else history["second"]
    expected = table.scan(snapshot_id=visible).to_arrow()
    when = moment(delete.timestamp_ms)
    with session(lh, as_of=when) as s:
        assert s.views[DECISIONS].snapshot_id == visible
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}")) == rows(expected)
        at = s.arrow(f"SELECT * FROM {DECISIONS}_at(TIMESTAMPTZ '{when.isoformat()}')")
        assert rows(at) == rows(expected)
        flags = s.execute(
            "SELECT snapshot_id, intermediate FROM aura_history WHERE table_name = ?", [DECISIONS]
        ).fetchall()
        expected_flags = {
            history["first"]: False,
            history["second"]: False,
            history["delete"]: True,
            history["last"]: False,
        }
        if OBJSTORE and history["delete"] not in dict(flags):
            # SeaweedFS's REST catalog logs only the commit's last snapshot in main's history:
            # the DELETE was never current there, so it is no state to land on either.
            del expected_flags[history["delete"]]
        assert dict(flags) == expected_flags


def test_join_across_tables_as_of(lh: Lakehouse) -> None:
    lh.append(DECISIONS, decisions(6, DAY1))
    lh.append(REJECTED, rejected(["s-1", "s-3"], DAY1))
    then = lh.table(REJECTED).current_snapshot()
    assert then is not None
    lh.append(DECISIONS, decisions(6, DAY2, start=6))
    lh.append(REJECTED, rejected(["s-7", "s-2"], DAY2))
    when = moment(then.timestamp_ms)

    query = (
        f"SELECT d.decision_id, d.stream_id, r.reason FROM {DECISIONS} d "
        f"JOIN {REJECTED} r USING (stream_id)"
    )
    expected = []
    for name in (DECISIONS, REJECTED):
        table = lh.table(name)
        snapshot = table.snapshot_as_of_timestamp(then.timestamp_ms)
        assert snapshot is not None
        expected.append(table.scan(snapshot_id=snapshot.snapshot_id).to_arrow())
    joined = (
        expected[0]
        .select(["decision_id", "stream_id"])
        .join(expected[1].select(["stream_id", "reason"]), "stream_id", join_type="inner")
    )
    with session(lh, as_of=when) as s:
        got = s.arrow(query)
    assert rows(got) == rows(joined)
    assert [r["stream_id"] for r in rows(got)] == ["s-1", "s-3"]
    with session(lh) as s:
        assert s.execute(f"SELECT count(*) FROM ({query})").fetchone() == (4,)


def test_compare_two_moments_in_one_statement(lh: Lakehouse, history: dict[str, int]) -> None:
    table = lh.table(DECISIONS)
    first = table.snapshot_by_id(history["first"])
    assert first is not None
    with session(lh) as s:
        counts = s.execute(
            f"SELECT (SELECT count(*) FROM {DECISIONS}_at(?::TIMESTAMPTZ)), "
            f"(SELECT count(*) FROM {DECISIONS}_at_snapshot({history['second']})), "
            f"(SELECT count(*) FROM {DECISIONS})",
            [moment(first.timestamp_ms)],
        ).fetchone()
        assert counts == (5, 9, 7)
        lost = s.execute(
            f"SELECT count(*) FROM {DECISIONS}_at_snapshot({history['second']}) "
            f"ANTI JOIN {DECISIONS} USING (decision_id)"
        ).fetchone()
        assert lost == (5,)


def test_branch_and_tag(lh: Lakehouse, history: dict[str, int]) -> None:
    lh.append(REJECTED, rejected(["s-1"], DAY1))
    table = lh.table(DECISIONS)
    table.manage_snapshots().create_tag(history["first"], "v1").create_branch(
        history["second"], "exp-1"
    ).commit()
    lh.append(DECISIONS, decisions(2, DAY2, start=50, model="large"), branch="exp-1")
    table.refresh()
    branch_head = table.snapshot_by_name("exp-1")
    assert branch_head is not None
    on_branch = table.scan(snapshot_id=branch_head.snapshot_id).to_arrow()
    tagged = table.scan(snapshot_id=history["first"]).to_arrow()

    with session(lh, ref="exp-1") as s:
        assert s.views[DECISIONS].snapshot_id == branch_head.snapshot_id
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}")) == rows(on_branch)
        # The other table has snapshots but no such branch: querying it says so.
        with pytest.raises(RefError, match="exp-1"):
            s.execute(f"SELECT * FROM {REJECTED}")
    with session(lh, ref="v1") as s:
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}")) == rows(tagged)
    with session(lh) as s:
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}_at_ref('exp-1')")) == rows(on_branch)
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}_at_ref('v1')")) == rows(tagged)
        refs = s.execute(
            "SELECT ref_name, ref_type, snapshot_id FROM aura_refs WHERE table_name = ? "
            "ORDER BY ref_name",
            [DECISIONS],
        ).fetchall()
        assert refs == [
            ("exp-1", "branch", branch_head.snapshot_id),
            ("main", "branch", history["last"]),
            ("v1", "tag", history["first"]),
        ]
        pointing = s.execute(
            "SELECT branches, tags FROM aura_snapshots WHERE snapshot_id = ?", [history["first"]]
        ).fetchone()
        assert pointing == ([], ["v1"])
        lineage = s.execute(
            "SELECT operation, run_id, asset, partition FROM aura_snapshots WHERE snapshot_id = ?",
            [history["last"]],
        ).fetchone()
        assert lineage == ("append", "r3", "test", str(DAY1))


def test_pinned_snapshot_wins(lh: Lakehouse, history: dict[str, int]) -> None:
    lh.append(REJECTED, rejected(["s-1"], DAY1))
    with session(lh, snapshots={f"aura.{DECISIONS}": history["first"]}) as s:
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (5,)
        assert s.execute(f"SELECT count(*) FROM {REJECTED}").fetchone() == (1,)
        assert s.views[DECISIONS].source == "snapshot"


def test_schema_evolution_read_by_field_id(lh: Lakehouse, history: dict[str, int]) -> None:
    table = lh.table(DECISIONS)
    with table.update_schema() as update:
        update.rename_column("tenant_id", "tenant")
        update.add_column("region", StringType())
    table.refresh()
    expected = table.scan().to_arrow()
    with session(lh) as s:
        got = s.arrow(f"SELECT * FROM {DECISIONS}")
        # On the REST catalog the view reads the files too (DuckDB's attached catalog would
        # read the snapshot's old schema).
        assert s.views[DECISIONS].reader in (("iceberg_scan",) if OBJSTORE else ("read_parquet",))
    assert got.column_names == expected.column_names
    assert rows(got) == rows(expected)
    assert {r["tenant"] for r in got.to_pylist()} == {"acme"}


@OBJSTORE_SKIP  # it adds a local file: an object-store session reads only the bucket
def test_files_added_without_field_ids(lh: Lakehouse, tmp_path: Path) -> None:
    table = lh.table(DECISIONS)
    data = conform(lh.spec(DECISIONS), table, decisions(4, DAY1))
    plain = pa.schema(
        pa.field(f.name, pa.list_(pa.string()) if pa.types.is_list(f.type) else f.type, f.nullable)
        for f in data.schema
    )
    path = tmp_path / "external.parquet"
    pq.write_table(data.cast(plain), path)  # no Iceberg field ids in this file
    assert b"PARQUET:field_id" not in (pq.read_schema(path).field("ts").metadata or {})
    table.add_files([str(path)])
    table.refresh()
    with session(lh) as s:
        assert s.views[DECISIONS].reader == "iceberg_scan"
        assert rows(s.arrow(f"SELECT * FROM {DECISIONS}")) == rows(table.scan().to_arrow())


WRITES = [
    f"INSERT INTO {DECISIONS} SELECT * FROM {DECISIONS}",
    f"DELETE FROM {DECISIONS}",
    f"UPDATE {DECISIONS} SET tenant_id = 'x'",
    "CREATE TABLE t AS SELECT 1",
    f"DROP VIEW {DECISIONS}",
    f"ALTER VIEW {DECISIONS} RENAME TO x",
    f"COPY {DECISIONS} TO 'out.parquet'",
    "ATTACH 'other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET allow_unsigned_extensions = true",
    "PRAGMA enable_profiling",
    "CHECKPOINT",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM enable_logging()",
    f"EXPLAIN ANALYZE DELETE FROM {DECISIONS}",
    f"SELECT 1; DROP VIEW {DECISIONS}",
    "PREPARE p AS SELECT 1",
    "EXPORT DATABASE 'dump'",
]


def test_writes_are_refused(lh: Lakehouse, history: dict[str, int]) -> None:
    with session(lh) as s:
        for statement in WRITES:
            with pytest.raises(ReadOnlyError, match="read-only"):
                s.execute(statement)
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (7,)


def test_reads_are_allowed_and_configuration_is_locked(lh: Lakehouse) -> None:
    with session(lh) as s:
        for query in (
            f"DESCRIBE {DECISIONS}",
            "SHOW TABLES",
            f"SUMMARIZE {DECISIONS}",
            f"EXPLAIN SELECT * FROM {DECISIONS}",
            "FROM aura_views",
            "VALUES (1)",
            "PRAGMA version",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        ):
            s.execute(query).fetchall()
        settings = dict(
            s.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('allow_unsigned_extensions', 'autoinstall_known_extensions', "
                "'autoload_known_extensions', 'lock_configuration')"
            ).fetchall()
        )
        assert settings == {
            "allow_unsigned_extensions": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "lock_configuration": "true",
        }
        loaded = {
            name
            for (name,) in s.execute(
                "SELECT extension_name FROM duckdb_extensions() WHERE loaded"
            ).fetchall()
        }
        assert {"iceberg", "avro"} <= loaded
        with pytest.raises(duckdb.Error, match="locked"):
            s.connection.execute("SET allow_unsigned_extensions = true")


@pytest.mark.parametrize(
    "ref", ["main'; DROP VIEW routing_decisions; --", "x' OR '1'='1", "a b", "", "../../etc"]
)
def test_malformed_refs_are_refused(lh: Lakehouse, history: dict[str, int], ref: str) -> None:
    with pytest.raises(RefError, match="not a valid branch or tag name"):
        session(lh, ref=ref)


def test_injection_through_names_is_inert(lh: Lakehouse, history: dict[str, int]) -> None:
    # A ref whose name holds SQL is data: the session builds, and the macro matches it as a value.
    lh.table(DECISIONS).manage_snapshots().create_tag(
        history["first"], "it's'); DROP VIEW routing_decisions; --"
    ).commit()
    with session(lh) as s:
        got = s.execute(
            f"SELECT count(*) FROM {DECISIONS}_at_ref(?)",
            ["it's'); DROP VIEW routing_decisions; --"],
        ).fetchone()
        assert got == (5,)
        with pytest.raises(RefError, match="has no branch or tag"):
            s.execute(f"SELECT * FROM {DECISIONS}_at_ref('main''; DROP VIEW x; --')")
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (7,)
    with pytest.raises(UnknownTableError):
        session(lh, snapshots={f"{DECISIONS}; DROP VIEW x": history["first"]})
    with pytest.raises(TimeTravelError, match="ISO 8601"):
        session(lh, as_of="2026-11-20'; DROP VIEW routing_decisions; --")


def test_errors_are_clear(lh: Lakehouse, history: dict[str, int]) -> None:
    first = lh.table(DECISIONS).snapshot_by_id(history["first"])
    assert first is not None
    before = moment(first.timestamp_ms) - timedelta(seconds=1)
    with pytest.raises(TimeTravelError, match="no aura table has a state"):
        session(lh, as_of=before)
    with pytest.raises(RefError, match="no aura table has a branch or tag 'nope'"):
        session(lh, ref="nope")
    with pytest.raises(TimeTravelError, match="has no snapshot 42"):
        session(lh, snapshots={DECISIONS: 42})
    with pytest.raises(ConfigurationError, match="either"):
        session(lh, as_of=before, ref="main")
    # A table written only later has no state at an earlier time: queries naming it fail.
    lh.append(REJECTED, rejected(["s-1"], DAY1))
    with session(lh, as_of=moment(first.timestamp_ms)) as s:
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (5,)
        with pytest.raises(TimeTravelError, match=f"{REJECTED} has no state"):
            s.execute(f"SELECT * FROM {REJECTED}")
    with session(lh) as s:
        with pytest.raises(UnknownTableError, match="unknown table or macro 'nope'"):
            s.execute("SELECT * FROM nope")
        with pytest.raises(TimeTravelError, match="has no state at"):
            s.execute(f"SELECT * FROM {DECISIONS}_at(?::TIMESTAMPTZ)", [before])
        with pytest.raises(TimeTravelError, match="has no snapshot 7"):
            s.execute(f"SELECT * FROM {DECISIONS}_at_snapshot(7)")
        with pytest.raises(RefError, match="has no branch or tag nope"):
            s.execute(f"SELECT * FROM {DECISIONS}_at_ref('nope')")


def test_cli_formats_and_output(
    lh: Lakehouse, history: dict[str, int], in_aura_env: object, tmp_path: Path
) -> None:
    from aura_assets.cli.sql import sql

    runner = CliRunner()
    query = f"SELECT chosen_model, count(*) AS n FROM {DECISIONS} GROUP BY 1"
    result = runner.invoke(sql, [query])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["chosen_model", "n"]
    assert result.stdout.splitlines()[-1].split() == ["small", "7"]

    result = runner.invoke(
        sql, [query, "--format", "csv", "--snapshot", f"{DECISIONS}={history['first']}"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["chosen_model,n", "small,5"]

    first = lh.table(DECISIONS).snapshot_by_id(history["first"])
    assert first is not None
    result = runner.invoke(
        sql, [query, "--format", "json", "--as-of", moment(first.timestamp_ms).isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"chosen_model": "small", "n": 5}]

    out = tmp_path / "out.parquet"
    result = runner.invoke(sql, [f"SELECT * FROM {DECISIONS}", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 7

    result = runner.invoke(sql, [f"DROP VIEW {DECISIONS}"])
    assert result.exit_code == 1
    assert "read-only" in result.output
    result = runner.invoke(sql, [query, "--ref", "nope"])
    assert result.exit_code == 1
    assert "no aura table has a branch or tag 'nope'" in result.output


def test_cli_shell_runs_queries_until_exit(
    lh: Lakehouse, history: dict[str, int], in_aura_env: object
) -> None:
    from aura_assets.cli.sql import sql

    script = f"SELECT count(*) AS n FROM {DECISIONS};\nDELETE FROM {DECISIONS};\n.exit\n"
    result = CliRunner().invoke(sql, [], input=script)
    assert result.exit_code == 0, result.output
    assert "7" in result.output
    assert "read-only" in result.output


OUTSIDE_READS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('/etc/*.parquet')",
]


@pytest.mark.parametrize("query", OUTSIDE_READS)
def test_files_outside_the_warehouse_are_refused(
    lh: Lakehouse, history: dict[str, int], query: str
) -> None:
    with session(lh) as s:
        with pytest.raises(duckdb.PermissionException):
            s.execute(query).fetchall()
        # Reading the tables (Parquet files and Iceberg metadata in the warehouse) still works.
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (7,)
        assert s.execute(
            f"SELECT count(*) FROM {DECISIONS}_at_snapshot({history['first']})"
        ).fetchone() == (5,)
        settings = dict(
            s.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('enable_external_access', 'lock_configuration')"
            ).fetchall()
        )
        assert settings == {"enable_external_access": "false", "lock_configuration": "true"}
        with pytest.raises(duckdb.Error):
            s.connection.execute("SET enable_external_access = true")
        for statement in (
            "ATTACH '/tmp/x.db'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "COPY (SELECT 1) TO 'x.csv'",
        ):
            with pytest.raises(ReadOnlyError, match="read-only"):
                s.execute(statement)


def test_cli_refuses_outside_files_in_one_line(
    lh: Lakehouse, history: dict[str, int], in_aura_env: object
) -> None:
    from aura_assets.cli.sql import sql

    result = CliRunner().invoke(sql, ["SELECT * FROM read_csv('/etc/passwd')"])
    assert result.exit_code == 1
    assert "root:" not in result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "warehouse" in lines[0], result.output


def test_several_statements_show_every_result(
    lh: Lakehouse, history: dict[str, int], in_aura_env: object, tmp_path: Path
) -> None:
    from aura_assets.cli.sql import sql

    runner = CliRunner()
    result = runner.invoke(sql, ["SELECT 41 AS a; SELECT 42 AS b", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["a", "41", "", "b", "42"]
    result = runner.invoke(sql, ["SELECT 1; SELECT 2", "--output", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "one statement" in result.output
    assert not (tmp_path / "o.parquet").exists()
    with session(lh) as s:
        with pytest.raises(ReadOnlyError, match="one statement per call"):
            s.execute("SELECT 1; SELECT 2")
        assert s.statements("SELECT 1; SELECT 2") == ["SELECT 1", " SELECT 2"]
