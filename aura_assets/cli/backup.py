"""``aura backup DEST [--incremental]``, ``aura backup verify DEST`` and ``aura restore SRC``."""

import os

import click

from lakehouse import Settings
from lakehouse.maintenance.backup import backup as run_backup
from lakehouse.maintenance.backup import restore as run_restore
from lakehouse.maintenance.backup import verify as run_verify


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


@click.command("backup")
@click.argument("words", nargs=-1, required=True, metavar="[verify] DEST")
@click.option("--incremental", is_flag=True, help="Copy only the files DEST lacks.")
def backup(words: tuple[str, ...], incremental: bool) -> None:
    """Back up every aura table to the directory DEST, or check a backup (`verify DEST`).

    A backup holds the catalog's tables and every file a live snapshot, branch or tag
    references, with a manifest.json of sha256 checksums. `verify` recomputes them and exits
    with status 1 when a file is missing or corrupt.
    """
    if len(words) == 2 and words[0] == "verify":
        _verify(words[1])
        return
    if len(words) != 1:
        raise click.UsageError("give DEST, or `verify DEST`")
    report = run_backup(Settings.from_env(), words[0], incremental=incremental)
    click.echo(
        f"backed up {report.tables} table(s) to {report.dest}: {report.files} file(s), "
        f"{_mib(report.bytes)}; copied {report.copied_files} file(s), "
        f"{_mib(report.copied_bytes)} in {report.seconds:.2f}s"
    )
    for rel in report.changed:
        click.echo(f"  changed since the last backup (copied again): {rel}")


def _verify(dest: str) -> None:
    report = run_verify(dest)
    for rel in report.missing:
        click.echo(f"missing  {rel}")
    for rel in report.corrupt:
        click.echo(f"corrupt  {rel}")
    summary = f"{report.files} file(s), {_mib(report.bytes)}, backup of {report.created_at}"
    if not report.ok:
        click.echo(
            f"FAILED: {len(report.missing)} missing, {len(report.corrupt)} corrupt of {summary}"
        )
        raise SystemExit(1)
    click.echo(f"ok: {summary}")


@click.command("restore")
@click.argument("src")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Restore into this new AURA_HOME (default: the current one, whose catalog must be empty).",
)
def restore(src: str, home: str | None) -> None:
    """Restore the backup in SRC into an empty catalog and warehouse."""
    env = {**os.environ, "AURA_HOME": home} if home else None
    settings = Settings.from_env(env)
    report = run_restore(src, settings)
    click.echo(
        f"restored {len(report.tables)} table(s) ({', '.join(report.tables)}) into "
        f"{report.warehouse}: {report.files} file(s), {_mib(report.bytes)}, "
        f"{report.rewritten} metadata file(s) rebased, in {report.seconds:.2f}s"
    )
    click.echo(f"AURA_HOME={report.home}")
