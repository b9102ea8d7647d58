"""Publish atomicity: kill -9 during `aura branch publish`; `aura sql` never sees a mix.

An experiment that changed every aura table is published by the `aura branch publish` command in
a child process and killed at a seeded random moment: half the trials uniform over a measured
uncrashed publish, half while the tables' mains move (a random delay after its journal appears).
The raw catalog is then looked at directly (how many tables' mains had moved when the process
died: the mixed states an engine reading main directly could see), and `aura sql` is asked which
snapshot each table's main view shows: every table before the publish or every table after it,
never some of each, with the experiment's recorded status agreeing. A deterministic kill after
the k-th table checks the same promise for `Lakehouse.read` (issue 21 item 12).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import date

import pytest
from click.testing import CliRunner

from lakehouse import Lakehouse, Settings
from lakehouse.publish import experiments
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import refs
from reliability.harness import (
    decision_rows,
    process_context,
    run_and_kill,
    run_to_end,
    scaled,
)

pytestmark = pytest.mark.reliability

SEED = 20261207
DAY = date(2026, 11, 20)
DECISIONS = ROUTING_DECISIONS.name


def _publish_child(env: dict[str, str], name: str) -> None:
    """`aura branch publish NAME`, as the command line runs it."""
    from aura_assets.cli.branch import publish

    os.environ.update(env)
    publish.main([name], standalone_mode=False)


def _kill_after_child(env: dict[str, str], name: str, tables: int) -> None:
    """Publish, and kill -9 this process just before the table after the ``tables``-th moves."""
    lh = Lakehouse(Settings.from_env(env))
    seen: list[str] = []

    def on_table(table: str) -> None:
        if len(seen) == tables:
            os.kill(os.getpid(), signal.SIGKILL)
        seen.append(table)

    experiments.publish(lh, name, on_table=on_table)


def _prepare(lh: Lakehouse, settings: Settings, name: str, tag: str) -> dict[str, tuple[int, int]]:
    """An open experiment that changed every table; returns each table's (main, branch) head."""
    experiments.create(lh, name)
    on_branch = Lakehouse(settings.with_overrides(branch=name))
    on_branch.append(DECISIONS, decision_rows([f"{tag}-{i}" for i in range(20)], DAY))
    heads = {}
    for spec in experiments.data_specs():
        table = lh.table(spec.name)
        if spec.name != DECISIONS:  # an empty commit: the branch differs from main everywhere
            table.append(table.schema().as_arrow().empty_table(), branch=name)
            table.refresh()
        heads[spec.name] = (refs.head(table), refs.head(table, name))
        assert heads[spec.name][0] != heads[spec.name][1]
    return heads


def _kill_while_moving(lh: Lakehouse, env: dict[str, str], name: str, delay: float) -> bool:
    """Run the publish; ``delay`` seconds after its journal appears in the catalog, kill -9 it.

    Returns whether it was killed (False: it finished first).
    """
    child = process_context().Process(target=_publish_child, args=(env, name))
    child.start()
    key = f"aura.publish-journal.{name}"
    deadline = time.monotonic() + 120
    while child.is_alive() and time.monotonic() < deadline:
        if key in lh.catalog.load_namespace_properties("aura"):
            break
        time.sleep(0.005)
    child.join(delay)
    killed = child.is_alive()
    if killed:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(120)
    assert killed or child.exitcode == 0, f"the publish failed on its own (exit {child.exitcode})"
    return killed


def _raw_moved(lh: Lakehouse, heads: dict[str, tuple[int, int]]) -> int:
    """How many tables' main stand at the branch head in the catalog (no journal consulted)."""
    catalog = lh.catalog
    moved = 0
    for name, (_, after) in heads.items():
        table = catalog.load_table(("aura", name))
        moved += refs.head(table) == after
    return moved


def _sql_views(env: dict[str, str]) -> dict[str, int | None]:
    """Which snapshot `aura sql` shows for each table's main."""
    from aura_assets.cli.sql import sql

    result = CliRunner().invoke(
        sql,
        ["--format", "json", "SELECT table_name, snapshot_id FROM aura_views"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    start = result.output.index("[")
    rows = json.loads(result.output[start : result.output.rindex("]") + 1])
    return {r["table_name"]: r["snapshot_id"] for r in rows}


def _classify(seen: dict[str, int | None], heads: dict[str, tuple[int, int]]) -> str:
    at = [
        "after" if seen.get(t) == after else "before" if seen.get(t) == before else "other"
        for t, (before, after) in heads.items()
    ]
    if set(at) == {"after"}:
        return "published"
    if set(at) == {"before"}:
        return "unpublished"
    return "mixed"


def _publish_timing(lh: Lakehouse, env: dict[str, str], name: str) -> tuple[float, float, float]:
    """One uncrashed publish: its length, and when (seconds after its start) the first and the
    last table's main moved (each table's last metadata update is its publish commit)."""
    started = time.time()
    run_to_end(_publish_child, (env, name))
    length = time.time() - started
    moved = [lh.table(s.name).metadata.last_updated_ms / 1000 for s in experiments.data_specs()]
    return length, max(0.0, min(moved) - started), max(moved) - started


def test_kill_during_branch_publish_is_never_seen_mixed(  # type: ignore[no-untyped-def]
    aura_env: dict[str, str], settings: Settings, figures
) -> None:
    lh = Lakehouse(settings)
    lh.append(DECISIONS, decision_rows([f"base-{i}" for i in range(20)], DAY))
    trials = scaled(20)
    _prepare(lh, settings, "warm", "warm")
    _publish_timing(lh, aura_env, "warm")  # the first run in a fresh process pays for imports
    _prepare(lh, settings, "warm2", "warm2")
    length, first_move, last_move = _publish_timing(lh, aura_env, "warm2")
    longest = length * 1.2
    rng = random.Random(SEED)
    moving = (last_move - first_move) * 1.2
    killed = raw_mixed = mixed = status_wrong = published = unpublished = 0
    for t in range(trials):
        name = f"exp-{t}"
        heads = _prepare(lh, settings, name, f"t{t}")
        if t % 2:  # anywhere in the run
            killed += run_and_kill(_publish_child, (aura_env, name), rng.uniform(0, longest))
        else:  # while the tables' mains move: from the moment its journal is written
            killed += _kill_while_moving(lh, aura_env, name, rng.uniform(0, moving))
        raw = _raw_moved(lh, heads)
        raw_mixed += 0 < raw < len(heads)
        outcome = _classify(_sql_views(aura_env), heads)  # settles a killed publish first
        mixed += outcome == "mixed"
        status = experiments.get(lh, name).status
        status_wrong += (outcome, status) not in (
            ("published", "published"),
            ("unpublished", "open"),
        )
        rows = lh.read(DECISIONS).num_rows
        # the base rows, the warm-ups' and those of every experiment published so far
        assert rows == 20 * (3 + published + (outcome == "published"))
        published += outcome == "published"
        unpublished += outcome == "unpublished"
        if status == "open":
            experiments.drop(lh, name)
        properties = lh.catalog.load_namespace_properties("aura")
        assert not [k for k in properties if k.startswith("aura.publish-journal.")]
    figures(
        trials=trials,
        killed=killed,
        tables=len(experiments.data_specs()),
        raw_mixed_at_kill=raw_mixed,
        mixed_seen_by_aura_sql=mixed,
        status_disagreeing=status_wrong,
        completed=published,
        rolled_back_or_untouched=unpublished,
        max_delay_s=round(longest, 2),
        moves_s=round(last_move - first_move, 2),
    )
    assert (mixed, status_wrong) == (0, 0)


def test_publish_killed_after_some_tables_reads_all_or_none(  # type: ignore[no-untyped-def]
    aura_env: dict[str, str], settings: Settings, figures
) -> None:
    """Killed after 3 of the tables moved: `Lakehouse.read` and `aura sql` see all of them."""
    lh = Lakehouse(settings)
    lh.append(DECISIONS, decision_rows([f"base-{i}" for i in range(20)], DAY))
    heads = _prepare(lh, settings, "exp-k", "k")
    order = sorted(heads)
    # DECISIONS must be among the tables still unmoved at the kill, so a mix would show in it.
    assert order.index(DECISIONS) >= 3
    child = process_context().Process(target=_kill_after_child, args=(aura_env, "exp-k", 3))
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    raw = _raw_moved(Lakehouse(settings), heads)
    reader = Lakehouse(settings)
    rows = reader.read(DECISIONS).num_rows  # the first reader settles the killed publish
    seen = _sql_views(aura_env)
    figures(raw_moved_at_kill=raw, tables=len(heads), decisions_read=rows)
    assert raw == 3  # the kill did leave main half-published in the catalog
    assert _classify(seen, heads) == "published"
    assert rows == 40
    assert experiments.get(reader, "exp-k").status == "published"
    tag = experiments.get(reader, "exp-k").tag
    assert tag and all(refs.head(reader.table(t), tag) == heads[t][1] for t in heads)
