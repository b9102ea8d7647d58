"""Keyed day merge of a stream of record batches, in memory bounded by a row group and the keys.

:func:`lakehouse.table.writer.merge_day` reads the day whole, merges and rewrites it: the day is
in memory several times over (2.5 GB at 10M decisions). :func:`merge_day_batches` gives the
same result, one new snapshot holding the day's rows plus the incoming rows whose key is new
(the existing row is kept; among incoming rows the first of a key wins), without holding it:

1. Each incoming batch is conformed, checked to lie in the day and written into staged Parquet
   files of the day's partition (a row group per ~64 MB, a new file at the table's target file
   size); one 64-bit hash of each row's key is kept (8 bytes a row).
2. The key column of the day at the branch head is read, batch by batch, and hashed.
3. When no hash repeats, no key repeats: the staged files are committed as they are by one fast
   append that asserts the head read in step 2. Otherwise the keys themselves (key columns
   only) decide which staged rows stay, and the staged files holding the others are rewritten
   one row group at a time before the commit.

Invariants: the existing files of the day are never rewritten (the merge only adds rows); the
commit asserts the head whose keys were checked, and a lost race reads the keys again and
decides again on the same staged files, so a merge decided on a stale read is never
committed; a failed merge deletes its staged files and leaves the previous snapshot as it
was. Rows are sorted by the spec's ``sort_by`` within each row group only (compaction sorts
across files).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io import OutputFile
from pyiceberg.io.fileformat import FileFormatFactory, FileFormatWriter
from pyiceberg.io.pyarrow import _to_requested_schema, pyarrow_to_schema
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionKey
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.utils.properties import property_as_int

from lakehouse.table import refs
from lakehouse.table.registry import TableSpec
from lakehouse.table.retry import DEFAULT, RetryPolicy
from lakehouse.table.writer import (
    Lineage,
    TableSource,
    WriteResult,
    _key_series,
    _single_partition_key,
    check_within_day,
    conform,
    day_filter,
    merge_day,
)

log = logging.getLogger(__name__)

MIB = 1 << 20
_ROW_GROUP_BYTES = 64 * MIB  # Arrow bytes buffered before a row group is written


class StreamMergeResult(NamedTuple):
    """Outcome of :func:`merge_day_batches`: rows added, the write (None: nothing new) and the
    rows the day holds at the branch head afterwards."""

    added: int
    write: WriteResult | None
    rows_in_day: int


@dataclass
class _Staged:
    """One staged data file and the number of rows it holds, in stream order."""

    data_file: DataFile
    rows: int


@dataclass
class _Stage:
    """Staged files of one merge and the key hash of every row they hold, in stream order."""

    files: list[_Staged] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)  # one array per row group

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def discard(self, table: Table) -> None:
        for staged in self.files:
            with contextlib.suppress(FileNotFoundError):
                table.io.delete(staged.data_file.file_path)
        self.files = []


def merge_day_batches(
    spec: TableSpec,
    lh_or_table: TableSource | Table,
    batches: Iterable[pa.RecordBatch],
    day: date,
    lineage: Lineage,
    branch: str,
    *,
    policy: RetryPolicy = DEFAULT,
) -> StreamMergeResult:
    """Merge a stream of batches into ``day`` of ``branch``, keyed on ``spec.key``; one commit.

    The same merge as :func:`~lakehouse.table.writer.merge_day` (see the module docstring for
    how memory stays bounded). A table whose partitioning is not a single day field, or that
    merges manifests on append, takes ``merge_day`` on the batches gathered in memory.

    Raises:
        ValidationError: a batch does not fit the table or has rows outside ``day``.
        ConfigurationError: the table is unpartitioned.
        CommitConflictError: the day kept changing under every attempt.
    """
    spec.require_time_column("day partitions")
    table = lh_or_table if isinstance(lh_or_table, Table) else lh_or_table.table(spec.name)
    refs.ensure_branch(table, branch)
    stream = iter(batches)
    first = _first_rows(spec, table, stream, day)
    if first is None:
        return StreamMergeResult(0, None, _rows_in_day(spec, table, branch, day))
    key = _single_partition_key(table, first)
    merging = table.properties.get(TableProperties.MANIFEST_MERGE_ENABLED, "false") == "true"
    if key is None or merging:
        rest = [conform(spec, table, pa.Table.from_batches([b])) for b in stream]
        whole = pa.concat_tables([first, *rest], promote_options="permissive")
        merged = merge_day(spec, table, whole, day, lineage, branch, policy=policy)
        return StreamMergeResult(merged.added, merged.write, merged.rows.num_rows)
    stage = _Stage()
    committed = False
    try:
        _write_stage(spec, table, key, _conformed(spec, table, first, stream, day), stage)

        def attempt() -> StreamMergeResult:
            head = refs.head(table, branch)
            keep = _keep_mask(spec, table, stage, head, day)
            if keep is not None:
                _apply_mask(table, key, stage, keep)
            added = stage.rows
            if not added:
                return StreamMergeResult(0, None, _rows_in_day(spec, table, branch, day))
            _append(table, branch, head, stage, lineage.properties())
            return StreamMergeResult(
                added,
                WriteResult(spec.name, branch, added, refs.head(table, branch), "append"),
                _rows_in_day(spec, table, branch, day),
            )

        def refresh() -> None:
            table.refresh()
            log.info("%s %s changed while merging; reading the day's keys again", spec.name, day)

        result = policy.run(
            attempt, on_conflict=refresh, what=f"streamed merge of {spec.name} {day}"
        )
        committed = result.write is not None
        return result
    finally:
        if not committed:
            stage.discard(table)


def _rows_in_day(spec: TableSpec, table: Table, branch: str, day: date) -> int:
    """Rows of ``day`` at the head of ``branch``, from the manifests (the day is a partition)."""
    head = refs.head(table, branch)
    if head is None:
        return 0
    scan = table.scan(row_filter=day_filter(spec, day), snapshot_id=head)
    return sum(task.file.record_count for task in scan.plan_files())


def _first_rows(
    spec: TableSpec, table: Table, stream: Iterator[pa.RecordBatch], day: date
) -> pa.Table | None:
    """The first non-empty batch, conformed and checked (None when the stream is empty)."""
    for batch in stream:
        if batch.num_rows:
            rows = conform(spec, table, pa.Table.from_batches([batch]))
            check_within_day(spec, rows, day)
            return rows
    return None


def _conformed(
    spec: TableSpec, table: Table, first: pa.Table, stream: Iterator[pa.RecordBatch], day: date
) -> Iterator[pa.Table]:
    yield first
    for batch in stream:
        if batch.num_rows:
            rows = conform(spec, table, pa.Table.from_batches([batch]))
            check_within_day(spec, rows, day)
            yield rows


class _FileWriter:
    """Staged Parquet files of one partition: a row group per buffer, a new file at the target."""

    def __init__(self, table: Table, key: PartitionKey, stage: _Stage) -> None:
        self.table, self.key, self.stage = table, key, stage
        metadata = table.metadata
        self.schema = metadata.schema()
        self.format = FileFormatFactory.get(FileFormat.PARQUET)
        self.locations = load_location_provider(metadata.location, metadata.properties)
        self.target = (
            property_as_int(metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES)
            or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
        )
        self.write_id = uuid.uuid4()
        self.number = 0
        self.writer: FileFormatWriter | None = None
        self.output: OutputFile | None = None
        self.path = ""
        self.file_bytes = self.file_rows = 0

    def write(self, rows: pa.Table) -> None:
        """Write ``rows`` (table-conformed) as one row group, rolling to a new file first."""
        if self.writer is None:
            self.path = self.locations.new_data_location(
                data_file_name=f"00000-{self.number}-{self.write_id}.parquet",
                partition_key=self.key,
            )
            self.number += 1
            self.output = self.table.io.new_output(self.path)
            self.writer = self.format.create_writer(
                self.output, self.schema, self.table.metadata.properties
            )
        file_schema = pyarrow_to_schema(
            rows.schema,
            name_mapping=self.schema.name_mapping,
            format_version=self.table.metadata.format_version,
        )
        batches = [
            _to_requested_schema(
                requested_schema=self.schema,
                file_schema=file_schema,
                batch=batch,
                include_field_ids=True,
                format_model=self.format,
            )
            for batch in rows.to_batches()
        ]
        self.writer.write(pa.Table.from_batches(batches))
        self.file_bytes += rows.nbytes
        self.file_rows += rows.num_rows
        if self.file_bytes >= self.target:
            self.close()

    def close(self) -> None:
        if self.writer is None:
            return
        stats = self.writer.close()
        self.writer = None
        assert self.output is not None
        data_file = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=self.path,
            file_format=FileFormat.PARQUET,
            partition=self.key.partition,
            file_size_in_bytes=len(self.output),
            sort_order_id=None,
            spec_id=self.table.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )
        self.stage.files.append(_Staged(data_file, self.file_rows))
        self.file_bytes = self.file_rows = 0


def _write_stage(
    spec: TableSpec, table: Table, key: PartitionKey, chunks: Iterable[pa.Table], stage: _Stage
) -> None:
    """Write ``chunks`` into staged files, hashing each row's key (the stream is read once)."""
    writer = _FileWriter(table, key, stage)
    buffer: list[pa.Table] = []
    buffered = 0

    def flush() -> None:
        nonlocal buffer, buffered
        rows = pa.concat_tables(buffer, promote_options="permissive")
        if spec.sort_by:
            rows = rows.sort_by([(column, "ascending") for column in spec.sort_by])
        stage.hashes.append(_key_series(spec.key, rows).hash(seed=0).to_numpy())
        writer.write(rows)
        buffer, buffered = [], 0

    try:
        for rows in chunks:
            buffer.append(rows)
            buffered += rows.nbytes
            if buffered >= _ROW_GROUP_BYTES:
                flush()
        if buffer:
            flush()
    finally:
        writer.close()


def _existing_hashes(spec: TableSpec, table: Table, head: int | None, day: date) -> np.ndarray:
    if head is None:
        return np.empty(0, dtype=np.uint64)
    scan = table.scan(row_filter=day_filter(spec, day), selected_fields=spec.key, snapshot_id=head)
    parts = [
        _key_series(spec.key, pa.Table.from_batches([b])).hash(seed=0).to_numpy()
        for b in scan.to_arrow_batch_reader()
        if b.num_rows
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def _keep_mask(
    spec: TableSpec, table: Table, stage: _Stage, head: int | None, day: date
) -> np.ndarray | None:
    """Which staged rows stay (None: all of them), decided against the day at ``head``."""
    incoming = pl.Series(np.concatenate(stage.hashes) if stage.hashes else [], dtype=pl.UInt64)
    existing = _existing_hashes(spec, table, head, day)
    repeats = incoming.n_unique() != len(incoming)
    if not repeats and len(existing):
        repeats = bool(incoming.is_in(pl.Series(existing, dtype=pl.UInt64).implode()).any())
    if not repeats:  # distinct hashes prove distinct keys: the common case, 8 bytes a row
        return None
    # A hash repeats: decide on the keys themselves (key columns only).
    keys = _staged_keys(spec, table, stage)
    ids = _key_series(spec.key, keys)
    keep = ids.is_first_distinct()
    if head is not None:
        scan = table.scan(
            row_filter=day_filter(spec, day), selected_fields=spec.key, snapshot_id=head
        )
        day_keys = scan.to_arrow()
        if day_keys.num_rows:
            keep = keep & ~ids.is_in(_key_series(spec.key, day_keys).implode())
    mask = keep.to_numpy()
    return None if mask.all() else mask


def _staged_keys(spec: TableSpec, table: Table, stage: _Stage) -> pa.Table:
    parts = []
    for staged in stage.files:
        with table.io.new_input(staged.data_file.file_path).open() as stream:
            parts.append(pq.read_table(stream, columns=list(spec.key)))
    return pa.concat_tables(parts)


def _apply_mask(table: Table, key: PartitionKey, stage: _Stage, keep: np.ndarray) -> None:
    """Rewrite the staged files holding dropped rows without them, a row group at a time.

    The stage then lists the untouched files first, then the rewritten ones, with the hashes
    of their rows in that order (a retry against a newer head needs them).
    """
    hashes = np.concatenate(stage.hashes)
    rewritten = _Stage()
    writer = _FileWriter(table, key, rewritten)
    untouched: list[_Staged] = []
    untouched_hashes: list[np.ndarray] = []
    rewritten_hashes: list[np.ndarray] = []
    offset = 0
    try:
        for staged in stage.files:
            mask = keep[offset : offset + staged.rows]
            own = hashes[offset : offset + staged.rows]
            offset += staged.rows
            if mask.all():
                untouched.append(staged)
                untouched_hashes.append(own)
                continue
            if mask.any():
                _copy_filtered(table, staged, mask, writer)
                rewritten_hashes.append(own[mask])
            with contextlib.suppress(FileNotFoundError):
                table.io.delete(staged.data_file.file_path)
    finally:
        writer.close()
    stage.files = untouched + rewritten.files
    stage.hashes = untouched_hashes + rewritten_hashes


def _copy_filtered(table: Table, staged: _Staged, mask: np.ndarray, writer: _FileWriter) -> None:
    with table.io.new_input(staged.data_file.file_path).open() as stream:
        parquet = pq.ParquetFile(stream)
        start = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.read_row_group(group)
            part = mask[start : start + rows.num_rows]
            start += rows.num_rows
            if part.any():
                writer.write(rows.filter(pa.array(part)).cast(writer.schema.as_arrow()))


def _append(
    table: Table, branch: str, head: int | None, stage: _Stage, props: dict[str, str]
) -> None:
    """Commit the staged files in one fast append, only on top of ``head``."""
    if refs.head(table, branch) != head:  # refreshed since the keys were read: decide again
        raise CommitFailedException(f"{branch} moved while its day's keys were read")

    def commit() -> None:
        # pyiceberg asserts the branch head of the metadata the transaction starts from: head
        tx = table.transaction()
        snapshot = tx.update_snapshot(snapshot_properties=props, branch=branch)
        with snapshot.fast_append() as append:
            for staged in stage.files:
                append.append_data_file(staged.data_file)
        tx.commit_transaction()

    refs.as_commit_conflict(commit)


__all__ = ["StreamMergeResult", "merge_day_batches"]
