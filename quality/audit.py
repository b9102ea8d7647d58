"""The great-expectations audit of write-audit-publish (:mod:`lakehouse.publish.wap`).

:func:`gx_audit` validates the audit branch (the written day, for daily writes) against the
table's suite and records the result in ``aura.quality_results``; it satisfies
:class:`lakehouse.publish.wap.Audit`, so ``write_audit_publish(..., audit=gx_audit)``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from lakehouse.table.writer import Lineage
from quality.results import QualityResult
from quality.validate import validate_ref

if TYPE_CHECKING:
    from lakehouse import Lakehouse
    from lakehouse.publish.wap import Audit

__all__ = ["gx_audit"]


def gx_audit(
    lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
) -> QualityResult:
    """Validate ``branch`` of ``table`` (only ``day``, if given) with its suite; record it."""
    return validate_ref(lh, table, branch, day=day, run_id=lineage.run_id)


if TYPE_CHECKING:
    _check: Audit = gx_audit  # gx_audit must satisfy the library's Audit protocol
