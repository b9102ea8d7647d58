"""What the SQL layer knows about each aura table, and how it resolves times and refs to snapshots.

All of it is read once from the catalog (pyiceberg) when a session opens, so every view, macro and
metadata view of one session describes the same consistent moment.

A commit can add several snapshots to main at once: an overwrite of a day adds a DELETE snapshot
and then an APPEND snapshot that share one ``aura.commit`` id. Only the last snapshot of such a
group was ever visible as main, so "as of" resolution skips the intermediate ones: at a time between
the two snapshots the table was still at the state before the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from lakehouse.exceptions import ConfigurationError, RefError, TimeTravelError
from lakehouse.settings import MAIN_BRANCH, NAMESPACE
from lakehouse.sql._guard import TABLE_NAME, check_table_name
from lakehouse.table.registry import all_specs

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot of a table, as the metadata views show it."""

    snapshot_id: int
    parent_id: int | None
    timestamp_ms: int
    operation: str | None
    schema_id: int | None
    properties: Mapping[str, str]

    @property
    def commit(self) -> str | None:
        """The ``aura.commit`` id shared by the snapshots of one commit."""
        return self.properties.get("aura.commit")


@dataclass(frozen=True)
class TableState:
    """One table as of the moment the session opened."""

    name: str
    schema: Schema
    table: Table | None
    snapshots: Mapping[int, SnapshotRow] = field(default_factory=dict)
    main_log: tuple[tuple[int, int], ...] = ()
    refs: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    current_snapshot_id: int | None = None

    @property
    def metadata_location(self) -> str | None:
        return self.table.metadata_location if self.table is not None else None

    def intermediate(self) -> set[int]:
        """Snapshots of main that were never visible alone (all but the last of a commit group)."""
        hidden = set()
        for (_, this), (_, following) in zip(self.main_log, self.main_log[1:], strict=False):
            a, b = self.snapshots[this], self.snapshots[following]
            if a.commit and a.commit == b.commit and b.parent_id == a.snapshot_id:
                hidden.add(this)
        return hidden

    def boundaries(self) -> list[tuple[int, int]]:
        """``(timestamp_ms, snapshot_id)`` of every state main has been in, oldest first."""
        hidden = self.intermediate()
        return [(ts, sid) for ts, sid in self.main_log if sid not in hidden]

    def snapshot_at(self, when: datetime) -> int | None:
        """The snapshot main pointed at, at ``when``; ``None`` for a table with no snapshot.

        Raises:
            TimeTravelError: ``when`` is before the table's first commit on main.
        """
        points = self.boundaries()
        if not points:
            return None
        millis = to_millis(when)
        chosen = None
        for ts, sid in points:
            if ts <= millis:
                chosen = sid
        if chosen is None:
            raise TimeTravelError(
                f"{self.name} has no state at {format_ms(millis)}: its oldest snapshot on main is "
                f"from {format_ms(points[0][0])} (older ones may have been expired); use a later "
                "time"
            )
        return chosen

    def snapshot_for_ref(self, ref: str) -> int:
        """The snapshot a branch or tag points at.

        Raises:
            RefError: the table has no such branch or tag.
        """
        if ref == MAIN_BRANCH and self.current_snapshot_id is not None:
            return self.current_snapshot_id
        try:
            return self.refs[ref][1]
        except KeyError:
            known = ", ".join(sorted(self.refs)) or "none"
            raise RefError(
                f"{self.name} has no branch or tag {ref!r} (its refs: {known})"
            ) from None

    def check_snapshot(self, snapshot_id: int) -> int:
        """Return ``snapshot_id`` if the table has it, else raise :class:`TimeTravelError`."""
        if snapshot_id not in self.snapshots:
            raise TimeTravelError(
                f"{self.name} has no snapshot {snapshot_id}; the aura_snapshots view lists them"
            )
        return snapshot_id

    def with_main(self, snapshot_id: int) -> TableState:
        """This state with main at ``snapshot_id`` (a publish under way is not shown yet)."""
        if snapshot_id not in self.snapshots or snapshot_id == self.current_snapshot_id:
            return self
        return replace(
            self,
            current_snapshot_id=snapshot_id,
            refs={**self.refs, MAIN_BRANCH: ("branch", snapshot_id)},
        )

    def schema_of(self, snapshot_id: int | None) -> Schema:
        """The schema a read of ``snapshot_id`` uses (the snapshot's own, as pyiceberg does)."""
        if snapshot_id is None or self.table is None:
            return self.schema
        schema_id = self.snapshots[snapshot_id].schema_id
        for schema in self.table.metadata.schemas:
            if schema.schema_id == schema_id:
                return schema
        return self.schema


def to_millis(when: datetime) -> int:
    """Epoch milliseconds of ``when``; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    """The UTC datetime of epoch milliseconds (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=millis)


def format_ms(millis: int) -> str:
    return from_millis(millis).isoformat(timespec="milliseconds")


def load_states(catalog: Catalog) -> dict[str, TableState]:
    """Every registered aura table plus any other table in the ``aura`` namespace."""
    states: dict[str, TableState] = {}
    for spec in all_specs():
        try:
            check_table_name(spec.name)
        except ValueError as exc:
            raise ConfigurationError(f"registered table cannot be exposed in SQL: {exc}") from None
        try:
            table = catalog.load_table(spec.identifier)
        except NoSuchTableError:
            states[spec.name] = TableState(name=spec.name, schema=spec.schema, table=None)
            continue
        states[spec.name] = _state_of(spec.name, table)
    try:
        identifiers = catalog.list_tables(NAMESPACE)
    except Exception:  # a catalog without the namespace has nothing more to show
        identifiers = []
    for identifier in identifiers:
        name = identifier[-1]
        if name in states:
            continue
        if not TABLE_NAME.match(name):
            log.warning(
                "table %s.%s is not exposed in SQL: its name is not a plain identifier",
                NAMESPACE,
                name,
            )
            continue
        states[name] = _state_of(name, catalog.load_table(identifier))
    return dict(sorted(states.items()))


def _state_of(name: str, table: Table) -> TableState:
    metadata = table.metadata
    snapshots = {
        s.snapshot_id: SnapshotRow(
            snapshot_id=s.snapshot_id,
            parent_id=s.parent_snapshot_id,
            timestamp_ms=s.timestamp_ms,
            operation=s.summary.operation.value if s.summary is not None else None,
            schema_id=s.schema_id,
            properties=dict(s.summary.additional_properties) if s.summary is not None else {},
        )
        for s in metadata.snapshots
    }
    main_log = tuple(
        (entry.timestamp_ms, entry.snapshot_id)
        for entry in metadata.snapshot_log
        if entry.snapshot_id in snapshots
    )
    current = metadata.current_snapshot_id
    if current is not None and current in snapshots and not main_log:
        main_log = tuple(reversed(_ancestry(snapshots, current)))
    refs = {
        ref_name: (ref.snapshot_ref_type.value, ref.snapshot_id)
        for ref_name, ref in metadata.refs.items()
        if ref.snapshot_id in snapshots
    }
    return TableState(
        name=name,
        schema=table.schema(),
        table=table,
        snapshots=snapshots,
        main_log=main_log,
        refs=refs,
        current_snapshot_id=current if current in snapshots else None,
    )


def _ancestry(snapshots: Mapping[int, SnapshotRow], head: int) -> list[tuple[int, int]]:
    """``(timestamp_ms, snapshot_id)`` from ``head`` back through its parents."""
    chain = []
    sid: int | None = head
    while sid is not None and sid in snapshots:
        chain.append((snapshots[sid].timestamp_ms, sid))
        sid = snapshots[sid].parent_id
    return chain
