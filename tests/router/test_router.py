"""The learned router on simulated data: features, models, skops artifacts, OPE and the gate."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.router.evaluation import (
    Estimate,
    OffPolicyEvaluator,
    PolicyEvaluation,
    evaluate_router,
    price_ranking,
    promote,
    ranked_policy,
    strength_ranking,
)
from lakehouse.router.features import FeatureEncoder, training_set
from lakehouse.router.model import ModelArtifactError, RouterModel
from lakehouse.router.tables import ROUTER_TRAINING_SET
from lakehouse.simulate.routing import RoutingWorkload, routing_arrow, simulate_day

START = date(2026, 11, 1)
WORKLOAD = RoutingWorkload(start=START, per_day=1500, seed=11)


def _rows(days: range, workload: RoutingWorkload = WORKLOAD) -> pa.Table:
    return pa.concat_tables(
        [training_set(simulate_day(workload, START + timedelta(d))[0]) for d in days]
    )


@pytest.fixture(scope="module")
def train_rows() -> pa.Table:
    return _rows(range(3))


@pytest.fixture(scope="module")
def router(train_rows: pa.Table) -> RouterModel:
    return RouterModel.train(train_rows, threshold=0.85, training_snapshot_ids=[1, 2])


def test_simulator_propensities_are_consistent() -> None:
    # E[1 / p(chosen)] = number of candidates when p is the true choice probability.
    table, truth = simulate_day(RoutingWorkload(start=START, per_day=20_000), START)
    p = table.column("propensity").to_numpy()
    n_cand = np.array([len(c) for c in table.column("candidate_models").to_pylist()])
    assert p.min() > 0.01
    assert abs(np.mean(1 / p) - n_cand.mean()) / n_cand.mean() < 0.03
    assert truth.quality.shape == (20_000, 5)


def test_features_shape_and_determinism() -> None:
    decisions, _ = simulate_day(WORKLOAD, START)
    shuffled = decisions.take(np.random.default_rng(0).permutation(decisions.num_rows))
    doubled = pa.concat_tables([shuffled, decisions])  # replays are deduplicated
    first, second = training_set(decisions), training_set(doubled)
    assert first.schema.equals(ROUTER_TRAINING_SET.arrow_schema)
    assert first.num_rows == decisions.num_rows == second.num_rows
    assert first.equals(second)
    encoder = FeatureEncoder.fit(first)
    x = encoder.matrix(first, "mid")
    assert x.shape == (first.num_rows, len(encoder.feature_names))
    assert len(encoder.models) == 5
    assert np.allclose(x[:, 1] ** 2 + x[:, 2] ** 2, 1)  # time of day on the unit circle
    # Old events without a propensity still make rows (propensity null).
    old = training_set(routing_arrow(WORKLOAD, START, 100).drop_columns(["propensity"]))
    assert old.column("propensity").null_count == 100


def test_router_beats_cheapest_in_quality_and_strongest_in_cost(
    router: RouterModel, train_rows: pa.Table
) -> None:
    heldout, truth = simulate_day(WORKLOAD, START + timedelta(days=10))
    rows = training_set(heldout)
    values = {}
    policies = {
        "router": router.route(rows),
        "strongest": ranked_policy(strength_ranking(train_rows))(rows),
        "cheapest": ranked_policy(price_ranking(train_rows))(rows),
    }
    for name, actions in policies.items():
        cols = np.array([truth.models.index(a) for a in actions])
        r = np.arange(len(cols))
        values[name] = (truth.cost[r, cols].mean(), truth.quality[r, cols].mean())
    assert values["router"][1] > values["cheapest"][1] + 0.05
    assert values["router"][0] < 0.7 * values["strongest"][0]
    assert values["router"][1] >= 0.95 * values["strongest"][1]


def test_policy_handles_many_models_and_unseen_tenants(router: RouterModel) -> None:
    choice = router.route_one("tenant-never-seen", "reason", 2000, ["local", "small", "mid"])
    assert choice.model in {"local", "small", "mid"}
    assert choice.reason
    assert router.route_one("t", "chat", 300, ["reasoner", "large", "mid", "small"]).model in {
        "reasoner",
        "large",
        "mid",
        "small",
    }
    # A candidate the router never saw is ignored, not chosen.
    assert router.route_one("t", "code", 500, ["gpt-x", "small", "local"]).model != "gpt-x"


def test_save_load_round_trip_and_version(router: RouterModel, tmp_path: Path) -> None:
    rows = _rows(range(4, 5))
    router.save(tmp_path / "m")
    loaded = RouterModel.load(tmp_path / "m")
    assert loaded.version == router.version and len(router.version) == 16
    assert (loaded.route(rows) == router.route(rows)).all()
    assert loaded.metadata["training_snapshot_ids"] == [1, 2]
    assert "model=mid" in loaded.metadata["features"]
    assert router.with_threshold(0.9).version != router.version
    # Edited metadata changes the content hash: refused.
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["threshold"] = 0.5
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelArtifactError, match="does not match its content"):
        RouterModel.load(tmp_path / "m")


def test_load_refuses_untrusted_type(router: RouterModel, tmp_path: Path) -> None:
    import hashlib
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    router.save(tmp_path / "m")
    # A crafted artifact: consistent hashes, but it carries a function reference.
    evil = sio.dumps({**router.estimators, "x": FunctionTransformer(func=os.system)})
    (tmp_path / "m" / "model.skops").write_bytes(evil)
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["artifact_sha256"] = hashlib.sha256(evil).hexdigest()
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelArtifactError, match=r"untrusted types \['posix.system'\]"):
        RouterModel.load(tmp_path / "m")


def test_ope_interval_covers_ground_truth(router: RouterModel, train_rows: pa.Table) -> None:
    covered = {"cost": 0, "quality": 0}
    strongest = ranked_policy(strength_ranking(train_rows))
    trials = 10
    for seed in range(trials):
        workload = RoutingWorkload(start=START, per_day=1000, seed=100 + seed)
        heldout, truth = simulate_day(workload, START + timedelta(days=20))
        ope = OffPolicyEvaluator(
            training_set(heldout), truth=truth, n_boot=300, seed=seed, outcome_model=router
        )
        for name, policy in (("router", router.route), ("strongest", strongest)):
            ev = ope.evaluate(name, policy)
            assert ev.truth is not None
            for metric in covered:
                est = ev.estimates["dr"][metric]
                covered[metric] += est.low <= ev.truth[metric] <= est.high
    assert covered["cost"] >= 16 and covered["quality"] >= 16, covered


def test_evaluation_report_and_gate(router: RouterModel, train_rows: pa.Table) -> None:
    heldout, truth = simulate_day(WORKLOAD, START + timedelta(days=30))
    cheap = RouterModel.train(train_rows, threshold=0.0)  # always the cheapest predicted
    report = evaluate_router(
        router,
        training_set(heldout),
        strongest=strength_ranking(train_rows),
        cheapest=price_ranking(train_rows),
        champion=cheap,
        truth=truth,
        n_boot=200,
    )
    assert report.cost_saving.low > 0.3
    assert report.quality_ratio.value >= 0.95
    assert 0 < report.apgr <= 1
    assert report.saving_at_95 is not None
    assert len(report.to_rows("e1", None)) == 4 * 4  # 4 policies x (3 estimators + truth)
    candidate, champion = report.policies["candidate"], report.policies["champion"]
    # The cheap "champion" fails the quality floor; the candidate is not cheaper than it.
    assert not promote(champion, None, min_quality=0.85).promote
    refused = promote(candidate, champion, min_quality=0.85)
    assert not refused.promote and any("cost" in r for r in refused.reasons)
    assert promote(candidate, None, min_quality=0.85).promote


def test_gate_refuses_worse_quality_beyond_interval() -> None:
    def ev(cost: float, quality: float, half: float) -> PolicyEvaluation:
        est = {
            "cost": Estimate(cost, cost * 0.9, cost * 1.1),
            "quality": Estimate(quality, quality - half, quality + half),
        }
        return PolicyEvaluation("p", 100, 0.5, {"dr": est})

    champion = ev(0.010, 0.90, 0.01)
    assert promote(ev(0.008, 0.895, 0.01), champion, min_quality=0.85).promote
    worse = promote(ev(0.005, 0.85, 0.01), champion, min_quality=0.80)
    assert not worse.promote and "quality CI upper" in worse.reasons[0]
    assert not promote(ev(0.0099, 0.90, 0.01), champion, min_quality=0.8, min_cost_cut=0.05).promote
