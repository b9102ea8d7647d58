"""Write-audit-publish: the way AURA writes a data table, usable with or without Dagster.

1. **Write** the batch to an audit branch that starts at the target's head (main, or the branch
   ``AURA_BRANCH`` names, e.g. an experiment).
2. **Audit** the audit branch's snapshot with the audit function the caller gives (the written
   day only, for daily writes). ``quality.audit.gx_audit`` runs the table's great-expectations
   suite and records it in ``aura.quality_results``; other audits (a model evaluation) fit the
   same :class:`Audit` protocol. There is no default audit: a data table is never published
   unaudited by accident.
3. **Publish** on success: fast-forward the target to the audit snapshot, tag it with the run
   and drop the audit branch. On failure the target is unchanged and the audit branch is kept
   for inspection (it carries a retention, so ``refs.expire_refs`` removes it eventually).

If another writer published to the target meanwhile, the publish is not a fast-forward; the
batch is then written again on a fresh audit branch and audited again (writes are appends or
idempotent day overwrites, so replaying them is safe), a bounded number of times.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from lakehouse.exceptions import NotFastForwardError
from lakehouse.table import refs
from lakehouse.table.retry import RetryPolicy
from lakehouse.table.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
AUDIT_BRANCH_RETENTION_MS = 7 * DAY_MS
RUN_TAG_RETENTION_MS = 30 * DAY_MS
REPLAY_POLICY = RetryPolicy(attempts=4, base_delay=0.02, max_delay=0.5)


class AuditReport(Protocol):
    """What an audit says: whether the written data may be published, and why in one line."""

    @property
    def success(self) -> bool: ...

    def summary(self) -> str: ...


class Audit(Protocol):
    """Judges the data of ``table`` at the head of ``branch`` (only ``day`` of it, if given)."""

    def __call__(
        self, lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
    ) -> AuditReport: ...


@dataclass(frozen=True)
class Accepted:
    """The report of :func:`accept_all`."""

    table: str
    branch: str
    success: bool = True

    def summary(self) -> str:
        return f"{self.table}@{self.branch}: accepted without audit"


def accept_all(
    lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
) -> Accepted:
    """An audit that accepts everything: for tests of the mechanism, never for data tables."""
    return Accepted(table, branch)


@dataclass(frozen=True)
class WapResult:
    """What one write-audit-publish did."""

    table: str
    target: str
    audit_branch: str
    write: WriteResult
    audit: AuditReport
    published: bool
    publish: refs.PublishResult | None
    tag: str | None
    target_snapshot_id: int | None

    @property
    def snapshot_id(self) -> int | None:
        """The audited snapshot (now the target's head when published)."""
        return self.write.snapshot_id


def run_tag(run_id: str, day: date | None = None) -> str:
    """The tag a run's publish puts on the snapshot: ``run-<run id>[-<day>]``."""
    return f"run-{run_id}" + (f"-{day:%Y%m%d}" if day else "")


def audit_branch_name(run_id: str | None, day: date | None = None) -> str:
    token = run_id or uuid.uuid4().hex
    return f"audit-{token}" + (f"-{day:%Y%m%d}" if day else "")


def _free_tag(table: Table, tag: str | None) -> str | None:
    """``tag``, or ``tag-2``, ``tag-3``... when a run with the same id published before.

    A run retried under its own id (a Dagster step retry, or a re-run after a crash that hit
    after the publish) publishes again; it must not fail on its earlier tag.
    """
    if tag is None:
        return None
    table.refresh()
    existing = table.metadata.refs
    candidate, n = tag, 1
    while candidate in existing:
        n += 1
        candidate = f"{tag}-{n}"
    return candidate


def write_audit_publish(
    lh: Lakehouse,
    table: str,
    data: pa.Table,
    *,
    audit: Audit,
    day: date | None = None,
    lineage: Lineage | None = None,
    target: str | None = None,
    tag: str | None = None,
    tag_max_ref_age_ms: int | None = RUN_TAG_RETENTION_MS,
) -> WapResult:
    """Write ``data`` to ``table`` through an audit branch; publish only if the audit passes.

    Args:
        lh: the lakehouse.
        table: an aura table.
        data: the batch; with ``day`` it replaces that day partition, else it is appended.
        audit: judges the audit branch (e.g. ``quality.audit.gx_audit``).
        day: the day partition written (and audited), or None for an append.
        lineage: who writes (its ``run_id`` names the audit branch and the tag).
        target: the branch to publish into (default ``lh.settings.branch``, i.e. main unless
            ``AURA_BRANCH`` names another; a missing target branch is created from main).
        tag: tag for the published snapshot (default ``run-<run id>[-<day>]`` when a run id is
            known, else none).
        tag_max_ref_age_ms: retention of that tag.

    Raises:
        ValidationError: the batch does not fit the table's schema (nothing was written).
        CommitConflictError: other writers kept publishing first, ``REPLAY_POLICY.attempts`` times.
    """
    lineage = lineage or Lineage()

    def write(branch: str) -> WriteResult:
        if day is None:
            return lh.append(table, data, lineage=lineage, branch=branch)
        return lh.overwrite_day(table, data, day, lineage=lineage, branch=branch)

    result = audit_and_publish(
        lh,
        table,
        write,
        audit=audit,
        day=day,
        lineage=lineage,
        target=target,
        tag=tag,
        tag_max_ref_age_ms=tag_max_ref_age_ms,
    )
    assert result is not None  # ``write`` always writes
    return result


def audit_and_publish(
    lh: Lakehouse,
    table: str,
    write: Callable[[str], WriteResult | None],
    *,
    audit: Audit,
    day: date | None = None,
    lineage: Lineage | None = None,
    target: str | None = None,
    tag: str | None = None,
    tag_max_ref_age_ms: int | None = RUN_TAG_RETENTION_MS,
) -> WapResult | None:
    """Write-audit-publish where ``write(audit_branch)`` does the writing.

    ``write`` is called again on a fresh audit branch when the target moved during the audit,
    so a write that merges with what it reads (e.g. routing ingestion) merges with the new head.
    It returns None when it had nothing to write; then nothing is audited or published and
    None is returned. Arguments and errors are those of :func:`write_audit_publish`.
    """
    lineage = lineage or Lineage()
    target = target or lh.settings.branch
    if tag is None and lineage.run_id:
        tag = run_tag(lineage.run_id, day)
    iceberg = lh.table(table)
    refs.ensure_branch(iceberg, target)
    base_branch = audit_branch_name(lineage.run_id, day)
    attempts = 0

    def attempt() -> WapResult | None:
        nonlocal attempts
        attempts += 1
        branch = base_branch if attempts == 1 else f"{base_branch}-r{attempts}"
        refs.drop_branch(iceberg, branch, missing_ok=True)
        refs.create_branch(iceberg, branch, source=target, max_ref_age_ms=AUDIT_BRANCH_RETENTION_MS)
        written = write(branch)
        if written is None:
            refs.drop_branch(iceberg, branch, missing_ok=True)
            return None
        report = audit(lh, table, branch, day, lineage)
        if not report.success:
            # The writes (the audit's own too) dropped the branch's retention: set it again, so
            # the branch kept for inspection expires. A published branch is dropped instead.
            refs.restore_retention(iceberg, branch, AUDIT_BRANCH_RETENTION_MS)
            log.warning(
                "audit of %s failed; %s unchanged, data kept on branch %s: %s",
                table,
                target,
                branch,
                report.summary(),
            )
            head = refs.head(lh.table(table), target)
            return WapResult(table, target, branch, written, report, False, None, None, head)
        used_tag = _free_tag(iceberg, tag)
        try:
            published = refs.publish(
                iceberg,
                branch,
                target,
                tag=used_tag,
                tag_max_ref_age_ms=tag_max_ref_age_ms,
                drop_source=True,  # the audit branch goes in the publishing commit
            )
        except NotFastForwardError as exc:
            # The target moved during the audit: write again on a fresh audit branch.
            refs.drop_branch(iceberg, branch, missing_ok=True)
            raise CommitFailedException(f"{target} moved during the audit: {exc}") from exc
        return WapResult(
            table, target, branch, written, report, True, published, used_tag, published.snapshot_id
        )

    return REPLAY_POLICY.run(
        attempt, what=f"write-audit-publish of {table} into {target} (the target kept moving)"
    )
