"""The seeds' flow: a routing decision's outcome is remembered, and ``best_model_for`` uses it."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest

from lakehouse.memory import MemoryStore
from lakehouse.publish.wap import accept_all
from lakehouse.router import promotion, training, versions
from lakehouse.simulate.routing import RoutingWorkload, simulate_day

START = date(2026, 11, 1)
DAYS = [START + timedelta(days=i) for i in range(3)]
GOOD = 0.8


@pytest.mark.slow
def test_remembered_routing_outcomes_feed_best_model_for(mem: MemoryStore) -> None:
    lh = mem.lakehouse
    workload = RoutingWorkload(start=START, per_day=400, seed=21)
    for day in DAYS:
        lh.append("routing_decisions", simulate_day(workload, day)[0])
    training.build_training_set(lh, DAYS, audit=accept_all)
    assert promotion.retrain(lh, DAYS[:2], DAYS[2:], n_boot=50).published

    # An agent remembers what its routing decisions gave (one memory per outcome).
    decisions = simulate_day(workload, DAYS[2])[0].to_pylist()
    code = [d for d in decisions if d["task_type"] == "code"]
    tenant = Counter(d["tenant_id"] for d in code).most_common(1)[0][0]
    other = next(d["tenant_id"] for d in code if d["tenant_id"] != tenant)
    for d in decisions:
        mem.store(
            d["tenant_id"],
            f"{d['task_type']} request of {d['prompt_tokens']} tokens routed to "
            f"{d['chosen_model']}: quality {d['quality_score']:.2f}, cost ${d['cost_usd']:.4f}",
            metadata={
                "kind": "routing_outcome",
                "task_type": d["task_type"],
                "model": d["chosen_model"],
                "quality": d["quality_score"],
                "decision_id": d["decision_id"],
            },
            importance=float(d["quality_score"]),
        )

    # Later it recalls the outcomes of its own code requests and asks among the good models.
    recalled = mem.search(
        tenant,
        "code request routed",
        k=100,
        filters={"kind": "routing_outcome", "task_type": "code"},
    )
    mine = {d["decision_id"] for d in code if d["tenant_id"] == tenant}
    assert {h.memory.metadata["decision_id"] for h in recalled} == mine  # only the tenant's
    good = sorted(
        {h.memory.metadata["model"] for h in recalled if h.memory.metadata["quality"] >= GOOD}
    )
    assert good
    model, why = versions.best_model_for(lh, tenant, "code", 900, good)
    assert model in good  # never a model the tenant's memory holds only bad outcomes of
    assert why.startswith("champion ")
    theirs = mem.search(other, "code request routed", k=100, filters={"kind": "routing_outcome"})
    assert not mine & {h.memory.metadata["decision_id"] for h in theirs}
