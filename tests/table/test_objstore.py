"""The lakehouse on an object store behind an Iceberg REST catalog (docs/object-store.md).

The settings tests run in every pass. The others need the object-store pass (``.ci/objstore.sh``
starts SeaweedFS ``weed mini``: a real S3 server and REST catalog) and skip elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import OBJSTORE, decisions, objstore_env

from aura_assets.cli import main
from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import ConfigurationError, ReadOnlyError
from lakehouse.table import refs
from lakehouse.table.catalog import open_catalog, warehouse_io

DECISIONS = "routing_decisions"
DOC = Path(__file__).resolve().parents[2] / "docs" / "object-store.md"
SECRET = "s3cr3t-Value-9f8e7d"
CLIENT_SECRET = "client-Secret-1a2b3c"

needs_objstore = pytest.mark.skipif(
    not OBJSTORE,
    reason="needs S3 and a REST catalog: the object-store pass (.ci/objstore.sh starts weed mini)",
)

REMOTE_ENV = {
    "AURA_CATALOG_URI": "http://127.0.0.1:8181",
    "AURA_CATALOG_CREDENTIAL": f"aura-client:{CLIENT_SECRET}",
    "AURA_CATALOG_WAREHOUSE": "s3://warehouse",
    "AURA_WAREHOUSE": "s3://aura/lake",
    "AURA_S3_ENDPOINT": "http://127.0.0.1:8333",
    "AWS_ACCESS_KEY_ID": "aura-key",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_REGION": "eu-west-1",
}


# --- Settings (every pass) ---------------------------------------------------------------------


def test_the_issue_names_configure_s3_and_a_rest_catalog(tmp_path: Path) -> None:
    s = Settings.from_env({"AURA_HOME": str(tmp_path)} | REMOTE_ENV)
    assert s.rest_catalog and s.object_store
    assert s.catalog_warehouse == "s3://warehouse" and s.warehouse == "s3://aura/lake"
    assert s.s3_properties() == {
        "s3.region": "eu-west-1",
        "s3.endpoint": "http://127.0.0.1:8333",
        "s3.access-key-id": "aura-key",
        "s3.secret-access-key": SECRET,
    }
    shown = " ".join(s.describe().values()) + repr(s)
    assert SECRET not in shown and CLIENT_SECRET not in shown
    assert "http://127.0.0.1:8333" in shown and "REST http://127.0.0.1:8181" in shown
    assert {SECRET, CLIENT_SECRET} <= set(s.passwords())
    default = Settings.from_env({"AURA_HOME": str(tmp_path)})
    assert not default.rest_catalog and not default.object_store
    assert "s3 endpoint" not in default.describe()


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY is unset"),
        ({"AURA_CATALOG_CREDENTIAL": CLIENT_SECRET}, "client_id:client_secret"),
        ({"AURA_WAREHOUSE": "gs://bucket/x"}, "s3://BUCKET/PREFIX"),
        ({"AURA_S3_ENDPOINT": "127.0.0.1:8333"}, "http://HOST:PORT"),
    ],
)
def test_malformed_settings_say_what_to_write(
    tmp_path: Path, changes: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(says)) as failed:
        Settings.from_env({"AURA_HOME": str(tmp_path)} | REMOTE_ENV | changes)
    assert SECRET not in str(failed.value) and CLIENT_SECRET not in str(failed.value)


def test_aura_config_shows_them_without_secrets(tmp_path: Path) -> None:
    env = {"AURA_HOME": str(tmp_path)} | REMOTE_ENV
    result = CliRunner(env=env).invoke(main, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3://aura/lake" in result.output and "http://127.0.0.1:8333" in result.output
    assert "AWS_SECRET_ACCESS_KEY set (hidden)" in result.output
    assert SECRET not in result.output and CLIENT_SECRET not in result.output


# --- On weed mini (the object-store pass) ------------------------------------------------------


@needs_objstore
def test_doctor_reaches_s3_and_the_rest_catalog(in_aura_env: Settings) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert re.search(r"ok +catalog", result.output)
    assert re.search(r"ok +warehouse +s3://.* writable", result.output)
    wrong = "wrong-Secret-77aa"
    client_id = in_aura_env.catalog_credential.partition(":")[0]  # type: ignore[union-attr]
    env = {"AURA_CATALOG_CREDENTIAL": f"{client_id}:{wrong}", "AWS_SECRET_ACCESS_KEY": wrong}
    failed = CliRunner(env=env).invoke(main, ["doctor"])
    assert failed.exit_code == 1
    assert re.search(r"FAIL +catalog .*AURA_CATALOG_CREDENTIAL", failed.output)
    assert re.search(r"FAIL +warehouse", failed.output)
    assert wrong not in failed.output


@pytest.fixture
def history(lakehouse: Lakehouse) -> dict[str, int]:
    """routing_decisions on S3: 2 rows (tag v1), +3 rows (main), and branch exp with +4 more."""
    lakehouse.append(DECISIONS, decisions(2))
    table = lakehouse.table(DECISIONS)
    first = refs.create_tag(table, "v1")
    lakehouse.append(DECISIONS, decisions(3, start=10))
    refs.create_branch(lakehouse.table(DECISIONS), "exp")
    lakehouse.append(DECISIONS, decisions(4, start=20), branch="exp")
    table = lakehouse.table(DECISIONS)
    return {
        "v1": first,
        "main": refs.require_head(table, "main"),
        "exp": refs.require_head(table, "exp"),
    }


def _ids(session_table: pa.Table) -> list[str]:
    return sorted(session_table.column("decision_id").to_pylist())


@needs_objstore
def test_aura_sql_reads_main_times_snapshots_and_refs(
    lakehouse: Lakehouse, history: dict[str, int]
) -> None:
    assert lakehouse.table(DECISIONS).location().startswith("s3://")
    counts = {"v1": 2, "main": 5, "exp": 9}
    with lakehouse.sql() as s:
        assert s.views[DECISIONS].reader == "attached"
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchall() == [(5,)]
        for ref, n in counts.items():
            got = s.execute(f"SELECT count(*) FROM {DECISIONS}_at_ref('{ref}')").fetchall()
            assert got == [(n,)], ref
        first = s.execute(f"SELECT count(*) FROM {DECISIONS}_at_snapshot({history['v1']})")
        assert first.fetchall() == [(2,)]
    tagged = lakehouse.table(DECISIONS).snapshot_by_id(history["v1"])
    assert tagged is not None
    with lakehouse.sql(as_of=datetime.fromtimestamp(tagged.timestamp_ms / 1000, UTC)) as s:
        assert s.views[DECISIONS].reader == "attached"
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchall() == [(2,)]
    for ref, n in counts.items():
        with lakehouse.sql(ref=ref) as s:
            assert s.views[DECISIONS].snapshot_id == history[ref]
            assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchall() == [(n,)], ref
    with lakehouse.sql(snapshots={DECISIONS: history["exp"]}) as s:
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchall() == [(9,)]


@needs_objstore
def test_a_session_reads_no_other_bucket_and_no_local_file(
    lakehouse: Lakehouse, history: dict[str, int], settings: Settings
) -> None:
    # An object in another bucket of the same server, readable with the same keys.
    other = "s3://elsewhere/secret.parquet"
    io = warehouse_io(settings)
    with io.new_output(other).create(overwrite=True) as out:
        pq.write_table(pa.table({"x": [1]}), out)
    data_file = next(iter(lakehouse.table(DECISIONS).scan().plan_files())).file.file_path
    with lakehouse.sql() as s:
        for query in (
            f"SELECT * FROM read_parquet('{other}')",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM glob('s3://elsewhere/*')",
        ):
            with pytest.raises(duckdb.PermissionException):
                s.execute(query).fetchall()
        # The warehouse's own files stay readable; writes through the catalog are refused.
        assert s.execute(f"SELECT count(*) FROM read_parquet('{data_file}')").fetchone()
        with pytest.raises(ReadOnlyError):
            s.execute(f"INSERT INTO aura_lake.aura.{DECISIONS} SELECT * FROM {DECISIONS}")
        with pytest.raises(duckdb.Error, match="read-only"):
            s.connection.execute(f"DELETE FROM aura_lake.aura.{DECISIONS}")
        secrets = str(s.connection.execute("SELECT * FROM duckdb_secrets()").fetchall())
    assert settings.aws_secret_access_key not in secrets
    assert settings.catalog_secret not in secrets


def _recipe() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/object-store.md holds one python block: the DuckDB recipe"
    return blocks[0]


def test_the_recipe_uses_only_duckdb_and_its_extension_wheels() -> None:
    imports = set(re.findall(r"^(?:import|from) (\w+)", _recipe(), re.M))
    assert imports <= {"os", "pathlib", "urllib", "duckdb", *_EXTENSIONS}


_EXTENSIONS = {f"duckdb_extension_{n}" for n in ("httpfs", "avro", "iceberg")}


@needs_objstore
def test_stock_duckdb_with_the_recipe_lists_tables_and_time_travels(
    lakehouse: Lakehouse, history: dict[str, int], tmp_path: Path
) -> None:
    script = tmp_path / "recipe.py"
    script.write_text(_recipe())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AURA_", "PYTHONPATH"))}
    env |= objstore_env() | {"HOME": str(tmp_path)}  # no ~/.duckdb: nothing installed before
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    tables, first = out.stdout.strip().splitlines()
    assert f"('aura', '{DECISIONS}')" in tables
    assert first == "2"  # routing_decisions at its first snapshot (tag v1)


@needs_objstore
@pytest.mark.filterwarnings("ignore:Iceberg scan planning with the polars_iceberg plugin")
def test_polars_reads_main_a_tag_and_a_branch_like_aura_sql(
    lakehouse: Lakehouse, history: dict[str, int], settings: Settings
) -> None:
    import polars as pl

    options = {
        "aws_endpoint_url": settings.s3_endpoint or "",
        "aws_access_key_id": settings.aws_access_key_id or "",
        "aws_secret_access_key": settings.aws_secret_access_key or "",
        "aws_region": settings.aws_region,
        "aws_allow_http": "true",
    }
    table = lakehouse.table(DECISIONS)
    for ref in ("main", "v1", "exp"):
        snapshot_id = refs.require_head(table, ref)  # Polars reads snapshots: resolve the ref
        frame = pl.scan_iceberg(table, snapshot_id=snapshot_id, storage_options=options)
        polars_ids = sorted(frame.select("decision_id").collect().to_series().to_list())
        with lakehouse.sql(ref=ref) as s:
            sql_ids = _ids(s.arrow(f"SELECT decision_id FROM {DECISIONS}"))
        assert polars_ids == sql_ids and len(sql_ids) == {"main": 5, "v1": 2, "exp": 9}[ref]


DAFT_MISSING = (
    "Daft is not installed: daft 0.7.26 requires pyarrow<26 and AURA uses pyarrow 26, so it is "
    "no dev dependency; `pip install --no-deps daft==0.7.26` (it runs on pyarrow 26) runs this test"
)


@needs_objstore
def test_daft_reads_main_a_tag_and_a_branch_by_name_like_aura_sql(
    lakehouse: Lakehouse, history: dict[str, int], settings: Settings
) -> None:
    daft = pytest.importorskip("daft", reason=DAFT_MISSING)
    from daft.io import IOConfig, S3Config

    endpoint = settings.s3_endpoint or ""
    io = IOConfig(
        s3=S3Config(
            endpoint_url=endpoint,
            key_id=settings.aws_access_key_id,
            access_key=settings.aws_secret_access_key,
            region_name=settings.aws_region,
            use_ssl=endpoint.startswith("https"),
        )
    )
    table = lakehouse.table(DECISIONS)  # loaded from the REST catalog
    for ref, by_name in (("main", {}), ("v1", {"tag": "v1"}), ("exp", {"branch": "exp"})):
        frame = daft.read_iceberg(table, io_config=io, **by_name)  # Daft resolves the ref
        daft_ids = sorted(frame.select("decision_id").to_pydict()["decision_id"])
        with lakehouse.sql(ref=ref) as s:
            sql_ids = _ids(s.arrow(f"SELECT decision_id FROM {DECISIONS}"))
        assert daft_ids == sql_ids and len(sql_ids) == {"main": 5, "v1": 2, "exp": 9}[ref]


@needs_objstore
def test_without_a_client_credential_the_catalog_is_signed_with_sigv4(
    aura_env: dict[str, str],
) -> None:
    """SigV4 needs boto3 (pyiceberg signs with botocore): without it the error says so.

    SeaweedFS's catalog does not check signatures (it answered a request signed with a wrong
    secret), so this shows the requests are signed and answered, not that a server verified them.
    """
    env = {k: v for k, v in aura_env.items() if k != "AURA_CATALOG_CREDENTIAL"}
    settings = Settings.from_env(env)
    if importlib.util.find_spec("boto3") is None:
        with pytest.raises(ConfigurationError, match="SigV4.*pip install boto3"):
            open_catalog(settings)
        return
    catalog = open_catalog(settings)
    assert catalog.properties["rest.sigv4-enabled"] == "true"
    assert ("aura",) in catalog.list_namespaces()


@needs_objstore
def test_a_sql_catalog_with_an_s3_warehouse(tmp_path: Path) -> None:
    import uuid

    env = objstore_env()
    env |= {"AURA_HOME": str(tmp_path), "AURA_WAREHOUSE": f"s3://aura/sql-{uuid.uuid4().hex[:8]}"}
    del env["AURA_CATALOG_URI"], env["AURA_CATALOG_CREDENTIAL"], env["AURA_CATALOG_WAREHOUSE"]
    lh = Lakehouse(Settings.from_env(env))  # SQLite catalog in AURA_HOME, files in the bucket
    assert not lh.settings.rest_catalog and lh.settings.object_store
    lh.append(DECISIONS, decisions(3))
    refs.create_tag(lh.table(DECISIONS), "t")
    lh.append(DECISIONS, decisions(2, start=10))
    assert lh.table(DECISIONS).location().startswith(env["AURA_WAREHOUSE"])
    assert lh.read(DECISIONS, branch="t").num_rows == 3
    with lh.sql() as s:
        assert s.views[DECISIONS].reader == "read_parquet"
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}").fetchall() == [(5,)]
        assert s.execute(f"SELECT count(*) FROM {DECISIONS}_at_ref('t')").fetchall() == [(3,)]
        with pytest.raises(duckdb.PermissionException):
            s.execute("SELECT * FROM glob('s3://elsewhere/*')").fetchall()
