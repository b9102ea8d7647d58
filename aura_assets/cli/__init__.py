"""The ``aura`` command line."""

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from aura_assets.cli._output import configure_logging, progress
from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import AuraError
from lakehouse.settings import redact_text


class _AuraGroup(click.Group):
    """Turns AURA's domain errors into one clear line and exit status 1; never shows a password.

    Any other error whose message holds a password (a driver quoting a malformed URL back) is
    shown as one redacted line instead of a traceback that would print it.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AuraError as exc:
            raise click.ClickException(_redact(str(exc))) from None
        except click.UsageError as exc:  # a bad option value: one line, nothing done
            raise _UsageError(_redact(exc.format_message())) from None
        except click.ClickException as exc:
            shown = _redact(exc.message)
            if shown == exc.message:
                raise
            raise click.ClickException(shown) from None
        except Exception as exc:
            message = str(exc)
            if _redact(message) == message:
                raise
            raise click.ClickException(
                f"{type(exc).__name__}: {_redact(message)}".replace("\n", " ")
            ) from None


class _UsageError(click.ClickException):
    """A refused command line, shown as one line (exit status 2, as click's usage errors)."""

    exit_code = 2


def _redact(message: str) -> str:
    """``message`` without any password, the configured ones included wherever they appear."""
    try:
        secrets = Settings.from_env().passwords()
    except Exception:  # a broken environment must not hide the original error
        secrets = []
    return redact_text(message, secrets)


@click.group(cls=_AuraGroup)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what the lakehouse does (-vv: Dagster, pyiceberg and other libraries too).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as one JSON object each (stderr).",
)
def main(verbose: int, log_format: str) -> None:
    """AURA Lakehouse: versioned Iceberg tables for an AI-agent platform."""
    configure_logging(verbose, log_format)


# Option types: bad values are refused by click before a command does anything.
_DAYS = click.IntRange(min=1, max=3660)
_PER_DAY = click.IntRange(min=1, max=10_000_000)
_RATE = click.FloatRange(min=0.0, max=1.0)
_COUNT = click.IntRange(min=0)


@main.command()
def config() -> None:
    """Show the resolved configuration (passwords redacted)."""
    for key, value in Settings.from_env().describe().items():
        click.echo(f"{key:16} {value}")


@main.command()
def tables() -> None:
    """List the aura tables with row counts and current snapshot."""
    _print_tables(Lakehouse())


def _print_tables(lh: Lakehouse) -> None:
    rows = [("table", "rows", "snapshots", "current snapshot", "refs")]
    for info in lh.tables():
        refs = ",".join(info.branches) + (f" +{len(info.tags)} tags" if info.tags else "")
        rows.append(
            (
                f"aura.{info.name}",
                str(info.rows),
                str(info.snapshots),
                str(info.snapshot_id or "-"),
                refs,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@main.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day (default: DAYS ago).")
@click.option(
    "--days", default=3, type=_DAYS, show_default=True, help="Number of days to simulate."
)
@click.option(
    "--per-day", default=2000, type=_PER_DAY, show_default=True, help="Routing decisions per day."
)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--malformed-rate",
    type=_RATE,
    default=0.0,
    show_default=True,
    help="Share of events to corrupt (bad JSON, missing fields, wrong types, ...).",
)
@click.option(
    "--regime-change-at",
    type=click.DateTime(["%Y-%m-%d"]),
    help="From this day on, traffic shifts and the 'large' model degrades.",
)
@click.option(
    "--workflows",
    type=_COUNT,
    default=0,
    show_default=True,
    help="Also run this many agent workflow threads (LangGraph) into the checkpoint store.",
)
@click.option(
    "--traces-per-day",
    type=_COUNT,
    default=60,
    show_default=True,
    help="Workflow traces per day to publish to aura:events:workflows (0: none).",
)
def simulate(
    start: datetime | None,
    days: int,
    per_day: int,
    seed: int,
    malformed_rate: float,
    regime_change_at: datetime | None,
    workflows: int,
    traces_per_day: int,
) -> None:
    """Publish a seeded routing workload and workflow traces to their Redis streams."""
    from dataclasses import replace

    from lakehouse.router import champion_policy, champion_row

    settings = Settings.from_env()
    workload = _workload(start, days, per_day, seed, malformed_rate, regime_change_at)
    lh = Lakehouse(settings)
    policy = champion_policy(lh)
    if policy is not None:  # once a router is trained, the simulated platform routes with it
        workload = replace(workload, router=policy)
        click.echo(f"routing with champion router {champion_row(lh)['version']}")  # type: ignore[index]
    written = _publish(settings, workload)
    click.echo(
        f"published {written} routing events for {workload.start} .. "
        f"{workload.start + timedelta(days=days - 1)}"
    )
    if traces_per_day:
        click.echo(f"published {_publish_traces(settings, workload, traces_per_day)}")
    if workflows:
        click.echo(f"ran {_run_workflows(settings, workflows, seed)}")


def _run_workflows(settings: Settings, threads: int, seed: int) -> str:
    from lakehouse.simulate.agents import run_workflows

    return run_workflows(settings, threads, seed).summary()


def _workload(start, days, per_day, seed, malformed_rate, regime_change_at):
    from lakehouse.simulate.routing import RoutingWorkload

    first = start.date() if start else datetime.now(UTC).date() - timedelta(days=days)
    return RoutingWorkload(
        start=first,
        days=days,
        per_day=per_day,
        seed=seed,
        malformed_rate=malformed_rate,
        regime_change_at=regime_change_at.date() if regime_change_at else None,
    )


def _publish_traces(settings: Settings, workload, per_day: int) -> str:
    from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
    from lakehouse.stores import open_redis

    change = workload.regime_change_at
    change_at = (change - workload.start).days if change else None
    events = simulate_workflow_events(
        workload.start, workload.days, per_day, workload.seed, regime_change_at=change_at
    )
    sent = publish_workflow_events(open_redis(settings), events)
    return f"{sent} workflow traces ({per_day} a day) to aura:events:workflows" + (
        f", retry-loop regime from {change}" if change else ""
    )


def _publish(settings: Settings, workload) -> int:
    from lakehouse.simulate.routing import publish, routing_events
    from lakehouse.stores import open_redis

    total = workload.days * workload.per_day
    with progress("publishing routing events", total) as bar:
        return publish(open_redis(settings), bar.track(routing_events(workload)))


@main.command()
@click.option(
    "--days", default=3, type=_DAYS, show_default=True, help="Days of traffic to simulate."
)
@click.option(
    "--per-day", default=2000, type=_PER_DAY, show_default=True, help="Routing decisions per day."
)
@click.option("--seed", default=7, show_default=True)
@click.option("--malformed-rate", type=_RATE, default=0.01, show_default=True)
@click.option(
    "--workflows",
    type=_COUNT,
    default=20,
    show_default=True,
    help="Agent workflow threads (LangGraph) to run and archive (0: none).",
)
@click.option(
    "--traces-per-day",
    type=_COUNT,
    default=40,
    show_default=True,
    help="Workflow traces per day for the topology assets (0: none).",
)
def demo(
    days: int, per_day: int, seed: int, malformed_rate: float, workflows: int, traces_per_day: int
) -> None:
    """Simulate traffic, materialise it through Dagster, and summarise the tables."""
    from aura_assets.demo import run_demo

    settings = Settings.from_env()
    click.echo(f"AURA_HOME {settings.home}")
    workload = _workload(None, days, per_day, seed, malformed_rate, None)
    started = time.perf_counter()
    written = _publish(settings, workload)
    click.echo(
        f"[1/4] published {written} routing events ({malformed_rate:.0%} malformed) "
        f"for {days} days from {workload.start}"
    )
    if traces_per_day:
        click.echo(f"[1/4] published {_publish_traces(settings, workload, traces_per_day)}")
    if workflows:
        click.echo(f"[2/4] ran {_run_workflows(settings, workflows, seed)}")
    else:
        click.echo("[2/4] no workflow threads (--workflows 0)")
    days_list = [workload.start + timedelta(days=i) for i in range(days)]
    today = datetime.now(UTC).date() if workflows else None
    topology_days = days_list if traces_per_day else None
    runs = len(days_list) + (1 if today else 0) + (1 if topology_days else 0)
    with progress("Dagster runs", runs) as bar:
        for step in run_demo(
            settings, days_list, checkpoint_day=today, topology_days=topology_days
        ):
            bar.advance()
            click.echo(f"[3/4] {step}")
    if days >= 2:
        _demo_router(settings, workload, days_list)
    click.echo("[4/4] tables")
    lh = Lakehouse(settings)
    _print_tables(lh)
    snap = lh.table("routing_decisions").current_snapshot()
    if snap is not None and snap.summary is not None:
        props = {
            k: v for k, v in snap.summary.additional_properties.items() if k.startswith("aura.")
        }
        click.echo(f"routing_decisions head {snap.snapshot_id}: {json.dumps(props)}")
    click.echo(f"done in {time.perf_counter() - started:.1f}s; `aura ui` shows the runs")


def _demo_router(settings: Settings, workload, days_list: list) -> None:
    """Train the router through Dagster; with a champion, route one more day with it and show
    the cost per day before and after."""
    import dataclasses

    import pyarrow.compute as pc

    from aura_assets.demo import run_demo, train_router
    from lakehouse import router as registry

    for step in train_router(settings, days_list):
        click.echo(f"[3/4] {step}")
    lh = Lakehouse(settings)
    policy = registry.champion_policy(lh)
    if policy is None:
        click.echo("[3/4] no champion router: traffic stays on the hand-tuned router")
        return
    routed_day = days_list[-1] + timedelta(days=1)
    routed = dataclasses.replace(
        workload, start=routed_day, days=1, seed=workload.seed + 1, router=policy
    )
    _publish(settings, routed)
    for step in run_demo(settings, [routed_day]):
        click.echo(f"[3/4] {step} (routed by the champion)")
    rows = lh.read("routing_decisions").select(["ts", "cost_usd"])
    day_col = pc.strftime(rows.column("ts"), format="%Y-%m-%d")
    costs = (
        rows.append_column("day", day_col).group_by("day").aggregate([("cost_usd", "sum")])
    ).to_pylist()
    for item in sorted(costs, key=lambda r: r["day"]):
        who = "champion router" if item["day"] == routed_day.isoformat() else "hand-tuned router"
        click.echo(f"cost per day {item['day']}: ${item['cost_usd_sum']:.2f} ({who})")


@main.command()
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535))
def ui(port: int) -> None:
    """Start the Dagster UI on this code location (dagster dev)."""
    from aura_assets.instance import dagster_env, prepare_dagster_home

    settings = Settings.from_env()
    home = prepare_dagster_home(settings)
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    args = [sys.executable, "-m", "dagster", "dev", "-p", str(port)]
    args += ["-w", str(workspace)] if workspace.exists() else ["-m", "aura_assets.definitions"]
    click.echo(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={home})")
    env = {**os.environ, "AURA_HOME": str(settings.home), **dagster_env(settings)}
    # Run from DAGSTER_HOME so a repo checkout's template dagster.yaml is not mistaken for it.
    # SIGTERM / SIGINT stop dagster dev and every process it started (aura_assets.process).
    from aura_assets.process import supervise

    raise SystemExit(supervise(args, env, home))


def _register_optional_commands() -> None:
    """Attach the command groups other domains contribute."""
    # Each domain module defines one click command or group; registered here in one place.
    from aura_assets.cli.backfill import backfill
    from aura_assets.cli.backup import backup, restore
    from aura_assets.cli.branch import branch, tag
    from aura_assets.cli.checkpoints import checkpoints
    from aura_assets.cli.doctor import doctor
    from aura_assets.cli.maintain import history, maintain
    from aura_assets.cli.memory import memory
    from aura_assets.cli.router import router
    from aura_assets.cli.sql import sql
    from aura_assets.cli.topology import topology

    main.add_command(sql)
    main.add_command(topology)
    main.add_command(checkpoints)
    main.add_command(branch)
    main.add_command(tag)
    main.add_command(maintain)
    main.add_command(history)
    main.add_command(doctor)
    main.add_command(backup)
    main.add_command(restore)
    main.add_command(memory)
    main.add_command(router)
    main.add_command(backfill)


_register_optional_commands()
