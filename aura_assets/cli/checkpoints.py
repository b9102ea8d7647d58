"""``aura checkpoints``: the history of a LangGraph thread, hot and archived, and its restore."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from langchain_core.runnables import RunnableConfig

from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import (
    AuraCheckpointSaver,
    restore_thread,
)
from lakehouse.exceptions import AuraError


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AuraError(
            f"--as-of {value!r} is not an ISO time; use e.g. 2026-11-20T14:00:00 (UTC) or "
            "2026-11-20T14:00:00+01:00"
        ) from None
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise AuraError(
            f"--as-of {value!r} is outside the times a checkpoint can have (years 1..9999 in UTC); "
            "use a later time"
        ) from None


@click.group("checkpoints")
def checkpoints() -> None:
    """LangGraph workflow checkpoints: hot store plus Iceberg archive."""


@checkpoints.command("show")
@click.argument("thread")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Newest N checkpoints.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per checkpoint.")
def show(thread: str, limit: int, as_json: bool) -> None:
    """List THREAD's checkpoints, newest first, and whether each is hot or archived."""
    settings = Settings.from_env()
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    with AuraCheckpointSaver.from_settings(settings, archive=False) as hot_saver:
        hot = {t.config["configurable"]["checkpoint_id"] for t in hot_saver.list(config)}
    with AuraCheckpointSaver.from_settings(settings) as saver:
        history = list(saver.list(config, limit=limit))
    if not history:
        raise AuraError(f"thread {thread!r} has no checkpoints, hot or archived")
    rows = []
    for t in history:
        conf = t.config["configurable"]
        rows.append(
            {
                "checkpoint_id": conf["checkpoint_id"],
                "ns": conf.get("checkpoint_ns", ""),
                "ts": t.checkpoint["ts"],
                "step": t.metadata.get("step"),
                "source": t.metadata.get("source"),
                "writes": len(t.pending_writes or []),
                "where": "hot" if conf["checkpoint_id"] in hot else "archive",
                "parent": (t.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
            }
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo(f"{'checkpoint_id':38} {'ts':32} {'step':>4} {'source':7} {'writes':>6} where  ns")
    for r in rows:
        click.echo(
            f"{r['checkpoint_id']:38} {r['ts']:32} {r['step']!s:>4} {r['source']!s:7} "
            f"{r['writes']:>6} {r['where']:6} {r['ns']}"
        )


@checkpoints.command("restore")
@click.argument("thread")
@click.option(
    "--as-of",
    "as_of",
    metavar="TIME",
    help="Restore the state as of this ISO time (UTC unless it has an offset).",
)
def restore(thread: str, as_of: str | None) -> None:
    """Rehydrate THREAD's archived checkpoints into the hot store so its graph can resume."""
    settings = Settings.from_env()
    when = _parse_time(as_of) if as_of else None
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        config = restore_thread(Lakehouse(settings), saver, thread, as_of=when)
    if config is None:
        suffix = f" at or before {when.isoformat()}" if when else ""
        raise AuraError(f"the archive holds no checkpoint of thread {thread!r}{suffix}")
    conf = config["configurable"]
    click.echo(f"restored thread {thread!r}; resume from checkpoint {conf['checkpoint_id']}")
    click.echo(json.dumps(config))


@checkpoints.command("archive")
@click.option(
    "--day",
    "day_",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="UTC day to archive (default today).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=None,
    help="Then trim the hot store to the last N checkpoints per thread.",
)
@click.option(
    "--max-age-days",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Then trim hot checkpoints older than this many days.",
)
def archive(day_: datetime | None, keep_last: int | None, max_age_days: float | None) -> None:
    """Archive one day of checkpoints into Iceberg, then optionally trim the hot store.

    Runs as a Dagster run of ``checkpoint_archive`` for the day (`aura ui` shows it).
    """
    from aura_assets.checkpoints.assets import BLOBS_KEY, CHECKPOINTS_KEY, WRITES_KEY
    from aura_assets.launch import CLI_TAG, launch

    settings = Settings.from_env()
    day = day_.date() if day_ else datetime.now(UTC).date()
    trim = keep_last is not None or max_age_days is not None
    config = {"trim": trim, "keep_last": keep_last, "max_age_days": max_age_days}
    outcome = launch(
        settings,
        "checkpoint_archive",
        day.isoformat(),
        run_config={"ops": {"workflow_checkpoints": {"config": config}}},
        tags={CLI_TAG: "checkpoints archive"},
    )
    if not outcome.success:
        raise AuraError(
            f"checkpoint_archive run {outcome.run_id} for {day} failed: `aura ui` shows why"
        )
    meta = {key: outcome.metadata["/".join(key.path)] for key in (CHECKPOINTS_KEY, WRITES_KEY)}
    blobs, first = outcome.metadata["/".join(BLOBS_KEY.path)], meta[CHECKPOINTS_KEY]
    click.echo(
        f"{day}: archived {first['rows_added']} checkpoints, {meta[WRITES_KEY]['rows_added']} "
        f"writes, {blobs['rows_added']} blobs ({first['archive/bytes_added']} bytes for "
        f"{first['archive/raw_bytes']} raw) by run {outcome.run_id}"
    )
    if trim:
        click.echo(
            f"trimmed {first.get('hot/trimmed', 0)} hot checkpoints "
            f"({first.get('hot/kept_not_archived', 0)} not yet archived were kept)"
        )
