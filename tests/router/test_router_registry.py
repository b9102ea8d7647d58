"""The router's registry on a real lakehouse: training set, versions, gated retraining, use."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from pyiceberg.schema import Schema

from aura_assets.cli import main
from lakehouse import Lakehouse, Settings
from lakehouse.publish.wap import accept_all
from lakehouse.router import promotion, reports, training, versions
from lakehouse.router.model import RouterModel
from lakehouse.routing import EventError, parse_event
from lakehouse.routing.tables import ROUTING_DECISIONS
from lakehouse.simulate.routing import RoutingWorkload, expected_truth, simulate_day
from lakehouse.table import refs

START = date(2026, 11, 1)
DRIFT = START + timedelta(days=4)
WORKLOAD = RoutingWorkload(start=START, per_day=1500, seed=21, regime_change_at=DRIFT)
NORMAL = [START + timedelta(days=i) for i in range(4)]
DRIFTED = [DRIFT + timedelta(days=i) for i in range(3)]


def _truth(rows: pa.Table) -> Any:
    return expected_truth(rows, DRIFT)


def _ingest(lh: Lakehouse, workload: RoutingWorkload, days: list[date]) -> None:
    for day in days:
        lh.append("routing_decisions", simulate_day(workload, day)[0])
    training.build_training_set(lh, days, audit=accept_all)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four normal days, a first champion trained on three of them."""
    home = tmp_path_factory.mktemp("router") / "aura"
    lh = Lakehouse(Settings.from_env({"AURA_HOME": str(home)}))
    _ingest(lh, WORKLOAD, NORMAL)
    first = promotion.retrain(lh, NORMAL[:3], NORMAL[3:], truth=_truth, n_boot=200)
    return {"lh": lh, "home": home, "first": first}


def test_propensity_is_optional_and_checked() -> None:
    event = {
        "decision_id": "d1",
        "ts": "2026-11-20T10:00:00+00:00",
        "tenant_id": "t",
        "task_type": "chat",
        "prompt_tokens": 10,
        "candidate_models": ["a", "b"],
        "chosen_model": "a",
        "cost_usd": 0.1,
        "latency_ms": 5,
        "quality_score": 0.9,
        "fallback_used": False,
    }
    assert parse_event(json.dumps(event))["propensity"] is None
    assert parse_event(json.dumps({**event, "propensity": 1}))["propensity"] == 1.0
    for bad in (0, -0.1, 1.5, "0.5", True, [0.5]):
        payload = json.dumps({**event, "propensity": bad})
        with pytest.raises(EventError, match="propensity must be a number in"):
            parse_event(payload)


def test_routing_decisions_gains_propensity_additively(lakehouse: Lakehouse) -> None:
    old_schema = Schema(
        *[f for f in ROUTING_DECISIONS.schema.fields if f.name not in ("propensity", "router")]
    )
    old = lakehouse.catalog.create_table(ROUTING_DECISIONS.identifier, schema=old_schema)
    decisions, _ = simulate_day(WORKLOAD, START, n=30)
    decisions = decisions.drop_columns(["propensity"])
    for name in ("stream_id", "ingested_at"):
        field = old_schema.as_arrow().field(name)
        decisions = decisions.append_column(field, pa.nulls(30, field.type))
    old.append(decisions.cast(old.schema().as_arrow()))
    table = lakehouse.table("routing_decisions")  # evolves the existing table
    assert "propensity" in table.schema().column_names
    assert not table.schema().find_field("propensity").required
    lakehouse.append("routing_decisions", simulate_day(WORKLOAD, START + timedelta(1), n=20)[0])
    rows = lakehouse.read("routing_decisions")
    assert rows.num_rows == 50 and rows.column("propensity").null_count == 30


def test_training_set_is_idempotent(world: dict[str, Any]) -> None:
    lh: Lakehouse = world["lh"]
    before = lh.read("router_training_set").num_rows
    training.build_training_set(lh, NORMAL[:2], audit=accept_all)
    rows = lh.read("router_training_set")
    assert rows.num_rows == before == 4 * WORKLOAD.per_day
    assert pc.count_distinct(rows.column("decision_id")).as_py() == before


def test_first_model_is_versioned_and_champion(world: dict[str, Any]) -> None:
    lh: Lakehouse = world["lh"]
    first = world["first"]
    assert first.published and first.previous_champion is None
    row = versions.champion_row(lh)
    assert row is not None and row["version"] == first.candidate.version
    training_table = lh.table("router_training_set")
    assert row["training_snapshot_ids"][0] in {s.snapshot_id for s in training_table.snapshots()}
    assert row["training_rows"] == 3 * WORKLOAD.per_day
    artifact = Path(world["home"]) / "warehouse" / "router_models" / row["version"]
    # named relative to the warehouse: a restored or moved warehouse needs no rewrite
    assert row["artifact_uri"] == f"router_models/{row['version']}"
    assert (artifact / "model.skops").exists()
    # The target: >= 40 % saving at >= 95 % quality, off-policy and in truth.
    figures = reports.summary(first.evaluation)
    assert figures["cost_saving"] >= 0.40 and figures["quality_ratio"] >= 0.95
    assert figures["truth_cost_saving"] >= 0.40 and figures["truth_quality_ratio"] >= 0.95
    evaluations = lh.read("router_evaluations").to_pylist()
    assert {r["decision"] for r in evaluations} == {"promoted"}
    model, why = versions.best_model_for(lh, "tenant-03", "code", 900, ["large", "small", "mid"])
    assert model in {"large", "small", "mid"} and why.startswith(f"champion {row['version']}")


def test_model_loads_without_unpickling(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    row = versions.champion_row(world["lh"])
    assert row is not None

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used to load a router model")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    model = RouterModel.load(versions.artifact_path(world["lh"], row))
    assert model.version == row["version"]


def test_worse_candidate_is_refused_and_kept_on_its_branch(world: dict[str, Any]) -> None:
    lh: Lakehouse = world["lh"]
    champion_before = versions.champion_row(lh)
    rows, snapshot = training.read_training(lh, NORMAL[:3])
    shuffled = np.random.default_rng(0).permutation(rows.num_rows)
    noisy = rows.set_column(
        rows.schema.get_field_index("quality_score"),
        "quality_score",
        rows.column("quality_score").take(pa.array(shuffled)),
    )
    worse = RouterModel.train(noisy, training_snapshot_ids=[snapshot], max_iter=30)
    result = promotion.retrain(lh, NORMAL[:3], NORMAL[3:], candidate=worse, n_boot=200)
    assert not result.published and any("quality" in r for r in result.decision.reasons)
    assert versions.champion_row(lh) == champion_before
    assert worse.version not in versions.models(lh).column("version").to_pylist()
    on_branch = versions.models(lh, branch=result.audit_branch).to_pylist()
    assert {r["version"]: r["status"] for r in on_branch}[worse.version] == "candidate"
    assert refs.head(lh.table("router_models"), result.audit_branch) is not None
    refused = [r for r in lh.read("router_evaluations").to_pylist() if r["decision"] == "refused"]
    assert refused and refused[0]["candidate_version"] == worse.version
    assert refused[0]["audit_branch"] == result.audit_branch and refused[0]["reasons"]


def test_regime_change_retrain_publishes_only_a_winner(world: dict[str, Any]) -> None:
    lh: Lakehouse = world["lh"]
    before = versions.champion_row(lh)
    assert before is not None
    policy = versions.champion_policy(lh)
    assert policy is not None
    routed = replace(WORKLOAD, router=policy)
    # Once a champion exists the simulator routes with it: cost per day falls.
    day = DRIFTED[0]
    assert (
        pc.sum(simulate_day(routed, day)[0].column("cost_usd")).as_py()
        < 0.9 * pc.sum(simulate_day(WORKLOAD, day)[0].column("cost_usd")).as_py()
    )
    _ingest(lh, routed, DRIFTED)  # the "large" model degrades from DRIFT on
    result = promotion.retrain(lh, DRIFTED[:2], DRIFTED[2:], truth=_truth, n_boot=200)
    candidate = result.evaluation.policies["candidate"]
    champion = result.evaluation.policies["champion"]
    assert result.decision.promote == result.published
    after = versions.champion_row(lh)
    statuses = {r["version"]: r["status"] for r in versions.models(lh).to_pylist()}
    if result.published:
        assert candidate.cost.value < champion.cost.value
        assert after is not None and after["version"] == result.candidate.version
        assert statuses[before["version"]] == "retired"
    else:
        assert after == before
    assert list(statuses.values()).count("champion") == 1
    # The retrained router knows the degraded model is worse now (ground truth).
    assert candidate.truth is not None and champion.truth is not None
    assert candidate.truth["quality"] >= champion.truth["quality"] - 0.01


def test_cli_evaluate_json_and_models(world: dict[str, Any]) -> None:
    runner = CliRunner()
    env = {"AURA_HOME": str(world["home"])}
    out = runner.invoke(main, ["router", "evaluate", "--format", "json", "--simulated"], env=env)
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    for name in (
        "cost_saving",
        "cost_saving_low",
        "cost_saving_high",
        "quality_ratio",
        "quality_ratio_low",
        "quality_ratio_high",
        "champion_version",
        "apgr",
        "truth_cost_saving",
    ):
        assert name in figures
    assert figures["cost_saving_low"] <= figures["cost_saving"] <= figures["cost_saving_high"]
    assert figures["champion_version"] == versions.champion_row(world["lh"])["version"]  # type: ignore[index]
    listed = runner.invoke(main, ["router", "models"], env=env)
    assert listed.exit_code == 0 and "champion" in listed.output
