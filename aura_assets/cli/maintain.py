"""``aura maintain`` and ``aura history``: table maintenance and the audit trail."""

import re
from datetime import UTC, timedelta
from typing import Any

import click

from lakehouse import Lakehouse, Settings, maintenance
from lakehouse.table.registry import all_specs

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``3d``, ``1w`` (or ``0``) as a timedelta."""
    if text.strip() == "0":
        return timedelta(0)
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration; use e.g. 30m, 12h, 3d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


@click.command("maintain")
@click.argument("table", required=False)
@click.option("--dry-run", is_flag=True, help="Only report what would change.")
@click.option(
    "--orphan-grace",
    default="3d",
    show_default=True,
    help="Unreferenced files younger than this are kept (in-flight writes).",
)
@click.option(
    "--older-than", default="7d", show_default=True, help="Snapshots younger are never expired."
)
@click.option("--retain-last", default=5, show_default=True, help="Snapshots kept per branch.")
@click.option("--branch", default="main", show_default=True, help="Branch to compact.")
@click.option("--target-mib", default=32, show_default=True, help="Target data file size.")
def maintain(
    table: str | None,
    dry_run: bool,
    orphan_grace: str,
    older_than: str,
    retain_last: int,
    branch: str,
    target_mib: int,
) -> None:
    """Compact small files, expire snapshots (freeing their files) and remove orphan files.

    Runs on TABLE, or on every aura table when none is given. The real run is a Dagster run of
    ``table_maintenance`` (its commits carry the run id; `aura ui` shows it); ``--dry-run``
    commits nothing and runs here.
    """
    names = [table] if table else [spec.name for spec in all_specs()]
    expire_before, grace = parse_duration(older_than), parse_duration(orphan_grace)
    if not dry_run:
        for figures in _launch(names, branch, target_mib, expire_before, retain_last, grace):
            _echo_report(figures)
        return
    lh = Lakehouse()
    for name in names:
        report = maintenance.maintain(
            lh,
            name,
            branch=branch,
            target_file_bytes=target_mib * 1024 * 1024,
            older_than=expire_before,
            retain_last=retain_last,
            orphan_grace=grace,
            dry_run=True,
        )
        _echo_report(report.as_dict())


def _launch(
    names: list[str],
    branch: str,
    target_mib: int,
    older_than: timedelta,
    retain_last: int,
    orphan_grace: timedelta,
) -> list[dict[str, Any]]:
    """Run ``table_maintenance`` on ``names``; each table's figures from the run's metadata."""
    from aura_assets.launch import CLI_TAG, launch

    config = {
        "tables": names,
        "branch": branch,
        "target_mib": target_mib,
        "older_than_hours": older_than.total_seconds() / 3600,
        "retain_last": retain_last,
        "orphan_grace_hours": orphan_grace.total_seconds() / 3600,
    }
    outcome = launch(
        Settings.from_env(),
        "table_maintenance",
        run_config={"ops": {"maintain_tables_op": {"config": config}}},
        tags={CLI_TAG: "maintain"},
    )
    if not outcome.success:
        raise click.ClickException(
            f"table_maintenance run {outcome.run_id} failed: `aura ui` shows why"
        )
    meta = outcome.metadata["maintain_tables_op"]
    click.echo(f"table_maintenance run {outcome.run_id}")
    return [meta[name] for name in names]


def _echo_report(f: dict[str, Any]) -> None:
    """One table's maintenance figures (``MaintenanceReport.as_dict``) as a few lines."""
    dry_run = bool(f["dry_run"])
    click.echo(f"aura.{f['table']}{' (dry run)' if dry_run else ''}")
    outcome = "to rewrite" if dry_run else f"-> {f['compaction.files_added']} file(s)"
    click.echo(
        f"  compaction: {f['compaction.partitions']} partition(s), "
        f"{f['compaction.files_removed']} small file(s) {outcome}"
    )
    if f["compaction.conflicts"]:
        click.echo(f"    gave up on {f['compaction.conflicts']} partition(s): a writer was first")
    click.echo(
        f"  expiry: {f['expiry.snapshots_expired']} snapshot(s), {f['expiry.files_deleted']} "
        f"file(s), {_mib(f['expiry.bytes_freed'])}{' to free' if dry_run else ' freed'}"
    )
    click.echo(
        f"  orphans: {f['orphans.files']} file(s), {_mib(f['orphans.bytes'])}"
        f"{' to delete' if dry_run else ' deleted'} ({f['orphans.too_young']} within the grace "
        "period)"
    )
    click.echo(
        f"  snapshots {f['before.snapshots']} -> {f['after.snapshots']}, live files "
        f"{f['before.live_data_files']} -> {f['after.live_data_files']}, stored "
        f"{f['before.stored_files']} files / {_mib(f['before.stored_bytes'])} -> "
        f"{f['after.stored_files']} files / {_mib(f['after.stored_bytes'])}"
    )


@click.command("history")
@click.argument("table")
@click.option("--ref", help="Only this branch's or tag's ancestry.")
def history(table: str, ref: str | None) -> None:
    """Every snapshot of TABLE: time, operation, lineage and row/file deltas."""
    entries = maintenance.history(Lakehouse(), table, ref)
    rows = [
        (
            "committed (UTC)",
            "snapshot",
            "operation",
            "asset",
            "partition",
            "run",
            "code",
            "rows +/-",
            "files +/-",
            "total rows",
            "refs",
        )
    ]
    for e in entries:
        op = e.operation + (f"/{e.aura_operation}" if e.aura_operation else "")
        rows.append(
            (
                e.committed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                str(e.snapshot_id),
                op,
                e.asset or "-",
                e.partition or "-",
                e.run_id or "-",
                e.code_version or "-",
                f"+{e.added_rows}/-{e.deleted_rows}",
                f"+{e.added_files}/-{e.deleted_files}",
                "-" if e.total_rows is None else str(e.total_rows),
                ",".join(e.refs),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
