"""Expectations as plain data: what a table's rows must satisfy, declared on its spec.

Each expectation names a great-expectations expectation class and its arguments, but nothing
here imports great-expectations: ``quality/`` turns a spec's expectations into a suite and runs
it. Domains declare them in ``lakehouse/<domain>/tables.py`` with the builders below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
    """``column`` is never null."""
    return Expectation(
        "ExpectColumnValuesToNotBeNull", {"column": column}, f"{column} is never null"
    )


def unique(*columns: str) -> Expectation:
    """``columns`` (one or several together) identify a row."""
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
    """Values of ``column`` lie in ``[min_value, max_value]`` (None: unbounded)."""
    low = "-inf" if min_value is None else f"{min_value:g}"
    high = "inf" if max_value is None else f"{max_value:g}"
    return Expectation(
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": min_value, "max_value": max_value},
        f"{column} in [{low}, {high}]",
    )


def in_set(column: str, values: Iterable[object]) -> Expectation:
    """Values of ``column`` are among ``values``."""
    allowed = list(values)
    return Expectation(
        "ExpectColumnValuesToBeInSet",
        {"column": column, "value_set": allowed},
        f"{column} in {{{', '.join(map(str, allowed))}}}",
    )


def check_unique_names(table: str, expectations: Iterable[Expectation]) -> None:
    """Refuse two expectations of one table with the same name (check names must differ)."""
    names = [e.name for e in expectations]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"expectations of {table} share names: {sorted(duplicates)}")
