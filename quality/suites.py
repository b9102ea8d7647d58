"""Expectation suites of the aura tables, declared without importing great-expectations.

Each expectation names a great-expectations expectation class and its arguments; the GX objects
are built only when a validation runs (GX is slow to import). A table without a suite of its own
gets one derived from its contract: key columns not null and unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lakehouse.tables import TableSpec, spec_for

_SHORT_NAMES = {
    "ExpectColumnValuesToNotBeNull": "not_null",
    "ExpectColumnValuesToBeUnique": "unique",
    "ExpectCompoundColumnsToBeUnique": "unique",
    "ExpectColumnValuesToBeBetween": "in_range",
    "ExpectColumnValuesToBeInSet": "in_set",
    "ExpectTableRowCountToBeBetween": "row_count",
}


@dataclass(frozen=True)
class Expectation:
    """One great-expectations expectation: its class name and arguments."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        if "column" in self.kwargs:
            return (self.kwargs["column"],)
        return tuple(self.kwargs.get("column_list", ()))

    @property
    def name(self) -> str:
        """A stable identifier, e.g. ``quality_score_in_range`` (Dagster check names use it)."""
        short = (
            _SHORT_NAMES.get(self.kind)
            or re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind.removeprefix("Expect")).lower()
        )
        return "_".join((*self.columns, short)) if self.columns else short

    def describe(self) -> str:
        """One line for people, e.g. ``quality_score in [0, 1]``."""
        if self.description:
            return self.description
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k not in ("column",))
        return f"{self.name}({args})" if args else self.name


def not_null(column: str) -> Expectation:
    return Expectation(
        "ExpectColumnValuesToNotBeNull", {"column": column}, f"{column} is never null"
    )


def unique(*columns: str) -> Expectation:
    if len(columns) == 1:
        return Expectation(
            "ExpectColumnValuesToBeUnique", {"column": columns[0]}, f"{columns[0]} is unique"
        )
    return Expectation(
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": list(columns)},
        f"({', '.join(columns)}) is unique",
    )


def between(
    column: str, min_value: float | None = None, max_value: float | None = None
) -> Expectation:
    low = "-inf" if min_value is None else f"{min_value:g}"
    high = "inf" if max_value is None else f"{max_value:g}"
    return Expectation(
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": min_value, "max_value": max_value},
        f"{column} in [{low}, {high}]",
    )


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


_SUITES: dict[str, Suite] = {}


def register_suite(table: str, *expectations: Expectation) -> Suite:
    """Set the suite of ``table`` (replacing a derived or earlier one)."""
    names = [e.name for e in expectations]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"suite of {table} has expectations with the same name: {duplicates}")
    suite = Suite(table, tuple(expectations))
    _SUITES[table] = suite
    return suite


def suite_for(table: str) -> Suite:
    """The suite of a registered table: its own, or one derived from its key."""
    spec = spec_for(table)
    return _SUITES.get(spec.name) or derived_suite(spec)


def derived_suite(spec: TableSpec) -> Suite:
    """Key columns are never null and identify a row."""
    return Suite(spec.name, (*(not_null(c) for c in spec.key), unique(*spec.key)))


register_suite(
    "routing_decisions",
    not_null("decision_id"),
    unique("decision_id"),
    not_null("ts"),
    not_null("chosen_model"),
    between("quality_score", 0, 1),
    between("cost_usd", min_value=0),
    between("latency_ms", min_value=0),
    between("prompt_tokens", min_value=0),
)

register_suite(
    "routing_decisions_rejected",
    not_null("stream_id"),
    not_null("reason"),
    unique("stream", "stream_id"),
)

register_suite(
    "routing_model_daily",
    not_null("chosen_model"),
    unique("day", "chosen_model"),
    between("decisions", min_value=0),
    between("cost_usd", min_value=0),
    between("quality_mean", 0, 1),
    between("fallback_rate", 0, 1),
)
