"""A fast evaluator of the common great-expectations expectations over Arrow data.

Expectations are declared as great-expectations class names and keyword arguments; this module
computes the same outcome great-expectations 1.x computes on a pandas batch (``success``,
``unexpected_count``, ``unexpected_percent``, the first unexpected values) with pyarrow compute
and polars, without converting to pandas and without importing great-expectations.

Semantics kept from great-expectations' pandas engine (a conformance test runs both):

* a value is *missing* when it is null or a floating-point NaN (pandas treats NaN as missing);
* column map expectations ignore missing values: ``unexpected_percent`` is over the non-missing
  values and the check passes vacuously when there are none;
* ``ExpectColumnValuesToNotBeNull`` counts missing values over all rows;
* ``ExpectCompoundColumnsToBeUnique`` drops rows whose values are all missing
  (``ignore_row_if="all_values_are_missing"``, the default) and counts every row of a repeated
  tuple, missing values comparing equal;
* ``mostly``: success when ``(considered - unexpected) / considered >= mostly``.

Anything else (other expectation classes, arguments such as ``row_condition``, column types
without an exact counterpart, arguments great-expectations rejects) raises
:class:`UnsupportedExpectation`; callers then run great-expectations itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

PARTIAL_UNEXPECTED_COUNT = 20
"""How many unexpected values an outcome lists (great-expectations' SUMMARY format)."""

_COMMON = frozenset({"mostly"})
_ALLOWED: dict[str, frozenset[str]] = {
    "ExpectColumnValuesToNotBeNull": frozenset({"column"}) | _COMMON,
    "ExpectColumnValuesToBeUnique": frozenset({"column"}) | _COMMON,
    "ExpectCompoundColumnsToBeUnique": frozenset({"column_list", "ignore_row_if"}) | _COMMON,
    "ExpectColumnValuesToBeBetween": frozenset(
        {"column", "min_value", "max_value", "strict_min", "strict_max"}
    )
    | _COMMON,
    "ExpectColumnValuesToBeInSet": frozenset({"column", "value_set"}) | _COMMON,
    "ExpectTableRowCountToBeBetween": frozenset(
        {"min_value", "max_value", "strict_min", "strict_max"}
    ),
}
SUPPORTED = frozenset(_ALLOWED)
"""Expectation classes this module evaluates."""


class UnsupportedExpectation(ValueError):  # noqa: N818 (a signal to fall back, not a failure)
    """This expectation, its arguments or its column type are not evaluated here: use GX."""


@dataclass(frozen=True)
class EvalOutcome:
    """What great-expectations would report for one expectation."""

    success: bool
    element_count: int
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    partial_unexpected_list: list[Any] = field(default_factory=list)
    observed_value: Any = None


def supports(kind: str, kwargs: dict[str, Any]) -> bool:
    """Whether :func:`evaluate` handles ``kind`` with these arguments (column types aside)."""
    allowed = _ALLOWED.get(kind)
    return allowed is not None and set(kwargs) <= allowed


def evaluate(kind: str, kwargs: dict[str, Any], data: pa.Table) -> EvalOutcome:
    """Evaluate the expectation ``kind(**kwargs)`` on ``data``.

    Raises:
        UnsupportedExpectation: evaluate it with great-expectations instead.
        KeyError: a column the expectation names is not in ``data``.
    """
    if not supports(kind, kwargs):
        raise UnsupportedExpectation(f"{kind}({sorted(kwargs)}) is not evaluated natively")
    mostly = _mostly(kwargs.get("mostly", 1))
    if kind == "ExpectTableRowCountToBeBetween":
        return _row_count(data.num_rows, kwargs)
    if kind == "ExpectCompoundColumnsToBeUnique":
        return _compound_unique(data, list(kwargs["column_list"]), kwargs, mostly)
    column = data.column(kwargs["column"])
    if kind == "ExpectColumnValuesToNotBeNull":
        return _not_null(column, mostly)
    evaluators: dict[str, Callable[[pa.ChunkedArray], pa.ChunkedArray | pa.Array | None]] = {
        "ExpectColumnValuesToBeUnique": _duplicated,
        "ExpectColumnValuesToBeBetween": lambda values: _outside(values, kwargs),
        "ExpectColumnValuesToBeInSet": lambda values: _not_in_set(values, kwargs["value_set"]),
    }
    return _column_map(column, evaluators[kind], mostly)


def _map_outcome(
    rows: int, considered: int, unexpected: int, mostly: float, sample: list[Any]
) -> EvalOutcome:
    """The outcome of a map expectation: ``unexpected`` of ``considered`` values of ``rows``."""
    return EvalOutcome(
        success=_success(considered, unexpected, mostly),
        element_count=rows,
        unexpected_count=unexpected,
        unexpected_percent=_percent(unexpected, considered, rows),
        partial_unexpected_list=sample,
    )


def _mostly(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UnsupportedExpectation(f"mostly={value!r} is not a fraction")
    return float(value)


def _missing(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null, or NaN in a floating-point column (what pandas calls missing)."""
    return pc.is_null(values, nan_is_null=pa.types.is_floating(values.type))


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _success(considered: int, unexpected: int, mostly: float) -> bool:
    if considered == 0:
        return True  # vacuously true, as in great-expectations
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


def _percent(unexpected: int, considered: int, rows: int) -> float | None:
    return unexpected / considered * 100 if rows > 0 and considered > 0 else None


def _not_null(values: pa.ChunkedArray, mostly: float) -> EvalOutcome:
    rows = len(values)
    unexpected = _count(_missing(values)) if values.null_count or _nan_possible(values) else 0
    return _map_outcome(
        rows, rows, unexpected, mostly, [None] * min(unexpected, PARTIAL_UNEXPECTED_COUNT)
    )


def _nan_possible(values: pa.ChunkedArray) -> bool:
    return pa.types.is_floating(values.type)


def _column_map(
    values: pa.ChunkedArray,
    unexpected_of: Callable[[pa.ChunkedArray], pa.ChunkedArray | pa.Array | None],
    mostly: float,
) -> EvalOutcome:
    """A column map expectation: ``unexpected_of(non-missing values)`` is a boolean mask (None:
    nothing unexpected)."""
    rows = len(values)
    present = values
    had_missing = False
    if values.null_count or _nan_possible(values):
        missing = _missing(values)
        if _count(missing):
            had_missing = True
            present = values.filter(pc.invert(missing))
    mask = unexpected_of(present)
    unexpected = 0 if mask is None else _count(mask)
    sample: list[Any] = []
    if mask is not None and unexpected:
        sample = present.filter(mask).slice(0, PARTIAL_UNEXPECTED_COUNT).to_pylist()
        if had_missing and pa.types.is_integer(values.type):
            sample = [float(v) for v in sample]  # pandas holds an int column with nulls as float
    considered = len(present)
    return _map_outcome(rows, considered, unexpected, mostly, sample)


def _hashable(values: pa.ChunkedArray) -> pl.Series:
    if not (
        pa.types.is_integer(values.type)
        or pa.types.is_floating(values.type)
        or pa.types.is_string(values.type)
        or pa.types.is_large_string(values.type)
        or pa.types.is_boolean(values.type)
        or pa.types.is_timestamp(values.type)
        or pa.types.is_date(values.type)
    ):
        raise UnsupportedExpectation(f"uniqueness of {values.type} values is left to GX")
    if pa.types.is_floating(values.type):
        values = pc.add(values, 0.0)  # -0.0 and 0.0 are one value in pandas
    return pl.Series(values)


def _duplicated(values: pa.ChunkedArray) -> pa.Array | None:
    """Rows whose value occurs more than once (every occurrence, as pandas' keep=False)."""
    series = _hashable(values)
    if series.hash().n_unique() == len(series):
        return None  # distinct hashes imply distinct values: the common case is one hash pass
    return series.is_duplicated().to_arrow()


def _outside(values: pa.ChunkedArray, kwargs: dict[str, Any]) -> pa.ChunkedArray:
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise UnsupportedExpectation(f"ranges over {values.type} values are left to GX")
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise UnsupportedExpectation(f"bound {bound!r} is not a number")
    if low is None and high is None:
        raise UnsupportedExpectation("min_value and max_value are both None (GX rejects it)")
    if low is not None and high is not None and low > high:
        raise UnsupportedExpectation("min_value > max_value (GX rejects it)")
    inside: pa.ChunkedArray | None = None
    if low is not None:
        inside = (pc.greater if kwargs.get("strict_min") else pc.greater_equal)(values, low)
    if high is not None:
        upper = (pc.less if kwargs.get("strict_max") else pc.less_equal)(values, high)
        inside = upper if inside is None else pc.and_(inside, upper)
    assert inside is not None
    return pc.invert(inside)


def _not_in_set(values: pa.ChunkedArray, value_set: Any) -> pa.ChunkedArray:
    items = list(value_set)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        if not all(isinstance(v, str) for v in items):
            raise UnsupportedExpectation("a string column with a non-string value set")
        allowed = pa.array(items, type=values.type)
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            raise UnsupportedExpectation("a numeric column with a non-numeric value set")
        if any(isinstance(v, float) and math.isnan(v) for v in items):
            raise UnsupportedExpectation("NaN in a value set")
        # -0.0 and 0.0 are one value for pandas' isin; Arrow's is_in hashes their bits.
        values = pc.add(values.cast(pa.float64()), 0.0)
        allowed = pa.array([float(v) + 0.0 for v in items], type=pa.float64())
    else:
        raise UnsupportedExpectation(f"value sets over {values.type} values are left to GX")
    return pc.invert(pc.is_in(values, value_set=allowed))


def _compound_unique(
    data: pa.Table, columns: list[str], kwargs: dict[str, Any], mostly: float
) -> EvalOutcome:
    ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
    if ignore not in ("all_values_are_missing", "any_value_is_missing", "never"):
        raise UnsupportedExpectation(f"ignore_row_if={ignore!r}")
    if not columns or len(set(columns)) != len(columns):
        raise UnsupportedExpectation("column_list must name distinct columns")
    rows = data.num_rows
    frame = data.select(columns)
    missing = [_missing(frame.column(c)) for c in columns]
    if ignore != "never" and any(
        frame.column(c).null_count or _nan_possible(frame.column(c)) for c in columns
    ):
        combine = pc.and_ if ignore == "all_values_are_missing" else pc.or_
        dropped = missing[0]
        for mask in missing[1:]:
            dropped = combine(dropped, mask)
        if _count(dropped):
            frame = frame.filter(pc.invert(dropped))
    series = [_hashable(frame.column(c)).rename(c) for c in columns]
    # NaN and null are one missing value for pandas' duplicated()
    series = [s.fill_nan(None) if s.dtype.is_float() else s for s in series]
    polars_frame = pl.DataFrame(series)
    if polars_frame.hash_rows().n_unique() == polars_frame.height:
        unexpected, sample = 0, []
    else:
        mask = polars_frame.is_duplicated()
        unexpected = int(mask.sum())
        sample = frame.filter(mask.to_arrow()).slice(0, PARTIAL_UNEXPECTED_COUNT).to_pylist()
    considered = frame.num_rows
    return _map_outcome(rows, considered, unexpected, mostly, sample)


def _row_count(rows: int, kwargs: dict[str, Any]) -> EvalOutcome:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise UnsupportedExpectation(f"row count bound {bound!r} is not an integer")
    if low is None and high is None:
        raise UnsupportedExpectation("min_value and max_value are both None")
    success = True
    if low is not None:
        success = rows > low if kwargs.get("strict_min") else rows >= low
    if high is not None:
        success = success and (rows < high if kwargs.get("strict_max") else rows <= high)
    return EvalOutcome(success=success, element_count=rows, observed_value=rows)
