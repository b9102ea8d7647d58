"""``aura maintain`` and ``aura history``: table maintenance and the audit trail."""

import re
from datetime import UTC, timedelta

import click

from lakehouse import Lakehouse, Lineage, maintenance
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

    Runs on TABLE, or on every aura table when none is given.
    """
    lh = Lakehouse()
    names = [table] if table else [spec.name for spec in all_specs()]
    for name in names:
        report = maintenance.maintain(
            lh,
            name,
            branch=branch,
            target_file_bytes=target_mib * 1024 * 1024,
            older_than=parse_duration(older_than),
            retain_last=retain_last,
            orphan_grace=parse_duration(orphan_grace),
            dry_run=dry_run,
            lineage=Lineage(asset="aura-maintain"),
        )
        c, e, o = report.compaction, report.expiry, report.orphans
        click.echo(f"aura.{report.table}{' (dry run: nothing changed)' if dry_run else ''}")
        if c.skipped:
            click.echo(f"  compaction: skipped ({c.skipped})")
        else:
            outcome = "to rewrite" if dry_run else f"-> {c.files_added} file(s)"
            click.echo(
                f"  compaction: {len(c.partitions)} partition(s), "
                f"{sum(p.files_before for p in c.partitions)} small file(s) {outcome}"
            )
        for conflict in c.conflicts:
            click.echo(f"    {conflict.partition}: gave up: {conflict.conflict}")
        click.echo(
            f"  expiry: {len(e.expired_snapshot_ids)} snapshot(s), {e.files_deleted} file(s), "
            f"{_mib(e.bytes_freed)}{' to free' if dry_run else ' freed'}"
        )
        click.echo(
            f"  orphans: {len(o.orphans)} file(s), {_mib(o.bytes_freed)}"
            f"{' to delete' if dry_run else ' deleted'} "
            f"({o.too_young} within the grace period)"
        )
        b, a = report.before, report.after
        if dry_run:  # nothing changed: show the table as it is, not an unchanged "after"
            click.echo(
                f"  now: {b.snapshots} snapshot(s), {b.live_data_files} live file(s), stored "
                f"{b.stored_files} files / {_mib(b.stored_bytes)}"
            )
            continue
        click.echo(
            f"  snapshots {b.snapshots} -> {a.snapshots}, live files {b.live_data_files} -> "
            f"{a.live_data_files}, stored {b.stored_files} files / {_mib(b.stored_bytes)} -> "
            f"{a.stored_files} files / {_mib(a.stored_bytes)}"
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
