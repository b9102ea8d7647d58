"""The :class:`Lakehouse` facade: the Python API agents, notebooks and Dagster assets share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table

from lakehouse.settings import MAIN_BRANCH, Settings
from lakehouse.table import journal, refs, writer
from lakehouse.table.catalog import open_catalog
from lakehouse.table.registry import TableSpec, all_specs, ensure_table, spec_for
from lakehouse.table.retry import catalog_calls
from lakehouse.table.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse.sql import SqlSession


@dataclass(frozen=True)
class TableInfo:
    """A one-line summary of a table, as ``aura tables`` prints it."""

    name: str
    rows: int
    snapshot_id: int | None
    snapshots: int
    branches: tuple[str, ...]
    tags: tuple[str, ...]


class Lakehouse:
    """Unified access to the aura tables.

    Example:
        >>> lh = Lakehouse()                      # settings from the AURA_* environment
        >>> lh.append("routing_decisions", arrow_table, lineage=Lineage(asset="notebook"))
        >>> lh.read("routing_decisions", day=date(2026, 11, 20)).num_rows
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        # Tables read from main because the configured branch does not have them (name -> that
        # branch); a Dagster asset reports them in its materialisation.
        self.fallbacks: dict[str, str] = {}

    @cached_property
    def catalog(self) -> Catalog:
        return open_catalog(self.settings)

    def table(self, name: str) -> Table:
        """The Iceberg table behind ``name``, created on first use from its registered spec."""
        with catalog_calls(f"loading table {name}"):
            return ensure_table(self.catalog, spec_for(name))

    def ensure_all(self) -> list[Table]:
        """Create every registered table that does not exist yet."""
        return [ensure_table(self.catalog, spec) for spec in all_specs()]

    def append(
        self,
        name: str,
        data: pa.Table,
        *,
        lineage: Lineage | None = None,
        branch: str | None = None,
    ) -> WriteResult:
        """Append rows to a table as one snapshot."""
        spec = spec_for(name)
        return writer.append(
            spec, self.table(name), data, lineage or Lineage(), branch or self.settings.branch
        )

    def overwrite_day(
        self,
        name: str,
        data: pa.Table,
        day: date,
        *,
        lineage: Lineage | None = None,
        branch: str | None = None,
    ) -> WriteResult:
        """Replace one day partition with ``data`` atomically; re-running it is idempotent."""
        spec = spec_for(name)
        return writer.overwrite_day(
            spec, self.table(name), data, day, lineage or Lineage(), branch or self.settings.branch
        )

    def head(self, name: str, branch: str | None = None) -> int | None:
        """The snapshot id reads of ``name`` on ``branch`` (default: the configured one) use.

        Reads follow the branch writes go to, so a run on branch B reads what it wrote. When B
        does not have the table yet (nothing wrote it there), this is main's head, exactly what
        a first write to B starts from, and the table is recorded in :attr:`fallbacks`. ``None``
        means there is nothing to read (an empty table).
        """
        return self.table_at_head(name, branch)[1]

    def table_at_head(self, name: str, branch: str | None = None) -> tuple[Table, int | None]:
        """The loaded table ``name`` and its :meth:`head` on ``branch``, from one metadata load.

        Scan the returned table at the returned snapshot: a head looked up in a second load can
        be a snapshot another process committed after the first, which the first does not know.
        """
        table = self.table(name)
        return table, self._head_in(name, table, branch or self.settings.branch)

    def _head_in(self, name: str, table: Table, wanted: str) -> int | None:
        if wanted == MAIN_BRANCH:
            return self._main_head(name, table)
        found = refs.head(table, wanted)
        if found is None:
            self.fallbacks[spec_for(name).name] = wanted
            return self._main_head(name, table)
        return found

    def _main_head(self, name: str, table: Table) -> int | None:
        """Main's head as AURA's readers see it (before a publish under way, see :meth:`read`)."""
        before = self._main_for_readers(spec_for(name).name, table)
        return before if before is not None else refs.head(table)

    def read(
        self,
        name: str,
        *,
        day: date | None = None,
        window: tuple[datetime, datetime] | None = None,
        branch: str | None = None,
        snapshot_id: int | None = None,
    ) -> pa.Table:
        """Read a table as Arrow: all of it, one day or a ``[start, end)`` window of event time,
        at a snapshot, at the head of ``branch`` (a branch or tag that must exist), or by default
        at the head of the configured branch (main's when that branch lacks the table; see
        :meth:`head`).

        Main is read as AURA's readers see it: while a publish is under way, its tables read as
        they were before it; a publish whose process died is completed or rolled back first
        (see :mod:`lakehouse.table.journal`).

        Raises:
            RefError: ``branch`` is given and the table has no such branch or tag.
        """
        spec = spec_for(name)
        table = self.table(name)
        if snapshot_id is None and branch is not None and branch != MAIN_BRANCH:
            snapshot_id = refs.require_head(table, branch)
        if snapshot_id is None:
            snapshot_id = self._head_in(name, table, branch or self.settings.branch)
            if snapshot_id is None:
                return spec.arrow_schema.empty_table()
        row_filter: BooleanExpression = AlwaysTrue()
        if day is not None:
            row_filter = writer.day_filter(spec, day)
        elif window is not None:
            row_filter = writer.time_filter(spec, *window)
        return table.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow()

    def _main_for_readers(self, name: str, table: Table) -> int | None:
        """The snapshot a reader of ``name``'s main reads when a publish is under way, if any."""
        pending = journal.settle_dead(self.catalog)
        if pending.settled:
            table.refresh()  # the settle may have moved it since it was loaded
        return pending.before().get(name)

    def info(self, name: str) -> TableInfo:
        """The table at the head reads use (see :meth:`head`): rows, snapshot, refs."""
        table, head = self.table_at_head(name)
        snapshot = table.snapshot_by_id(head) if head is not None else None
        rows = int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0
        refs = table.metadata.refs
        return TableInfo(
            name=spec_for(name).name,
            rows=rows,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            snapshots=len(table.metadata.snapshots),
            branches=tuple(sorted(n for n, r in refs.items() if r.snapshot_ref_type == "branch")),
            tags=tuple(sorted(n for n, r in refs.items() if r.snapshot_ref_type == "tag")),
        )

    def tables(self) -> list[TableInfo]:
        """Summaries of every registered table."""
        return [self.info(spec.name) for spec in all_specs()]

    def sql(self, **options: object) -> SqlSession:
        """A read-only DuckDB session over every table (``as_of=``, ``ref=``, ``snapshots=``)."""
        from lakehouse.sql import connect

        return connect(self.settings, catalog=self.catalog, **options)  # type: ignore[arg-type]

    @staticmethod
    def spec(name: str) -> TableSpec:
        return spec_for(name)
