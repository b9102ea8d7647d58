"""Where a run's steps execute: in the launching process, one process per step, or on Celery
workers (docs/distributed-runs.md).

Every job of the code location has the executor :data:`aura_executor`, configured by one of:

* ``multiprocess`` (the default, and so what a run launched from the UI, a schedule or a sensor
  uses): each step in its own process, up to ``max_concurrent`` at once;
* ``in_process``: one step after another in the run's process (``aura``'s CLI runs, where a
  Python start per step would cost more than the step);
* ``celery``: each step is a Celery task on the queue ``dagster`` of the Redis broker
  ``AURA_CELERY_BROKER``, executed by a worker (``celery -A aura_assets.celery_worker worker``);
  the run's process only orchestrates. With ``AURA_CELERY_BROKER`` set where the code location
  loads, this is the default instead of ``multiprocess``.

Invariants of the Celery mode: the run's process claims each step's pool slot before it sends
the task and frees it when the worker's events come back (workers never claim), so a table's
pool serialises commits across workers exactly as across processes. The workers must reach the
same Dagster storage, catalog and stores as the launcher (the same ``AURA_*`` environment), and
the results come back through the broker's Redis (Celery's default ``rpc://`` backend needs
AMQP: with a Redis broker a step would never be seen to finish, and every later step of its pool
would wait for the slot). The Dagster instance a task names is the configuration under
``DAGSTER_HOME`` (its Postgres URL by variable name, never the URL): a task message never
carries a password.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    Executor,
    ExecutorRequirement,
    Field,
    InitExecutorContext,
    Selector,
    executor,
    multiple_process_executor_requirements,
)
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
)
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.instance.ref import InstanceRef

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import Settings, configured

QUEUE = "dagster"
"""The queue dagster-celery sends step tasks to (workers listen with ``-Q dagster``)."""
RESULT_EXPIRES_SECONDS = 3600
"""How long a step's events stay in the result backend if its run's process never reads them."""
IN_PROCESS: Mapping[str, Any] = {"execution": {"config": {"in_process": {}}}}
CELERY: Mapping[str, Any] = {"execution": {"config": {"celery": {}}}}


def default_mode() -> str:
    """``celery`` when ``AURA_CELERY_BROKER`` is set where the code location loads, else
    ``multiprocess``."""
    return "celery" if "celery_broker" in configured() else "multiprocess"


def celery_config_source() -> dict[str, Any]:
    """Celery settings shared by the run's process and the workers (both must agree)."""
    from dagster_celery.config import DEFAULT_CONFIG

    return {
        **DEFAULT_CONFIG,
        "result_expires": RESULT_EXPIRES_SECONDS,
        "broker_connection_retry_on_startup": True,
    }


def celery_executor_for(settings: Settings, retries: RetryMode | None = None) -> Executor:
    """The Celery executor on ``settings``' broker (which is also its result backend).

    Raises:
        ConfigurationError: ``AURA_CELERY_BROKER`` is not set.
    """
    if not settings.celery_broker:
        raise ConfigurationError(
            "the celery executor needs AURA_CELERY_BROKER (redis://HOST:PORT/DB); set it where "
            "the run starts and where the workers run, or choose in_process or multiprocess"
        )
    from dagster_celery.executor import CeleryExecutor

    class _AuraCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor whose tasks name the instance by its configuration
        directory (no storage password in a task message)."""

        def execute(self, plan_context, execution_plan):
            from dagster_celery.core_execution_loop import core_celery_execution_loop

            return core_celery_execution_loop(
                plan_context, execution_plan, step_execution_fn=_submit_task(settings)
            )

    return _AuraCeleryExecutor(
        retries=retries or RetryMode(RetryMode.DISABLED),
        broker=settings.celery_broker,
        backend=settings.celery_broker,
        config_source=celery_config_source(),
    )


def task_instance_ref(settings: Settings) -> InstanceRef:
    """The instance a step task names: ``DAGSTER_HOME``'s dagster.yaml as written (a Postgres
    URL by its variable, ``AURA_DAGSTER_STORAGE_URL``, which each worker has in its environment)."""
    return InstanceRef.from_dir(str(settings.dagster_home))


def _submit_task(settings: Settings) -> Callable[..., Any]:
    """dagster-celery's task submission, with the instance named by ``DAGSTER_HOME``'s
    configuration instead of the launcher's resolved one."""
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import pack_value
    from dagster_celery.config import TASK_EXECUTE_PLAN_NAME as TASK
    from dagster_celery.tasks import create_task

    ref = task_instance_ref(settings)

    def submit(app, plan_context, step, queue, priority, known_state):
        args = ExecuteStepArgs(
            job_origin=plan_context.reconstructable_job.get_python_origin(),
            run_id=plan_context.dagster_run.run_id,
            step_keys_to_execute=[step.key],
            instance_ref=ref,
            retry_mode=plan_context.executor.retries.for_inner_plan(),
            known_state=known_state,
            print_serialized_events=True,
        )
        # Registered once: Celery shares a task with every app made after it.
        task = app.tasks[TASK] if TASK in app.tasks else create_task(app)
        signature = task.si(
            execute_step_args_packed=pack_value(args),
            executable_dict=plan_context.reconstructable_job.to_dict(),
        )
        return signature.apply_async(
            priority=priority, queue=queue, routing_key=f"{queue}.execute_plan"
        )

    return submit


def _requirements(config: Mapping[str, Any]) -> Sequence[ExecutorRequirement]:
    return [] if "in_process" in config else multiple_process_executor_requirements()


@executor(
    name="aura",
    config_schema=Field(
        Selector(
            {
                "multiprocess": MULTI_PROC_CONFIG,
                "in_process": IN_PROC_CONFIG,
                "celery": Field(
                    {"retries": get_retries_config()},
                    is_required=False,
                    description="Steps run on the Celery workers of AURA_CELERY_BROKER.",
                ),
            }
        ),
        default_value={default_mode(): {}},
    ),
    requirements=_requirements,
)
def aura_executor(init_context: InitExecutorContext) -> Executor:
    """AURA's executor: ``multiprocess`` (default), ``in_process`` or ``celery``."""
    config = init_context.executor_config
    if "celery" in config:
        retries = RetryMode.from_config(config["celery"]["retries"])  # type: ignore[index]
        return celery_executor_for(Settings.from_env(), retries)
    if "in_process" in config:
        return _core_in_process_executor_creation(config["in_process"])  # type: ignore[arg-type]
    return _core_multiprocess_executor_creation(config["multiprocess"])  # type: ignore[arg-type]
