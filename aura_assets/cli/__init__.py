"""The ``aura`` command line.

Starting it is cheap: the domains' command groups (:data:`LAZY_COMMANDS`) are imported only when
one of them runs, and nothing here imports Dagster, pyiceberg, Qdrant or the topology code at
the top, so ``aura --help`` and ``aura config`` answer in well under a second. Warnings a user
cannot act on (Dagster's beta/preview notices) are filtered by ``aura_assets`` itself.
"""

import importlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aura_assets.cli._output import configure_logging, progress
from lakehouse.exceptions import AuraError
from lakehouse.settings import Settings, redact_text

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, the first paragraph of its help, shown by `aura --help` without importing)
    "backfill": (
        "aura_assets.cli.backfill",
        "Materialise ASSETS (e.g. routing_decisions routing_model_daily) for every day of a range.",
    ),
    "backup": (
        "aura_assets.cli.backup",
        "Back up every aura table to DEST (a directory or s3:// prefix), or check it (`verify`).",
    ),
    "branch": (
        "aura_assets.cli.branch",
        "Experiments: one branch across every aura table, diffed and published all or nothing.",
    ),
    "checkpoints": (
        "aura_assets.cli.checkpoints",
        "LangGraph workflow checkpoints: hot store plus Iceberg archive.",
    ),
    "doctor": (
        "aura_assets.cli.doctor",
        "Check the configuration and reach every store; exit 1 if anything is wrong.",
    ),
    "history": (
        "aura_assets.cli.maintain",
        "Every snapshot of TABLE: time, operation, lineage and row/file deltas.",
    ),
    "maintain": (
        "aura_assets.cli.maintain",
        "Compact small files, expire snapshots (freeing their files) and remove orphan files.",
    ),
    "memory": (
        "aura_assets.cli.memory",
        "Agent memory over hot Redis, warm Qdrant and cold Iceberg.",
    ),
    "restore": (
        "aura_assets.cli.backup",
        "Restore the backup in SRC (a directory or s3:// prefix) into an empty catalog.",
    ),
    "router": (
        "aura_assets.cli.router",
        "Train, evaluate and list the learned model router's versions.",
    ),
    "sql": (
        "aura_assets.cli.sql",
        "Run a read-only SQL QUERY over the aura tables (an interactive shell without QUERY).",
    ),
    "tag": ("aura_assets.cli.branch", "Releases: tag every aura table's current main."),
    "topology": (
        "aura_assets.cli.topology",
        "Shape-aware retrieval of workflow runs and drift of their topology.",
    ),
}
"""The command groups each domain contributes, imported when used (``tests/test_cli_start.py``
checks the help shown here is the command's own)."""


class _AuraGroup(click.Group):
    """Turns AURA's domain errors into one clear line and exit status 1; never shows a password.

    Any other error whose message holds a password (a driver quoting a malformed URL back) is
    shown as one redacted line instead of a traceback that would print it. The commands of
    :data:`LAZY_COMMANDS` are imported when looked up, not when listed.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module = importlib.import_module(LAZY_COMMANDS[cmd_name][0])
            self.add_command(getattr(module, cmd_name.replace("-", "_")), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, with the lazy commands' help from :data:`LAZY_COMMANDS`."""
        names = self.list_commands(ctx)
        shown = [n for n in names if n in LAZY_COMMANDS or not self.commands[n].hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(n) for n in shown)
        rows: list[tuple[str, str]] = []
        for name in shown:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                stub = click.Command(name, help=LAZY_COMMANDS[name][1])  # click's own shortening
                rows.append((name, stub.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
    from lakehouse.core import Lakehouse

    _print_tables(Lakehouse())


def _print_tables(lh: "Lakehouse") -> None:
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

    from lakehouse.core import Lakehouse
    from lakehouse.router import champion_policy, champion_row

    settings = Settings.from_env()
    workload = _workload(start, days, per_day, seed, malformed_rate, regime_change_at)
    lh = Lakehouse(settings)
    policy = champion_policy(lh)
    if policy is not None:  # once a router is trained, the simulated platform routes with it
        version = champion_row(lh)["version"]  # type: ignore[index]
        workload = replace(workload, router=policy, router_name=version)
        click.echo(f"routing with champion router {version}")
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
    "--days",
    default=3,
    type=_DAYS,
    show_default=True,
    help="Closed days of hand-tuned traffic before the last closed day (the champion's).",
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
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    hidden=True,
    help="The clock in UTC (tests): the demo simulates the days closed at this time.",
)
def demo(
    days: int,
    per_day: int,
    seed: int,
    malformed_rate: float,
    workflows: int,
    traces_per_day: int,
    now: datetime | None,
) -> None:
    """Simulate traffic, materialise it through Dagster, and summarise the tables.

    Only closed days are simulated (the last one routed by the champion router), then a memory
    story and a branch experiment; a second run changes no row count (docs/demo.md).
    """
    from aura_assets.demo import tell
    from lakehouse.core import Lakehouse

    settings = Settings.from_env()
    click.echo(f"AURA_HOME {settings.home}")
    started = time.perf_counter()
    for line in tell(
        settings,
        days=days,
        per_day=per_day,
        seed=seed,
        malformed_rate=malformed_rate,
        workflows=workflows,
        traces_per_day=traces_per_day,
        now=now.replace(tzinfo=UTC) if now else None,
    ):
        click.echo(line)
    click.echo("tables")
    lh = Lakehouse(settings)
    _print_tables(lh)
    snap = lh.table("routing_decisions").current_snapshot()
    if snap is not None and snap.summary is not None:
        props = {
            k: v for k, v in snap.summary.additional_properties.items() if k.startswith("aura.")
        }
        click.echo(f"routing_decisions head {snap.snapshot_id}: {json.dumps(props)}")
    click.echo(f"done in {time.perf_counter() - started:.1f}s; `aura ui` shows the runs")


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
