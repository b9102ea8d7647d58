"""Data quality of the aura tables: great-expectations suites, validation and its history.

No Dagster and no great-expectations at import time: GX is imported on the first validation,
Dagster only by :mod:`quality.checks`.
"""

from quality.results import QUALITY_RESULTS, record
from quality.suites import Expectation, Suite, between, not_null, register_suite, suite_for, unique
from quality.validate import Outcome, QualityResult, validate_arrow, validate_ref

__all__ = [
    "QUALITY_RESULTS",
    "Expectation",
    "Outcome",
    "QualityResult",
    "Suite",
    "between",
    "not_null",
    "record",
    "register_suite",
    "suite_for",
    "unique",
    "validate_arrow",
    "validate_ref",
]
