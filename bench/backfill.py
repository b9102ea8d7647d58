"""A 30-day backfill of routing + topology on 1 and on 2 Celery workers, and where the time goes.

``python -m bench backfill``. Needs PostgreSQL and Redis on 127.0.0.1 (the server pass's): the
benchmark recreates its own database ``aura_celery_bench`` (``AURA_BENCH_BACKFILL_PG_URL``) and
empties its own Redis dbs, 11 for the broker and 12 for data (``AURA_BENCH_BACKFILL_BROKER``,
``AURA_BENCH_BACKFILL_REDIS``), so it never touches another's. For each worker count (1, then
2; ``AURA_BENCH_BACKFILL_WORKERS``) it starts from empty tables, publishes
``AURA_BENCH_BACKFILL_DAYS`` (default 30) days of routing decisions (``..._DECISIONS`` a day,
default 200) and workflow traces (``..._TRACES`` a day, default 4), starts that many real Celery
workers (``celery -A aura_assets.celery_worker worker -c 1``: one step at a time each; their
start-up, which loads the code location, is not timed) and runs
:func:`aura_assets.backfill.backfill` of ``routing_decisions routing_model_daily workflow_runs
topology_history`` over the days with ``AURA_BENCH_BACKFILL_PARALLEL`` (default 2) runs at once,
the same orchestration for both counts.

Lines: ``backfill.celery_1_worker`` and ``backfill.celery_2_workers`` in days per minute, the
second with the first as baseline (``ratio`` is the speed-up of the second worker). Each line
says where the time went, summed over the steps of its runs (from the runs' event logs):
``step_s`` (a step's own work on a worker, STEP_START to STEP_SUCCESS), ``worker_setup_s`` (the
worker's plan and resources before STEP_START), ``celery_queue_s`` (task sent until a worker
takes it), ``run_overhead_s`` (each run's wall time minus the time any of its steps was in
flight: launch, plan, run start/end events, and a step's wait for its table's pool slot, which
dagster-celery's loop does not log: it holds the step back until the slot is claimed),
``commit_retries`` (commits that lost a race and were retried, from the workers' logs; what
lost: ``commit_retries_on``) and ``busy_share`` (step_s over workers x wall time: how much of
the workers' capacity did step work). The load average is in every line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import emit

DAYS = int(os.environ.get("AURA_BENCH_BACKFILL_DAYS", "30"))
DECISIONS = int(os.environ.get("AURA_BENCH_BACKFILL_DECISIONS", "200"))
TRACES = int(os.environ.get("AURA_BENCH_BACKFILL_TRACES", "4"))
PARALLEL = int(os.environ.get("AURA_BENCH_BACKFILL_PARALLEL", "2"))
WORKERS = [int(n) for n in os.environ.get("AURA_BENCH_BACKFILL_WORKERS", "1,2").split(",")]
PG_URL = os.environ.get(
    "AURA_BENCH_BACKFILL_PG_URL", "postgresql://postgres@127.0.0.1:5432/aura_celery_bench"
)
BROKER = os.environ.get("AURA_BENCH_BACKFILL_BROKER", "redis://127.0.0.1:6379/11")
REDIS = os.environ.get("AURA_BENCH_BACKFILL_REDIS", "redis://127.0.0.1:6379/12")
FIRST = date(2026, 11, 2)
ASSETS = ["routing_decisions", "routing_model_daily", "workflow_runs", "topology_history"]
HOME = Path(tempfile.gettempdir()) / f"aura-bench-backfill-{os.getpid()}"
READY_SECONDS = 300


def main() -> None:
    unreachable = _unreachable()
    if unreachable:
        sys.stderr.write(f"bench backfill skipped: {unreachable} (needs PostgreSQL and Redis)\n")
        return
    # The code location binds its resources to the AURA_* variables set when it loads: set them
    # before anything imports it. The same names and values serve both worker counts; the state
    # behind them is recreated for each.
    os.environ.update(
        {
            "AURA_HOME": str(HOME),
            "AURA_PG_URL": PG_URL,
            "AURA_CATALOG_NAME": "bench",
            "AURA_REDIS_URL": REDIS,
            "AURA_CELERY_BROKER": BROKER,
            "AURA_PARTITIONS_START": "2026-11-01",
        }
    )
    from lakehouse.settings import Settings

    settings = Settings.from_env()
    results: dict[int, dict[str, Any]] = {}
    try:
        for count in WORKERS:
            results[count] = _measure(settings, count)
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    base = results[WORKERS[0]]["days_per_minute"]
    for count, result in results.items():
        name = "backfill.celery_1_worker" if count == 1 else f"backfill.celery_{count}_workers"
        rate = result.pop("days_per_minute")
        first = count == WORKERS[0]
        emit(
            name,
            rate,
            "days/min",
            baseline=None if first else base,
            baseline_name=None if first else f"backfill.celery_{WORKERS[0]}_worker(s)",
            **result,
        )


def _measure(settings: Any, count: int) -> dict[str, Any]:
    """One backfill on ``count`` fresh workers; its rate and where the time went."""
    from aura_assets.backfill import backfill
    from aura_assets.instance import dagster_env, open_instance

    _reset(settings)
    open_instance(settings).dispose()
    _publish(settings)
    logs = HOME / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dagster_env(settings), "PATH": _path()}
    started = time.monotonic()
    workers = [_start_worker(i, logs, env) for i in range(1, count + 1)]
    try:
        _wait_ready(settings, count)
        startup = time.monotonic() - started
        first, last = FIRST, FIRST + timedelta(days=DAYS - 1)
        began = time.monotonic()
        runs = list(backfill(settings, ASSETS, first, last, parallel=PARALLEL))
        wall = time.monotonic() - began
        load = os.getloadavg()
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    failed = [r.day.isoformat() for r in runs if not r.success]
    if failed or len(runs) != DAYS:
        raise RuntimeError(f"backfill on {count} worker(s): {len(runs)} runs, failed {failed}")
    instance = open_instance(settings)
    try:
        parts = _where_time_goes(instance, [r.run_id for r in runs])
    finally:
        instance.dispose()
    lost = [
        line.split(" lost a commit race")[0].rsplit("] ", 1)[-1]
        for p in logs.glob("*.log")
        for line in p.read_text(errors="replace").splitlines()
        if "lost a commit race" in line
    ]
    return {
        "days_per_minute": DAYS / wall * 60,
        "wall_s": round(wall, 2),
        "workers": count,
        "runs_at_once": PARALLEL,
        "days": DAYS,
        "decisions_per_day": DECISIONS,
        "traces_per_day": TRACES,
        "assets": ASSETS,
        **parts,
        "busy_share": round(parts["step_s"] / (count * wall), 3),
        "commit_retries": len(lost),
        "commit_retries_on": sorted(set(lost)),
        "worker_startup_s": round(startup, 1),
        "load_avg": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
    }


def _unreachable() -> str | None:
    """Why the servers cannot be used, or None."""
    import socket

    for url in (PG_URL, BROKER):
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2).close()
        except OSError as exc:
            return f"{parts.scheme}://{parts.hostname}:{parts.port} unreachable ({exc})"
    return None


def _reset(settings: Any) -> None:
    """Empty state: the home removed, the database recreated, the two Redis dbs flushed."""
    import psycopg
    import redis
    from psycopg import sql

    shutil.rmtree(HOME, ignore_errors=True)
    url = urlsplit(PG_URL)
    name = sql.Identifier(url.path.lstrip("/"))
    with psycopg.connect(urlunsplit(url._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    for db in (REDIS, BROKER):
        redis.Redis.from_url(db).flushdb()


def _publish(settings: Any) -> None:
    from lakehouse.simulate.routing import RoutingWorkload, publish, routing_events
    from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
    from lakehouse.stores import close_redis, open_redis

    client = open_redis(settings)
    try:
        workload = RoutingWorkload(start=FIRST, days=DAYS, per_day=DECISIONS)
        publish(client, routing_events(workload))
        traces = simulate_workflow_events(FIRST, DAYS, TRACES, seed=7)
        publish_workflow_events(client, list(traces))
    finally:
        close_redis(client)


def _path() -> str:
    """PATH with this interpreter's bin first (the ``celery`` command of the venv)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _start_worker(index: int, logs: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        *("celery", "-A", "aura_assets.celery_worker", "worker", "-Q", "dagster", "-c", "1"),
        *("-n", f"bench{index}@%h", "--loglevel", "INFO", "--logfile", str(logs / f"{index}.log")),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(settings: Any, count: int) -> None:
    from celery import Celery

    app = Celery(broker=settings.celery_broker)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
        time.sleep(1.0)
    raise RuntimeError(f"{count} celery worker(s) did not answer in {READY_SECONDS} s")


def _where_time_goes(instance: Any, run_ids: list[str]) -> dict[str, float]:
    """Seconds summed over the runs' steps, by phase (see the module docstring)."""
    from dagster import DagsterEventType

    total: dict[str, float] = defaultdict(float)
    for run_id in run_ids:
        marks: dict[str, dict[str, float]] = defaultdict(dict)
        logs = instance.all_logs(run_id)
        for entry in logs:
            key, kind, message = entry.step_key, entry.dagster_event_type, entry.message or ""
            if key is None:
                continue
            step = marks[key]
            if kind == DagsterEventType.ENGINE_EVENT:
                if message.startswith("Submitting celery task"):
                    step["sent"] = entry.timestamp
                elif "in celery worker" in message:
                    step["taken"] = entry.timestamp
            elif kind == DagsterEventType.STEP_START:
                step["start"] = entry.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                step["end"] = entry.timestamp
        spans = []
        for step in marks.values():
            if {"sent", "taken", "start", "end"} <= step.keys():
                total["celery_queue_s"] += step["taken"] - step["sent"]
                total["worker_setup_s"] += step["start"] - step["taken"]
                total["step_s"] += step["end"] - step["start"]
                total["steps"] += 1
                spans.append((step["sent"], step["end"]))
        if logs and spans:
            in_flight = _union(spans)
            total["run_overhead_s"] += logs[-1].timestamp - logs[0].timestamp - in_flight
    return {k: (int(v) if k == "steps" else round(v, 2)) for k, v in total.items()}


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``spans``."""
    covered, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered
