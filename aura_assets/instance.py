"""The Dagster instance under ``AURA_HOME``: SQLite storage by default, Postgres when configured.

The instance configuration is written to ``$AURA_HOME/dagster/dagster.yaml``. A Postgres URL is
never written to disk: the file names ``AURA_DAGSTER_STORAGE_URL``, which ``aura`` sets for the
Dagster processes it starts (the configured URL with the psycopg2 driver that dagster-postgres
needs: under psycopg 3, its ``NOTIFY`` statements fail). In-process, the URL is passed in memory.
"""

import contextlib
import fcntl
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance
from dagster import __version__ as dagster_version
from dagster._core.instance.ref import InstanceRef

from aura_assets.concurrency import ensure_pools, release_dead_runs
from lakehouse.settings import Settings, postgres_urls

BASE_CONFIG = """\
# Dagster instance of the AURA lakehouse (written by `aura`; embedded default shown in the repo's
# dagster.yaml). Storage: SQLite files in this directory unless a Postgres URL is configured.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
# The run queue: at most 4 runs at once (4 per backfill). One slot per pool: the steps that
# commit to one Iceberg table (pool `iceberg/<table>`) take turns across all runs
# (aura_assets/concurrency.py).
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition_set
        limit: 4
  pools:
    default_limit: 1
# The daemon (started by `aura ui` / `dagster dev`) fails runs that never start, never finish
# cancelling, or outlive max_runtime_seconds: a run whose process was killed cannot hold a queue
# slot forever. (Dagster's default launcher cannot check a run worker's health directly.)
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 7200
  max_resume_run_attempts: 0
  poll_interval_seconds: 30
"""

POSTGRES_STORAGE = """\
storage:
  postgres:
    postgres_url:
      env: AURA_DAGSTER_STORAGE_URL
"""


def instance_yaml(settings: Settings) -> str:
    """The dagster.yaml for ``settings``; a Postgres URL is referenced by its variable name."""
    return BASE_CONFIG + (POSTGRES_STORAGE if settings.dagster_pg_url else "")


def storage_url(settings: Settings) -> str | None:
    """The Dagster storage URL with the psycopg2 driver, or None for SQLite storage."""
    if not settings.dagster_pg_url:
        return None
    return postgres_urls(settings.dagster_pg_url).psycopg2


def dagster_env(settings: Settings) -> dict[str, str]:
    """Environment a Dagster process of this instance needs besides the ``AURA_*`` variables."""
    url = storage_url(settings)
    return {"DAGSTER_HOME": str(settings.dagster_home)} | (
        {"AURA_DAGSTER_STORAGE_URL": url} if url else {}
    )


def prepare_dagster_home(settings: Settings) -> Path:
    """Create ``$AURA_HOME/dagster`` with its dagster.yaml and migrated storage; returns it.

    Safe under concurrent callers: one process at a time (an exclusive file lock) writes the
    configuration and creates or upgrades the storage, once per Dagster version (a marker file
    records it). Six processes starting at once on a fresh home used to race the storage
    migrations and leave two alembic heads that failed every later run.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".aura-instance.lock"):
        config = home / "dagster.yaml"
        wanted = instance_yaml(settings)
        if not config.exists() or config.read_text() != wanted:
            config.write_text(wanted)
        marker = home / f".aura-migrated-{dagster_version}-{_storage_kind(settings)}"
        if not marker.exists():
            instance = _instance(settings, home)
            try:
                # Dagster prints its migration steps to stdout, which would land in a command's
                # output (e.g. the JSON of `aura memory compact` on a fresh home): keep them out.
                with contextlib.redirect_stdout(io.StringIO()):
                    instance.upgrade()
            finally:
                instance.dispose()
            marker.write_text("storage created or upgraded by aura\n")
    return home


def open_instance(settings: Settings) -> DagsterInstance:
    """The persistent Dagster instance of this AURA_HOME (storage migrated before first use).

    Pool slots held by runs whose process died on this host are freed first, and every pool gets
    its limit before any step claims it (:mod:`aura_assets.concurrency`).
    """
    home = prepare_dagster_home(settings)
    instance = _instance(settings, home)
    release_dead_runs(instance)
    with _locked(home / ".aura-instance.lock"):
        ensure_pools(instance)
    return instance


def _instance(settings: Settings, home: Path) -> DagsterInstance:
    url = storage_url(settings)
    overrides = {"storage": {"postgres": {"postgres_url": url}}} if url else None
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))


def _storage_kind(settings: Settings) -> str:
    return "postgres" if settings.dagster_pg_url else "sqlite"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (blocks until other processes release it)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
