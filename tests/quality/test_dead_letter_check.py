"""A day whose dead-letter share jumps above its usual level warns in the UI (WARN, not
blocking): the day's good rows are still published, and the check says what to look at."""

from datetime import date

import dagster as dg
import pytest
from helpers import decision, payload

from aura_assets.definitions import defs
from lakehouse import Lakehouse
from lakehouse.simulate.routing import publish
from quality.checks import DEAD_LETTER_CHECK, dead_letter_limit, dead_letter_result


def test_limit_follows_the_usual_level() -> None:
    assert dead_letter_limit(None) == 0.05
    assert dead_letter_limit(0.01) == pytest.approx(0.06)
    assert dead_letter_limit(0.10) == pytest.approx(0.30)
    usual = [0.01, 0.012, 0.009]
    assert dead_letter_result("routing_decisions", 1000, 12, usual).passed
    jump = dead_letter_result("routing_decisions", 2000, 1418, usual)
    assert not jump.passed
    assert jump.severity == dg.AssetCheckSeverity.WARN
    assert "70.9%" in (jump.description or "") and "aura sql" in (jump.description or "")
    assert dead_letter_result("routing_decisions", 0, 0, usual).passed  # nothing read


def _ingest(instance: dg.DagsterInstance, day: date) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("routing_ingest").execute_in_process(
        partition_key=day.isoformat(), instance=instance
    )


def _dead_letter_evaluation(result: dg.ExecuteInProcessResult):  # type: ignore[no-untyped-def]
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == DEAD_LETTER_CHECK]
    assert len(found) == 1
    return found[0]


@pytest.mark.slow
def test_a_day_that_jumps_warns_without_blocking(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    instance = dg.DagsterInstance.ephemeral()
    usual_day, bad_day = date(2026, 11, 20), date(2026, 11, 21)
    publish(redis_client, [payload(decision(i, usual_day)) for i in range(60)] + ["{broken"])
    usual = _ingest(instance, usual_day)
    assert usual.success
    assert _dead_letter_evaluation(usual).passed

    good = [payload(decision(i, bad_day)) for i in range(40)]
    publish(redis_client, good + ["{broken"] * 30)
    bad = _ingest(instance, bad_day)
    assert bad.success  # non-blocking: the run and its downstream go on
    evaluation = _dead_letter_evaluation(bad)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["dead_letters"].value == 30
    assert Lakehouse(in_aura_env).read("routing_decisions", day=bad_day).num_rows == 40
    # The UI shows it: the check's latest execution for the asset is a failed WARN.
    key = dg.AssetCheckKey(dg.AssetKey("routing_decisions"), DEAD_LETTER_CHECK)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert latest is not None and latest.status.value == "FAILED"
