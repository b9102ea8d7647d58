"""The one factory that turns the expectation suites into blocking Dagster asset checks.

Each expectation of a table's suite is one blocking check of the asset stored in that table
(e.g. ``routing_decisions / quality_score_in_range``), so the UI shows exactly which expectation
failed. Two ways to use them:

* assets written through write-audit-publish declare :func:`check_specs` and report
  :func:`check_results` of the audit they ran on their branch snapshot (the shared write helper in
  ``aura_resources.iceberg`` does both);
* nothing here imports ``aura_resources``: standalone checks take the lakehouse resource by its
  key (:data:`LAKEHOUSE_RESOURCE_KEY`);
* other assets get standalone checks from :func:`build_quality_checks`, which validate the
  table's current main after materialisation.

One check is not an expectation but a warning: :func:`dead_letter_check_spec` /
:func:`dead_letter_result` say when a stream ingest's dead-letter share jumps above its usual
level (non-blocking, WARN severity: the day's good rows are still published, and the UI shows
the day in yellow instead of green).
"""

import statistics
from collections.abc import Iterable
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from quality.results import QualityResult
from quality.suites import suite_for
from quality.validate import validate_ref

LAKEHOUSE_RESOURCE_KEY = "lakehouse"
"""The resource key under which the definitions provide the lakehouse resource (any resource
with a ``lakehouse()`` method returning a :class:`lakehouse.Lakehouse`)."""


def table_of(asset_key: AssetKey) -> str:
    """The aura table an asset is stored in (the last component of its key)."""
    return asset_key.path[-1]


def check_specs(asset_key: AssetKey | str, table: str | None = None) -> list[AssetCheckSpec]:
    """Blocking check specs of an asset: one per expectation of its table's suite."""
    key = AssetKey.from_coercible(asset_key)
    suite = suite_for(table or table_of(key))
    return [
        AssetCheckSpec(
            name=expectation.name,
            asset=key,
            description=f"{expectation.describe()} (great-expectations {expectation.kind})",
            blocking=True,
            metadata={"quality/suite": suite.name},
        )
        for expectation in suite.expectations
    ]


def check_results(asset_key: AssetKey | str, result: QualityResult) -> list[AssetCheckResult]:
    """The outcome of each expectation as an ERROR-severity check result."""
    key = AssetKey.from_coercible(asset_key)
    return [
        AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.success,
            severity=AssetCheckSeverity.ERROR,
            description=outcome.describe(),
            metadata=_outcome_metadata(
                result,
                outcome.unexpected_count,
                outcome.unexpected_percent,
                outcome.unexpected_sample,
            ),
        )
        for outcome in result.outcomes
    ]


def quality_metadata(result: QualityResult) -> dict[str, Any]:
    """Materialisation metadata of an audit: verdict and the failing expectations."""
    meta: dict[str, Any] = {
        "quality/passed": result.success,
        "quality/suite": result.suite,
        "quality/validation_id": result.validation_id,
        "quality/rows_validated": result.rows,
        "quality/failed_expectations": MetadataValue.json(
            [
                {
                    "expectation": o.name,
                    "description": o.description,
                    "unexpected_count": o.unexpected_count,
                    "unexpected_percent": o.unexpected_percent,
                    "sample": o.unexpected_sample,
                }
                for o in result.failures
            ]
        ),
    }
    if result.failures:
        meta["quality/summary"] = MetadataValue.md(
            "\n".join(f"- **{o.name}**: {o.describe()}" for o in result.failures)
        )
    return meta


def _outcome_metadata(
    result: QualityResult,
    unexpected_count: int | None,
    unexpected_percent: float | None,
    sample: list[Any],
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "quality/validation_id": result.validation_id,
        "quality/rows_validated": result.rows,
    }
    if result.snapshot_id is not None:
        meta["iceberg/snapshot_id"] = str(result.snapshot_id)
    if result.branch is not None:
        meta["iceberg/branch"] = result.branch
    if unexpected_count is not None:
        meta["unexpected_count"] = unexpected_count
    if unexpected_percent is not None:
        meta["unexpected_percent"] = unexpected_percent
    if sample:
        meta["unexpected_sample"] = MetadataValue.json(sample)
    return meta


def build_quality_checks(assets: Iterable[AssetKey | str]) -> list[AssetChecksDefinition]:
    """Standalone blocking checks that validate each asset's table on main after it materialises.

    For assets that are not written through write-audit-publish (those report the same checks
    themselves). Results are appended to ``aura.quality_results``.
    """
    return [_standalone(AssetKey.from_coercible(a)) for a in assets]


def _standalone(key: AssetKey) -> AssetChecksDefinition:
    table = table_of(key)

    @multi_asset_check(
        specs=check_specs(key, table),
        name=f"{'__'.join(key.path)}_quality",
        description=f"great-expectations suite of aura.{table} on main",
        required_resource_keys={LAKEHOUSE_RESOURCE_KEY},
    )
    def _check(context: AssetCheckExecutionContext):
        resource = getattr(context.resources, LAKEHOUSE_RESOURCE_KEY)
        result = validate_ref(resource.lakehouse(), table, run_id=context.run.run_id)
        yield from check_results(key, result)

    return _check


DEAD_LETTER_CHECK = "dead_letter_share"
DEAD_LETTER_FACTOR = 3.0
"""A share more than this many times its usual level is a jump ..."""
DEAD_LETTER_MARGIN = 0.05
"""... unless it stays within this many points of it (small days are noisy)."""


def dead_letter_check_spec(asset_key: AssetKey | str) -> AssetCheckSpec:
    """The non-blocking check that a run's dead-letter share stays near its usual level."""
    return AssetCheckSpec(
        name=DEAD_LETTER_CHECK,
        asset=AssetKey.from_coercible(asset_key),
        description=(
            "The share of stream entries dead-lettered by this run stays near its usual level "
            f"(the median of earlier runs): at most {DEAD_LETTER_FACTOR:g}x it and at most "
            f"{DEAD_LETTER_MARGIN:.0%} above it. Warns, never blocks."
        ),
        blocking=False,
    )


def dead_letter_limit(usual: float | None) -> float:
    """The highest share that is not a jump above ``usual`` (None: no earlier runs)."""
    base = usual or 0.0
    return max(DEAD_LETTER_FACTOR * base, base + DEAD_LETTER_MARGIN)


def dead_letter_result(
    asset_key: AssetKey | str, read: int, rejected: int, earlier_shares: Iterable[float]
) -> AssetCheckResult:
    """WARN when ``rejected`` of ``read`` entries is a jump above the median of
    ``earlier_shares`` (the shares of earlier runs, other days)."""
    earlier = list(earlier_shares)
    usual = statistics.median(earlier) if earlier else None
    limit = dead_letter_limit(usual)
    share = rejected / read if read else 0.0
    passed = share <= limit
    usual_text = f"{usual:.1%} (median of {len(earlier)} earlier runs)" if earlier else "unknown"
    description = (
        f"{rejected} of {read} entries dead-lettered ({share:.1%}); usual {usual_text}, "
        f"limit {limit:.1%}"
    )
    if not passed:
        description += ": look at the dead letters' reasons (`aura sql`) before trusting the day"
    return AssetCheckResult(
        asset_key=AssetKey.from_coercible(asset_key),
        check_name=DEAD_LETTER_CHECK,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "entries_read": read,
            "dead_letters": rejected,
            "share": share,
            "usual_share": usual if usual is not None else MetadataValue.null(),
            "limit": limit,
            "earlier_runs": len(earlier),
        },
    )
