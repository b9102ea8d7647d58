"""The embedded engine's promises: erase leaves no byte, reopen, one opener at a time (threads
and processes), durable once a call returns (a killed writer loses nothing it was told was
written), a writer and a searcher in two processes lose nothing and corrupt nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, raw_hits
from qdrant_client import models

from lakehouse.exceptions import VectorStoreBusyError, VectorStoreError
from lakehouse.vectors import CollectionSpec, EdgeStore, Record

SPEC = CollectionSpec("edge_test", {"dense": (16, "cosine")}, indexes={"kind": "keyword"})


def _points(n: int, tenant: str = "t1", start: int = 0, kind: str = "plain") -> list[Record]:
    rng = np.random.default_rng(start)
    return [
        Record(
            id=str(uuid.UUID(int=start + i + 1)),
            vectors={"dense": rng.normal(size=16).tolist()},
            payload={"tenant_id": tenant, "kind": kind, "text": f"{kind}-{start + i}"},
        )
        for i in range(n)
    ]


def test_erase_leaves_no_byte_after_optimize(tmp_path: Path) -> None:
    kept_marker = f"kept-{uuid.uuid4().hex}"
    gone = [f"forgotten-{uuid.uuid4().hex}" for _ in range(20)]
    store = EdgeStore(tmp_path, SPEC)
    points = _points(400)
    points[10] = Record(
        points[10].id, points[10].payload | {"text": kept_marker}, points[10].vectors
    )
    for i, marker in enumerate(gone):  # 10 erased by id, 10 by filter
        p = points[100 + i]
        kind = "erase-by-filter" if i % 2 else "plain"
        points[100 + i] = Record(p.id, p.payload | {"text": marker, "kind": kind}, p.vectors)
    store.upsert(points)
    store.optimize()  # indexed segments, as after an index run
    assert all(raw_hits(tmp_path, m) for m in [kept_marker, *gone])  # the scan sees payloads
    store.delete([points[100 + i].id for i in range(0, 20, 2)])
    by_kind = models.Filter(
        must=[models.FieldCondition(key="kind", match=models.MatchValue(value="erase-by-filter"))]
    )
    assert store.delete_where(by_kind) == 10
    store.optimize()
    store.close()
    left = {m: raw_hits(tmp_path, m) for m in gone}
    assert {m: hits for m, hits in left.items() if hits} == {}
    assert raw_hits(tmp_path, kept_marker)  # what was not erased is still there
    with EdgeStore(tmp_path, SPEC) as again:
        assert again.count() == 380


def _stored_vector(store: EdgeStore, point_id: str) -> bytes:
    """The bytes the shard keeps for a point's vector (as stored: normalised for cosine)."""
    (record,) = store.retrieve([point_id], with_vectors=True)
    return np.asarray(record.vectors["dense"], dtype=np.float32).tobytes()


def _files_with(home: Path, needle: bytes) -> list[str]:
    return [str(p) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize(
    ("size", "indexed"),
    [(1, False), (5, False), (60, False), (1000, False), (1000, True)],
    ids=["alone", "5-points", "60-points", "1-in-1000", "1-in-1000-indexed"],
)
def test_erase_in_a_small_or_barely_littered_segment_leaves_no_byte(
    tmp_path: Path, size: int, indexed: bool
) -> None:
    """One point erased from a shard of ``size``: neither its payload nor its vector is left.

    Edge's defaults would skip these segments (under 100 points, or one delete in 1,000 not
    above a 0.001 threshold) and keep the bytes for good."""
    marker = f"forgotten-{uuid.uuid4().hex}"
    store = EdgeStore(tmp_path, SPEC)
    points = _points(size)
    gone = Record(points[0].id, points[0].payload | {"text": marker}, points[0].vectors)
    points[0] = gone
    store.upsert(points)
    if indexed:
        store.optimize()
    gone_vector, kept_vector = (_stored_vector(store, p.id) for p in (gone, points[-1]))
    assert raw_hits(tmp_path, marker) and _files_with(tmp_path, gone_vector)
    store.delete([gone.id])
    store.optimize()
    store.close()
    assert raw_hits(tmp_path, marker) == []
    assert _files_with(tmp_path, gone_vector) == []
    with EdgeStore(tmp_path, SPEC) as again:
        assert again.count() == size - 1
        if size > 1:  # the points kept are still there, payload and vector
            kept = again.retrieve([points[-1].id], with_vectors=True)
            assert kept[0].payload["text"] == points[-1].payload["text"]
            assert _files_with(tmp_path, kept_vector)


def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    points = _points(50)
    with EdgeStore(tmp_path, SPEC) as store:
        assert store.created
        store.upsert(points)
    with EdgeStore(tmp_path, SPEC) as store:
        assert not store.created and store.count() == 50
        hits = store.search(points[3].vectors["dense"], tenant="t1", using="dense", limit=1)
        assert hits[0].id == points[3].id and hits[0].payload == points[3].payload
    other = CollectionSpec("edge_test", {"dense": (32, "cosine")})
    with pytest.raises(VectorStoreError, match="edge_test"):
        EdgeStore(tmp_path, other)
    with EdgeStore(tmp_path, SPEC) as store:  # the refused open released the lock
        assert store.count() == 50


def test_a_second_open_in_this_process_waits_then_says_who_holds_it(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path, SPEC)
    with pytest.raises(VectorStoreBusyError, match=r"this process \(pid \d+"):
        EdgeStore(tmp_path, SPEC, lock_timeout=0.2)
    first.upsert(_points(3))
    first.close()
    with EdgeStore(tmp_path, SPEC, lock_timeout=0.2) as second:
        assert second.count() == 3


@contextmanager
def _child(code: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A Python child running ``code`` after the prelude; killed and reaped on exit."""
    prelude = textwrap.dedent(
        f"""
        import json, sys, time, uuid
        import numpy as np
        from lakehouse.vectors import CollectionSpec, EdgeStore, Record
        from lakehouse.exceptions import AuraError
        SPEC = CollectionSpec(
            "edge_test", {{"dense": (16, "cosine")}}, indexes={{"kind": "keyword"}}
        )
        HOME = {str(tmp_path)!r}
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            yield child
        finally:
            child.kill()
            child.wait()


HOLD = """
store = EdgeStore(HOME, SPEC)
rng = np.random.default_rng(0)
store.upsert([
    Record(str(uuid.UUID(int=i + 1)), {"tenant_id": "t1", "kind": "child"},
           {"dense": rng.normal(size=16).tolist()})
    for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
])
print("written", flush=True)
sys.stdin.readline()
store.close()
"""


@pytest.mark.process
def test_another_process_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with _child(HOLD, tmp_path) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        with pytest.raises(VectorStoreBusyError) as refused:
            EdgeStore(tmp_path, SPEC, lock_timeout=0.5)
        message = str(refused.value)
        assert f"pid {child.pid}@" in message and "never opened twice" in message
        assert "Retry once that process has closed it" in message
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        with EdgeStore(tmp_path, SPEC, lock_timeout=30) as store:  # waits for the close
            assert store.count() == 25


@pytest.mark.process
def test_a_killed_holder_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    with _child(HOLD, tmp_path) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        child.send_signal(signal.SIGKILL)  # no close, no exit handlers
        child.wait()
        with EdgeStore(tmp_path, SPEC, lock_timeout=5) as store:  # the kernel freed the lock
            assert store.count() == 25
            assert store.retrieve([str(uuid.UUID(int=25))])[0].payload["kind"] == "child"


WRITER = """
rng = np.random.default_rng(1)
errors = []
for batch in range(15):
    points = [
        Record(str(uuid.UUID(int=batch * 40 + i + 1)), {"tenant_id": "t1", "kind": "w"},
               {"dense": rng.normal(size=16).tolist()})
        for i in range(40)
    ]
    try:
        with EdgeStore(HOME, SPEC, lock_timeout=60) as store:
            store.upsert(points)
    except AuraError as exc:
        errors.append(f"batch {batch}: {exc}")
print(json.dumps({"errors": errors}), flush=True)
"""

SEARCHER = """
rng = np.random.default_rng(2)
errors, searches, counts = [], 0, []
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with EdgeStore(HOME, SPEC, lock_timeout=60) as store:
            hits = store.search(rng.normal(size=16).tolist(), tenant="t1", using="dense", limit=5)
            counts.append(store.count())
            searches += 1
            if any(h.payload.get("tenant_id") != "t1" for h in hits):
                errors.append("a hit of another tenant")
    except AuraError as exc:
        errors.append(str(exc))
    if counts and counts[-1] == 600:
        break
print(json.dumps({"errors": errors, "searches": searches, "counts": counts}), flush=True)
"""


@pytest.mark.process
def test_a_writer_and_a_searcher_in_two_processes(tmp_path: Path) -> None:
    out = {}
    with _child(WRITER, tmp_path) as writer, _child(SEARCHER, tmp_path) as searcher:
        for name, child in (("writer", writer), ("searcher", searcher)):
            stdout, _ = child.communicate(timeout=300)
            assert child.returncode == 0, f"{name} exited {child.returncode}"
            out[name] = json.loads(stdout.strip().splitlines()[-1])
    assert out["writer"]["errors"] == [] and out["searcher"]["errors"] == []
    counts = out["searcher"]["counts"]
    assert counts == sorted(counts) and counts[-1] == 600  # never a point lost, never a regress
    with EdgeStore(tmp_path, SPEC) as store:  # the shard is whole
        assert store.count() == 600
        ids = [str(uuid.UUID(int=i + 1)) for i in range(600)]
        assert len(store.retrieve(ids)) == 600
