"""Validate Arrow data or a table snapshot against its great-expectations suite.

The suites are great-expectations expectations (class names and arguments) and the outcomes
carry great-expectations' result fields. The common expectation classes are evaluated on the
Arrow data by :mod:`quality.evaluator` (same outcomes, checked against GX by a
conformance test, many times faster than GX on pandas); any other expectation is run by
great-expectations itself, in an ephemeral context (nothing written to disk) with analytics and
progress bars off, imported on first use only because the import takes seconds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import DataScan

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table import refs
from lakehouse.table.registry import spec_for
from lakehouse.table.writer import day_filter
from quality import evaluator
from quality.results import Outcome, QualityResult
from quality.results import record as record_result
from quality.suites import Expectation, Suite, suite_for

if TYPE_CHECKING:
    from lakehouse import Lakehouse

log = logging.getLogger(__name__)

__all__ = ["Outcome", "QualityResult", "validate_arrow", "validate_ref"]

SAMPLE_SIZE = 10
_LOCK = threading.Lock()
_GX: dict[str, Any] = {}
_POOL: dict[str, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def validate_arrow(
    data: pa.Table,
    table: str,
    *,
    suite: Suite | None = None,
    branch: str | None = None,
    snapshot_id: int | None = None,
    run_id: str | None = None,
    partition: str | None = None,
) -> QualityResult:
    """Validate Arrow ``data`` against the suite of ``table`` (or ``suite``)."""
    suite = suite or suite_for(table)
    missing = [c for c in suite.columns if c not in data.column_names]
    if missing:
        raise ConfigurationError(
            f"suite {suite.name} reads columns {missing} that the data lacks; "
            f"the data has {data.column_names}"
        )
    data = data.select(suite.columns)

    def evaluate(expectation: Expectation) -> evaluator.EvalOutcome | None:
        try:
            return evaluator.evaluate(expectation.kind, expectation.kwargs, data)
        except evaluator.UnsupportedExpectation:
            return None  # great-expectations evaluates it below

    # Arrow and Polars kernels release the GIL: the expectations run side by side.
    evaluated = list(_evaluator().map(evaluate, suite.expectations))
    outcomes: dict[int, Outcome] = {
        i: _evaluated_outcome(e, r)
        for i, (e, r) in enumerate(zip(suite.expectations, evaluated, strict=True))
        if r is not None
    }
    fallback = [i for i, r in enumerate(evaluated) if r is None]
    if fallback:
        gx_suite = Suite(suite.table, tuple(suite.expectations[i] for i in fallback))
        raw = _run_gx(gx_suite, data.to_pandas())
        for i, r in zip(fallback, raw, strict=True):
            outcomes[i] = _outcome(suite.expectations[i], r)
    ordered = tuple(outcomes[i] for i in range(len(suite.expectations)))
    return QualityResult(
        table=suite.table,
        suite=suite.name,
        success=all(o.success for o in ordered),
        rows=data.num_rows,
        outcomes=ordered,
        branch=branch,
        snapshot_id=snapshot_id,
        run_id=run_id,
        partition=partition,
    )


def validate_ref(
    lh: Lakehouse,
    table: str,
    ref: str | int = MAIN_BRANCH,
    *,
    day: date | None = None,
    run_id: str | None = None,
    record: bool = True,
) -> QualityResult:
    """Validate a branch, tag or snapshot id of ``table`` (one day of it, if ``day``).

    Only the columns the suite reads are scanned. The result is appended to
    ``aura.quality_results`` unless ``record`` is false.
    """
    spec = spec_for(table)
    suite = suite_for(table)
    iceberg = lh.table(table)
    if isinstance(ref, int):
        snapshot_id: int | None = ref
        branch = None
    else:
        snapshot_id, branch = refs.head(iceberg, ref), ref
        if snapshot_id is None and ref != MAIN_BRANCH:
            raise refs.RefError(f"{table} has no branch or tag {ref!r}")
    if snapshot_id is None and iceberg.current_snapshot() is None:
        data = spec.arrow_schema.empty_table()
    else:
        # A suite of row counts only still needs one column to count the rows.
        columns = suite.columns or [spec.arrow_schema.names[0]]
        data = _scan(
            iceberg.scan(
                row_filter=day_filter(spec, day) if day is not None else AlwaysTrue(),
                snapshot_id=snapshot_id,
                selected_fields=tuple(columns),
            )
        )
    result = validate_arrow(
        data,
        table,
        suite=suite,
        branch=branch,
        snapshot_id=snapshot_id,
        run_id=run_id,
        partition=day.isoformat() if day else None,
    )
    if record:
        record_result(lh, result)
    log.info("%s", result.summary())
    return result


def _scan(scan: DataScan) -> pa.Table:
    """The scan's rows; the row filter is not re-evaluated on files it holds entirely.

    A day filter on a day-partitioned table leaves no residual on that day's files (their
    partition value proves every row matches), so reading them unfiltered returns the same rows
    without comparing a million timestamps.
    """
    tasks = list(scan.plan_files())
    exact = all(t.residual == AlwaysTrue() and not t.delete_files for t in tasks)
    return ArrowScan(
        scan.table_metadata,
        scan.io,
        scan.projection(),
        AlwaysTrue() if exact else scan.row_filter,
        scan.case_sensitive,
    ).to_table(tasks)


def _evaluator() -> ThreadPoolExecutor:
    """The threads that evaluate expectations, created on first use and shared."""
    with _POOL_LOCK:
        if "pool" not in _POOL:
            _POOL["pool"] = ThreadPoolExecutor(
                max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="aura-expectations"
            )
        return _POOL["pool"]


def _gx() -> Any:
    """The great_expectations module and one ephemeral context, created on first use."""
    if not _GX:
        # GX reads this at import; analytics would otherwise try to reach the network.
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # sre_constants etc. in GX
            try:
                import great_expectations as gx
                from great_expectations.data_context.types.base import ProgressBarsConfig
            except ImportError as exc:
                raise ConfigurationError(
                    "great-expectations is needed for data quality checks: "
                    "pip install 'great-expectations>=1.5,<2'"
                ) from exc
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
        _GX["gx"] = gx
        _GX["context"] = context
        _GX["source"] = context.data_sources.add_pandas("aura")
    return _GX


def _run_gx(suite: Suite, frame: Any) -> list[Any]:
    with _LOCK:
        state = _gx()
        gx, context, source = state["gx"], state["context"], state["source"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)  # pandas deprecations inside GX
            key = f"suite:{suite.name}:{suite.expectations!r}"
            if key not in state:
                gx_suite = gx.ExpectationSuite(name=f"{suite.name}-{len(state)}")
                for expectation in suite.expectations:
                    gx_suite.add_expectation(
                        getattr(gx.expectations, expectation.kind)(**expectation.kwargs)
                    )
                asset = source.add_dataframe_asset(f"{suite.table}-{len(state)}")
                state[key] = (
                    context.suites.add(gx_suite),
                    asset.add_batch_definition_whole_dataframe("all"),
                )
            gx_suite, batch_definition = state[key]
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(gx_suite, result_format={"result_format": "SUMMARY"})
    # GX reports results in suite order
    return list(result.results)


def _evaluated_outcome(expectation: Expectation, evaluated: evaluator.EvalOutcome) -> Outcome:
    return Outcome(
        name=expectation.name,
        expectation_type=expectation.kind,
        description=expectation.describe(),
        columns=expectation.columns,
        kwargs=_recorded_kwargs(expectation),
        success=evaluated.success,
        unexpected_count=evaluated.unexpected_count,
        unexpected_percent=evaluated.unexpected_percent,
        unexpected_sample=[_plain(v) for v in evaluated.partial_unexpected_list][:SAMPLE_SIZE],
    )


def _recorded_kwargs(expectation: Expectation) -> dict[str, Any]:
    return {k: v for k, v in expectation.kwargs.items() if k not in ("column", "column_list")}


def _outcome(expectation: Expectation, raw: Any) -> Outcome:
    details = raw.result or {}
    return Outcome(
        name=expectation.name,
        expectation_type=expectation.kind,
        description=expectation.describe(),
        columns=expectation.columns,
        kwargs=_recorded_kwargs(expectation),
        success=bool(raw.success),
        unexpected_count=_int(details.get("unexpected_count")),
        unexpected_percent=_float(details.get("unexpected_percent")),
        unexpected_sample=[_plain(v) for v in (details.get("partial_unexpected_list") or [])][
            :SAMPLE_SIZE
        ],
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _plain(value: Any) -> Any:
    """JSON-safe sample values (NaN, numpy scalars and timestamps become plain Python)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
