"""Data quality of the aura tables: great-expectations suites, validation and its history.

Expectations are declared as plain data on table specs (:mod:`lakehouse.table.expectations`); this
package turns them into great-expectations suites, runs them (:func:`validate_ref`, and the
write-audit-publish audit :func:`gx_audit`) and records the results. No Dagster and no
great-expectations at import time: GX is imported on the first validation, Dagster only by
:mod:`quality.checks`.
"""

from quality.audit import gx_audit
from quality.results import QUALITY_RESULTS, Outcome, QualityResult, record
from quality.suites import Expectation, Suite, between, in_set, not_null, suite_for, unique
from quality.validate import validate_arrow, validate_ref

__all__ = [
    "QUALITY_RESULTS",
    "Expectation",
    "Outcome",
    "QualityResult",
    "Suite",
    "between",
    "gx_audit",
    "in_set",
    "not_null",
    "record",
    "suite_for",
    "unique",
    "validate_arrow",
    "validate_ref",
]
