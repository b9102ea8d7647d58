"""The fast expectation evaluator gives great-expectations' own outcomes (real GX runs here).

Hypothesis draws tables with nulls, NaN, -0.0, repeated values and values on the bounds, and
suites of the supported expectation classes with strict/non-strict bounds, ``mostly`` and
``ignore_row_if``; GX validates the pandas form of the table (as quality/validate.py would) and
each outcome must match: success, unexpected_count, unexpected_percent and the unexpected sample.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse import Lakehouse
from quality import evaluator, suite_for, validate_arrow, validate_ref
from quality.evaluator import UnsupportedExpectation, evaluate
from quality.suites import Expectation, Suite

FLOATS = [0.0, -0.0, 0.5, 1.0, -1.0, 2.5, 1e-9, math.nan]
INTS = [0, 1, 2, -1, 7, 2**40]
STRINGS = ["a", "b", "", "ä", "a b"]
T0 = datetime(2026, 11, 20, tzinfo=UTC)
TIMES = [T0, T0 + timedelta(seconds=1), T0 + timedelta(microseconds=7)]
BOUNDS = [None, -1, 0, 0.5, 1, 2, 2.5]
MOSTLY = [None, 0.0, 0.25, 0.5, 0.8, 1.0]


def _column(pool: list[Any], size: int) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from([*pool, None]), min_size=size, max_size=size)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    size = draw(st.integers(0, 30))
    return pa.table(
        {
            "f": pa.array(draw(_column(FLOATS, size)), pa.float64()),
            "i": pa.array(draw(_column(INTS, size)), pa.int64()),
            "s": pa.array(draw(_column(STRINGS, size)), pa.large_string()),
            "t": pa.array(draw(_column(TIMES, size)), pa.timestamp("us", tz="UTC")),
        }
    )


def _with_mostly(draw: st.DrawFn, kwargs: dict[str, Any]) -> dict[str, Any]:
    mostly = draw(st.sampled_from(MOSTLY))
    return kwargs if mostly is None else {**kwargs, "mostly": mostly}


@st.composite
def expectations(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(sorted(evaluator.SUPPORTED)))
    if kind in ("ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeUnique"):
        return kind, _with_mostly(draw, {"column": draw(st.sampled_from("fist"))})
    if kind == "ExpectCompoundColumnsToBeUnique":
        columns = draw(st.lists(st.sampled_from("fist"), min_size=2, max_size=3, unique=True))
        kwargs: dict[str, Any] = {"column_list": columns}
        ignore = draw(st.sampled_from([None, "all_values_are_missing", "any_value_is_missing"]))
        if ignore:
            kwargs["ignore_row_if"] = ignore
        return kind, _with_mostly(draw, kwargs)
    if kind == "ExpectColumnValuesToBeInSet":
        column = draw(st.sampled_from("fis"))
        pool: list[Any] = STRINGS if column == "s" else [0, 1, 2, 0.5, -1]
        return kind, _with_mostly(
            draw, {"column": column, "value_set": draw(st.lists(st.sampled_from(pool)))}
        )
    low, high = draw(st.sampled_from(BOUNDS)), draw(st.sampled_from(BOUNDS))
    if low is None and high is None:
        high = 1
    if low is not None and high is not None and low > high:
        low, high = high, low
    kwargs = {"min_value": low, "max_value": high}
    for flag in ("strict_min", "strict_max"):
        if draw(st.booleans()):
            kwargs[flag] = draw(st.booleans())
    if kind == "ExpectTableRowCountToBeBetween":
        return kind, {k: int(v) if isinstance(v, float) else v for k, v in kwargs.items()}
    return kind, _with_mostly(draw, {"column": draw(st.sampled_from("fi")), **kwargs})


class _Gx(tuple):  # type: ignore[type-arg]
    def __repr__(self) -> str:  # keeps hypothesis' report of a failing example short
        return "<great-expectations ephemeral context>"


@pytest.fixture(scope="module")
def gx_context() -> Iterator[Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    yield _Gx((gx, context, context.data_sources.add_pandas("conformance")))


def _gx_results(gx_context: Any, data: pa.Table, suite: list[tuple[str, dict[str, Any]]]) -> Any:
    gx, context, source = gx_context
    n = len(context.suites.all())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        gx_suite = context.suites.add(gx.ExpectationSuite(name=f"s{n}"))
        for i, (kind, kwargs) in enumerate(suite):
            gx_suite.add_expectation(getattr(gx.expectations, kind)(**kwargs, meta={"i": i}))
        batch = (
            source.add_dataframe_asset(f"a{n}")
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": data.to_pandas()})
        )
        results = batch.validate(gx_suite, result_format={"result_format": "SUMMARY"}).results
    by_index = {r.expectation_config.meta["i"]: r for r in results}
    # GX drops an expectation equal to an earlier one (e.g. strict_max=False spelled out):
    # validate those on their own.
    return [
        by_index[i] if i in by_index else _gx_results(gx_context, data, [e])[0]
        for i, e in enumerate(suite)
    ]


def _plain(value: Any) -> Any:
    """Both sides as JSON-like values (GX gives numpy scalars, NaN and pandas timestamps)."""
    if hasattr(value, "item"):
        value = value.item()
    if (isinstance(value, float) and math.isnan(value)) or str(value) == "NaT":
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _same_percent(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-12)


@settings(
    max_examples=int(os.environ.get("AURA_CONFORMANCE_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=tables(), suite=st.lists(expectations(), min_size=1, max_size=5))
def test_outcomes_match_great_expectations(
    gx_context: Any, data: pa.Table, suite: list[tuple[str, dict[str, Any]]]
) -> None:
    for (kind, kwargs), raw in zip(suite, _gx_results(gx_context, data, suite), strict=True):
        assert raw.exception_info.get("raised_exception") is not True, raw.exception_info
        ours = evaluate(kind, kwargs, data)
        details = raw.result or {}
        where = f"{kind}({kwargs}) on {data.to_pydict()}"
        assert ours.success == raw.success, where
        if kind == "ExpectTableRowCountToBeBetween":
            assert ours.observed_value == details["observed_value"], where
            continue
        assert ours.unexpected_count == details["unexpected_count"], where
        assert _same_percent(ours.unexpected_percent, details["unexpected_percent"]), where
        theirs = [_plain(v) for v in details["partial_unexpected_list"]]
        assert [_plain(v) for v in ours.partial_unexpected_list] == theirs, where


def test_large_batch_matches_great_expectations(gx_context: Any) -> None:
    """The hashing fast path (no duplicate) and the exact path (duplicates) on 50k rows."""
    n = 50_000
    ids = [f"id-{i}" for i in range(n)]
    ids[n - 1] = ids[17]
    data = pa.table(
        {
            "id": pa.array(ids, pa.large_string()),
            "k": pa.array(list(range(n)), pa.int64()),
            "x": pa.array([(i % 1000) / 999 for i in range(n)], pa.float64()),
        }
    )
    suite: list[tuple[str, dict[str, Any]]] = [
        ("ExpectColumnValuesToBeUnique", {"column": "id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "k"}),
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["id", "x"]}),
        ("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 0, "max_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "x", "max_value": 1, "strict_max": True}),
    ]
    for (kind, kwargs), raw in zip(suite, _gx_results(gx_context, data, suite), strict=True):
        ours = evaluate(kind, kwargs, data)
        assert (ours.success, ours.unexpected_count) == (
            raw.success,
            raw.result["unexpected_count"],
        ), (kind, kwargs)
    assert evaluate(*suite[0], data).unexpected_count == 2
    assert evaluate(*suite[1], data).unexpected_count == 0


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("ExpectColumnValuesToMatchRegex", {"column": "s", "regex": "a"}),
        ("ExpectColumnValuesToBeBetween", {"column": "f"}),
        ("ExpectColumnValuesToBeBetween", {"column": "f", "min_value": 2, "max_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "s", "min_value": "a"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "f", "row_condition": "f>0"}),
        ("ExpectColumnValuesToBeInSet", {"column": "s", "value_set": [1]}),
    ],
)
def test_unsupported_expectations_are_refused(kind: str, kwargs: dict[str, Any]) -> None:
    data = pa.table({"f": [1.0], "s": ["a"]})
    with pytest.raises(UnsupportedExpectation):
        evaluate(kind, kwargs, data)


def test_unsupported_expectations_fall_back_to_great_expectations() -> None:
    """validate_arrow runs GX for what the evaluator refuses; outcomes stay in suite order."""
    data = pa.table({"s": ["ab", "b", None], "n": [1, 5, 3]})
    suite = Suite(
        "routing_decisions",
        (
            Expectation("ExpectColumnValuesToBeBetween", {"column": "n", "max_value": 4}),
            Expectation("ExpectColumnValuesToMatchRegex", {"column": "s", "regex": "^a"}),
            Expectation("ExpectColumnValuesToNotBeNull", {"column": "s"}),
        ),
    )
    result = validate_arrow(data, "routing_decisions", suite=suite)
    assert [o.expectation_type for o in result.outcomes] == [e.kind for e in suite.expectations]
    assert [(o.success, o.unexpected_count) for o in result.outcomes] == [
        (False, 1),
        (False, 1),
        (False, 1),
    ]
    assert result.outcomes[0].unexpected_sample == [5]
    assert result.outcomes[1].unexpected_sample == ["b"]


def test_validate_ref_reads_the_days_rows_of_the_snapshot(lakehouse: Lakehouse) -> None:
    """Only the suite's columns are scanned; the day filter uses a column the suite does not read
    (``rejected_at``), and the recorded result names the validated snapshot."""
    table = "routing_decisions_rejected"
    assert "rejected_at" not in suite_for(table).columns
    day = datetime(2026, 11, 20, 9, tzinfo=UTC)
    rows = [
        {"stream": "s", "stream_id": f"{i}-0", "reason": "bad json", "rejected_at": at}
        for i, at in enumerate([day, day, day + timedelta(days=1)])
    ]
    rows.append({**rows[0], "rejected_at": day + timedelta(hours=1)})  # a duplicate key that day
    schema = lakehouse.spec(table).arrow_schema
    data = pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)
    written = lakehouse.append(table, data)

    result = validate_ref(lakehouse, table, day=day.date(), run_id="r1")

    assert result.rows == 3 and result.snapshot_id == written.snapshot_id
    assert [o.name for o in result.failures] == ["stream_stream_id_unique"]
    assert result.failures[0].unexpected_count == 2
    recorded = lakehouse.read("quality_results")
    assert set(recorded.column("validation_id").to_pylist()) == {result.validation_id}
    assert set(recorded.column("snapshot_id").to_pylist()) == {written.snapshot_id}
    assert validate_ref(lakehouse, table, day=(day + timedelta(days=1)).date()).success
