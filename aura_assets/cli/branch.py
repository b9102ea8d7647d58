"""``aura branch`` and ``aura tag``: experiments across every aura table, and releases."""

from collections.abc import Sequence
from datetime import UTC, datetime

import click

from lakehouse import Lakehouse
from lakehouse.publish import experiments
from lakehouse.table.refs import RefInfo

DAY_MS = 86_400_000


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _when(value: datetime | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


@click.group("branch")
def branch() -> None:
    """Experiments: one branch across every aura table, diffed and published all or nothing.

    Write to an experiment with AURA_BRANCH=NAME (or the Lakehouse resource's `branch`).
    """


@branch.command("create")
@click.argument("name")
@click.option("--table", "tables", multiple=True, help="Branch only these tables (repeatable).")
@click.option("--description", "-m", help="What the experiment is for.")
def create(name: str, tables: tuple[str, ...], description: str | None) -> None:
    """Branch every aura table at its current main as experiment NAME."""
    exp = experiments.create(Lakehouse(), name, tables=tables or None, description=description)
    click.echo(f"experiment {name}: {len(exp.tables)} tables branched at their main")
    _table([("table", "base snapshot")] + [(t, str(exp.bases[t])) for t in exp.tables])


@branch.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include published and dropped ones.")
def list_(show_all: bool) -> None:
    """List the experiments."""
    found = experiments.list_experiments(Lakehouse(), include_closed=show_all)
    if not found:
        click.echo("no experiments" if show_all else "no open experiments (--all shows closed)")
        return
    rows = [("experiment", "status", "tables", "created", "updated", "tag", "description")]
    for e in found:
        rows.append(
            (
                e.name,
                e.status,
                str(len(e.tables)),
                _when(e.created_at),
                _when(e.updated_at),
                e.tag or "-",
                e.description or "",
            )
        )
    _table(rows)


@branch.command("diff")
@click.argument("name")
@click.option("--no-metrics", is_flag=True, help="Skip reading data for the metrics.")
def diff(name: str, no_metrics: bool) -> None:
    """Per table: snapshots, and rows NAME adds, removes or changes (net, by the table's key)
    since it branched from main; and key metrics.

    Also the days each table holds on NAME and which of them main lacks; a changed table
    without a day another changed table adds is named as incomplete.
    """
    diffs = experiments.diff(Lakehouse(), name, metrics=not no_metrics)
    rows = [
        (
            "table",
            "branch+",
            "main+",
            "rows+",
            "rows-",
            "rows~",
            "main rows",
            "branch rows",
            f"days on {name}",
            "days not on main",
            "publish",
        )
    ]
    for d in diffs:
        if d.main_snapshot_id == d.branch_snapshot_id:
            state = "up to date"
        else:
            state = "fast-forward" if d.fast_forward else "refused: main moved on"
        rows.append(
            (
                d.table,
                str(d.branch_snapshots),
                str(d.main_snapshots),
                str(d.rows_added),
                str(d.rows_removed),
                str(d.rows_changed),
                str(d.main_rows),
                str(d.branch_rows),
                "-" if d.branch_days is None else experiments.day_ranges(d.branch_days),
                "-" if d.branch_days is None else experiments.day_ranges(d.days_only_on_branch),
                state,
            )
        )
    _table(rows)
    _echo_incomplete(name, diffs)
    metric_rows = [("table", "metric", "main", name, "change")]
    for d in diffs:
        if not d.changed:
            continue
        for label, (on_main, on_branch) in d.metrics.items():
            change = "-" if on_main is None or on_branch is None else _num(on_branch - on_main)
            metric_rows.append((d.table, label, _num(on_main), _num(on_branch), change))
    if len(metric_rows) > 1:
        click.echo()
        _table(metric_rows)


def _echo_incomplete(name: str, diffs: Sequence[experiments.TableDiff]) -> None:
    """Name the changed tables that lack a day another changed table adds on the branch."""
    changed = [d for d in diffs if d.changed and d.branch_days is not None]
    added = {day for d in changed for day in d.days_only_on_branch}
    for d in changed:
        missing = sorted(added - set(d.branch_days or ()))
        if missing:
            click.echo(
                f"incomplete: {d.table} on {name} lacks {experiments.day_ranges(missing)}, "
                "which other tables add; materialise it on the branch before publishing"
            )


@branch.command("publish")
@click.argument("name")
@click.option("--tag", help="Tag for the published snapshots (default NAME-published-TIME).")
@click.option(
    "--tag-retention-days", type=click.IntRange(min=1), help="Keep that tag this many days."
)
def publish(name: str, tag: str | None, tag_retention_days: int | None) -> None:
    """Fast-forward every table's main to NAME: all tables or none."""
    results = experiments.publish(
        Lakehouse(),
        name,
        tag=tag,
        tag_max_ref_age_ms=tag_retention_days * DAY_MS if tag_retention_days else None,
        on_table=lambda t: click.echo(f"publishing {t} ...", err=True),
    )
    rows = [("table", "main was", "main now", "tag")]
    for r in results:
        rows.append((r.table, str(r.previous_snapshot_id), str(r.snapshot_id), r.tag or "-"))
    click.echo(f"published experiment {name}")
    _table(rows)


@branch.command("drop")
@click.argument("name")
def drop(name: str) -> None:
    """Remove experiment NAME's branch from every table (main is not touched)."""
    dropped = experiments.drop(Lakehouse(), name)
    click.echo(f"dropped experiment {name} ({len(dropped)} branches removed)")


@click.group("tag")
def tag() -> None:
    """Releases: tag every aura table's current main."""


@tag.command("create")
@click.argument("name")
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    help="Keep the tag this many days (default: ever).",
)
def create_tag(name: str, retention_days: int | None) -> None:
    """Tag every aura table's current main as NAME (a release)."""
    tagged = experiments.tag_release(
        Lakehouse(), name, max_ref_age_ms=retention_days * DAY_MS if retention_days else None
    )
    click.echo(f"tagged {len(tagged)} tables as {name}")
    _table([("table", "snapshot")] + [(t, str(s)) for t, s in sorted(tagged.items())])


@tag.command("list")
def list_tags() -> None:
    """List the tags of every aura table, with their retention."""
    found: list[RefInfo] = experiments.list_tags(Lakehouse())
    if not found:
        click.echo("no tags")
        return
    rows = [("tag", "table", "snapshot", "snapshot time", "expires")]
    for r in sorted(found, key=lambda r: (r.name, r.table)):
        rows.append(
            (
                r.name,
                r.table,
                str(r.snapshot_id),
                _when(r.snapshot_timestamp_ms),
                _when(r.expires_at_ms),
            )
        )
    _table(rows)
