"""Branches and tags of aura tables, and fast-forward publishes (the "P" of write-audit-publish).

pyiceberg writes to branches but cannot fast-forward one into another. :func:`publish` adds it:
it checks that the target's head is an ancestor of the source's head, then moves the target with
one atomic ref update. The catalog commit carries the requirement that the target still points at
the snapshot that was checked (``AssertRefSnapshotId``), so a racing publish or writer makes the
commit fail; the publish then re-reads the table and checks again, and a publish that is no longer
a fast-forward is refused with :class:`~lakehouse.exceptions.NotFastForwardError`, never forced.

Every function takes a pyiceberg :class:`~pyiceberg.table.Table`; ``Lakehouse.table(name)`` gives
one. No Dagster here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pyiceberg.exceptions import BadRequestError, CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from lakehouse.exceptions import CommitConflictError, NotFastForwardError, RefError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table.retry import RetryPolicy, is_commit_conflict

log = logging.getLogger(__name__)

PUBLISH_POLICY = RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.5)
ROOT_PROPERTY = "aura.root"
# One rule for every ref name, created or read: at most MAX_REF_NAME characters.
MAX_REF_NAME = 128
_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._/-]{{0,{MAX_REF_NAME - 1}}}$")
# Names the system gives its own refs; users cannot create refs called so.
RESERVED_PREFIXES = ("audit-", "run-")
RESERVED_NAMES = ("HEAD", MAIN_BRANCH)

RefKind = Literal["branch", "tag"]


@dataclass(frozen=True)
class RefInfo:
    """One branch or tag of a table."""

    table: str
    name: str
    kind: RefKind
    snapshot_id: int
    snapshot_timestamp_ms: int
    max_ref_age_ms: int | None = None
    max_snapshot_age_ms: int | None = None
    min_snapshots_to_keep: int | None = None

    @property
    def expires_at_ms(self) -> int | None:
        """When the ref passes its retention (``max-ref-age-ms`` after its snapshot), if ever."""
        if self.max_ref_age_ms is None or self.name == MAIN_BRANCH:
            return None
        return self.snapshot_timestamp_ms + self.max_ref_age_ms


@dataclass(frozen=True)
class PublishResult:
    """Outcome of one fast-forward publish."""

    table: str
    source: str
    target: str
    previous_snapshot_id: int | None
    snapshot_id: int
    moved: bool
    tag: str | None = None


def validate_ref_name(name: str, *, user: bool) -> str:
    """Return ``name`` if it is a valid branch or tag name, else raise :class:`RefError`.

    The same rule serves every path that creates or reads a ref. ``user=True`` (a name a person
    chose for an experiment, branch or release tag) also refuses the names the system reserves:
    ``main``, ``HEAD`` and the prefixes ``audit-`` and ``run-``.
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise RefError(
            f"{name!r} is not a valid branch or tag name; use letters, digits and . _ / - "
            f"(at most {MAX_REF_NAME} characters, starting with a letter or digit)"
        )
    if user and (
        name.upper() in (n.upper() for n in RESERVED_NAMES)
        or name.lower().startswith(RESERVED_PREFIXES)
    ):
        raise RefError(
            f"{name!r} is reserved: AURA names its own refs main, HEAD, audit-... and run-...; "
            "choose another name"
        )
    return name


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid branch or tag name (system or user); see above."""
    return validate_ref_name(name, user=False)


def _table_name(table: Table) -> str:
    return ".".join(table.name())


def head(table: Table, ref: str = MAIN_BRANCH) -> int | None:
    """Snapshot id a branch or tag points at (``None`` for a missing ref or an empty main)."""
    found = table.metadata.refs.get(ref)
    return found.snapshot_id if found else None


def require_head(table: Table, ref: str) -> int:
    """The snapshot id ``ref`` points at; a missing ref (or empty main) is a :class:`RefError`."""
    snapshot_id = head(table, ref)
    if snapshot_id is None:
        raise RefError(
            f"{_table_name(table)} has no branch or tag {ref!r}; `aura branch list` shows the "
            "existing ones"
        )
    return snapshot_id


def _ref(table: Table, name: str) -> SnapshotRef | None:
    return table.metadata.refs.get(name)


def as_commit_conflict(commit: Callable[[], object]) -> None:
    """Run ``commit``; a snapshot built on stale metadata is reported as the race it is.

    A pyiceberg commit to a branch asserts only that branch's head. When another branch of the
    same table committed meanwhile, the catalog refuses the stale snapshot's sequence number with
    a ``ValueError``; this raises ``CommitFailedException`` instead, so that callers retry on a
    refreshed table as for any lost race.
    """
    try:
        commit()
    except (ValueError, BadRequestError) as exc:  # BadRequestError: a REST catalog's refusal
        if not is_commit_conflict(exc):
            raise
        raise CommitFailedException(f"another branch committed meanwhile: {exc}") from exc


def _commit_ref_change(
    table: Table, action: str, commit: Callable[[], object], settled: Callable[[], bool]
) -> bool:
    """Run ``commit``; when it loses a race, re-read the table and retry unless ``settled``.

    ``settled`` is asked on the re-read table whether a concurrent commit already made the
    change moot. Returns True when this commit made the change, False when it became moot.

    Raises:
        CommitConflictError: the commit kept losing races.
    """
    lost = False

    def attempt() -> bool:
        if lost and settled():
            return False
        as_commit_conflict(commit)
        return True

    def on_conflict() -> None:
        nonlocal lost
        lost = True
        table.refresh()

    changed = PUBLISH_POLICY.run(
        attempt, on_conflict=on_conflict, what=f"{action} on {_table_name(table)}"
    )
    if changed:
        table.refresh()
    return changed


def ensure_root(table: Table) -> int:
    """Give an empty table an empty root snapshot on main, so that branches can start from it.

    Iceberg cannot create a branch of a table without snapshots. The root snapshot holds no rows.
    Returns main's snapshot id.
    """
    current = head(table, MAIN_BRANCH)
    if current is not None:
        return current
    _commit_ref_change(
        table,
        "creating the root snapshot",
        lambda: table.append(
            table.schema().as_arrow().empty_table(), snapshot_properties={ROOT_PROPERTY: "true"}
        ),
        settled=lambda: head(table, MAIN_BRANCH) is not None,  # another writer was first
    )
    return require_head(table, MAIN_BRANCH)


def create_branch(
    table: Table,
    name: str,
    *,
    source: str | int = MAIN_BRANCH,
    exist_ok: bool = False,
    max_ref_age_ms: int | None = None,
    max_snapshot_age_ms: int | None = None,
    min_snapshots_to_keep: int | None = None,
) -> int:
    """Create branch ``name`` at the head of ``source`` (a ref name or a snapshot id).

    Returns the branch's snapshot id.

    Raises:
        RefError: the branch already exists (unless ``exist_ok``), or ``source`` is missing.
    """
    validate_name(name)
    if name == MAIN_BRANCH:
        raise RefError("main always exists; choose another branch name")
    table.refresh()
    existing = _ref(table, name)
    if existing is not None:
        if exist_ok and existing.snapshot_ref_type == SnapshotRefType.BRANCH:
            return existing.snapshot_id
        kind = existing.snapshot_ref_type.value
        raise RefError(
            f"{_table_name(table)} already has a {kind} {name!r}; drop it first or "
            "choose another name"
        )
    snapshot_id = _resolve_source(table, source)
    created = _commit_ref_change(
        table,
        f"creating branch {name!r}",
        lambda: (
            table.manage_snapshots()
            .create_branch(
                snapshot_id,
                name,
                max_ref_age_ms=max_ref_age_ms,
                max_snapshot_age_ms=max_snapshot_age_ms,
                min_snapshots_to_keep=min_snapshots_to_keep,
            )
            .commit()
        ),
        settled=lambda: name in table.metadata.refs,
    )
    if not created:  # another writer created the ref first
        if exist_ok and _ref(table, name).snapshot_ref_type == SnapshotRefType.BRANCH:  # type: ignore[union-attr]
            return require_head(table, name)
        raise RefError(f"branch {name!r} of {_table_name(table)} was created concurrently")
    log.info("created branch %s of %s at snapshot %s", name, _table_name(table), snapshot_id)
    return snapshot_id


def _resolve_source(table: Table, source: str | int) -> int:
    """The snapshot a new ref starts at: a snapshot id, or the head of a ref (main gets a root)."""
    if isinstance(source, int):
        if table.metadata.snapshot_by_id(source) is None:
            raise RefError(f"{_table_name(table)} has no snapshot {source}")
        return source
    return ensure_root(table) if source == MAIN_BRANCH else require_head(table, source)


def ensure_branch(table: Table, branch: str) -> None:
    """Make sure ``branch`` exists before a write; a missing branch is created from main.

    Without this, pyiceberg would start a missing branch from an empty parent, and the branch
    would hold only the new rows instead of main's data plus the new rows.
    """
    if branch == MAIN_BRANCH:
        return
    existing = _ref(table, branch)
    if existing is None:
        create_branch(table, branch, exist_ok=True)
    elif existing.snapshot_ref_type != SnapshotRefType.BRANCH:
        raise RefError(
            f"{branch!r} is a tag of {_table_name(table)}; tags are read-only, write to a branch"
        )


def drop_branch(table: Table, name: str, *, missing_ok: bool = False) -> bool:
    """Remove a branch (its snapshots stay until expired). Returns whether one was removed."""
    return _drop(table, name, SnapshotRefType.BRANCH, missing_ok)


def create_tag(
    table: Table,
    name: str,
    *,
    source: str | int = MAIN_BRANCH,
    max_ref_age_ms: int | None = None,
) -> int:
    """Tag the head of ``source`` (a ref name or snapshot id); ``max_ref_age_ms`` is its retention.

    Returns the tagged snapshot id.

    Raises:
        RefError: the name is taken or ``source`` is missing.
    """
    validate_name(name)
    table.refresh()
    if _ref(table, name) is not None:
        raise RefError(
            f"{_table_name(table)} already has a ref {name!r}; tags are immutable, "
            "choose another name"
        )
    snapshot_id = _resolve_source(table, source)
    created = _commit_ref_change(
        table,
        f"creating tag {name!r}",
        lambda: (
            table.manage_snapshots()
            .create_tag(snapshot_id, name, max_ref_age_ms=max_ref_age_ms)
            .commit()
        ),
        settled=lambda: name in table.metadata.refs,
    )
    if not created:
        raise RefError(f"tag {name!r} of {_table_name(table)} was created concurrently")
    return snapshot_id


def drop_tag(table: Table, name: str, *, missing_ok: bool = False) -> bool:
    """Remove a tag. Returns whether one was removed."""
    return _drop(table, name, SnapshotRefType.TAG, missing_ok)


def _drop(table: Table, name: str, kind: SnapshotRefType, missing_ok: bool) -> bool:
    if name == MAIN_BRANCH:
        raise RefError("main cannot be dropped")
    table.refresh()
    existing = _ref(table, name)
    if existing is None or existing.snapshot_ref_type != kind:
        if missing_ok:
            return False
        raise RefError(f"{_table_name(table)} has no {kind.value} {name!r}")

    def remove() -> None:
        ms = table.manage_snapshots()
        (ms.remove_branch(name) if kind == SnapshotRefType.BRANCH else ms.remove_tag(name)).commit()

    def settled() -> bool:
        now = _ref(table, name)
        if now is not None and now.snapshot_id != existing.snapshot_id:
            raise RefError(
                f"{kind.value} {name!r} of {_table_name(table)} moved while it was being "
                "dropped; look at it again before dropping it"
            )
        return now is None

    return _commit_ref_change(table, f"dropping {kind.value} {name!r}", remove, settled)


def list_refs(table: Table, kind: RefKind | None = None) -> list[RefInfo]:
    """Branches and tags of ``table`` (main first, then by name)."""
    table.refresh()
    name = _table_name(table)
    infos = []
    for ref_name, ref in table.metadata.refs.items():
        if kind is not None and ref.snapshot_ref_type.value != kind:
            continue
        snapshot = table.metadata.snapshot_by_id(ref.snapshot_id)
        infos.append(
            RefInfo(
                table=name,
                name=ref_name,
                kind=ref.snapshot_ref_type.value,
                snapshot_id=ref.snapshot_id,
                snapshot_timestamp_ms=snapshot.timestamp_ms if snapshot else 0,
                max_ref_age_ms=ref.max_ref_age_ms,
                max_snapshot_age_ms=ref.max_snapshot_age_ms,
                min_snapshots_to_keep=ref.min_snapshots_to_keep,
            )
        )
    return sorted(infos, key=lambda r: (r.name != MAIN_BRANCH, r.kind, r.name))


def expire_refs(table: Table, *, now_ms: int | None = None) -> list[str]:
    """Remove the branches and tags past their ``max-ref-age-ms``; returns the removed names.

    pyiceberg's snapshot expiry keeps every ref; this applies the refs' own retention first so
    that expiry can then reclaim their snapshots.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    expired = [r for r in list_refs(table) if r.expires_at_ms is not None and r.expires_at_ms < now]
    if not expired:
        return []
    with table.manage_snapshots() as ms:
        for ref in expired:
            if ref.kind == "tag":
                ms.remove_tag(ref.name)
            else:
                ms.remove_branch(ref.name)
    table.refresh()
    return [r.name for r in expired]


def is_ancestor(table: Table, ancestor_id: int | None, snapshot_id: int) -> bool:
    """Whether ``ancestor_id`` is ``snapshot_id`` or one of its ancestors (``None`` always is)."""
    if ancestor_id is None:
        return True
    snapshot = table.metadata.snapshot_by_id(snapshot_id)
    return any(s.snapshot_id == ancestor_id for s in ancestors_of(snapshot, table.metadata))


def ancestry(table: Table, snapshot_id: int | None) -> list[Snapshot]:
    """``snapshot_id`` and its ancestors, newest first."""
    if snapshot_id is None:
        return []
    return list(ancestors_of(table.metadata.snapshot_by_id(snapshot_id), table.metadata))


def check_fast_forward(
    table: Table, source: str, target: str = MAIN_BRANCH
) -> tuple[int | None, int]:
    """Check that ``target`` can fast-forward to ``source``; returns (target head, source head).

    Raises:
        RefError: ``source`` is missing.
        NotFastForwardError: ``target`` has snapshots that ``source`` does not contain.
    """
    source_id = require_head(table, source)
    target_id = head(table, target)
    if not is_ancestor(table, target_id, source_id):
        ahead = _only_in(table, target_id, source_id)
        raise NotFastForwardError(
            f"cannot publish {source!r} into {target!r} of {_table_name(table)}: {target!r} has "
            f"{len(ahead)} snapshot(s) that {source!r} lacks (head {target_id}). Re-create the "
            f"branch from {target!r} and redo its writes, or publish into another branch."
        )
    return target_id, source_id


def _only_in(table: Table, snapshot_id: int | None, other_id: int | None) -> list[Snapshot]:
    """Ancestors of ``snapshot_id`` that are not ancestors of ``other_id``."""
    other = {s.snapshot_id for s in ancestry(table, other_id)}
    return [s for s in ancestry(table, snapshot_id) if s.snapshot_id not in other]


def restore_retention(table: Table, name: str, max_ref_age_ms: int) -> None:
    """Give branch ``name`` back its ``max-ref-age-ms`` if a commit on it dropped it.

    pyiceberg's appends and overwrites on a branch rewrite the ref without its retention
    settings, so a branch created with a retention would otherwise never expire.
    """
    table.refresh()
    current = _ref(table, name)
    if current is None or current.max_ref_age_ms == max_ref_age_ms:
        return
    ms = table.manage_snapshots()
    ms.create_branch(
        current.snapshot_id,
        name,
        max_ref_age_ms=max_ref_age_ms,
        max_snapshot_age_ms=current.max_snapshot_age_ms,
        min_snapshots_to_keep=current.min_snapshots_to_keep,
    )
    ms.commit()
    table.refresh()


def move_ref(
    table: Table,
    name: str,
    snapshot_id: int,
    *,
    expected: int | None,
    tag: str | None = None,
    tag_max_ref_age_ms: int | None = None,
    drop_tag_name: str | None = None,
    drop_branch_name: str | None = None,
) -> None:
    """Point branch ``name`` at ``snapshot_id`` in one commit if it still points at ``expected``.

    Optionally creates tag ``tag`` at ``snapshot_id``, removes tag ``drop_tag_name`` or removes
    branch ``drop_branch_name`` in the same commit. No ancestry check here: :func:`publish` does
    that, and rollbacks move refs back.

    Raises:
        CommitConflictError: the branch no longer points at ``expected`` (it moved meanwhile).
    """
    current = _ref(table, name)
    current_id = current.snapshot_id if current else None
    if current_id != expected:
        raise CommitConflictError(
            f"branch {name!r} of {_table_name(table)} is at {current_id}, expected {expected}; "
            "it moved meanwhile"
        )
    try:
        _set_ref(
            table,
            name,
            snapshot_id,
            current,
            tag,
            tag_max_ref_age_ms,
            drop_tag_name,
            drop_branch_name,
        )
    except CommitFailedException as exc:
        table.refresh()
        raise CommitConflictError(
            f"branch {name!r} of {_table_name(table)} moved while it was being updated ({exc})"
        ) from exc
    table.refresh()


def _set_ref(
    table: Table,
    name: str,
    snapshot_id: int,
    current: SnapshotRef | None,
    tag: str | None,
    tag_max_ref_age_ms: int | None,
    drop_tag_name: str | None,
    drop_branch_name: str | None = None,
) -> None:
    ms = table.manage_snapshots()  # one transaction: every change below commits together
    # create_branch sets the ref whether or not it exists (here keeping its retention settings);
    # its commit requirement asserts that the ref still points where this table saw it.
    ms.create_branch(
        snapshot_id,
        name,
        max_ref_age_ms=current.max_ref_age_ms if current else None,
        max_snapshot_age_ms=current.max_snapshot_age_ms if current else None,
        min_snapshots_to_keep=current.min_snapshots_to_keep if current else None,
    )
    if tag is not None:
        ms.create_tag(snapshot_id, tag, max_ref_age_ms=tag_max_ref_age_ms)
    if drop_tag_name is not None and drop_tag_name in table.metadata.refs:
        ms.remove_tag(drop_tag_name)
    if drop_branch_name is not None and drop_branch_name in table.metadata.refs:
        ms.remove_branch(drop_branch_name)
    ms.commit()


def publish(
    table: Table,
    source: str,
    target: str = MAIN_BRANCH,
    *,
    tag: str | None = None,
    tag_max_ref_age_ms: int | None = None,
    policy: RetryPolicy | None = None,
    drop_source: bool = False,
) -> PublishResult:
    """Fast-forward ``target`` to the head of ``source``, optionally tagging the published snapshot.

    With ``drop_source``, branch ``source`` is removed in the same commit (write-audit-publish's
    audit branch): one catalog commit publishes and cleans up.

    Safe under concurrency: the ref update commits only if ``target`` still points at the
    snapshot whose ancestry was checked; otherwise the table is re-read and checked again.

    Raises:
        NotFastForwardError: ``target`` moved to snapshots that ``source`` lacks.
        RefError: ``source`` is missing or the tag name is taken.
        CommitConflictError: the commit kept losing races after the policy's attempts.
    """
    if tag is not None:
        validate_name(tag)

    def attempt() -> PublishResult:
        table.refresh()
        previous, snapshot_id = check_fast_forward(table, source, target)
        if tag is not None and tag in table.metadata.refs:
            raise RefError(f"{_table_name(table)} already has a ref {tag!r}; choose another tag")
        if previous == snapshot_id and tag is None:
            if drop_source:
                drop_branch(table, source, missing_ok=True)
            return PublishResult(_table_name(table), source, target, previous, snapshot_id, False)
        if previous == snapshot_id and tag is not None:  # already published: only tag it
            ms = table.manage_snapshots()
            ms.create_tag(snapshot_id, tag, max_ref_age_ms=tag_max_ref_age_ms)
            if drop_source:
                ms.remove_branch(source)
            ms.commit()
        else:
            try:
                move_ref(
                    table,
                    target,
                    snapshot_id,
                    expected=previous,
                    tag=tag,
                    tag_max_ref_age_ms=tag_max_ref_age_ms,
                    drop_branch_name=source if drop_source else None,
                )
            except CommitConflictError as exc:  # the target moved: check ancestry again
                raise CommitFailedException(str(exc)) from exc
        table.refresh()
        log.info(
            "published %s into %s of %s: %s -> %s",
            source,
            target,
            _table_name(table),
            previous,
            snapshot_id,
        )
        return PublishResult(
            _table_name(table), source, target, previous, snapshot_id, previous != snapshot_id, tag
        )

    return (policy or PUBLISH_POLICY).run(
        attempt, what=f"publishing {source!r} into {target!r} of {_table_name(table)}"
    )
