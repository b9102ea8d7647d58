"""Compaction: rewrite a partition's small data files into files near a target size.

Invariants:

- One partition (day) at a time, one input file at a time: a file is read with pyarrow batch
  reading and its rows streamed into the current output Parquet file, so memory holds at most
  one small input file plus one row-group buffer, never a whole partition or table.
- Each partition commits ONE ``overwrite`` snapshot on the branch that removes exactly the files
  it read and adds the files it wrote: the rows are identical. Its summary carries
  ``aura.operation=compact`` and the lineage given.
- The commit asserts the branch head it was built on (``AssertRefSnapshotId``). When another
  writer committed meanwhile, the plan is checked again on the new head: if every rewritten file
  is still live (the other writer only appended), the same rewrite commits on the new head; if any
  is gone (it was overwritten or deleted), the partition is given up, the written files are
  deleted and the conflict is reported. Nothing a concurrent writer committed is ever lost.
- Branches and tags keep pointing at their snapshots: only ``branch`` moves, by one snapshot.
- Files that carry delete files are left alone (their rows depend on those deletes).

pyiceberg 0.12 has no rewrite action; this uses its snapshot producer (``update_snapshot()
.overwrite()`` with ``delete_data_file`` / ``append_data_file``) and its Parquet writer.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import ArrowScan, _to_requested_schema
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import FileScanTask, Table
from pyiceberg.typedef import Record

from lakehouse.exceptions import RefError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table import refs

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_TARGET_FILE_BYTES = 32 * MIB
COMPACT_RETRIES = 6
_ROW_GROUP_BUFFER_BYTES = 64 * MIB  # Arrow bytes buffered before a row group is written
OPERATION_PROPERTY = "aura.operation"
COMPACT_OPERATION = "compact"


@dataclass(frozen=True)
class CompactionGroup:
    """The small files of one partition that one commit rewrites."""

    partition: str
    spec_id: int
    files: tuple[DataFile, ...]

    @property
    def bytes(self) -> int:
        return sum(f.file_size_in_bytes for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.record_count for f in self.files)


@dataclass
class PartitionResult:
    """What compaction did to one partition."""

    partition: str
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rows: int
    snapshot_id: int | None = None
    conflict: str | None = None


@dataclass
class CompactionReport:
    """Outcome of :func:`compact` on one table and branch."""

    table: str
    branch: str
    dry_run: bool
    target_file_bytes: int
    partitions: list[PartitionResult] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was planned (the table has no such branch)

    @property
    def files_removed(self) -> int:
        return sum(p.files_before for p in self.partitions if p.conflict is None)

    @property
    def files_added(self) -> int:
        return sum(p.files_after for p in self.partitions if p.conflict is None)

    @property
    def bytes_rewritten(self) -> int:
        return sum(p.bytes_before for p in self.partitions if p.conflict is None)

    @property
    def conflicts(self) -> list[PartitionResult]:
        return [p for p in self.partitions if p.conflict is not None]


def partition_label(table: Table, spec_id: int, partition: Record) -> str:
    """``ts_day=2026-11-20`` for a day partition; ``""`` for an unpartitioned table."""
    spec = table.metadata.specs()[spec_id]
    if not spec.fields:
        return ""
    return spec.partition_to_path(partition, table.schema())


def _live_tasks(table: Table, branch: str) -> list[FileScanTask]:
    snapshot_id = refs.head(table, branch)
    if snapshot_id is None:
        return []
    return list(table.scan(snapshot_id=snapshot_id).plan_files())


def small_file_counts(
    table: Table, *, branch: str = MAIN_BRANCH, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
) -> dict[str, int]:
    """Number of data files below the target size per partition (``""``: unpartitioned)."""
    counts: dict[str, int] = {}
    for task in _live_tasks(table, branch):
        if task.file.file_size_in_bytes < target_file_bytes:
            label = partition_label(table, task.file.spec_id, task.file.partition)
            counts[label] = counts.get(label, 0) + 1
    return counts


def plan(
    table: Table,
    *,
    branch: str = MAIN_BRANCH,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    min_files: int = 2,
) -> list[CompactionGroup]:
    """Groups of small files to rewrite: per partition, only where at least ``min_files``."""
    by_partition: dict[tuple[int, str], list[DataFile]] = {}
    for task in _live_tasks(table, branch):
        data = task.file
        if data.content != DataFileContent.DATA or data.file_format != FileFormat.PARQUET:
            continue
        if task.delete_files or data.file_size_in_bytes >= target_file_bytes:
            continue
        label = partition_label(table, data.spec_id, data.partition)
        by_partition.setdefault((data.spec_id, label), []).append(data)
    groups = []
    for (spec_id, label), files in sorted(by_partition.items(), key=lambda kv: kv[0][1]):
        if len(files) >= max(min_files, 2):
            files.sort(key=lambda f: f.file_path)
            groups.append(CompactionGroup(label, spec_id, tuple(files)))
    return groups


def compact_table(
    table: Table,
    *,
    branch: str = MAIN_BRANCH,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    min_files: int = 2,
    dry_run: bool = False,
    properties: dict[str, str] | None = None,
    on_rewritten: Callable[[CompactionGroup], None] | None = None,
) -> CompactionReport:
    """Compact the small files of every partition of ``branch`` (see the module docstring).

    Args:
        table: The Iceberg table.
        branch: The branch to compact; its tags and other branches are untouched.
        target_file_bytes: Files below this size are rewritten into files of about this size.
        min_files: A partition is rewritten only when it has at least this many small files.
        dry_run: Only plan and report.
        properties: Lineage properties for the snapshot summaries (``aura.*``).
        on_rewritten: Called after a partition's new files are written, before its commit
            (progress reporting).

    Raises:
        RefError: ``branch`` is a tag or does not exist.
    """
    started = time.perf_counter()
    table.refresh()
    ref = table.metadata.refs.get(branch)
    if ref is None or ref.snapshot_ref_type.value != "branch":
        raise RefError(
            f"{'.'.join(table.name())} has no branch {branch!r} to compact; "
            "`aura branch list` shows the branches"
        )
    report = CompactionReport(".".join(table.name()), branch, dry_run, target_file_bytes)
    for group in plan(
        table, branch=branch, target_file_bytes=target_file_bytes, min_files=min_files
    ):
        if dry_run:
            report.partitions.append(
                PartitionResult(group.partition, len(group.files), 0, group.bytes, 0, group.rows)
            )
            continue
        report.partitions.append(
            _compact_group(table, group, branch, target_file_bytes, properties or {}, on_rewritten)
        )
    report.seconds = time.perf_counter() - started
    return report


def _compact_group(
    table: Table,
    group: CompactionGroup,
    branch: str,
    target_file_bytes: int,
    properties: dict[str, str],
    on_rewritten: Callable[[CompactionGroup], None] | None,
) -> PartitionResult:
    written: list[DataFile] = []
    try:
        for data_file in _rewrite(table, group, target_file_bytes):
            written.append(data_file)
    except BaseException:
        _discard(table, written)
        raise
    rows_out = sum(f.record_count for f in written)
    if rows_out != group.rows:  # never commit a rewrite that lost or invented rows
        _discard(table, written)
        raise RuntimeError(
            f"compaction of {group.partition or 'the table'} read {group.rows} rows but wrote "
            f"{rows_out}; nothing was committed"
        )
    result = PartitionResult(
        group.partition,
        len(group.files),
        len(written),
        group.bytes,
        sum(f.file_size_in_bytes for f in written),
        group.rows,
    )
    if on_rewritten is not None:
        on_rewritten(group)
    props = {
        **properties,
        OPERATION_PROPERTY: COMPACT_OPERATION,
        "aura.commit": uuid.uuid4().hex,
        "aura.compacted-files": str(len(group.files)),
    }
    if group.partition:
        props.setdefault("aura.partition", group.partition)
    for attempt in range(1, COMPACT_RETRIES + 1):
        table.refresh()
        live = {t.file.file_path: t.file for t in _live_tasks(table, branch)}
        gone = [f.file_path for f in group.files if f.file_path not in live]
        if gone:
            _discard(table, written)
            result.conflict = (
                f"{len(gone)} of the {len(group.files)} files being compacted were removed by a "
                "concurrent commit; the partition was left as that commit made it (run again)"
            )
            result.files_after = 0
            log.warning("compaction of %s gave up: %s", group.partition, result.conflict)
            return result
        try:
            old = [live[f.file_path] for f in group.files]
            refs.as_commit_conflict(lambda: _commit(table, branch, old, written, props))  # noqa: B023
        except CommitFailedException as exc:
            log.info("compaction of %s lost a race (attempt %d): %s", group.partition, attempt, exc)
            time.sleep(min(0.05 * 2**attempt, 1.0))
            continue
        table.refresh()
        result.snapshot_id = refs.head(table, branch)
        return result
    _discard(table, written)
    result.conflict = f"the branch kept moving during {COMPACT_RETRIES} commit attempts; run again"
    result.files_after = 0
    return result


def _commit(
    table: Table,
    branch: str,
    old: list[DataFile],
    new: list[DataFile],
    props: dict[str, str],
) -> None:
    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties=props, branch=branch).overwrite() as overwrite:
        for data_file in old:
            overwrite.delete_data_file(data_file)
        for data_file in new:
            overwrite.append_data_file(data_file)
    tx.commit_transaction()


def _discard(table: Table, files: list[DataFile]) -> None:
    for data_file in files:
        with contextlib.suppress(FileNotFoundError):
            table.io.delete(data_file.file_path)


def _rewrite(table: Table, group: CompactionGroup, target_file_bytes: int) -> Iterator[DataFile]:
    """Stream the group's files into new files; a new file starts when the target is reached."""
    metadata = table.metadata
    schema = metadata.schema()
    format_model = FileFormatFactory.get(FileFormat.PARQUET)
    scan = ArrowScan(metadata, table.io, schema, AlwaysTrue())
    directory = posixpath.dirname(group.files[0].file_path)
    write_id = uuid.uuid4()
    bins: list[list[DataFile]] = [[]]
    size = 0
    for data_file in group.files:  # bin-pack by on-disk size: output size ~ sum of inputs
        if bins[-1] and size + data_file.file_size_in_bytes > target_file_bytes:
            bins.append([])
            size = 0
        bins[-1].append(data_file)
        size += data_file.file_size_in_bytes
    for number, files in enumerate(bins):
        path = f"{directory}/compact-{number:05d}-{write_id}.parquet"
        output = table.io.new_output(path)
        writer = format_model.create_writer(output, schema, metadata.properties)
        buffer: list[pa.RecordBatch] = []
        buffered = 0
        written = False
        try:
            for data_file in files:
                for batch in scan.to_record_batches([FileScanTask(data_file)]):
                    buffer.append(
                        _to_requested_schema(
                            requested_schema=schema,
                            file_schema=schema,
                            batch=batch,
                            include_field_ids=True,
                            format_model=format_model,
                        )
                    )
                    buffered += batch.nbytes
                    if buffered >= _ROW_GROUP_BUFFER_BYTES:
                        writer.write(pa.Table.from_batches(buffer))
                        buffer, buffered, written = [], 0, True
            if buffer:
                writer.write(pa.Table.from_batches(buffer))
                written = True
        finally:
            stats = writer.close() if written else None
        if stats is None:  # the bin held no rows: nothing to write
            continue
        yield DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=files[0].partition,
            file_size_in_bytes=len(output),
            sort_order_id=None,
            spec_id=group.spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )
