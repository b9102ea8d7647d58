"""The issue's detection claim on simulated traffic, with the daily window drift_day uses.

Each tested day's runs are compared with the ``REFERENCE_DAYS`` days before it (the default of
:func:`lakehouse.topology.drift_reports.drift_day`), permutation seed
:func:`~lakehouse.topology.drift_reports.day_seed`. Claim: the retry-loop regime change is
flagged (p < 0.01) on its day or the next, and over 30 stationary days at most 5 % of days are
flagged, across several seeds (none chosen).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from lakehouse.simulate.traces import simulate_workflow_events
from lakehouse.topology.drift import DriftReport, scalar_drift, topology_drift
from lakehouse.topology.drift_reports import DEFAULT_REFERENCE_DAYS, day_seed
from lakehouse.topology.tda import event_signature

START = date(2026, 10, 1)
PER_DAY = 60
REFERENCE_DAYS = DEFAULT_REFERENCE_DAYS
ALPHA = 0.01


def daily_reports(
    seed: int, days: int, change_at: int | None, per_day: int = PER_DAY
) -> list[tuple[DriftReport, DriftReport]]:
    """Topology and scalar reports of days ``REFERENCE_DAYS .. days - 1``."""
    events = list(simulate_workflow_events(START, days, per_day, seed, regime_change_at=change_at))
    by_day = [events[i : i + per_day] for i in range(0, len(events), per_day)]
    sigs = [[event_signature(e) for e in day] for day in by_day]
    out = []
    for d in range(REFERENCE_DAYS, days):
        ref = [s for day in sigs[d - REFERENCE_DAYS : d] for s in day]
        ref_events = [e for day in by_day[d - REFERENCE_DAYS : d] for e in day]
        topo = topology_drift(
            ref, sigs[d], alpha=ALPHA, seed=day_seed(seed, START + timedelta(days=d))
        )
        out.append((topo, scalar_drift(ref_events, by_day[d], alpha=ALPHA)))
    return out


@pytest.mark.slow
def test_change_is_flagged_on_its_day_or_the_next_and_stable_days_are_not() -> None:
    reports = daily_reports(seed=31, days=8, change_at=6)
    stable = [t.p_value for t, _ in reports[: 6 - REFERENCE_DAYS]]
    changed = [t.p_value for t, _ in reports[6 - REFERENCE_DAYS :]]
    assert all(p >= ALPHA for p in stable), stable
    assert any(p < ALPHA for p in changed), changed


@pytest.mark.slow
def test_false_alarms_over_30_stationary_days_and_detection_across_seeds() -> None:
    seeds = (1, 2, 3)
    alarms = tested = 0
    missed = []
    for seed in seeds:
        reports = daily_reports(seed, days=REFERENCE_DAYS + 32, change_at=REFERENCE_DAYS + 30)
        stationary = reports[:30]
        tested += len(stationary)
        alarms += sum(t.drifted for t, _ in stationary)
        if not any(t.p_value < ALPHA for t, _ in reports[30:32]):
            missed.append((seed, [t.p_value for t, _ in reports[30:32]]))
    assert not missed, f"change not flagged on its day or the next: {missed}"
    assert alarms / tested <= 0.05, f"{alarms} false alarms in {tested} stationary days"
