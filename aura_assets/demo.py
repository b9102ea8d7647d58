"""``aura demo``: simulated closed days through Dagster, the router, memory and a branch.

What the demo promises (``tests/test_demo_honest.py`` holds it to them):

* **Closed days only.** Traffic is simulated for days that have ended (:class:`DemoPlan`, from an
  injectable clock), so no event lies past now and the event guard rejects only the malformed
  share; the last closed day is the one the champion router routes.
* **Idempotent.** A day already in ``routing_decisions`` is not published again, workflow
  threads have a seed-derived prefix and run once, the router is trained once, the memory story
  and the branch experiment are told once: a second run changes no row count.
* **Honest figures.** Cost per 1,000 decisions with the mean quality next to it, per router,
  taken from the ``router`` column each decision carries (not from what this run did), and each
  day's rejected share.

Runs are created with the ``aura`` code location's origin (``aura_assets.launch``), so the UI's
Jobs page, the job's Runs tab and the Overview timeline show them like runs launched from the UI.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aura_assets.launch import Outcome
from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import Settings

MEMORY_TENANT = "demo-agent"
MEMORY_FACTS = (
    "The user prefers answers in French.",
    "The billing service is written in Go and deployed on Kubernetes.",
    "Deploys on Fridays are forbidden by the change policy.",
    "The on-call rotation starts on Monday at 09:00 UTC.",
    "The ledger runs on PostgreSQL 16 with daily backups.",
)
MEMORY_QUERY = "which database does the ledger run on"


@dataclass(frozen=True)
class DemoPlan:
    """Which days the demo simulates, from the clock: closed days only.

    ``hand_tuned_days`` are routed by the simulator's hand-tuned router (the router's training
    and held-out days); ``routed_day``, the last closed day, by the champion once there is one.
    """

    today: date
    hand_tuned_days: tuple[date, ...]
    routed_day: date

    @classmethod
    def at(cls, now: datetime, days: int, first_partition: date) -> "DemoPlan":
        """The plan for a demo started at ``now`` (aware) with ``days`` hand-tuned days.

        Raises:
            ConfigurationError: a day would fall before the first day partition.
        """
        today = now.astimezone(UTC).date()
        routed = today - timedelta(days=1)
        hand_tuned = tuple(routed - timedelta(days=days - i) for i in range(days))
        if hand_tuned[0] < first_partition:
            raise ConfigurationError(
                f"the demo's first day {hand_tuned[0]} is before the first day partition "
                f"{first_partition}: set AURA_PARTITIONS_START={hand_tuned[0]} or earlier, "
                "or pass fewer --days"
            )
        return cls(today=today, hand_tuned_days=hand_tuned, routed_day=routed)

    @property
    def days(self) -> tuple[date, ...]:
        return (*self.hand_tuned_days, self.routed_day)


def run_demo(
    settings: Settings,
    days: list[date],
    checkpoint_day: date | None = None,
    topology_days: list[date] | None = None,
) -> Iterator[str]:
    """Run the demo's jobs in the persistent instance; yield one progress line per run.

    Args:
        settings: The AURA configuration whose instance (``AURA_HOME/dagster``) records the runs.
        days: Days to run ``routing_ingest`` for, in order.
        checkpoint_day: If given, then materialise ``workflow_checkpoints`` for this day
            (archive the hot store's checkpoints of the day into Iceberg, then trim it).
        topology_days: If given, then materialise ``topology_daily`` for these consecutive days
            in one run (workflow runs, signatures, Qdrant index, drift).
    """
    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher

    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            for day in days:
                outcome = launch.run("routing_ingest", day.isoformat())
                yield _routing_line(day, outcome)
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
            if topology_days:
                first, last = topology_days[0].isoformat(), topology_days[-1].isoformat()
                range_tags = {
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                }
                outcome = launch.run("topology_daily", tags=range_tags)
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                yield (
                    f"{first}...{last}: topology_daily run {outcome.run_id} succeeded "
                    "(`aura topology drift` shows it)"
                )
            if checkpoint_day is None:
                return
            outcome = launch.run("checkpoint_archive", checkpoint_day.isoformat())
            if not outcome.success:
                raise RuntimeError(_failed(outcome))
            yield _archive_line(checkpoint_day, outcome)
    finally:
        instance.dispose()


def _failed(outcome: Outcome) -> str:
    return (
        f"run {outcome.run_id} of {outcome.job_name} ({outcome.partition}) failed: "
        "`aura ui` shows its logs"
    )


def _routing_line(day: date, outcome: Outcome) -> str:
    meta = outcome.metadata.get("routing_decisions", {})
    rows = meta.get("dagster/row_count", "-")
    changed = "" if meta.get("aura/changed", True) else " (unchanged)"
    read, rejected = meta.get("stream/entries_read", 0), meta.get("stream/rejected", 0)
    share = f" ({rejected / read:.1%} of {read} events)" if read else ""
    return (
        f"{day}: routing_ingest run {outcome.run_id} succeeded: {rows} decisions{changed}, "
        f"{rejected} rejected{share}"
    )


def _archive_line(day: date, outcome: Outcome) -> str:
    """What the checkpoint archive run did, from its materialisation metadata."""
    from aura_assets.checkpoints.assets import CHECKPOINTS_KEY

    values = outcome.metadata["/".join(CHECKPOINTS_KEY.path)]
    return (
        f"{day}: workflow_checkpoints run {outcome.run_id} succeeded: archived "
        f"{values['rows_added']} checkpoints (archive {values.get('archive/size_ratio', '-')}x "
        f"the raw bytes), trimmed {values.get('hot/trimmed', 0)} hot rows"
    )


def train_router(settings: Settings, days: list[date]) -> Iterator[str]:
    """Build the router's training set for ``days`` and run ``router_retrain`` on them (the
    latest day held out) in the persistent instance; yield one line per run."""
    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher

    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            for day in days:
                outcome = launch.run("router_training", day.isoformat())
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                yield f"{day}: router_training run {outcome.run_id} succeeded"
            config = {"train_days": len(days) - 1, "heldout_days": 1}
            outcome = launch.run(
                "router_retrain", run_config={"ops": {"router_model": {"config": config}}}
            )
            if not outcome.success:
                raise RuntimeError(_failed(outcome))
    finally:
        instance.dispose()
    meta = {k: v for values in outcome.metadata.values() for k, v in values.items()}
    verdict = "published as champion" if meta.get("published") else "refused"
    yield (
        f"router_retrain run {outcome.run_id} succeeded: candidate "
        f"{meta.get('candidate_version')} {verdict} ({meta.get('reasons')})"
    )


def tell(
    settings: Settings,
    *,
    days: int = 3,
    per_day: int = 2000,
    seed: int = 7,
    malformed_rate: float = 0.01,
    workflows: int = 20,
    traces_per_day: int = 40,
    now: datetime | None = None,
) -> Iterator[str]:
    """Run the demo; yield one line per step (the CLI prints them).

    Args:
        settings: The AURA configuration (stores and the Dagster instance under AURA_HOME).
        days: Closed days of hand-tuned traffic before the champion's day.
        per_day: Routing decisions per simulated day.
        seed: Seed of every simulated draw.
        malformed_rate: Share of routing events to corrupt.
        workflows: Agent workflow threads (LangGraph) to run and archive (0: none).
        traces_per_day: Workflow traces per day for the topology assets (0: none).
        now: The clock (aware); the demo's days are the ones closed at ``now``. Default: now.
    """
    import dataclasses

    from lakehouse import Lakehouse
    from lakehouse.simulate.routing import RoutingWorkload, publish, routing_events
    from lakehouse.stores import open_redis

    plan = DemoPlan.at(now or datetime.now(UTC), days, settings.partitions_start)
    lh = Lakehouse(settings)
    redis = open_redis(settings)
    base = RoutingWorkload(
        start=plan.routed_day, days=1, per_day=per_day, seed=seed, malformed_rate=malformed_rate
    )
    fresh = [d for d in plan.hand_tuned_days if not _has_day(lh, d)]
    sent = sum(publish(redis, routing_events(dataclasses.replace(base, start=d))) for d in fresh)
    kept = len(plan.hand_tuned_days) - len(fresh)
    yield (
        f"[1/6] published {sent} routing events ({malformed_rate:.0%} malformed) for "
        f"{len(fresh)} closed day(s) {_span(plan.hand_tuned_days)}"
        + (f"; {kept} day(s) already ingested, kept as they are" if kept else "")
    )
    topology_days = list(plan.hand_tuned_days) if traces_per_day and fresh else None
    if topology_days:
        yield f"[1/6] published {_publish_traces(settings, base, topology_days, traces_per_day)}"
    checkpoint_day = None
    if workflows:
        ran, line = _run_workflows_once(settings, workflows, seed)
        yield f"[2/6] {line}"
        checkpoint_day = datetime.now(UTC).date() if ran else None
    else:
        yield "[2/6] no workflow threads (--workflows 0)"
    for step in run_demo(
        settings, fresh, checkpoint_day=checkpoint_day, topology_days=topology_days
    ):
        yield f"[3/6] {step}"
    if days >= 2:
        yield from _router_story(settings, lh, plan, base)
    yield from _report(lh, plan, malformed_rate)
    yield from _memory_story(settings, redis)
    yield from _branch_experiment(lh, plan, base)


def _has_day(lh: Any, day: date) -> bool:
    """Whether ``routing_decisions`` holds decisions of ``day`` on the configured branch."""
    branch = lh.settings.branch
    return bool(lh.read("routing_decisions", day=day, branch=branch).num_rows)


def _span(days: tuple[date, ...]) -> str:
    return f"{days[0]} .. {days[-1]}" if len(days) > 1 else str(days[0])


def _publish_traces(settings: Settings, base: Any, days: list[date], per_day: int) -> str:
    from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
    from lakehouse.stores import open_redis

    events = simulate_workflow_events(days[0], len(days), per_day, base.seed)
    sent = publish_workflow_events(open_redis(settings), events)
    return f"{sent} workflow traces ({per_day} a day) to aura:events:workflows"


def _run_workflows_once(settings: Settings, threads: int, seed: int) -> tuple[bool, str]:
    """Run the seed's workflow threads unless they already ran (their first thread exists)."""
    from lakehouse.checkpoints import AuraCheckpointSaver
    from lakehouse.simulate.agents import run_workflows

    prefix = f"demo-s{seed}"
    with AuraCheckpointSaver.from_settings(settings) as saver:
        done = saver.get_tuple({"configurable": {"thread_id": f"{prefix}-0000"}}) is not None
    if done:
        return False, f"workflow threads {prefix}-* already ran; kept as they are"
    return True, f"ran {run_workflows(settings, threads, seed, prefix=prefix).summary()}"


def _router_story(settings: Settings, lh: Any, plan: DemoPlan, base: Any) -> Iterator[str]:
    """Train the router once; route the last closed day with the champion."""
    import dataclasses

    from lakehouse import router as registry
    from lakehouse.simulate.routing import publish, routing_events
    from lakehouse.stores import open_redis

    if lh.info("router_evaluations").rows == 0:  # refused candidates leave an evaluation too
        for step in train_router(settings, list(plan.hand_tuned_days)):
            yield f"[4/6] {step}"
    else:
        row = registry.champion_row(lh)
        who = f"champion {row['version']}" if row else "no champion"
        yield f"[4/6] router already trained ({who}); `aura router train` retrains it"
    policy = registry.champion_policy(lh)
    if policy is None:
        yield "[4/6] no champion router: traffic stays on the hand-tuned router"
        return
    if _has_day(lh, plan.routed_day):
        yield f"[4/6] {plan.routed_day} already ingested, kept as it is"
        return
    version = registry.champion_row(lh)["version"]  # type: ignore[index]
    routed = dataclasses.replace(base, start=plan.routed_day, router=policy, router_name=version)
    publish(open_redis(settings), routing_events(routed))
    for step in run_demo(settings, [plan.routed_day]):
        yield f"[4/6] {step} (routed by the champion {version})"


def _report(lh: Any, plan: DemoPlan, malformed_rate: float) -> Iterator[str]:
    """Cost per 1,000 decisions and mean quality per router over the demo's days (from the
    ``router`` each decision carries)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    start = datetime.combine(plan.days[0], datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(plan.routed_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rows = lh.read("routing_decisions", window=(start, end), branch=lh.settings.branch)
    if rows.num_rows == 0:
        return
    router = pc.fill_null(rows.column("router"), "unknown (no router recorded)")
    table = pa.table(
        {
            "router": router,
            "cost": rows.column("cost_usd"),
            "quality": rows.column("quality_score"),
            "day": pc.strftime(rows.column("ts"), format="%Y-%m-%d"),
        }
    )
    stats = table.group_by("router").aggregate(
        [("cost", "sum"), ("cost", "count"), ("quality", "mean"), ("day", "distinct")]
    )
    for item in sorted(stats.to_pylist(), key=lambda r: r["router"] != "hand-tuned"):
        name = item["router"]
        label = "hand-tuned router" if name == "hand-tuned" else f"router {name}"
        per_1k = 1000 * item["cost_sum"] / item["cost_count"]
        yield (
            f"[5/6] {label}: ${per_1k:.2f} per 1,000 decisions, mean quality "
            f"{item['quality_mean']:.3f} ({item['cost_count']} decisions on "
            f"{', '.join(sorted(item['day_distinct']))})"
        )


def _memory_story(settings: Settings, redis: Any) -> Iterator[str]:
    """Store memories, ingest their events, compact them hot → warm → cold through Dagster,
    search across the tiers, forget one with its receipt; told once per AURA_HOME.

    ``redis`` is the demo's client: a store that opened its own would stop an embedded server
    on close, under the feet of the demo's other clients.
    """
    from lakehouse.memory import MemoryStore

    with MemoryStore(settings, redis_client=redis) as mem:
        hits = mem.search(MEMORY_TENANT, MEMORY_QUERY, k=1)
        if hits:
            yield (
                f"[6/6] memory: {MEMORY_TENANT} already has memories; `aura memory search "
                f"{MEMORY_TENANT} '{MEMORY_QUERY}'` finds {hits[0].memory.content!r} "
                f"({hits[0].memory.tier})"
            )
            return
        ids = [mem.store(MEMORY_TENANT, fact) for fact in MEMORY_FACTS]
        stats = mem.stats()
    yield f"[6/6] memory: stored {len(ids)} memories of {MEMORY_TENANT} (hot {stats.hot})"
    today = datetime.now(UTC).date()
    for step in run_memory(settings, today, {"hot_max_age_minutes": 0}):
        yield f"[6/6] {step}"
    for step in run_memory(settings, None, {"warm_max_age_days": 0}):
        yield f"[6/6] {step}"
    with MemoryStore(settings, redis_client=redis) as mem:
        hit = mem.search(MEMORY_TENANT, MEMORY_QUERY, k=1)[0]
        yield (
            f"[6/6] memory: search {MEMORY_QUERY!r} -> {hit.memory.content!r} from the "
            f"{hit.memory.tier} tier (score {hit.score:.3f})"
        )
        receipt = mem.forget(MEMORY_TENANT, ids[0])
    iceberg = ", ".join(f"{t.table} {t.rows_removed} rows" for t in receipt.iceberg)
    yield (
        f"[6/6] memory: forgot {ids[0]}: receipt: {receipt.redis_keys_deleted} Redis keys, "
        f"{receipt.redis_stream_entries_deleted} stream entries, "
        f"{receipt.qdrant_points_deleted} Qdrant points, Iceberg {iceberg}"
    )
    for step in run_memory(settings, today, None):
        yield f"[6/6] {step}"


def run_memory(
    settings: Settings, day: date | None, compaction: dict[str, float] | None
) -> Iterator[str]:
    """Ingest the memory events of ``day`` (if given), then compact the tiers with
    ``compaction`` (if given) in the persistent instance; one line per run."""
    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher

    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            if day is not None:
                outcome = launch.run("memory_ingest", day.isoformat())
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                meta = outcome.metadata.get("memory_events", {})
                yield (
                    f"{day}: memory_ingest run {outcome.run_id} succeeded: "
                    f"{meta.get('stream/new_events', 0)} new memory events"
                )
            if compaction is not None:
                config = {"ops": {"memory_tiers": {"config": compaction}}}
                outcome = launch.run("memory_compaction", run_config=config)
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                meta = outcome.metadata.get("memory_warm_index", {})
                yield (
                    f"memory_compaction run {outcome.run_id} succeeded: "
                    f"{meta.get('moved/hot_to_warm', 0)} hot -> warm, "
                    f"{meta.get('moved/warm_to_cold', 0)} warm -> cold"
                )
    finally:
        instance.dispose()


def _branch_experiment(lh: Any, plan: DemoPlan, base: Any) -> Iterator[str]:
    """A branch of ``routing_decisions`` where the champion's day is routed by the hand-tuned
    router instead: the same requests, compared with ``aura branch diff``; main is untouched."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakehouse.publish import experiments
    from lakehouse.simulate.routing import routing_arrow
    from lakehouse.table.writer import Lineage

    name = f"demo-hand-tuned-{plan.routed_day}"
    day_rows = lh.read("routing_decisions", day=plan.routed_day)
    routers = set(day_rows.column("router").to_pylist())
    if day_rows.num_rows == 0 or routers in ({"hand-tuned"}, {None}):
        return
    known = {e.name for e in experiments.list_experiments(lh)}
    if name not in known:
        experiments.create(
            lh,
            name,
            tables=["routing_decisions"],
            description=f"{plan.routed_day} routed by the hand-tuned router instead of "
            "the champion",
        )
        hand = routing_arrow(base, plan.routed_day)
        hand = hand.filter(pc.is_in(hand.column("decision_id"), day_rows.column("decision_id")))
        hand = hand.set_column(
            hand.schema.get_field_index("ingested_at"),
            "ingested_at",
            pa.array([datetime.now(UTC)] * hand.num_rows, pa.timestamp("us", tz="UTC")),
        )
        lh.overwrite_day(
            "routing_decisions",
            hand,
            plan.routed_day,
            branch=name,
            lineage=Lineage(asset="routing_decisions", run_id=f"demo-{plan.routed_day}"),
        )
        yield f"[6/6] branch experiment {name}: {_aggregate_on_branch(lh.settings, name, plan)}"
    for diff in experiments.diff(lh, name):
        cost = diff.metrics.get("cost_usd sum", (None, None))
        quality = diff.metrics.get("quality_score mean", (None, None))
        yield (
            f"[6/6] branch experiment {name}: {diff.table} {diff.rows_changed} decisions "
            f"re-routed by the hand-tuned router; whole table: cost ${cost[0]:.2f} on main vs "
            f"${cost[1]:.2f} on the branch, mean quality {quality[0]:.3f} vs {quality[1]:.3f}; "
            f"`aura branch diff {name}`, "
            f"then `aura branch publish` or `aura branch drop`"
        )


def _aggregate_on_branch(settings: Settings, branch: str, plan: DemoPlan) -> str:
    """Materialise ``routing_model_daily`` of the re-routed day on the experiment's branch in a
    Dagster run (it reads the branch's decisions), so the UI shows the experiment."""
    from dagster import AssetKey

    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher
    from aura_resources.presentation import BRANCH_KEY

    day = plan.routed_day.isoformat()
    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            outcome = launch.run(
                "routing_ingest",
                day,
                run_config={"resources": {"lakehouse": {"config": {"branch": branch}}}},
                tags={BRANCH_KEY: branch},
                asset_selection=[AssetKey("routing_model_daily")],
            )
    finally:
        instance.dispose()
    if not outcome.success:
        raise RuntimeError(_failed(outcome))
    return f"routing_model_daily {day} run {outcome.run_id} on the branch succeeded"
