"""``aura backfill ASSETS --from DAY --to DAY``: one Dagster run per day, with a progress bar."""

from datetime import datetime

import click

from lakehouse.settings import Settings


@click.command("backfill")
@click.argument("assets", nargs=-1, required=True)
@click.option("--from", "first", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "last", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Days run at once, each in its own process (commits to one table still take turns).",
)
def backfill(assets: tuple[str, ...], first: datetime, last: datetime, parallel: int) -> None:
    """Materialise ASSETS (e.g. routing_decisions routing_model_daily) for every day of a range.

    Each day is one run in the Dagster instance (`aura ui` shows them); re-running a range
    changes nothing that is already there.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aura_assets.backfill import BACKFILL_TAG, days_between
    from aura_assets.backfill import backfill as run_backfill

    settings = Settings.from_env()
    total = len(days_between(first.date(), last.date()))
    failed = None
    tag = ""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("backfill", total=total)
        for run in run_backfill(settings, assets, first.date(), last.date(), parallel):
            progress.update(task, advance=1, description=f"{run.day}")
            tag = f"{BACKFILL_TAG}={run.backfill_id}"
            if not run.success:
                failed = run
    if failed is not None:
        raise click.ClickException(
            f"{failed.day}: run {failed.run_id} failed; later days not run (see `aura ui`)"
        )
    click.echo(
        f"backfilled {', '.join(assets)} for {total} day(s), "
        f"{first:%Y-%m-%d} .. {last:%Y-%m-%d} (runs tagged {tag})"
    )
