"""Off-policy evaluation of router policies on held-out logged decisions, and the promotion gate.

A policy is evaluated without running it: each held-out decision carries the logging router's
``propensity`` for the model it used, so the policy's mean cost and quality are estimated by

* **IPS**: mean of ``1[policy = logged] * outcome / propensity`` (unbiased, high variance);
* **SNIPS**: the same, self-normalised by the mean weight (a little biased, steadier);
* **DR** (doubly robust, the primary estimate): the outcome model's prediction for the policy's
  choice plus the IPS-weighted residual of the logged outcome; unbiased when the propensities are
  right, low variance when the outcome model is good. The outcome model is cross-fitted on the
  held-out rows (two folds), so it never scores a row it was trained on, unless one trained on
  other decisions is passed (``outcome_model``).

Intervals are percentile bootstraps over decisions (or normal, delta method for SNIPS). Ratios to
always-the-strongest use the same resamples for both policies (paired). On simulated data the
simulator's expected outcomes give the true value side by side. Decisions without a propensity
(events older than the contract) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import ValidationError
from lakehouse.router.features import multi_hot
from lakehouse.router.model import RouterModel

ESTIMATORS = ("ips", "snips", "dr")
METRICS = ("cost", "quality")
Policy = Callable[[pa.Table], np.ndarray]
"""A policy maps training-set rows to one model name per row."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimated mean cost and quality of one policy, per estimator (and the truth if known)."""

    policy: str
    n: int
    match_rate: float
    estimates: dict[str, dict[str, Estimate]]
    truth: dict[str, float] | None = None
    primary: str = "dr"

    @property
    def cost(self) -> Estimate:
        return self.estimates[self.primary]["cost"]

    @property
    def quality(self) -> Estimate:
        return self.estimates[self.primary]["quality"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "n": self.n,
            "match_rate": self.match_rate,
            "estimates": {
                e: {m: est.to_dict() for m, est in by.items()} for e, by in self.estimates.items()
            },
            "truth": self.truth,
        }


@dataclass(frozen=True)
class CurvePoint:
    """The threshold policy's estimated (and true) cost and quality at one threshold."""

    threshold: float
    cost: float
    quality: float
    truth_cost: float | None = None
    truth_quality: float | None = None


@dataclass(frozen=True)
class Decision:
    """Outcome of the promotion gate."""

    promote: bool
    reasons: list[str]


@dataclass(frozen=True)
class RoutingTruth:
    """Ground truth of one day (known for simulated data only): expected outcomes per (request,
    model).

    Arrays have one row per decision (in :func:`routing_columns` order) and one column per model
    in ``models``; entries for models outside a request's candidates are filled in too.
    """

    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    candidates: np.ndarray


def ground_truth(truth: RoutingTruth) -> Callable[[np.ndarray], dict[str, float]]:
    """Turn simulator truth (rows aligned with the held-out rows) into a policy valuer."""

    def value(actions: np.ndarray) -> dict[str, float]:
        index = {m: j for j, m in enumerate(truth.models)}
        cols = np.array([index[a] for a in actions])
        rows = np.arange(len(cols))
        return {
            "cost": float(truth.cost[rows, cols].mean()),
            "quality": float(truth.quality[rows, cols].mean()),
        }

    return value


def ranked_policy(ranking: Sequence[str], name: str = "ranked") -> Policy:
    """Policy choosing, per row, the first model of ``ranking`` among the candidates."""
    order = list(ranking)

    def policy(rows: pa.Table) -> np.ndarray:
        offered = multi_hot(rows.column("candidate_models"), order)
        if not offered.any(axis=1).all():
            raise ValidationError(f"policy {name!r}: a row offers none of {order}")
        return np.asarray(order, dtype=object)[np.argmax(offered > 0, axis=1)]

    return policy


def strength_ranking(rows: pa.Table) -> list[str]:
    """Models from the highest to the lowest mean observed quality in ``rows``."""
    means = _group_mean(rows, "quality_score")
    return sorted(means, key=lambda m: -means[m])


def price_ranking(rows: pa.Table) -> list[str]:
    """Models from the lowest to the highest observed cost per prompt token in ``rows``."""
    per_token = pc.divide(rows.column("cost_usd"), pc.add(rows.column("prompt_tokens"), 1))
    means = _group_mean(rows.append_column("per_token", per_token), "per_token")
    return sorted(means, key=lambda m: means[m])


def _group_mean(rows: pa.Table, column: str) -> dict[str, float]:
    grouped = rows.group_by("chosen_model").aggregate([(column, "mean")])
    return dict(
        zip(
            grouped.column("chosen_model").to_pylist(),
            grouped.column(f"{column}_mean").to_pylist(),
            strict=True,
        )
    )


@dataclass
class OffPolicyEvaluator:
    """Evaluates policies on one set of held-out training-set rows (with propensities)."""

    rows: pa.Table
    truth: RoutingTruth | None = None
    n_boot: int = 500
    confidence: float = 0.95
    interval: str = "bootstrap"
    seed: int = 0
    outcome_max_iter: int = 40
    outcome_model: RouterModel | None = None
    dropped: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.interval not in ("bootstrap", "normal"):
            raise ValueError(f"interval must be 'bootstrap' or 'normal', got {self.interval!r}")
        has_p = pc.is_valid(self.rows.column("propensity"))
        self.dropped = self.rows.num_rows - int(pc.sum(has_p).as_py() or 0)
        if self.truth is not None and self.dropped:
            keep = np.asarray(has_p)
            self.truth = RoutingTruth(
                models=self.truth.models,
                quality=self.truth.quality[keep],
                cost=self.truth.cost[keep],
                latency=self.truth.latency[keep],
                candidates=self.truth.candidates[keep],
            )
        self.rows = self.rows.filter(has_p)
        if self.rows.num_rows < 20:
            raise ValidationError(
                f"off-policy evaluation needs >= 20 held-out decisions with a propensity, got "
                f"{self.rows.num_rows} ({self.dropped} lacked one); log propensities first"
            )
        self.logged = np.asarray(self.rows.column("chosen_model").to_pylist(), dtype=object)
        self.propensity = self.rows.column("propensity").to_numpy()
        self.outcomes = {
            "cost": self.rows.column("cost_usd").to_numpy(),
            "quality": self.rows.column("quality_score").to_numpy(),
        }
        self._fit_outcome_model()
        rng = np.random.default_rng(self.seed)
        n = self.rows.num_rows
        self._boot = rng.integers(0, n, size=(self.n_boot, n)) if self.n_boot else None
        self._valuer = ground_truth(self.truth) if self.truth is not None else None

    def _fit_outcome_model(self) -> None:
        self._models: tuple[str, ...] = ()
        if self.outcome_model is not None:  # trained on other data: no cross-fitting needed
            q, c, _ = self.outcome_model.predict(self.rows)
            self.predicted = {"quality": q, "cost": c}
            self._models = self.outcome_model.models
            self._index = {m: j for j, m in enumerate(self._models)}
            return
        n = self.rows.num_rows
        fold = np.arange(n) % 2
        predictions: dict[str, np.ndarray] = {}
        for k in (0, 1):
            train = self.rows.filter(pa.array(fold != k))
            model = RouterModel.train(train, max_iter=self.outcome_max_iter, seed=self.seed)
            scored = self.rows.filter(pa.array(fold == k))
            q, c, _ = model.predict(scored)
            if not self._models:
                self._models = model.models
                predictions = {
                    "quality": np.zeros((n, len(q[0]))),
                    "cost": np.zeros((n, len(q[0]))),
                }
            if model.models != self._models:
                raise ValidationError(
                    "held-out folds offer different model sets; evaluate on more decisions"
                )
            predictions["quality"][fold == k] = q
            predictions["cost"][fold == k] = c
        self.predicted = predictions
        self._index = {m: j for j, m in enumerate(self._models)}

    def _columns(self, actions: np.ndarray) -> np.ndarray:
        try:
            return np.array([self._index[a] for a in actions])
        except KeyError as exc:
            raise ValidationError(
                f"policy chose model {exc.args[0]!r} that no held-out decision used"
            ) from None

    def _terms(self, actions: np.ndarray) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Per-row numerator and weight terms: value = mean(num) / mean(weight)."""
        match = (actions == self.logged).astype(float)
        w = match / self.propensity
        rows = np.arange(len(actions))
        chosen, logged = self._columns(actions), self._columns(self.logged)
        ones = np.ones_like(w)
        terms: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {e: {} for e in ESTIMATORS}
        for metric in METRICS:
            r = self.outcomes[metric]
            pred = self.predicted[metric]
            terms["ips"][metric] = (w * r, ones)
            terms["snips"][metric] = (w * r, w)
            terms["dr"][metric] = (pred[rows, chosen] + w * (r - pred[rows, logged]), ones)
        return terms

    def _estimate(self, num: np.ndarray, den: np.ndarray) -> Estimate:
        value = float(num.mean() / den.mean()) if den.mean() > 0 else float("nan")
        alpha = 1 - self.confidence
        if self.interval == "normal" or self._boot is None:
            from statistics import NormalDist

            z = NormalDist().inv_cdf(1 - alpha / 2)
            influence = (num - value * den) / den.mean()
            se = float(influence.std(ddof=1) / np.sqrt(len(num)))
            return Estimate(value, value - z * se, value + z * se)
        boot = num[self._boot].mean(axis=1) / np.maximum(den[self._boot].mean(axis=1), 1e-12)
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        return Estimate(value, float(low), float(high))

    def evaluate(self, name: str, policy: Policy | np.ndarray) -> PolicyEvaluation:
        """Estimate one policy (a callable over the rows, or its actions per row)."""
        actions = policy if isinstance(policy, np.ndarray) else policy(self.rows)
        actions = np.asarray(actions, dtype=object)
        terms = self._terms(actions)
        estimates = {e: {m: self._estimate(*terms[e][m]) for m in METRICS} for e in ESTIMATORS}
        return PolicyEvaluation(
            policy=name,
            n=len(actions),
            match_rate=float(np.mean(actions == self.logged)),
            estimates=estimates,
            truth=self._valuer(actions) if self._valuer else None,
        )

    def ratio(self, policy: np.ndarray, baseline: np.ndarray, metric: str) -> Estimate:
        """DR estimate of ``value(policy) / value(baseline)`` for ``metric`` (paired resamples)."""
        num_p, _ = self._terms(np.asarray(policy, dtype=object))["dr"][metric]
        num_b, _ = self._terms(np.asarray(baseline, dtype=object))["dr"][metric]
        value = float(num_p.mean() / num_b.mean())
        if self._boot is None:
            return Estimate(value, value, value)
        boot = num_p[self._boot].mean(axis=1) / num_b[self._boot].mean(axis=1)
        alpha = 1 - self.confidence
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        return Estimate(value, float(low), float(high))

    def curve(self, model: RouterModel, thresholds: Sequence[float]) -> list[CurvePoint]:
        """DR cost and quality (and the truth) of ``model``'s policy over ``thresholds``."""
        quality, cost, offered = model.predict(self.rows)
        from lakehouse.router.model import choose

        names = np.asarray(model.models, dtype=object)
        points = []
        for t in thresholds:
            actions = names[choose(quality, cost, offered, t)]
            terms = self._terms(actions)["dr"]
            truth = self._valuer(actions) if self._valuer else None
            points.append(
                CurvePoint(
                    threshold=float(t),
                    cost=float(terms["cost"][0].mean()),
                    quality=float(terms["quality"][0].mean()),
                    truth_cost=truth["cost"] if truth else None,
                    truth_quality=truth["quality"] if truth else None,
                )
            )
        return points


def apgr(
    points: Sequence[tuple[float, float]],
    weak: tuple[float, float],
    strong: tuple[float, float],
    grid: int = 101,
) -> float:
    """RouteLLM's average performance gap recovered, over cost instead of strong-call share.

    ``points``, ``weak`` and ``strong`` are (cost, quality). Cost is normalised to [0, 1] between
    the weak (always-cheapest) and strong (always-strongest) policies; at each budget on a grid
    the router's performance gap recovered is ``(q - q_weak) / (q_strong - q_weak)`` for the best
    curve point within the budget (the weak policy is always affordable, so it is >= 0); APGR is
    its mean over the grid.
    """
    (c_weak, q_weak), (c_strong, q_strong) = weak, strong
    if c_strong <= c_weak or q_strong <= q_weak:
        raise ValidationError("APGR needs a strong policy that costs more and scores higher")
    budget = np.linspace(0, 1, grid)
    x = np.array([(c - c_weak) / (c_strong - c_weak) for c, _ in points])
    pgr = np.array([(q - q_weak) / (q_strong - q_weak) for _, q in points])
    recovered = [max([0.0, *pgr[x <= b].tolist()]) for b in budget]
    return float(np.mean(recovered))


def cost_saving_at(
    points: Sequence[CurvePoint], strong: tuple[float, float], quality_fraction: float = 0.95
) -> tuple[float, float] | None:
    """Largest cost saving vs strong whose quality >= ``quality_fraction`` of strong's.

    Returns (saving, threshold), or None when no point on the curve reaches that quality.
    """
    c_strong, q_strong = strong
    ok = [p for p in points if p.quality >= quality_fraction * q_strong]
    if not ok:
        return None
    best = min(ok, key=lambda p: p.cost)
    return 1 - best.cost / c_strong, best.threshold


@dataclass(frozen=True)
class RouterEvaluation:
    """Evaluation of a candidate router against baselines and the champion."""

    policies: dict[str, PolicyEvaluation]
    cost_saving: Estimate
    quality_ratio: Estimate
    curve: list[CurvePoint]
    apgr: float
    saving_at_95: tuple[float, float] | None
    candidate_version: str
    champion_version: str | None
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            "cost_saving": self.cost_saving.to_dict(),
            "quality_ratio": self.quality_ratio.to_dict(),
            "apgr": self.apgr,
            "saving_at_95": self.saving_at_95,
            "dropped_without_propensity": self.dropped,
            "policies": {n: p.to_dict() for n, p in self.policies.items()},
            "curve": [p.__dict__ for p in self.curve],
        }

    def to_rows(self, evaluation_id: str, evaluated_at: Any) -> list[dict[str, Any]]:
        """Rows of ``router_evaluations``: one per (policy, estimator), truth included."""
        out = []
        for name, ev in self.policies.items():
            for estimator, by in ev.estimates.items():
                out.append(_row(evaluation_id, evaluated_at, self, name, estimator, ev.n, by))
            if ev.truth is not None:
                truth = {m: Estimate(v, v, v) for m, v in ev.truth.items()}
                out.append(_row(evaluation_id, evaluated_at, self, name, "truth", ev.n, truth))
        return out


def _row(
    evaluation_id: str,
    evaluated_at: Any,
    report: RouterEvaluation,
    policy: str,
    estimator: str,
    n: int,
    by: dict[str, Estimate],
) -> dict[str, Any]:
    return {
        "evaluation_id": evaluation_id,
        "evaluated_at": evaluated_at,
        "candidate_version": report.candidate_version,
        "champion_version": report.champion_version,
        "policy": policy,
        "estimator": estimator,
        "threshold": None,
        "n": n,
        "cost": by["cost"].value,
        "cost_low": by["cost"].low,
        "cost_high": by["cost"].high,
        "quality": by["quality"].value,
        "quality_low": by["quality"].low,
        "quality_high": by["quality"].high,
    }


def evaluate_router(
    candidate: RouterModel,
    heldout: pa.Table,
    *,
    strongest: Sequence[str],
    cheapest: Sequence[str],
    champion: RouterModel | None = None,
    truth: RoutingTruth | None = None,
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.70, 0.96, 0.01), 2)),
    **evaluator_options: Any,
) -> RouterEvaluation:
    """Evaluate ``candidate`` on held-out rows against always-strongest/-cheapest and the champion.

    ``strongest`` ranks models from strongest down, ``cheapest`` from cheapest up (see
    :func:`strength_ranking`, :func:`price_ranking`).
    """
    ope = OffPolicyEvaluator(heldout, truth=truth, **evaluator_options)
    actions = {
        "candidate": candidate.route(ope.rows),
        "strongest": ranked_policy(strongest, "strongest")(ope.rows),
        "cheapest": ranked_policy(cheapest, "cheapest")(ope.rows),
    }
    if champion is not None:
        actions["champion"] = champion.route(ope.rows)
    policies = {name: ope.evaluate(name, a) for name, a in actions.items()}
    cost_ratio = ope.ratio(actions["candidate"], actions["strongest"], "cost")
    strong, weak = policies["strongest"], policies["cheapest"]
    curve = ope.curve(candidate, thresholds)
    return RouterEvaluation(
        policies=policies,
        cost_saving=Estimate(1 - cost_ratio.value, 1 - cost_ratio.high, 1 - cost_ratio.low),
        quality_ratio=ope.ratio(actions["candidate"], actions["strongest"], "quality"),
        curve=curve,
        apgr=apgr(
            [(p.cost, p.quality) for p in curve],
            (weak.cost.value, weak.quality.value),
            (strong.cost.value, strong.quality.value),
        ),
        saving_at_95=cost_saving_at(curve, (strong.cost.value, strong.quality.value)),
        candidate_version=candidate.version,
        champion_version=champion.version if champion else None,
        dropped=ope.dropped,
    )


def promote(
    candidate: PolicyEvaluation,
    champion: PolicyEvaluation | None,
    *,
    min_quality: float,
    min_cost_cut: float = 0.0,
    quality_tolerance: float = 0.0,
) -> Decision:
    """Gate: promote the candidate only if it is good enough and cheaper than the champion.

    Rules: the candidate's estimated quality reaches ``min_quality``; it is not worse than the
    champion's beyond its interval (candidate's upper bound + ``quality_tolerance`` >= champion's
    estimate); its estimated cost is below the champion's by more than ``min_cost_cut`` (a
    fraction). Without a champion only the quality floor applies.
    """
    failures: list[str] = []
    passes: list[str] = []
    q, c = candidate.quality, candidate.cost
    (passes if q.value >= min_quality else failures).append(
        f"quality {q.value:.4f} {'>=' if q.value >= min_quality else '<'} floor {min_quality:.4f}"
    )
    if champion is not None:
        cq, cc = champion.quality, champion.cost
        ok = q.high + quality_tolerance >= cq.value
        (passes if ok else failures).append(
            f"quality CI upper {q.high:.4f} {'>=' if ok else '<'} champion's {cq.value:.4f}"
            + (f" - tolerance {quality_tolerance:.4f}" if quality_tolerance else "")
        )
        limit = cc.value * (1 - min_cost_cut)
        ok = c.value < limit
        (passes if ok else failures).append(
            f"cost {c.value:.6f} {'<' if ok else '>='} champion's {cc.value:.6f}"
            + (f" x (1 - {min_cost_cut:.2f})" if min_cost_cut else "")
        )
    else:
        passes.append("no champion yet")
    return Decision(promote=not failures, reasons=failures or passes)
