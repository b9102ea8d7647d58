"""``aura demo`` is honest at any hour: closed days only, the same counts on a second run, the
rejected share is the malformed share, cost per 1,000 decisions per router, memory and a branch."""

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
from click.testing import CliRunner
from dagster import AssetKey

from aura_assets.cli import main
from aura_assets.demo import MEMORY_FACTS, DemoPlan
from aura_assets.instance import open_instance
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import AuraCheckpointSaver
from lakehouse.exceptions import ConfigurationError

WORKFLOWS = 4
MALFORMED = 0.05
PER_DAY = 300


@pytest.fixture
def demo_home(in_aura_env: Settings, redis_client: object) -> Iterator[Settings]:
    """The test's AURA_HOME; deletes the demo's workflow threads afterwards (the memories go
    with the test's Redis database and catalog)."""
    yield in_aura_env
    with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
        for i in range(WORKFLOWS):
            saver.delete_thread(f"demo-s7-{i:04d}")


def _demo(at: datetime) -> str:
    args = ["demo", "--days", "2", "--per-day", str(PER_DAY), "--workflows", str(WORKFLOWS)]
    args += ["--traces-per-day", "5", "--malformed-rate", str(MALFORMED)]
    args += ["--now", at.strftime("%Y-%m-%dT%H:%M")]
    out = CliRunner().invoke(main, args)
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        raise out.exception
    assert out.exit_code == 0, out.output
    return out.output


def test_plan_holds_closed_days_only_whatever_the_hour() -> None:
    today = date(2026, 12, 7)
    early = DemoPlan.at(datetime.combine(today, time(0, 30), UTC), 3, date(2026, 11, 1))
    late = DemoPlan.at(datetime.combine(today, time(23, 30), UTC), 3, date(2026, 11, 1))
    assert early == late
    assert early.routed_day == today - timedelta(days=1)
    assert early.hand_tuned_days == (date(2026, 12, 3), date(2026, 12, 4), date(2026, 12, 5))
    assert max(early.days) < today
    with pytest.raises(ConfigurationError, match="AURA_PARTITIONS_START"):
        DemoPlan.at(datetime.combine(today, time(12), UTC), 3, date(2026, 12, 5))


@pytest.mark.slow
def test_demo_at_0030_and_2330_gives_the_same_counts(demo_home: Settings) -> None:
    today = datetime.now(UTC).date()
    first = _demo(datetime.combine(today, time(0, 30), UTC))
    lh = Lakehouse(demo_home)
    counts = {info.name: info.rows for info in lh.tables()}
    second = _demo(datetime.combine(today, time(23, 30), UTC))
    assert {info.name: info.rows for info in lh.tables()} == counts, second

    # Only closed days: no decision at or after today's midnight.
    decisions = lh.read("routing_decisions")
    midnight = datetime.combine(today, time(), UTC)
    assert max(decisions.column("ts").to_pylist()) < midnight
    # The guard rejected the malformed share, nothing else.
    champion = "published as champion" in first
    days = 3 if champion else 2
    rejected = counts["routing_decisions_rejected"]
    assert counts["routing_decisions"] + rejected == days * PER_DAY
    assert MALFORMED / 2 < rejected / (days * PER_DAY) < MALFORMED * 2, rejected

    # Cost per 1,000 decisions with the quality next to it, per router, from the data.
    per_router = {
        m[1]: (float(m[2]), float(m[3]), int(m[4]))
        for m in re.finditer(
            r"\[5/6\] (.+?): \$([\d.]+) per 1,000 decisions, mean quality ([\d.]+) \((\d+) ",
            first,
        )
    }
    assert per_router["hand-tuned router"][2] == sum(
        1 for r in decisions.column("router").to_pylist() if r == "hand-tuned"
    )
    if champion:
        learned = [k for k in per_router if k != "hand-tuned router"]
        assert len(learned) == 1
        assert per_router[learned[0]][0] < per_router["hand-tuned router"][0], per_router
        assert "branch experiment demo-hand-tuned-" in second
    else:
        assert "no champion router" in first
    # The second run is told what the first did, not re-labelled.
    assert per_router == {
        m[1]: (float(m[2]), float(m[3]), int(m[4]))
        for m in re.finditer(
            r"\[5/6\] (.+?): \$([\d.]+) per 1,000 decisions, mean quality ([\d.]+) \((\d+) ",
            second,
        )
    }

    # The memory story: stored, compacted to cold through Dagster, found there, one forgotten.
    assert re.search(r"memory: search .* from the cold tier", first)
    assert "memory: forgot " in first and "receipt:" in first
    instance = open_instance(demo_home)
    try:
        for key in ("memory_events", "memory_warm_index", "memory_cold_archive"):
            assert instance.get_latest_materialization_event(AssetKey(key)) is not None, key
    finally:
        instance.dispose()
    assert lh.info("memories").rows == len(MEMORY_FACTS) - 1


def test_each_decision_records_the_router_that_made_it() -> None:
    """`aura simulate` with a champion labels its events, so the demo's report (grouped by the
    `router` column) never calls a champion's day hand-tuned."""
    from lakehouse.routing.events import decisions_to_arrow, parse_event
    from lakehouse.simulate.routing import HAND_TUNED, RoutingWorkload, routing_events

    day = date(2026, 11, 20)
    later = datetime(2026, 12, 1, tzinfo=UTC)
    hand = RoutingWorkload(start=day, days=1, per_day=5)
    learned = RoutingWorkload(start=day, days=1, per_day=5, router_name="0123456789abcdef")
    for workload, name in ((hand, HAND_TUNED), (learned, "0123456789abcdef")):
        parsed = [parse_event(e, now=later) for e in routing_events(workload)]
        assert {p["router"] for p in parsed} == {name}
        table = decisions_to_arrow([{**p, "stream_id": "1-0"} for p in parsed], later)
        assert set(table.column("router").to_pylist()) == {name}
    # An event from before the field stays valid, with no router.
    old = {**json.loads(next(routing_events(hand)))}
    old.pop("router")
    assert parse_event(json.dumps(old), now=later)["router"] is None
