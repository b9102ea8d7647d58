"""The write-audit-publish mechanism with audits other than great-expectations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from helpers import DAY, decisions

from lakehouse import Lakehouse, Lineage
from lakehouse.publish.wap import (
    AUDIT_BRANCH_RETENTION_MS,
    accept_all,
    audit_and_publish,
    write_audit_publish,
)
from lakehouse.table import refs
from lakehouse.table.writer import WriteResult

TABLE = "routing_decisions"


@dataclass(frozen=True)
class Verdict:
    success: bool
    reason: str

    def summary(self) -> str:
        return self.reason


def test_any_audit_decides_and_a_rejected_batch_stays_on_its_branch(lakehouse: Lakehouse) -> None:
    seen: list[tuple[str, date | None, int]] = []

    def few_rows_only(lh: Lakehouse, table: str, branch: str, day, lineage) -> Verdict:  # type: ignore[no-untyped-def]
        rows = lh.read(table, branch=branch, day=day).num_rows
        seen.append((branch, day, rows))
        return Verdict(rows <= 3, f"{rows} rows")

    ok = write_audit_publish(
        lakehouse, TABLE, decisions(3), audit=few_rows_only, day=DAY.date(), lineage=Lineage()
    )
    assert ok.published and ok.audit.summary() == "3 rows"
    main = refs.head(lakehouse.table(TABLE))
    bad = write_audit_publish(
        lakehouse,
        TABLE,
        decisions(5),
        audit=few_rows_only,
        day=DAY.date(),
        lineage=Lineage(run_id="too-many"),
    )
    assert not bad.published and refs.head(lakehouse.table(TABLE)) == main
    assert lakehouse.read(TABLE, branch=bad.audit_branch).num_rows == 5
    assert [(d, n) for _, d, n in seen] == [(DAY.date(), 3), (DAY.date(), 5)]
    # The kept branch expires (its write dropped the retention; the refusal set it again) and
    # the published one is gone.
    kept = {r.name: r for r in refs.list_refs(lakehouse.table(TABLE), "branch")}
    assert kept[bad.audit_branch].max_ref_age_ms == AUDIT_BRANCH_RETENTION_MS
    assert ok.audit_branch not in kept


def test_the_write_is_replayed_on_a_fresh_branch_when_the_target_moved(
    lakehouse: Lakehouse,
) -> None:
    branches: list[str] = []

    def write(branch: str) -> WriteResult:
        branches.append(branch)
        if len(branches) == 1:  # another writer publishes to main during this audit
            lakehouse.append(TABLE, decisions(2, start=100))
        return lakehouse.append(TABLE, decisions(1, start=200), branch=branch)

    result = audit_and_publish(lakehouse, TABLE, write, audit=accept_all, lineage=Lineage())
    assert result is not None and result.published
    assert len(branches) == 2 and branches[1].endswith("-r2")
    assert lakehouse.read(TABLE).num_rows == 3
    assert audit_and_publish(lakehouse, TABLE, lambda b: None, audit=accept_all) is None
