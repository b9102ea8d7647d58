"""Concurrency by design: one Dagster pool per Iceberg table, and no slot held by a dead run.

Two runs that commit to the same Iceberg table race on its metadata: pyiceberg retries a lost
commit a few times, then fails the run (8 writers lost 3-8 % of their commits that way here).
So every asset that commits to a table runs in the pool ``iceberg/<table>``; the instance gives
each pool one slot by default (``concurrency.pools.default_limit`` in dagster.yaml), so commits
to one table take turns across all runs while different tables proceed in parallel. Runs on
different tables, and the non-committing work of every run, are limited only by the run queue.

A slot is claimed by the step and freed when the step ends, including when the run fails. A
run whose process is killed (kill -9, OOM) cannot free it, and every later step of that pool
would wait forever. Dagster's daemon fails such runs (run monitoring) where it runs; ``aura``
also runs steps in its own process, so it tags each run with its host and process id and,
whenever it opens the instance, fails the runs of this host whose process is gone and frees
their slots (:func:`release_dead_runs`).
"""

import os
import socket

import psutil
from dagster import DagsterInstance, DagsterRunStatus

HOST_TAG = "aura/host"
PID_TAG = "aura/pid"
_LIVE = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)


def table_pool(table: str) -> str:
    """The Dagster pool of the steps that commit to the Iceberg table ``table``."""
    return f"iceberg/{table}"


def declared_pools() -> list[str]:
    """Every pool AURA's assets use: one per registered table, and the topology index's."""
    from lakehouse.table.registry import all_specs
    from lakehouse.topology.retrieval import COLLECTION

    return [table_pool(spec.name) for spec in all_specs()] + [f"qdrant/{COLLECTION}"]


def ensure_pools(instance: DagsterInstance) -> None:
    """Give every declared pool its default limit now, one process at a time (the caller holds
    the instance's lock), not at the first step that claims it: on PostgreSQL, Dagster 1.13
    initialises a pool inside the claim, and two steps claiming a new pool at once fail one of
    them (a unique-key violation aborts the transaction its fallback update then runs in)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    known = set(storage.get_concurrency_keys())
    for pool in declared_pools():
        if pool not in known:
            try:
                storage.initialize_concurrency_limit_to_default(pool)
            except Exception:  # another host initialised it first: it exists now
                if pool not in set(storage.get_concurrency_keys()):
                    raise


def worker_tags() -> dict[str, str]:
    """Tags naming the process that executes a run in-process (see :func:`release_dead_runs`)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_gone(pid: int, started_at: float | None) -> bool:
    """Whether process ``pid`` has ended (or the pid now names a process started later)."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    return started_at is not None and created > started_at + 1.0


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Fail the runs of this host whose process is gone and free their pool slots.

    Only runs that hold or wait for a pool slot are looked at, and only those ``aura`` executed
    in-process on this host (tagged by :func:`worker_tags`); runs of other hosts are the
    daemon's (run monitoring). Returns the ids of the runs released.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    run_ids: set[str] = set()
    for pool in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(pool)
        run_ids |= {slot.run_id for slot in info.claimed_slots}
        run_ids |= {step.run_id for step in info.pending_steps}
    released = []
    host = socket.gethostname()
    for run_id in sorted(run_ids):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            continue
        if run.status not in _LIVE or run.tags.get(HOST_TAG) != host:
            continue
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        record = instance.get_run_record_by_id(run_id)
        started = record.start_time if record is not None else None
        if pid and _process_gone(pid, started):
            instance.report_run_failed(
                run, f"aura: the process that executed this run (pid {pid}) is gone"
            )
            storage.free_concurrency_slots_for_run(run_id)
            released.append(run_id)
    return released
