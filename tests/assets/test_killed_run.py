"""A run killed with kill -9 while it holds its table's pool slot blocks neither the next run
nor the stream entries it had read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from helpers import decision, payload

from aura_assets.concurrency import PID_TAG, table_pool
from aura_assets.instance import open_instance
from lakehouse import Lakehouse
from lakehouse.routing import GROUP, STREAM
from lakehouse.simulate.routing import publish

FIRST = date(2026, 11, 2)


@pytest.mark.slow
def test_a_run_killed_holding_a_pool_slot_does_not_block_the_next_run(in_aura_env, redis_client):  # type: ignore[no-untyped-def]
    day = FIRST.isoformat()
    publish(redis_client, [payload(decision(i, FIRST)) for i in range(2000)])
    args = ["backfill", "routing_decisions", "--from", day, "--to", day]
    aura = [sys.executable, "-m", "aura_assets.cli", *args]
    instance = open_instance(in_aura_env)
    storage = instance.event_log_storage
    pool = table_pool("routing_decisions")

    victim = subprocess.Popen(aura, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _claimed(storage, pool) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _claimed(storage, pool), "the run never took its pool slot"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert _claimed(storage, pool)  # the dead run still holds the only slot

    again = subprocess.run(aura, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not _claimed(storage, pool)
    killed = [r for r in instance.get_runs() if r.tags.get(PID_TAG) == str(victim.pid)]
    assert killed and all(r.is_failure for r in killed)
    # Nothing lost and nothing waited for: what the killed run had read was pending on its
    # consumer, which names a process of this host that is gone, so the next run took it at
    # once (not after the claim idle time). Its day is in the table, once; the decisions of
    # the next day (i large enough runs past midnight) are handed back for that day's run.
    stored = Lakehouse(in_aura_env).read("routing_decisions").column("decision_id")
    holders = {
        c["name"].decode(): c["pending"] for c in redis_client.xinfo_consumers(STREAM, GROUP)
    }
    parked = holders.pop(f"{GROUP}:released", 0)
    assert not any(holders.values()), holders
    assert len(set(stored.to_pylist())) == len(stored)
    assert (
        len(stored) + parked == 2000 and parked == redis_client.xpending(STREAM, GROUP)["pending"]
    )


def _claimed(storage, pool: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(storage.get_concurrency_info(pool).claimed_slots)
