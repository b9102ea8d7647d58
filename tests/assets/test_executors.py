"""Where steps execute: multiprocess by default, in-process for ``aura``, Celery when configured.

The runs on real Celery workers are in ``test_celery_executor.py`` (server pass, workers up).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from aura_assets.definitions import defs
from aura_assets.executors import (
    CELERY,
    IN_PROCESS,
    aura_executor,
    celery_executor_for,
    task_instance_ref,
)
from aura_assets.instance import instance_yaml
from aura_assets.launch import execution_config
from lakehouse import Settings
from lakehouse.exceptions import ConfigurationError

SECRET = "celery-s3cret-pw"


def test_every_job_runs_its_steps_in_parallel_processes_by_default() -> None:
    jobs = ["routing_ingest", "memory_ingest", "topology_daily", "__ASSET_JOB"]
    for name in jobs:
        job = defs.resolve_job_def(name)
        assert job.executor_def is aura_executor, name
    # Without AURA_CELERY_BROKER (the suite unsets it) the default configuration is multiprocess.
    default = aura_executor.config_schema.as_field().default_value
    assert default == {"multiprocess": {}}
    dg.Definitions.validate_loadable(defs)  # the executor's schema is valid Dagster config


def test_aura_runs_in_process_unless_a_broker_is_set(tmp_path: Path) -> None:
    plain = Settings.from_env({"AURA_HOME": str(tmp_path)})
    assert execution_config(plain) == IN_PROCESS
    with pytest.raises(ConfigurationError, match="AURA_CELERY_BROKER"):
        celery_executor_for(plain)
    broker = "redis://127.0.0.1:6379/9"
    celery = plain.with_overrides(celery_broker=broker)
    assert execution_config(celery) == CELERY
    args = celery_executor_for(celery).app_args()  # type: ignore[attr-defined]
    assert args["broker"] == broker and args["backend"] == broker  # results via Redis, not rpc


def test_the_broker_setting_is_a_redis_url_and_its_password_is_never_shown(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="not a redis:// URL") as refused:
        Settings.from_env({"AURA_CELERY_BROKER": f"amqp://guest:{SECRET}@host//"})
    assert SECRET not in str(refused.value)
    s = Settings.from_env(
        {"AURA_HOME": str(tmp_path), "AURA_CELERY_BROKER": f"redis://:{SECRET}@cache:6379/9"}
    )
    assert SECRET not in repr(s) + str(s.describe())
    assert SECRET in s.passwords()


def test_a_step_task_names_the_instance_without_the_storage_password(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "AURA_HOME": str(tmp_path),
            "AURA_DAGSTER_PG_URL": f"postgresql://aura:{SECRET}@db:5432/dagster",
            "AURA_CELERY_BROKER": "redis://127.0.0.1:6379/9",
        }
    )
    s.dagster_home.mkdir(parents=True)
    (s.dagster_home / "dagster.yaml").write_text(instance_yaml(s))
    message = serialize_value(task_instance_ref(s))
    assert "AURA_DAGSTER_STORAGE_URL" in message and SECRET not in message
