"""Expectation suites of the aura tables, built from the expectations their specs declare.

A table's expectations are plain data on its :class:`~lakehouse.table.registry.TableSpec` (declared
in
``lakehouse/<domain>/tables.py`` with the builders of :mod:`lakehouse.table.expectations`,
re-exported
here). A table that declares none gets a suite derived from its key: key columns not null and
unique. The great-expectations objects are built only when a validation runs (GX is slow to
import).
"""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.table.expectations import Expectation, between, in_set, not_null, unique
from lakehouse.table.registry import TableSpec, spec_for

__all__ = [
    "Expectation",
    "Suite",
    "between",
    "derived_suite",
    "in_set",
    "not_null",
    "suite_for",
    "unique",
]


@dataclass(frozen=True)
class Suite:
    """The expectations of one table."""

    table: str
    expectations: tuple[Expectation, ...]

    @property
    def name(self) -> str:
        return f"aura.{self.table}"

    @property
    def columns(self) -> list[str]:
        """Columns the suite reads (only these are handed to great-expectations)."""
        return sorted({c for e in self.expectations for c in e.columns})


def suite_for(table: str) -> Suite:
    """The suite of a registered table: its spec's expectations, or one derived from its key."""
    spec = spec_for(table)
    if spec.expectations:
        return Suite(spec.name, spec.expectations)
    return derived_suite(spec)


def derived_suite(spec: TableSpec) -> Suite:
    """Key columns are never null and identify a row."""
    return Suite(spec.name, (*(not_null(c) for c in spec.key), unique(*spec.key)))
