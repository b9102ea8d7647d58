"""The Dagster instance under ``AURA_HOME``: SQLite storage by default, Postgres when configured.

The instance configuration is written to ``$AURA_HOME/dagster/dagster.yaml``. A Postgres URL is
never written to disk: the file names the environment variable that holds it.
"""

from pathlib import Path

from dagster import DagsterInstance

from lakehouse.settings import Settings

BASE_CONFIG = """\
# Dagster instance of the AURA lakehouse (written by `aura`; embedded default shown in the repo's
# dagster.yaml). Storage: SQLite files in this directory unless a Postgres URL is configured.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition_set
        limit: 4
"""

POSTGRES_STORAGE = """\
storage:
  postgres:
    postgres_url:
      env: {var}
"""


def instance_yaml(settings: Settings) -> str:
    """The dagster.yaml for ``settings``; a Postgres URL is referenced by its variable name."""
    if settings.dagster_pg_url:
        return BASE_CONFIG + POSTGRES_STORAGE.format(var=settings.dagster_pg_var)
    return BASE_CONFIG


def prepare_dagster_home(settings: Settings) -> Path:
    """Create ``$AURA_HOME/dagster`` with its dagster.yaml; returns the directory."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = instance_yaml(settings)
    if not config.exists() or config.read_text() != wanted:
        config.write_text(wanted)
    return home


def open_instance(settings: Settings) -> DagsterInstance:
    """The persistent Dagster instance of this AURA_HOME."""
    return DagsterInstance.from_config(str(prepare_dagster_home(settings)))
