"""The publish journal: moves of several tables' main, made all or none for AURA's readers.

Iceberg commits one table at a time, so a publish that moves 16 tables' mains has moments where
some have moved and some not, and a process killed there would leave main half-published. The
journal closes that gap:

1. Before the first table moves, the publisher writes a journal (every table's main before and
   after, the tag, the owner process) into the catalog, as a property of the ``aura`` namespace,
   in the same catalog transaction that bumps a generation counter.
2. It moves the tables, each in one commit (main and tag together), records the bookkeeping
   event, and removes the journal.

Readers (``Lakehouse.read``, ``aura sql``) look at the journals first. A journal whose owner is
alive means a publish is under way: they read each of its tables at its main *before* the
publish, so they see none of it until all of it is there. A journal whose owner is dead (killed,
crashed) is settled by the first AURA call that sees it: rolled forward when every table can
still reach its published snapshot (the rest of the tables are moved, the event recorded), else
rolled back (the moved mains move back, their tags go). Moves are idempotent, so a settle that is
itself killed is settled again.

An owner is alive while its process runs (checked by pid and start time on the same host) or,
on another host, until its lease ends (:data:`LEASE_MS` after the journal was written).

Writers are not held back: a writer that moves an unmoved table's main during a publish makes
the publish roll back (it is no longer a fast-forward), as without a journal.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from lakehouse.exceptions import AuraError, CommitConflictError, RefError
from lakehouse.settings import MAIN_BRANCH, NAMESPACE
from lakehouse.table import refs, writer
from lakehouse.table.bookkeeping import EXPERIMENTS, experiment_event
from lakehouse.table.registry import ensure_table, spec_for

log = logging.getLogger(__name__)

PREFIX = "aura.publish-journal."
GENERATION = "aura.publish-generation"
LEASE_MS = 10 * 60 * 1000
PUBLISHING, ROLLING_BACK = "publishing", "rolling-back"
_ATTEMPTS = 8


@dataclass(frozen=True)
class Owner:
    """The process that writes a journal: host, pid and the process's start time."""

    host: str
    pid: int
    start: str | None
    lease_until_ms: int

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid), _now_ms() + LEASE_MS)

    def alive(self) -> bool:
        """Whether the owner may still be working on its journal."""
        if self.host != socket.gethostname():
            return _now_ms() < self.lease_until_ms
        if self.pid == os.getpid():
            return self.start == process_start(self.pid)
        start = process_start(self.pid)
        return start is not None and (self.start is None or start == self.start)


@dataclass(frozen=True)
class Move:
    """One table's main, before and after the publish."""

    table: str
    before: int | None
    after: int


@dataclass(frozen=True)
class Journal:
    """A publish under way: the experiment, every table's move, the tag and the owner."""

    experiment: str
    moves: tuple[Move, ...]
    owner: Owner
    tag: str | None = None
    tag_max_ref_age_ms: int | None = None
    run_id: str | None = None
    state: str = PUBLISHING
    started_at_ms: int = field(default_factory=lambda: _now_ms())

    @property
    def key(self) -> str:
        return PREFIX + self.experiment

    def before(self) -> dict[str, int]:
        """Each table's main before the publish (what readers see while it is under way)."""
        return {m.table: m.before for m in self.moves if m.before is not None}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Journal:
        raw = json.loads(text)
        return cls(
            experiment=raw["experiment"],
            moves=tuple(Move(**m) for m in raw["moves"]),
            owner=Owner(**raw["owner"]),
            tag=raw.get("tag"),
            tag_max_ref_age_ms=raw.get("tag_max_ref_age_ms"),
            run_id=raw.get("run_id"),
            state=raw.get("state", PUBLISHING),
            started_at_ms=raw.get("started_at_ms", 0),
        )


@dataclass(frozen=True)
class Journals:
    """The journals in the catalog, and the generation (bumped whenever a publish starts)."""

    generation: int
    journals: tuple[Journal, ...] = ()
    settled: int = 0  # journals of dead owners settled just before this read

    def live(self) -> list[Journal]:
        return [j for j in self.journals if j.owner.alive()]

    def dead(self) -> list[Journal]:
        return [j for j in self.journals if not j.owner.alive()]

    def before(self) -> dict[str, int]:
        """For readers: each table of a live publish, at its main before the publish."""
        pins: dict[str, int] = {}
        for journal in self.live():
            pins.update(journal.before())
        return pins


def _now_ms() -> int:
    return int(time.time() * 1000)


def process_start(pid: int) -> str | None:
    """The start time of a running process (None if it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""  # no /proc: alive, start time unknown
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else ""


# pyiceberg's SQL catalog keeps a namespace property's value in VARCHAR(1000) (PostgreSQL enforces
# it): a journal is stored as its part count under its key and its JSON in parts of this size.
_PART_CHARS = 900
_PART = "#part-"


def _encoded(journal: Journal) -> dict[str, str]:
    """The namespace properties holding ``journal``: its key names the number of parts."""
    text = journal.to_json()
    parts = [text[i : i + _PART_CHARS] for i in range(0, len(text), _PART_CHARS)]
    return {journal.key: str(len(parts))} | {
        f"{journal.key}{_PART}{i}": part for i, part in enumerate(parts)
    }


def _decoded(properties: Mapping[str, str], key: str, value: str) -> str:
    """A journal's JSON from its parts (or, as written before parts, whole under its key)."""
    if value.startswith("{"):
        return value
    return "".join(properties[f"{key}{_PART}{i}"] for i in range(int(value)))


def read(catalog: Catalog) -> Journals:
    """The journals in the catalog (one catalog query)."""
    try:
        properties = catalog.load_namespace_properties(NAMESPACE)
    except NoSuchNamespaceError:
        return Journals(0)
    journals = []
    for key, value in sorted(properties.items()):
        if not key.startswith(PREFIX) or _PART in key:
            continue
        try:
            journals.append(Journal.from_json(_decoded(properties, key, value)))
        except (ValueError, KeyError, TypeError):
            log.error("ignoring an unreadable publish journal %s: %r", key, value[:200])
    return Journals(int(properties.get(GENERATION, "0") or 0), tuple(journals))


def begin(catalog: Catalog, journal: Journal) -> None:
    """Write ``journal`` before the first table moves.

    Raises:
        RefError: a publish of the same experiment is under way.
    """
    current = read(catalog)
    if any(j.experiment == journal.experiment for j in current.journals):
        raise RefError(
            f"a publish of experiment {journal.experiment!r} is already under way; wait for it "
            "to finish (`aura branch list --all` shows the outcome)"
        )
    catalog.update_namespace_properties(
        NAMESPACE,
        updates={**_encoded(journal), GENERATION: str(current.generation + 1)},
    )


def mark(catalog: Catalog, journal: Journal, state: str) -> Journal:
    """Record that ``journal`` changed state (e.g. it is rolling back)."""
    changed = replace(journal, state=state)
    catalog.update_namespace_properties(NAMESPACE, updates=_encoded(changed))
    return changed


def end(catalog: Catalog, journal: Journal) -> None:
    """Remove the journal: every table is published, or every table is back where it was."""
    properties = catalog.load_namespace_properties(NAMESPACE)
    parts = {k for k in properties if k.startswith(journal.key + _PART)}
    catalog.update_namespace_properties(NAMESPACE, removals={journal.key, *parts})


def advance(table: Table, move: Move, tag: str | None, tag_max_ref_age_ms: int | None) -> None:
    """Move main to ``move.after`` and tag it (idempotent: a main already there is only tagged).

    Raises:
        CommitConflictError: main moved to something other than before or after the publish.
    """
    for _ in range(_ATTEMPTS):
        table.refresh()
        current = refs.head(table)
        tagged = tag is None or tag in table.metadata.refs
        if current is not None and refs.is_ancestor(table, move.after, current):
            if not tagged:
                _tag(table, tag, move.after, tag_max_ref_age_ms)  # type: ignore[arg-type]
            return
        if current != move.before:
            raise CommitConflictError(
                f"main of {move.table} moved to {current} during the publish (expected "
                f"{move.before}); it is no longer a fast-forward"
            )
        try:
            refs.move_ref(
                table,
                MAIN_BRANCH,
                move.after,
                expected=move.before,
                tag=None if tagged else tag,
                tag_max_ref_age_ms=tag_max_ref_age_ms,
            )
            return
        except CommitConflictError:
            continue  # another commit to the table: look again
    raise CommitConflictError(f"could not move main of {move.table}: kept losing races")


def retreat(table: Table, move: Move, tag: str | None) -> None:
    """Move main back to ``move.before`` and remove the tag (idempotent).

    Raises:
        CommitConflictError: main moved on since the publish moved it.
    """
    for _ in range(_ATTEMPTS):
        table.refresh()
        current = refs.head(table)
        if current == move.after and move.after != move.before:
            try:
                refs.move_ref(
                    table,
                    MAIN_BRANCH,
                    move.before,  # type: ignore[arg-type]
                    expected=move.after,
                    drop_tag_name=tag,
                )
                return
            except CommitConflictError:
                continue
        if current != move.before:
            raise CommitConflictError(
                f"main of {move.table} moved on to {current} after the publish moved it"
            )
        found = table.metadata.refs.get(tag) if tag else None
        if found is not None and found.snapshot_id == move.after:
            refs.drop_tag(table, tag, missing_ok=True)  # type: ignore[arg-type]
        return
    raise CommitConflictError(f"could not move main of {move.table} back: kept losing races")


def _tag(table: Table, tag: str, snapshot_id: int, max_ref_age_ms: int | None) -> None:
    try:
        refs.create_tag(table, tag, source=snapshot_id, max_ref_age_ms=max_ref_age_ms)
    except RefError:
        table.refresh()
        found = table.metadata.refs.get(tag)
        if found is None or found.snapshot_id != snapshot_id:
            raise


def record_published(catalog: Catalog, journal: Journal) -> None:
    """Append the experiment's ``published`` event unless it is there already (idempotent)."""
    table = ensure_table(catalog, EXPERIMENTS)
    if table.current_snapshot() is not None:
        rows = table.scan(row_filter=EqualTo("experiment", journal.experiment)).to_arrow()
        for row in rows.to_pylist():
            if row["event"] == "published" and row["tag"] == journal.tag:
                return
    heads = {m.table: m.after for m in journal.moves}
    data = experiment_event(
        journal.experiment, "published", heads, tag=journal.tag, run_id=journal.run_id
    )
    writer.append(
        EXPERIMENTS,
        table,
        data,
        writer.Lineage(asset="experiments", run_id=journal.run_id),
        MAIN_BRANCH,
    )


def _load(catalog: Catalog, move: Move) -> Table:
    return ensure_table(catalog, spec_for(move.table))


def settle(catalog: Catalog, journal: Journal) -> str:
    """Finish a publish whose owner died: forward if every table still can, else back.

    Returns ``"published"`` or ``"rolled back"``.

    Raises:
        RefError: some table's main moved on since, so neither is possible for it; the others
            are rolled back and the journal removed (the message names the tables).
    """
    # Take the journal over, so that readers wait for this settle rather than start another.
    journal = replace(journal, owner=Owner.me())
    catalog.update_namespace_properties(NAMESPACE, updates=_encoded(journal))
    tables = {m.table: _load(catalog, m) for m in journal.moves}
    forward = journal.state == PUBLISHING and all(
        _can_advance(tables[m.table], m) for m in journal.moves
    )
    if forward:
        try:
            for move in journal.moves:
                advance(tables[move.table], move, journal.tag, journal.tag_max_ref_age_ms)
            record_published(catalog, journal)
            end(catalog, journal)
            log.warning("completed the interrupted publish of experiment %s", journal.experiment)
            return "published"
        except (AuraError, CommitFailedException) as exc:
            log.error(
                "could not complete publish of %s (%s); rolling back", journal.experiment, exc
            )
            journal = mark(catalog, journal, ROLLING_BACK)
    failed = roll_back(tables, journal)
    end(catalog, journal)
    if failed:
        raise RefError(
            f"the interrupted publish of experiment {journal.experiment!r} could be neither "
            f"completed nor rolled back for {sorted(failed)}: their main moved on since. "
            "Inspect them with `aura branch diff` and `aura sql` (aura_history)."
        )
    log.warning("rolled back the interrupted publish of experiment %s", journal.experiment)
    return "rolled back"


def roll_back(tables: Mapping[str, Table], journal: Journal) -> list[str]:
    """Move every table of ``journal`` back; returns the tables that could not be."""
    failed = []
    for move in reversed(journal.moves):
        try:
            retreat(tables[move.table], move, journal.tag)
        except (AuraError, CommitFailedException) as exc:
            log.error("could not roll back %s: %s", move.table, exc)
            failed.append(move.table)
    return failed


def _can_advance(table: Table, move: Move) -> bool:
    table.refresh()
    current = refs.head(table)
    if current == move.before:
        return table.metadata.snapshot_by_id(move.after) is not None
    return current is not None and refs.is_ancestor(table, move.after, current)


def settle_dead(catalog: Catalog) -> Journals:
    """Settle every journal whose owner died; returns the journals left (live ones).

    A settle that fails (see :func:`settle`) is logged; the next call does not see its journal
    again.
    """
    found = read(catalog)
    if not found.journals:
        return found
    dead = found.dead()
    if not dead:
        return found
    for journal in dead:
        try:
            settle(catalog, journal)
        except AuraError as exc:
            log.error("%s", exc)
    return replace(read(catalog), settled=len(dead))


def describe(journal: Journal) -> str:
    started = datetime.fromtimestamp(journal.started_at_ms / 1000, UTC)
    return (
        f"publish of experiment {journal.experiment} ({len(journal.moves)} tables) started "
        f"{started:%Y-%m-%d %H:%M:%SZ}"
    )
