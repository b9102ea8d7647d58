"""``aura backup DEST [--incremental]``, ``aura backup verify DEST`` and ``aura restore SRC``."""

import os

import click

from lakehouse import Settings
from lakehouse.maintenance.backup import backup as run_backup
from lakehouse.maintenance.backup import restore as run_restore
from lakehouse.maintenance.backup import verify as run_verify


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


_DIGEST = click.option(
    "--expect-digest",
    metavar="sha256:HEX",
    help="The digest `aura backup` printed: refuse the backup unless its manifest still has it.",
)


@click.command("backup")
@click.argument("words", nargs=-1, required=True, metavar="[verify] DEST")
@click.option("--incremental", is_flag=True, help="Copy only the files DEST lacks.")
@_DIGEST
def backup(words: tuple[str, ...], incremental: bool, expect_digest: str | None) -> None:
    """Back up every aura table to DEST (a directory or s3:// prefix), or check it (`verify`).

    DEST is a local directory or an s3://BUCKET/PREFIX (the warehouse's AURA_S3_ENDPOINT and
    AWS_* keys; outside the warehouse's prefix).

    A backup holds the catalog's tables and every file a live snapshot, branch or tag
    references, with a manifest.json of sha256 checksums (signed when AURA_BACKUP_KEY is set).
    An incremental backup deletes the files the new manifest no longer lists (erased data).
    `verify` recomputes the checksums, checks paths, names and the signature, and exits with
    status 1 when anything is wrong. (To back up into a directory named `verify`, write
    `./verify`.)
    """
    if words[0] == "verify":
        if len(words) != 2:
            raise click.UsageError("give the backup to check: `aura backup verify DEST`")
        _verify(words[1], expect_digest)
        return
    if len(words) != 1:
        raise click.UsageError("give DEST, or `verify DEST`")
    if expect_digest:
        raise click.UsageError("--expect-digest goes with `aura backup verify DEST`")
    report = run_backup(Settings.from_env(), words[0], incremental=incremental)
    click.echo(
        f"backed up {report.tables} table(s) to {report.dest}: {report.files} file(s), "
        f"{_mib(report.bytes)}; copied {report.copied_files} file(s), "
        f"{_mib(report.copied_bytes)} in {report.seconds:.2f}s"
    )
    state = report.state
    click.echo(
        f"  with {state.hot_memories} hot and {state.warm_memories} warm memories, "
        f"{state.spooled_memories} spooled, {state.hot_checkpoints} hot checkpoint(s)"
    )
    for rel in report.changed:
        click.echo(f"  changed since the last backup (copied again): {rel}")
    if report.removed_files or report.removed_manifests:
        click.echo(
            f"  removed {report.removed_files} file(s) and {report.removed_manifests} older "
            "manifest(s) the new manifest no longer lists"
        )
    signed = "signed with AURA_BACKUP_KEY" if report.signed else "unsigned (no AURA_BACKUP_KEY)"
    click.echo(f"manifest {report.digest}, {signed}; keep the digest to check the backup later")


def _verify(dest: str, expect_digest: str | None) -> None:
    settings = Settings.from_env()
    report = run_verify(
        dest,
        key=settings.backup_key,
        expect_digest=expect_digest,
        properties=settings.s3_properties(),
    )
    for rel in report.missing:
        click.echo(f"missing  {rel}")
    for rel in report.corrupt:
        click.echo(f"corrupt  {rel}")
    for problem in report.unsafe:
        click.echo(f"unsafe  {problem}")
    for rel in report.unlisted:
        click.echo(f"unlisted  {rel} (the next `aura backup DEST --incremental` removes it)")
    if report.untrusted:
        click.echo(f"untrusted  {report.untrusted}")
    summary = (
        f"{report.files} file(s), {_mib(report.bytes)}, backup of {report.created_at}, "
        f"{report.signature}, manifest {report.digest}"
    )
    if not report.ok:
        click.echo(
            f"FAILED: {len(report.missing)} missing, {len(report.corrupt)} corrupt, "
            f"{len(report.unsafe)} unsafe, {len(report.unlisted)} unlisted"
            f"{', untrusted' if report.untrusted else ''} of {summary}"
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
@_DIGEST
def restore(src: str, home: str | None, expect_digest: str | None) -> None:
    """Restore the backup in SRC (a directory or s3:// prefix) into an empty catalog.

    Nothing in SRC is trusted: paths, names, checksums, the tables' own metadata and the
    signature (AURA_BACKUP_KEY) or --expect-digest are checked before anything is written.
    Until the restore finishes every command refuses the home; running the same restore again
    starts it over.
    """
    env = {**os.environ, "AURA_HOME": home} if home else None
    settings = Settings.from_env(env)
    report = run_restore(src, settings, expect_digest=expect_digest)
    if report.started_over:
        click.echo("an unfinished restore of this backup was undone first")
    click.echo(
        f"restored {len(report.tables)} table(s) ({', '.join(report.tables)}) into "
        f"{report.warehouse}: {report.files} file(s), {_mib(report.bytes)}, "
        f"{report.rewritten} metadata file(s) rebased, in {report.seconds:.2f}s"
    )
    state = report.state
    click.echo(
        f"  {state.warm_memories} memories into the warm tier, {state.spooled_memories} into "
        f"the spool (replayed into Redis), {state.hot_checkpoints} hot checkpoint(s)"
    )
    if report.signature != "signed" and not expect_digest:
        click.echo(
            "warning: the backup is unsigned and no --expect-digest was given, so a consistent "
            "rewrite of it could not be detected (docs/backup.md)"
        )
    click.echo(f"AURA_HOME={report.home}")
