"""The publish journal: readers never see a publish half done; a dead publisher's work is settled.

The kill -9 trials are in ``tests/reliability/test_publish_atomicity.py``; these tests pin each
path of the mechanism without processes: a publish under way (readers see main as before it), a
publish whose owner died (completed, or rolled back when a table's main moved on), and a second
publish of the same experiment while one runs.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from helpers import decisions

from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import RefError
from lakehouse.publish import experiments
from lakehouse.sql import connect
from lakehouse.table import journal, refs

DECISIONS, REJECTED = "routing_decisions", "routing_decisions_rejected"
TABLES = [DECISIONS, REJECTED]  # published in this order


def rejected(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "stream_id": [f"{1700000000000 + start + i}-0" for i in range(n)],
            "stream": ["aura:events:routing"] * n,
            "rejected_at": [datetime(2026, 11, 20, 9, tzinfo=UTC)] * n,
            "reason": ["bad json"] * n,
        }
    )


def _experiment(lh: Lakehouse, settings: Settings, name: str) -> list[journal.Move]:
    """An experiment over two tables that adds 3 decisions and 2 dead letters on its branch."""
    lh.append(DECISIONS, decisions(2))
    experiments.create(lh, name, tables=TABLES)
    on_branch = Lakehouse(settings.with_overrides(branch=name))
    on_branch.append(DECISIONS, decisions(3, start=100))
    on_branch.append(REJECTED, rejected(2))
    moves = []
    for t in TABLES:
        table = lh.table(t)
        moves.append(journal.Move(t, refs.head(table), refs.head(table, name)))  # type: ignore[arg-type]
    return moves


def _dead_owner() -> journal.Owner:
    """The owner of a publish whose process has ended."""
    me = journal.Owner.me()
    return journal.Owner(host=me.host, pid=_ended_pid(), start="0", lease_until_ms=0)


def _ended_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _killed_after_first_table(lh: Lakehouse, moves: list[journal.Move], name: str) -> str:
    """What a publisher killed after moving the first table leaves: a journal and one move."""
    tag = f"{name}-published-x"
    entry = journal.Journal(experiment=name, moves=tuple(moves), owner=_dead_owner(), tag=tag)
    journal.begin(lh.catalog, entry)
    journal.advance(lh.table(moves[0].table), moves[0], tag, None)
    return tag


def test_readers_see_a_running_publish_as_before_it(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    _experiment(lakehouse, settings, "exp-live")
    reader = Lakehouse(settings)
    seen: dict[str, object] = {}

    def midway(table: str) -> None:
        if table != REJECTED:
            return
        # routing_decisions' main has moved in the catalog; routing_decisions_rejected's not yet
        moved = lakehouse.table(DECISIONS)
        assert refs.head(moved) == refs.head(moved, "exp-live")
        seen["read"] = (reader.read(DECISIONS).num_rows, reader.read(REJECTED).num_rows)
        with connect(settings) as session:
            seen["sql"] = session.execute(
                f"SELECT (SELECT count(*) FROM {DECISIONS}), (SELECT count(*) FROM {REJECTED})"
            ).fetchone()
            seen["description"] = session.description

    experiments.publish(lakehouse, "exp-live", on_table=midway)

    assert seen["read"] == (2, 0)  # none of the publish while it runs
    assert seen["sql"] == (2, 0)
    assert "publish under way of exp-live" in str(seen["description"])
    assert (reader.read(DECISIONS).num_rows, reader.read(REJECTED).num_rows) == (5, 2)  # all of it
    assert not journal.read(lakehouse.catalog).journals


def test_a_dead_publishers_work_is_completed_by_the_next_reader(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    moves = _experiment(lakehouse, settings, "exp-dead")
    tag = _killed_after_first_table(lakehouse, moves, "exp-dead")
    assert refs.head(lakehouse.table(REJECTED)) == moves[1].before  # half published in the catalog

    assert Lakehouse(settings).read(REJECTED).num_rows == 2  # the reader settles it first

    for move in moves:
        table = lakehouse.table(move.table)
        assert refs.head(table) == refs.head(table, tag) == move.after
    exp = experiments.get(lakehouse, "exp-dead")
    assert (exp.status, exp.tag) == ("published", tag)
    assert not journal.read(lakehouse.catalog).journals


def test_a_dead_publish_is_rolled_back_when_a_table_moved_on(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    moves = _experiment(lakehouse, settings, "exp-back")
    tag = _killed_after_first_table(lakehouse, moves, "exp-back")
    lakehouse.append(REJECTED, rejected(1, start=50))  # main of the unmoved table moves on

    with connect(settings) as session:  # aura sql settles it first
        counts = session.execute(
            f"SELECT (SELECT count(*) FROM {DECISIONS}), (SELECT count(*) FROM {REJECTED})"
        ).fetchone()

    assert counts == (2, 1)  # none of the experiment, and the other writer's row
    assert refs.head(lakehouse.table(DECISIONS)) == moves[0].before
    assert all(refs.head(lakehouse.table(t), tag) is None for t in TABLES)
    assert experiments.get(lakehouse, "exp-back").status == "open"
    assert not journal.read(lakehouse.catalog).journals


def test_a_second_publish_of_a_running_one_is_refused(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    moves = _experiment(lakehouse, settings, "exp-twice")
    entry = journal.Journal(experiment="exp-twice", moves=tuple(moves), owner=journal.Owner.me())
    journal.begin(lakehouse.catalog, entry)  # this process is publishing it

    with pytest.raises(RefError, match="already under way"):
        experiments.publish(lakehouse, "exp-twice")

    assert [refs.head(lakehouse.table(t)) for t in TABLES] == [m.before for m in moves]
    journal.end(lakehouse.catalog, entry)
