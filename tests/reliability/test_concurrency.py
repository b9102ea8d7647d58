"""Concurrency: many processes commit to one table at once; no commit is lost or half-applied.

Each worker process appends to a shared day, overwrites its own day and a shared day, and
reports every outcome: committed, or refused with a CommitConflictError (a clear error). The
table must then hold exactly the committed data: every committed append's rows once, each own
day equal to that worker's last committed overwrite, the shared day equal to exactly one
committed overwrite (never a mix). Concurrent publishes of experiment branches must each either
fast-forward main, be refused with NotFastForwardError, or (a branch write that lost every retry
to the other writers) fail with a CommitConflictError saying to retry; main must hold exactly
the published branches' rows.
"""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from typing import Any

import pytest

from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.exceptions import CommitConflictError, NotFastForwardError
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import refs
from reliability.harness import SCALE, decision_rows, process_context, scaled

pytestmark = pytest.mark.reliability

SHARED_APPEND = date(2026, 11, 1)
SHARED_OVERWRITE = date(2026, 11, 2)
TABLE = ROUTING_DECISIONS.name
PROCS = 8 if SCALE >= 4 else 4


def _own_day(worker: int) -> date:
    return date(2026, 11, 10) + timedelta(days=worker)


def _worker(env: dict[str, str], worker: int, commits: int, seed: int, out: Any) -> None:
    lh = Lakehouse(Settings.from_env(env))
    rng = random.Random(seed)
    for c in range(commits):
        op = rng.choice(("append", "append", "own", "shared"))
        tag = f"w{worker}-c{c}"
        lineage = Lineage(asset="reliability", run_id=tag)
        try:
            if op == "append":
                lh.append(
                    TABLE,
                    decision_rows([f"{tag}-{k}" for k in range(5)], SHARED_APPEND),
                    lineage=lineage,
                )
            elif op == "own":
                day = _own_day(worker)
                lh.overwrite_day(
                    TABLE,
                    decision_rows([f"{tag}-{k}" for k in range(3)], day),
                    day,
                    lineage=lineage,
                )
            else:
                rows = decision_rows([f"{tag}-{k}" for k in range(4)], SHARED_OVERWRITE)
                lh.overwrite_day(TABLE, rows, SHARED_OVERWRITE, lineage=lineage)
            out.put((worker, c, op, "ok", ""))
        except CommitConflictError as exc:
            out.put((worker, c, op, "conflict", str(exc)))
        except Exception as exc:  # reported, and fails the test: not a clear conflict error
            out.put((worker, c, op, "error", f"{type(exc).__name__}: {exc}"))


def _collect(out: Any, expected: int, procs: list[Any]) -> list[tuple[Any, ...]]:
    results = []
    deadline = time.monotonic() + 900
    while len(results) < expected and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=5))
        except Exception:
            if not any(p.is_alive() for p in procs):
                break
    for p in procs:
        p.join(60)
    return results


def _catalog_kind(env: dict[str, str]) -> str:
    if env.get("AURA_CATALOG_URI", "").startswith("http"):
        return "rest"  # the object-store pass
    return "postgres" if "AURA_PG_URL" in env else "sqlite"


def test_parallel_appends_and_overwrites_lose_no_commit(
    settings: Settings, aura_env: dict[str, str], figures
) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(settings)
    lh.table(TABLE)  # created once, before the race
    commits = scaled(12)
    ctx = process_context()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(aura_env, w, commits, 1000 + w, out))
        for w in range(PROCS)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = _collect(out, PROCS * commits, procs)
    elapsed = time.perf_counter() - started
    assert len(results) == PROCS * commits, "a worker died without reporting"
    errors = [r for r in results if r[3] == "error"]
    assert errors == [], errors[:3]
    conflicts = [r for r in results if r[3] == "conflict"]
    assert all("conflict" in r[4].lower() or "retr" in r[4].lower() for r in conflicts)
    ok = [r for r in results if r[3] == "ok"]

    rows = lh.read(TABLE).to_pylist()
    ids = [r["decision_id"] for r in rows]
    by_day: dict[date, list[str]] = {}
    for r in rows:
        by_day.setdefault(r["ts"].date(), []).append(r["decision_id"])
    # Appends: every committed append exactly once, nothing else.
    want_appended = sorted(
        f"w{w}-c{c}-{k}" for w, c, op, *_ in ok if op == "append" for k in range(5)
    )
    assert sorted(by_day.get(SHARED_APPEND, [])) == want_appended
    # Own days: the last committed overwrite of each worker.
    for w in range(PROCS):
        last = max((c for ww, c, op, *_ in ok if ww == w and op == "own"), default=None)
        want = [] if last is None else sorted(f"w{w}-c{last}-{k}" for k in range(3))
        assert sorted(by_day.get(_own_day(w), [])) == want
    # Shared overwritten day: exactly one committed overwrite, whole.
    shared = sorted(by_day.get(SHARED_OVERWRITE, []))
    winners = {(w, c) for w, c, op, *_ in ok if op == "shared"}
    if winners:
        assert len(shared) == 4 and len({i.rsplit("-", 1)[0] for i in shared}) == 1
        assert tuple(int(x[1:]) for x in shared[0].split("-")[:2]) in winners
    lost = len(want_appended) - len(set(by_day.get(SHARED_APPEND, [])) & set(want_appended))
    figures(
        processes=PROCS,
        commits_attempted=len(results),
        committed=len(ok),
        conflicts=len(conflicts),
        other_errors=len(errors),
        lost_commits=lost,
        duplicate_rows=len(ids) - len(set(ids)),
        rows=len(ids),
        seconds=round(elapsed, 2),
        commits_per_s=round(len(ok) / elapsed, 2),
        catalog=_catalog_kind(aura_env),
    )
    assert lost == 0 and len(ids) == len(set(ids))


def _publisher(env: dict[str, str], worker: int, out: Any) -> None:
    lh = Lakehouse(Settings.from_env(env))
    table = lh.table(TABLE)
    branch = f"exp-{worker}"
    day = date(2026, 11, 25)
    try:
        lh.append(
            TABLE,
            decision_rows([f"p{worker}-{k}" for k in range(2)], day),
            lineage=Lineage(run_id=branch),
            branch=branch,
        )
        table.refresh()
        result = refs.publish(table, branch, refs.MAIN_BRANCH)
        out.put((worker, "published", result.snapshot_id, ""))
    except NotFastForwardError as exc:
        out.put((worker, "refused", None, str(exc)))
    except CommitConflictError as exc:  # lost every retry to the other writers: a clear error
        out.put((worker, "conflict", None, str(exc)))
    except Exception as exc:
        out.put((worker, "error", None, f"{type(exc).__name__}: {exc}"))


def test_concurrent_branch_publishes_fast_forward_or_refuse(
    settings: Settings, aura_env: dict[str, str], figures
) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(settings)
    lh.append(TABLE, decision_rows(["base-0"], date(2026, 11, 24)))
    table = lh.table(TABLE)
    rounds = scaled(3)
    published: list[int] = []
    refused = errors = conflicts = 0
    for r in range(rounds):
        ctx = process_context()
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_publisher, args=(aura_env, r * 100 + w, out)) for w in range(PROCS)
        ]
        for p in procs:
            p.start()
        results = _collect(out, PROCS, procs)
        assert len(results) == PROCS
        bad = [x for x in results if x[1] == "error"]
        assert bad == [], bad[:3]
        refusals = [x[3] for x in results if x[1] == "refused"]
        assert all("cannot publish" in m and "Re-create the branch" in m for m in refusals)
        lost_races = [x[3] for x in results if x[1] == "conflict"]
        assert all("retry" in m for m in lost_races), lost_races[:3]  # says what to do
        published += [x[0] for x in results if x[1] == "published"]
        refused += sum(1 for x in results if x[1] == "refused")
        conflicts += len(lost_races)
        assert any(x[1] == "published" for x in results)
    table.refresh()
    main_ids = {r["decision_id"] for r in lh.read(TABLE).to_pylist()}
    want = {"base-0"} | {f"p{w}-{k}" for w in published for k in range(2)}
    figures(
        processes=PROCS,
        rounds=rounds,
        published=len(published),
        refused_not_fast_forward=refused,
        commit_conflicts=conflicts,
        other_errors=errors,
        lost_publishes=len(want - main_ids),
        unpublished_rows_on_main=len(main_ids - want),
    )
    assert main_ids == want
