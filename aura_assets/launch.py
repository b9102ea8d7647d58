"""Runs started by ``aura`` (the demo, the CLI) as the UI starts them: with an origin.

A run made by ``execute_in_process`` or ``materialize()`` carries no code-location origin, so
the UI's Jobs page, a job's Runs tab and the Overview timeline never show it. Here the code
location is loaded from ``workspace.yaml`` (location ``aura``), each run is created in the
instance with the job's remote origin (the same origin a run launched from the UI records:
location, repository, job) and its Python origin, then executed in this process by Dagster's own
run executor, one step after another, or, with ``AURA_CELERY_BROKER`` set, orchestrated in this
process while Celery workers execute the steps (:mod:`aura_assets.executors`). The run is an
ordinary run of the instance: the UI can re-execute it, and the run history, timeline and asset
health show it.

Every ``aura`` command that materialises (``backfill``, ``router train``, ``memory compact``,
``checkpoints archive``) runs its work this way (:func:`launch`), so every commit it makes
carries a Dagster run id and code version and the UI shows what the tables hold.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, DagsterRun
from dagster import __version__ as dagster_version
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    CodeLocationOrigin,
    InProcessCodeLocationOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load import (
    location_origin_from_module_name,
    location_origins_from_yaml_paths,
)
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._utils.hosted_user_process import recon_job_from_origin

from aura_assets.concurrency import worker_tags
from aura_assets.executors import CELERY, IN_PROCESS
from aura_assets.instance import open_instance
from lakehouse.settings import Settings

LOCATION = "aura"
MODULE = "aura_assets.definitions"
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
QUIET: Mapping[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CLI_TAG = "aura/cli"
ASSET_JOB = "__ASSET_JOB"
"""The code location's implicit job of every asset: a run of any asset selection."""


@dataclass(frozen=True)
class Outcome:
    """What a run did: its id, job, partition, final status and its materialisations' metadata."""

    run_id: str
    job_name: str
    partition: str | None
    success: bool
    metadata: dict[str, dict[str, Any]]  # asset key (a/b), or an op's step key -> values


def workspace_origin(workspace: Path = WORKSPACE) -> CodeLocationOrigin:
    """The origin of location ``aura`` as ``workspace.yaml`` (and so the UI) declares it."""
    if not workspace.exists():  # an installed package without the repo checkout
        return location_origin_from_module_name(MODULE, None, None, location_name=LOCATION)
    for origin in location_origins_from_yaml_paths([str(workspace)]):
        if origin.location_name == LOCATION:
            return origin
    raise LookupError(f"{workspace} declares no code location named {LOCATION!r}")


class Launcher:
    """Creates and executes runs of the ``aura`` code location in one instance."""

    def __init__(
        self,
        instance: DagsterInstance,
        location: CodeLocation,
        origin: CodeLocationOrigin,
        execution: Mapping[str, Any] = IN_PROCESS,
    ):
        self.instance = instance
        self.execution = execution
        self._location = location
        self._origin = origin
        self._repo = next(iter(location.get_repositories().values()))

    def create(
        self,
        job_name: str,
        partition: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        asset_selection: Sequence[AssetKey] | None = None,
    ) -> DagsterRun:
        """Create a NOT_STARTED run of ``job_name`` (of ``asset_selection`` only, if given) that
        carries the code location's origin."""
        selector = JobSubsetSelector(
            location_name=self._location.name,
            repository_name=self._repo.name,
            job_name=job_name,
            op_selection=None,
            asset_selection=asset_selection,
        )
        remote_job = self._location.get_job(selector)
        config = {**self.execution, **QUIET, **(run_config or {})}
        plan = self._location.get_execution_plan(
            remote_job, config, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        run_tags = {**remote_job.tags, **worker_tags(), **(tags or {})}
        if partition is not None:
            run_tags[PARTITION_NAME_TAG] = partition
        # The origin the UI records for a run it launches: workspace.yaml's location, not the
        # in-process copy this process loaded the definitions through.
        origin = RemoteJobOrigin(
            repository_origin=RemoteRepositoryOrigin(self._origin, self._repo.name),
            job_name=job_name,
        )
        return self.instance.create_run(
            job_name=job_name,
            run_id=None,
            run_config=config,
            resolved_op_selection=None,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags=run_tags,
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=origin,
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(asset_selection) if asset_selection else None,
            asset_check_selection=None,
            asset_graph=self._repo.asset_graph,
        )

    def execute(self, run: DagsterRun) -> Outcome:
        """Execute a created run to completion in this process; returns what it did."""
        assert run.job_code_origin is not None
        job = recon_job_from_origin(run.job_code_origin)
        result = execute_run(job, run, self.instance, raise_on_error=False)
        metadata: dict[str, dict[str, Any]] = {}
        outputs: dict[str, dict[str, Any]] = {}  # of ops that are not assets (maintenance)
        for event in result.all_events:
            if event.is_step_materialization:
                mat = event.step_materialization_data.materialization
                values = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
                metadata["/".join(mat.asset_key.path)] = values
            elif event.is_successful_output and event.step_key and event.step_output_data.metadata:
                found = event.step_output_data.metadata.items()
                outputs[event.step_key] = {k: getattr(v, "value", v) for k, v in found}
        # An asset's materialisation wins over its step's output (they may share a name).
        metadata = {**outputs, **metadata}
        final = self.instance.get_run_by_id(run.run_id)
        return Outcome(
            run_id=run.run_id,
            job_name=run.job_name,
            partition=run.tags.get(PARTITION_NAME_TAG),
            success=bool(final and final.is_success),
            metadata=metadata,
        )

    def run(
        self,
        job_name: str,
        partition: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        asset_selection: Sequence[AssetKey] | None = None,
    ) -> Outcome:
        """Create and execute one run."""
        return self.execute(self.create(job_name, partition, run_config, tags, asset_selection))


def execution_config(settings: Settings) -> Mapping[str, Any]:
    """How ``aura`` executes a run's steps: on the Celery workers when ``AURA_CELERY_BROKER`` is
    set, else one after another in its own process (a Python start per step, as the
    multiprocess executor does, would cost more than most of AURA's steps)."""
    return CELERY if settings.celery_broker else IN_PROCESS


@contextmanager
def launcher(
    instance: DagsterInstance,
    workspace: Path = WORKSPACE,
    execution: Mapping[str, Any] = IN_PROCESS,
) -> Iterator[Launcher]:
    """A :class:`Launcher` over location ``aura`` loaded in this process from ``workspace``;
    its runs execute as ``execution`` (run config) says (:func:`execution_config`)."""
    origin = workspace_origin(workspace)
    assert isinstance(origin, ManagedGrpcPythonEnvCodeLocationOrigin)
    in_process = InProcessCodeLocationOrigin(
        loadable_target_origin=origin.loadable_target_origin, location_name=LOCATION
    )
    with WorkspaceProcessContext(
        instance=instance,
        version=dagster_version,
        read_only=False,
        workspace_load_target=InProcessWorkspaceLoadTarget(in_process),
    ) as process_context:
        context = process_context.create_request_context()
        error = context.get_code_location_error(LOCATION)
        if error is not None:
            raise RuntimeError(f"code location {LOCATION!r} failed to load: {error.message}")
        yield Launcher(instance, context.get_code_location(LOCATION), origin, execution)


def launch(
    settings: Settings,
    job_name: str,
    partition: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    asset_selection: Sequence[AssetKey] | None = None,
) -> Outcome:
    """One run of ``job_name`` in the instance under ``AURA_HOME``, with the location's origin."""
    instance = open_instance(settings)
    try:
        with launcher(instance, execution=execution_config(settings)) as launch_:
            return launch_.run(job_name, partition, run_config, tags, asset_selection)
    finally:
        instance.dispose()


def partition_range(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partitions ``first`` .. ``last``."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
