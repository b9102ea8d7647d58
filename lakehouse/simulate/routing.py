"""A seeded workload simulator for the AURA platform's event streams.

Routing decisions (``aura:events:routing``), drawn from these distributions:

* **volume**: ``per_day`` events a day; event times follow a diurnal curve (a sine over the day
  peaking at 14:00 UTC, night traffic at 20 % of the peak).
* **tenants**: 12 tenants with Zipf(1.1) weights (a few large customers, a long tail).
* **task types**: code 35 %, chat 30 %, summarize 15 %, extract 12 %, reason 8 %.
* **prompt tokens**: log-normal (median 550, sigma 0.8), clipped to [1, 32000].
* **candidates**: 2-4 of five models; the router samples a candidate from a softmax (temperature
  0.02) over its quality-minus-cost score (a hand-tuned router that leans on quality, see
  :data:`COST_WEIGHT`), with 10 % uniform exploration, and logs the
  ``propensity`` with which it chose the model it used (fallback included), so the decisions
  support off-policy evaluation. A workload with a ``router`` policy (the learned champion)
  routes with it instead: its choice with probability 0.9, a uniform candidate otherwise.
* **cost**: tokens x the model's price (see :data:`MODELS`) x log-normal noise (sigma 0.1).
* **latency**: the model's base latency x log-normal(0, 0.3) + 0.05 ms per prompt token.
* **quality**: the model's base quality + a task-type adjustment + normal noise (sd 0.05),
  clipped to [0, 1].
* **fallback**: 4 % of decisions fall back to another candidate (latency x 1.8).
* **regime change** (``regime_change_at``): from that day on the mix shifts to reasoning-heavy
  traffic and the ``large`` model degrades (quality -0.15, latency x 2): a drift to detect.
* **malformed events** (``malformed_rate``): bad JSON, missing fields, wrong types, out-of-range
  quality, naive timestamps, a chosen model outside the candidates; each reason equally likely.

The same seed gives the same events, so demos and tests are reproducible.
:func:`routing_truth` gives the simulator's ground truth for the same requests: the expected
quality, cost and latency of every model, for evaluating routers against what really happens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from lakehouse.router.evaluation import RoutingTruth
from lakehouse.routing.events import STREAM
from lakehouse.stores import RedisClient

MODELS: dict[str, tuple[float, float, float]] = {
    # name: (USD per 1k prompt tokens, base latency ms, base quality)
    "large": (0.0100, 900.0, 0.92),
    "small": (0.0006, 250.0, 0.78),
    "mid": (0.0030, 500.0, 0.87),
    "local": (0.0001, 180.0, 0.70),
    "reasoner": (0.0300, 2500.0, 0.96),
}
TASKS = ("code", "chat", "summarize", "extract", "reason")
TASK_WEIGHTS = (0.35, 0.30, 0.15, 0.12, 0.08)
DRIFT_TASK_WEIGHTS = (0.20, 0.20, 0.10, 0.10, 0.40)
TASK_QUALITY = {"code": -0.03, "chat": 0.02, "summarize": 0.03, "extract": 0.0, "reason": -0.08}
TENANTS = tuple(f"tenant-{i:02d}" for i in range(12))
TEMPERATURE = 0.02
# The hand-tuned router before learning leans on quality: a dollar per 1k tokens weighs 2 points.
COST_WEIGHT = 2.0
EXPLORE_RATE = 0.10
FALLBACK_RATE = 0.04
QUALITY_SD = 0.05
COST_SIGMA = 0.1
LATENCY_SIGMA = 0.3
HAND_TUNED = "hand-tuned"
"""The ``router`` of decisions made by the simulator's built-in softmax router."""
MALFORMED_KINDS = ("bad_json", "missing", "wrong_type", "out_of_range", "naive_ts", "bad_choice")


@dataclass(frozen=True)
class RoutingWorkload:
    """Parameters of a simulated routing stream."""

    start: date
    days: int = 3
    per_day: int = 2000
    seed: int = 7
    malformed_rate: float = 0.0
    regime_change_at: date | None = None
    router: Callable[[pa.Table], np.ndarray] | None = field(default=None, compare=False)
    """A routing policy (decision-shaped rows -> model name per row) that replaces the
    built-in softmax router, e.g. the champion's (``lakehouse.router.champion_policy``);
    exploration, fallback and propensities apply to it the same way."""
    router_name: str = HAND_TUNED
    """What the events record as the ``router`` that decided (the champion's version when
    ``router`` is the champion's policy)."""


def routing_columns(workload: RoutingWorkload, day: date, n: int | None = None) -> dict:
    """Columns of one day's decisions as NumPy arrays / lists (vectorised, deterministic)."""
    return _simulate(workload, day, n)[0]


def routing_truth(workload: RoutingWorkload, day: date, n: int | None = None) -> RoutingTruth:
    """Expected quality, cost and latency of every model for the requests of one day."""
    return _simulate(workload, day, n)[1]


def _simulate(
    workload: RoutingWorkload, day: date, n: int | None = None
) -> tuple[dict, RoutingTruth]:
    n = workload.per_day if n is None else n
    rng = np.random.default_rng([workload.seed, day.toordinal()])
    drift = workload.regime_change_at is not None and day >= workload.regime_change_at
    names = list(MODELS)
    price, base_latency, base_quality = (np.array([MODELS[m][i] for m in names]) for i in range(3))
    if drift:
        large = names.index("large")
        base_quality = base_quality.copy()
        base_latency = base_latency.copy()
        base_quality[large] -= 0.15
        base_latency[large] *= 2

    # Diurnal event times: rejection-sample seconds of the day against the curve.
    seconds = np.empty(0)
    while seconds.size < n:
        s = rng.uniform(0, 86_400, size=2 * n)
        curve = 0.6 + 0.4 * np.sin((s / 86_400 - 14 / 24 + 0.25) * 2 * np.pi)
        seconds = np.concatenate([seconds, s[rng.uniform(size=s.size) < curve]])
    seconds = np.sort(seconds[:n])
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)

    zipf = 1 / np.arange(1, len(TENANTS) + 1) ** 1.1
    tenant = rng.choice(len(TENANTS), size=n, p=zipf / zipf.sum())
    task = rng.choice(len(TASKS), size=n, p=DRIFT_TASK_WEIGHTS if drift else TASK_WEIGHTS)
    tokens = np.clip(rng.lognormal(np.log(550), 0.8, size=n), 1, 32_000).astype(np.int64)

    rows = np.arange(n)
    n_candidates = rng.integers(2, 5, size=n)
    order = np.argsort(rng.uniform(size=(n, len(names))), axis=1)
    is_candidate = np.zeros((n, len(names)), dtype=bool)
    for k in range(len(names)):
        is_candidate[rows, order[:, k]] = k < n_candidates
    task_adj = np.array([TASK_QUALITY[t] for t in TASKS])[task]
    # The logging policy: softmax over the score (sampled by Gumbel-max), then exploration.
    score = base_quality[None, :] - COST_WEIGHT * price[None, :] * (tokens[:, None] / 1000)
    logits = np.where(is_candidate, score / TEMPERATURE, -np.inf)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    chosen = np.argmax(logits + rng.gumbel(size=score.shape), axis=1)
    ts = [midnight + timedelta(seconds=float(s)) for s in seconds]
    candidates = [[names[j] for j in np.flatnonzero(row)] for row in is_candidate]
    if workload.router is not None:
        softmax = _policy_choice(workload.router, names, ts, tenant, task, tokens, candidates)
        chosen = np.argmax(softmax, axis=1)
    explore = rng.uniform(size=n) < EXPLORE_RATE
    random_pick = order[rows, rng.integers(0, n_candidates)]
    chosen = np.where(explore, random_pick, chosen)
    pick = (1 - EXPLORE_RATE) * softmax + EXPLORE_RATE * is_candidate / n_candidates[:, None]
    # Fallback moves to the next candidate in the request's (random) candidate order.
    fallback = (rng.uniform(size=n) < FALLBACK_RATE) & (n_candidates > 1)
    position = np.argmax(order == chosen[:, None], axis=1)
    other = order[rows, (position + 1) % n_candidates]
    chosen = np.where(fallback, other, chosen)
    final_position = np.argmax(order == chosen[:, None], axis=1)
    previous = order[rows, (final_position - 1) % n_candidates]
    fallback_rate = np.where(n_candidates > 1, FALLBACK_RATE, 0.0)
    propensity = (1 - fallback_rate) * pick[rows, chosen] + fallback_rate * pick[rows, previous]

    cost = tokens / 1000 * price[chosen] * rng.lognormal(0, COST_SIGMA, size=n)
    latency = base_latency[chosen] * rng.lognormal(0, LATENCY_SIGMA, size=n) + 0.05 * tokens
    latency = np.where(fallback, latency * 1.8, latency)
    quality = np.clip(base_quality[chosen] + task_adj + rng.normal(0, QUALITY_SD, size=n), 0, 1)
    ids = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)
    columns = {
        "decision_id": [f"d-{uuid.UUID(int=(int(a) << 64) | int(b))}" for a, b in ids],
        "ts": ts,
        "tenant_id": [TENANTS[i] for i in tenant],
        "task_type": [TASKS[i] for i in task],
        "prompt_tokens": tokens,
        "candidate_models": candidates,
        "chosen_model": [names[i] for i in chosen],
        "cost_usd": np.round(cost, 6),
        "latency_ms": np.round(latency, 2),
        "quality_score": np.round(quality, 4),
        "fallback_used": fallback,
        "propensity": np.round(propensity, 6),
    }
    truth = _truth(names, base_quality, price, base_latency, task_adj, tokens, is_candidate)
    return columns, truth


def _truth(
    names: list[str],
    base_quality: np.ndarray,
    price: np.ndarray,
    base_latency: np.ndarray,
    task_adj: np.ndarray,
    tokens: np.ndarray,
    is_candidate: np.ndarray,
) -> RoutingTruth:
    return RoutingTruth(
        models=tuple(names),
        quality=_clipped_normal_mean(base_quality[None, :] + task_adj[:, None], QUALITY_SD),
        cost=tokens[:, None] / 1000 * price[None, :] * np.exp(COST_SIGMA**2 / 2),
        latency=base_latency[None, :] * np.exp(LATENCY_SIGMA**2 / 2)
        + 0.05 * tokens[:, None].astype(float),
        candidates=is_candidate,
    )


def expected_truth(rows: pa.Table, regime_change_at: date | None = None) -> RoutingTruth:
    """The simulator's ground truth for logged requests (any rows with ``ts``, ``task_type``,
    ``prompt_tokens`` and ``candidate_models``), e.g. held-out days read back from the lakehouse.

    The expected outcomes depend only on the request and the regime, not on the seed, so this
    equals :func:`routing_truth` for the simulator's own decisions.
    """
    names = list(MODELS)
    price, base_latency, base_quality = (np.array([MODELS[m][i] for m in names]) for i in range(3))
    task_adj = np.array([TASK_QUALITY[t] for t in rows.column("task_type").to_pylist()])
    tokens = rows.column("prompt_tokens").to_numpy().astype(np.int64)
    index = {m: j for j, m in enumerate(names)}
    is_candidate = np.zeros((rows.num_rows, len(names)), dtype=bool)
    for i, cands in enumerate(rows.column("candidate_models").to_pylist()):
        for m in cands:
            if m in index:
                is_candidate[i, index[m]] = True
    quality = base_quality[None, :].repeat(rows.num_rows, axis=0)
    latency = base_latency[None, :].repeat(rows.num_rows, axis=0)
    if regime_change_at is not None:
        days = [ts.date() for ts in rows.column("ts").to_pylist()]
        drifted = np.array([d >= regime_change_at for d in days], dtype=bool)
        large = names.index("large")
        quality[drifted, large] -= 0.15
        latency[drifted, large] *= 2
    mean_quality = _clipped_normal_mean(quality + task_adj[:, None], QUALITY_SD)
    truth = _truth(names, base_quality, price, base_latency, task_adj, tokens, is_candidate)
    return RoutingTruth(
        models=truth.models,
        quality=mean_quality,
        cost=truth.cost,
        latency=latency * np.exp(LATENCY_SIGMA**2 / 2) + 0.05 * tokens[:, None].astype(float),
        candidates=is_candidate,
    )


def _policy_choice(
    router: Callable[[pa.Table], np.ndarray],
    names: list[str],
    ts: list[datetime],
    tenant: np.ndarray,
    task: np.ndarray,
    tokens: np.ndarray,
    candidates: list[list[str]],
) -> np.ndarray:
    """One-hot (rows, models) of the policy's choice for each request."""
    n = len(ts)
    requests = pa.table(
        {
            "decision_id": [f"request-{i}" for i in range(n)],
            "ts": ts,
            "tenant_id": [TENANTS[i] for i in tenant],
            "task_type": [TASKS[i] for i in task],
            "prompt_tokens": tokens,
            "candidate_models": candidates,
            "chosen_model": [c[0] for c in candidates],
            "cost_usd": np.zeros(n),
            "latency_ms": np.zeros(n),
            "quality_score": np.zeros(n),
            "fallback_used": np.zeros(n, dtype=bool),
        }
    )
    choice = np.asarray(router(requests), dtype=object)
    index = {m: j for j, m in enumerate(names)}
    out = np.zeros((n, len(names)))
    for i, (model, cands) in enumerate(zip(choice, candidates, strict=True)):
        if model not in cands:
            raise ValueError(f"router chose {model!r}, which is not among candidates {cands}")
        out[i, index[model]] = 1.0
    return out


def _clipped_normal_mean(mu: np.ndarray, sd: float) -> np.ndarray:
    """E[clip(X, 0, 1)] for X ~ Normal(mu, sd)."""
    from math import erf, sqrt

    cdf = np.vectorize(lambda z: 0.5 * (1 + erf(z / sqrt(2))))
    a, b = (0 - mu) / sd, (1 - mu) / sd
    pdf_a, pdf_b = (np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi) for z in (a, b))
    return mu * (cdf(b) - cdf(a)) + sd * (pdf_a - pdf_b) + (1 - cdf(b))


def routing_arrow(workload: RoutingWorkload, day: date, n: int | None = None) -> pa.Table:
    """One day of valid decisions as an Arrow table (the ingestion benchmark's input)."""
    from lakehouse.routing.tables import ROUTING_DECISIONS

    columns = routing_columns(workload, day, n)
    columns["router"] = [workload.router_name] * len(columns["ts"])
    schema = ROUTING_DECISIONS.arrow_schema
    arrays = [
        pa.array(columns.get(f.name), type=f.type)
        if f.name in columns
        else pa.nulls(len(columns["ts"]), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def routing_events(workload: RoutingWorkload) -> Iterator[str]:
    """The workload's events as JSON payloads, in time order, malformed ones included.

    A day's events depend only on the seed and the day (not on the workload's first day), so
    publishing a range at once or day by day gives the same events.
    """
    for offset in range(workload.days):
        day = workload.start + timedelta(days=offset)
        rng = np.random.default_rng([workload.seed, 1, day.toordinal()])
        columns = routing_columns(workload, day)
        for i in range(len(columns["ts"])):
            event = {name: _plain(values[i]) for name, values in columns.items()}
            event["ts"] = columns["ts"][i].isoformat()
            event["router"] = workload.router_name
            if workload.malformed_rate and rng.uniform() < workload.malformed_rate:
                yield _malform(event, MALFORMED_KINDS[rng.integers(len(MALFORMED_KINDS))])
            else:
                yield json.dumps(event)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _malform(event: dict, kind: str) -> str:
    if kind == "bad_json":
        return json.dumps(event)[:-7]
    if kind == "missing":
        event.pop("chosen_model")
    elif kind == "wrong_type":
        event["prompt_tokens"] = str(event["prompt_tokens"])
    elif kind == "out_of_range":
        event["quality_score"] = 1.5
    elif kind == "naive_ts":
        event["ts"] = event["ts"].replace("+00:00", "")
    elif kind == "bad_choice":
        event["chosen_model"] = "unknown-model"
    return json.dumps(event)


def publish(
    client: RedisClient, payloads: Iterator[str], stream: str = STREAM, chunk: int = 2000
) -> int:
    """XADD each payload as one entry ``{data: payload}``; returns how many were written."""
    written = 0
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(stream, {"data": payload})
        written += 1
        if written % chunk == 0:
            pipe.execute()
    pipe.execute()
    return written


def simulate_day(
    workload: RoutingWorkload, day: date, n: int | None = None
) -> tuple[pa.Table, RoutingTruth]:
    """One day's decisions with ``propensity`` (Arrow) and the ground truth for the same rows."""
    columns, truth = _simulate(workload, day, n)
    return pa.table(columns), truth
