"""Drift tests on simulated traffic: the injected retry loop is found, one regime is not flagged."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from lakehouse.simulate.traces import simulate_workflow_events
from lakehouse.topology.drift import scalar_drift, topology_drift
from lakehouse.topology.tda import TopologySignature, event_signature

START = date(2026, 11, 1)
PER_DAY = 60


def _days(seed: int, change_at: int | None) -> list[tuple[list[Any], list[TopologySignature]]]:
    """Three reference days and two later days (the change, if any, at day 3)."""
    events = list(simulate_workflow_events(START, 5, PER_DAY, seed, regime_change_at=change_at))
    days = [events[i : i + PER_DAY] for i in range(0, len(events), PER_DAY)]
    return [(d, [event_signature(e) for e in d]) for d in days]


@pytest.fixture(scope="module", params=[11, 13])
def changed(request: pytest.FixtureRequest) -> list[tuple[list[Any], list[TopologySignature]]]:
    return _days(request.param, change_at=3)


def test_the_injected_regime_change_is_flagged(changed: list[Any]) -> None:
    ref = [s for _, sigs in changed[:3] for s in sigs]
    report = topology_drift(ref, changed[3][1], seed=0, n_permutations=499)
    assert report.drifted and report.p_value < 0.01
    assert report.statistic > 0 and (report.n_ref, report.n_cur) == (3 * PER_DAY, PER_DAY)
    assert report.landscape_p_value is not None and report.landscape_p_value < 0.01


def test_two_samples_of_one_regime_are_not_flagged(changed: list[Any]) -> None:
    ref = [s for _, sigs in changed[:2] for s in sigs]
    report = topology_drift(ref, changed[2][1], seed=0, n_permutations=499)
    assert not report.drifted and report.p_value > 0.05
    after = topology_drift(changed[3][1], changed[4][1], seed=0, n_permutations=499)
    assert not after.drifted


def test_reports_are_deterministic_with_a_seed(changed: list[Any]) -> None:
    ref, cur = changed[0][1][:15], changed[3][1][:15]
    a = topology_drift(ref, cur, seed=3, n_permutations=199)
    assert a == topology_drift(ref, cur, seed=3, n_permutations=199)
    bottleneck = topology_drift(ref, cur, seed=3, n_permutations=199, distance="bottleneck")
    assert bottleneck.distance == "bottleneck" and 0 < bottleneck.p_value <= 1


def test_scalar_baseline_runs_on_the_same_days(changed: list[Any]) -> None:
    ref = [e for events, _ in changed[:3] for e in events]
    report = scalar_drift(ref, changed[3][0])
    assert report.detector == "scalar" and 0 <= report.p_value <= 1
    assert not scalar_drift(ref, changed[2][0]).drifted


def test_too_small_windows_are_refused() -> None:
    sig = _days(1, None)[0][1]
    with pytest.raises(ValueError, match="at least 2 runs per window"):
        topology_drift(sig[:1], sig[1:5])
    with pytest.raises(ValueError, match="unknown diagram distance"):
        topology_drift(sig[:3], sig[3:6], distance="l2")
