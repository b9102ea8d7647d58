"""Two processes on one memory store: one stores, compacts and forgets, the other searches.

The vector shards (warm tier, cold index) are embedded: each is open in one process at a time
and handed between them (:mod:`lakehouse.memory.engine`). The promise: the writer's acknowledged
memories are all there at the end and its forgotten ones are gone, nobody gets an error that
loses data, and the shards open whole afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

from lakehouse import Settings
from lakehouse.memory import MemoryStore

PRELUDE = """
import json, sys, time
from datetime import timedelta
import numpy as np
from lakehouse import Settings
from lakehouse.exceptions import AuraError
from lakehouse.memory import MemoryStore
mem = MemoryStore(Settings.from_env(), vector_lock_timeout=60)
"""

WRITER = """
rng = np.random.default_rng(1)
errors, kept, forgotten = [], [], []
for batch in range(6):
    try:
        ids = [
            mem.store("t", f"batch {batch} note {i}", vector=rng.normal(size=mem.dim))
            for i in range(15)
        ]
        kept += ids
        warm_age = timedelta(days=30) if batch % 2 else timedelta(0)  # even batches: to cold
        mem.compact(hot_max_age=timedelta(0), warm_max_age=warm_age, consolidate_cosine=None)
        for gone in kept[batch::7][:2]:
            mem.forget("t", gone)
            kept.remove(gone)
            forgotten.append(gone)
    except AuraError as exc:
        errors.append(f"batch {batch}: {type(exc).__name__}: {exc}")
mem.close()
print(json.dumps({"errors": errors, "kept": kept, "forgotten": forgotten}), flush=True)
"""

SEARCHER = """
rng = np.random.default_rng(2)
errors, searches, skipped = [], 0, 0
done = sys.argv[1]
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    finished = __import__("os").path.exists(done)
    try:
        hits = mem.search("t", rng.normal(size=mem.dim), k=10)
        searches += 1
        skipped += bool(hits.unavailable)
        ids = [h.memory.id for h in hits]
        if len(ids) != len(set(ids)):
            errors.append("a memory twice in one answer")
        if any(h.memory.tenant_id != "t" or len(h.memory.vector) != mem.dim for h in hits):
            errors.append("a hit of another tenant or without its vector")
    except AuraError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    if finished:
        break
mem.close()
print(json.dumps({"errors": errors, "searches": searches, "skipped": skipped}), flush=True)
"""


def _child(code: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code), *args],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(child: subprocess.Popen[str], name: str) -> dict[str, object]:
    try:
        stdout, _ = child.communicate(timeout=400)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, f"the {name} exited {child.returncode}"
    return dict(json.loads(stdout.strip().splitlines()[-1]))


@pytest.mark.process
@pytest.mark.slow
def test_a_writer_and_a_searcher_in_two_processes(
    aura_env: dict[str, str], server: Any, tmp_path: Path
) -> None:
    env = aura_env | {"AURA_REDIS_URL": server.url}
    done = tmp_path / "writer-done"
    searcher = _child(SEARCHER, env, str(done))
    writer = _child(WRITER, env)
    try:
        wrote = _result(writer, "writer")
    finally:  # a failed writer must not leave the searcher running into the next test
        done.touch()
        searched = _result(searcher, "searcher")
    assert wrote["errors"] == [] and searched["errors"] == []
    assert isinstance(searched["searches"], int) and searched["searches"] > 0
    kept, forgotten = wrote["kept"], wrote["forgotten"]
    assert isinstance(kept, list) and isinstance(forgotten, list)
    assert len(kept) == 6 * 15 - len(forgotten) and forgotten
    with MemoryStore(Settings.from_env(env)) as mem:
        found = {mid: mem.get("t", mid) for mid in kept}
        assert all(m is not None for m in found.values())  # nothing acknowledged lost
        assert all(mem.get("t", mid) is None for mid in forgotten)
        stats = mem.stats()  # the shards open and count whole
        assert stats.hot + stats.warm + stats.cold == len(kept)
        assert stats.warm > 0 and stats.cold > 0
        cold = {mid for mid, m in found.items() if m is not None and m.tier == "cold"}
        assert mem.cold.index is not None and mem.cold.index.ids() == cold
