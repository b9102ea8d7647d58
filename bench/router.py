"""Router: training time, policy inference throughput, and OPE error against the simulator's truth.

Trains the learned router on ``AURA_BENCH_ROUTER_DAYS`` simulated days, then routes one held-out
day: the learned policy's throughput is compared with the always-strongest baseline (a ranked
lookup) in the same process. The off-policy estimates (IPS, SNIPS, DR) of the learned policy's
mean cost and quality are compared with the simulator's ground truth (relative error), and the
cost saving / quality ratio against always-strongest are reported both ways.

Environment: ``AURA_BENCH_ROUTER_PER_DAY`` (default 4000), ``AURA_BENCH_ROUTER_DAYS`` (default 3).
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from bench import emit
from lakehouse.router.evaluation import (
    evaluate_router,
    price_ranking,
    ranked_policy,
    strength_ranking,
)
from lakehouse.router.features import training_set
from lakehouse.router.model import RouterModel
from lakehouse.simulate.routing import RoutingWorkload, simulate_day

PER_DAY = int(os.environ.get("AURA_BENCH_ROUTER_PER_DAY", 4000))
DAYS = int(os.environ.get("AURA_BENCH_ROUTER_DAYS", 3))
START = date(2026, 11, 1)


def main() -> None:
    workload = RoutingWorkload(start=START, per_day=PER_DAY, seed=5)
    t0 = time.perf_counter()
    rows = pa.concat_tables(
        [training_set(simulate_day(workload, START + timedelta(d))[0]) for d in range(DAYS)]
    )
    features_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = RouterModel.train(rows, threshold=0.85)
    train_s = time.perf_counter() - t0
    emit(
        "router_train_s",
        train_s,
        "s",
        baseline=features_s,
        baseline_name="features_s",
        rows=rows.num_rows,
    )

    heldout, truth = simulate_day(workload, START + timedelta(days=DAYS + 1))
    test = training_set(heldout)
    strongest = ranked_policy(strength_ranking(rows), "strongest")
    t0 = time.perf_counter()
    model.route(test)
    learned_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    strongest(test)
    base_s = time.perf_counter() - t0
    emit(
        "router_route_rows_per_s",
        test.num_rows / learned_s,
        "rows/s",
        baseline=test.num_rows / base_s,
        baseline_name="always_strongest_rows_per_s",
    )

    report = evaluate_router(
        model,
        test,
        strongest=strength_ranking(rows),
        cheapest=price_ranking(rows),
        truth=truth,
        outcome_model=None,
    )
    candidate, strong = report.policies["candidate"], report.policies["strongest"]
    assert candidate.truth is not None and strong.truth is not None
    for estimator, by in candidate.estimates.items():
        for metric, est in by.items():
            true = candidate.truth[metric]
            emit(
                f"ope_{estimator}_{metric}_rel_error",
                abs(est.value - true) / true,
                "ratio",
                estimate=est.value,
                low=est.low,
                high=est.high,
                truth=true,
                covered=bool(est.low <= true <= est.high),
            )
    true_saving = 1 - candidate.truth["cost"] / strong.truth["cost"]
    true_ratio = candidate.truth["quality"] / strong.truth["quality"]
    emit(
        "cost_saving_vs_strongest",
        report.cost_saving.value,
        "fraction",
        baseline=true_saving,
        baseline_name="ground_truth",
        low=report.cost_saving.low,
        high=report.cost_saving.high,
    )
    emit(
        "quality_ratio_vs_strongest",
        report.quality_ratio.value,
        "fraction",
        baseline=true_ratio,
        baseline_name="ground_truth",
        low=report.quality_ratio.low,
        high=report.quality_ratio.high,
    )
    emit(
        "apgr",
        report.apgr,
        "fraction",
        saving_at_95=report.saving_at_95,
        thresholds=len(report.curve),
        mean_truth_quality_gap=float(
            np.mean([abs(p.quality - (p.truth_quality or 0)) for p in report.curve])
        ),
    )
