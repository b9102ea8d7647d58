"""The router's model registry: train from the lakehouse, promote through write-audit-publish, use.

* :func:`build_training_set` turns days of ``routing_decisions`` into ``router_training_set``
  (one day-partition overwrite each, so re-running a day changes nothing).
* :func:`train` fits a :class:`~lakehouse.router.model.RouterModel` on days of the training
  set read at one snapshot (recorded in the model as ``training_snapshot_ids``) and stores its
  artifact (skops, never pickle) under ``<warehouse>/router_models/<version>/``.
* :func:`retrain` is the gated path to production: the candidate's row (status ``candidate``)
  is written to an audit branch of ``router_models``; the audit is the model evaluation
  (:class:`ModelEvaluationAudit`: on held-out days the candidate must reach
  ``quality_floor`` x always-strongest's quality and beat the champion's estimated cost at no
  worse quality within its interval). Only when it passes is the promotion staged on the same
  branch (candidate -> ``champion``, previous champion -> ``retired``) and the branch published,
  so main moves from one champion to the next in a single step. A refused candidate stays on its
  audit branch with status ``candidate``. Every evaluation is recorded in
  ``router_evaluations`` with its decision and reasons.
* :func:`best_model_for` answers with the champion (loaded once per version and cached).

Invariants: main's ``router_models`` holds at most one ``champion``; a row's ``artifact_uri``
names a directory whose content hash is its ``version``.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import ValidationError
from lakehouse.publish.wap import Audit, WapResult, audit_and_publish, write_audit_publish
from lakehouse.router.evaluation import (
    Decision,
    RouterEvaluation,
    RoutingTruth,
    evaluate_router,
    price_ranking,
    promote,
    strength_ranking,
)
from lakehouse.router.features import training_set
from lakehouse.router.model import RouterModel
from lakehouse.router.tables import ROUTER_MODELS
from lakehouse.table import refs
from lakehouse.table.paths import artifact_rel
from lakehouse.table.writer import Lineage, WriteResult, conform

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

log = logging.getLogger(__name__)

DECISIONS = "routing_decisions"
TRAINING = "router_training_set"
MODELS = "router_models"
EVALUATIONS = "router_evaluations"
ARTIFACT_DIR = "router_models"
STATUSES = ("candidate", "champion", "retired")
DEFAULT_THRESHOLD = 0.85
QUALITY_FLOOR = 0.95
TruthFn = Callable[[pa.Table], RoutingTruth]
"""Ground truth for held-out rows (simulated data only), aligned with them row for row."""

_CACHE: dict[str, RouterModel] = {}
_CACHE_LOCK = threading.Lock()


# -- training set --------------------------------------------------------------------------


def training_day(lh: Lakehouse, day: date, branch: str | None = None) -> pa.Table:
    """Training-set rows for one day of ``routing_decisions`` (at the head of ``branch``)."""
    return training_set(lh.read(DECISIONS, day=day, branch=branch))


def build_training_set(
    lh: Lakehouse, days: Sequence[date], *, audit: Audit, lineage: Lineage | None = None
) -> list[WapResult]:
    """Write ``router_training_set`` for ``days``, one audited day overwrite each (idempotent)."""
    return [
        write_audit_publish(
            lh, TRAINING, training_day(lh, day), audit=audit, day=day, lineage=lineage
        )
        for day in days
    ]


def read_training(
    lh: Lakehouse, days: Sequence[date], branch: str | None = None
) -> tuple[pa.Table, int]:
    """Training-set rows of ``days`` read at one snapshot, and that snapshot's id.

    Raises:
        ValidationError: the training set is empty (materialise router_training_set first).
    """
    table = lh.table(TRAINING)
    snapshot = refs.head(table, branch or lh.settings.branch)
    if snapshot is None or not days:
        raise ValidationError(
            "router_training_set is empty; build it first (`aura router train` does, or "
            "materialise the router_training_set asset for the days)"
        )
    wanted = sorted(set(days))
    start = datetime(wanted[0].year, wanted[0].month, wanted[0].day, tzinfo=UTC)
    end = datetime(wanted[-1].year, wanted[-1].month, wanted[-1].day, tzinfo=UTC)
    rows = lh.read(TRAINING, window=(start, end + timedelta(days=1)), snapshot_id=snapshot)
    day_of = pc.cast(pc.floor_temporal(rows.column("ts"), unit="day"), pa.timestamp("us", "UTC"))
    keep = pc.is_in(
        day_of, pa.array([datetime.combine(d, datetime.min.time(), UTC) for d in wanted])
    )
    rows = rows.filter(keep).sort_by([("ts", "ascending"), ("decision_id", "ascending")])
    return rows, snapshot


def training_days(lh: Lakehouse, table: str = TRAINING) -> list[date]:
    """The days present in ``router_training_set`` (or ``table``) on the lakehouse's branch."""
    rows = lh.read(table).select(["ts"])
    if rows.num_rows == 0:
        return []
    days = pc.unique(pc.floor_temporal(rows.column("ts"), unit="day")).to_pylist()
    return sorted({d.date() for d in days})


def split_days(
    lh: Lakehouse, train_days: int = 3, heldout_days: int = 1
) -> tuple[list[date], list[date]]:
    """The latest ``heldout_days`` days for evaluation and the ``train_days`` before them.

    Raises:
        ValidationError: the training set has fewer days than that.
    """
    days = training_days(lh)
    if len(days) < train_days + heldout_days:
        raise ValidationError(
            f"router_training_set has {len(days)} day(s); training on {train_days} and holding "
            f"out {heldout_days} needs {train_days + heldout_days}: build more days first"
        )
    cut = len(days) - heldout_days
    return days[cut - train_days : cut], days[cut:]


# -- versions ------------------------------------------------------------------------------


def artifact_root(lh: Lakehouse) -> Path:
    """``<warehouse>/router_models``: where model artifacts live (a file warehouse)."""
    warehouse = lh.settings.warehouse
    parsed = urlparse(warehouse)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path)) / ARTIFACT_DIR
    return lh.settings.home / "warehouse" / ARTIFACT_DIR


def save_artifact(lh: Lakehouse, model: RouterModel) -> str:
    """Store ``model`` in the warehouse (idempotent: a version is its content); returns its path
    relative to the warehouse (``router_models/<version>``), what rows store, so a restored or
    moved warehouse needs no rewrite."""
    directory = artifact_root(lh) / model.version
    if not (directory / "model.json").exists():
        model.save(directory)
    return f"{ARTIFACT_DIR}/{model.version}"


def model_row(model: RouterModel, artifact_uri: str, status: str = "candidate") -> dict[str, Any]:
    """The ``router_models`` row of a model version."""
    meta = model.metadata
    return {
        "version": model.version,
        "trained_at": datetime.fromisoformat(meta["trained_at"]),
        "status": status,
        "artifact_uri": artifact_uri,
        "models": list(model.models),
        "features": list(meta["features"]),
        "training_snapshot_ids": [int(s) for s in meta["training_snapshot_ids"]],
        "threshold": model.threshold,
        "training_rows": int(meta["training_rows"]),
        "metrics": json.dumps(meta["metrics"], sort_keys=True),
    }


def train(
    lh: Lakehouse,
    days: Sequence[date],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    max_iter: int = 100,
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> RouterModel:
    """Train a router on ``days`` of the training set and store its artifact.

    ``prepare`` may change the rows before fitting (a sample, a filter). The model records the
    training set's snapshot id; it is not registered: :func:`retrain` does that.
    """
    rows, snapshot = read_training(lh, days)
    if prepare is not None:
        rows = prepare(rows)
    model = RouterModel.train(
        rows,
        threshold=threshold,
        training_snapshot_ids=[snapshot],
        seed=seed,
        max_iter=max_iter,
    )
    save_artifact(lh, model)
    return model


def models(lh: Lakehouse, branch: str | None = None) -> pa.Table:
    """The rows of ``router_models`` (main, or ``branch``), newest first."""
    rows = lh.read(MODELS, branch=branch)
    return rows.sort_by([("trained_at", "descending")])


def champion_row(lh: Lakehouse) -> dict[str, Any] | None:
    """The champion's row on the lakehouse's branch, None before the first promotion."""
    rows = models(lh).filter(pc.equal(pc.field("status"), "champion")).to_pylist()
    return rows[0] if rows else None


def artifact_path(lh: Lakehouse, row: dict[str, Any]) -> Path:
    """The directory of a ``router_models`` row's artifact, always in this warehouse.

    Rows name it relative to the warehouse; older rows hold an absolute URI, perhaps of the home
    a backup came from, which resolves by its last part (:func:`lakehouse.table.paths.
    artifact_rel`). Loading verifies the content (its hash is the version) either way.
    """
    rel = artifact_rel(ARTIFACT_DIR, row["artifact_uri"] or "")
    return artifact_root(lh).parent / (rel or f"{ARTIFACT_DIR}/{row['version']}")


def load_version(lh: Lakehouse, version: str, branch: str | None = None) -> RouterModel:
    """Load a registered version (cached per version; skops, never unpickled).

    Raises:
        ValidationError: no such version in ``router_models``.
    """
    with _CACHE_LOCK:
        cached = _CACHE.get(version)
    if cached is not None:
        return cached
    rows = models(lh, branch).filter(pc.equal(pc.field("version"), version)).to_pylist()
    if not rows:
        raise ValidationError(
            f"router model {version!r} is not in router_models; see `aura router models`"
        )
    model = RouterModel.load(artifact_path(lh, rows[0]))
    if model.version != version:
        raise ValidationError(f"the artifact of router model {version} holds {model.version}")
    with _CACHE_LOCK:
        _CACHE[version] = model
    return model


def champion(lh: Lakehouse) -> RouterModel | None:
    """The champion model, None before the first promotion."""
    row = champion_row(lh)
    return load_version(lh, row["version"]) if row else None


def champion_policy(lh: Lakehouse) -> Callable[[pa.Table], np.ndarray] | None:
    """The champion as a policy over decision-shaped rows (for the simulator), None without one."""
    model = champion(lh)
    if model is None:
        return None

    def route(requests: pa.Table) -> np.ndarray:
        return model.route(training_set(requests))

    return route


def best_model_for(
    lh: Lakehouse,
    tenant_id: str,
    task_type: str,
    prompt_tokens: int,
    candidates: Sequence[str],
) -> tuple[str, str]:
    """The champion's choice among ``candidates`` and why.

    Before any champion exists, or when it knows none of the candidates, the first candidate
    is returned and the reason says so.
    """
    if not candidates:
        raise ValidationError("best_model_for needs at least one candidate model")
    model = champion(lh)
    if model is None:
        return candidates[
            0
        ], "no champion router yet: first candidate (train one: aura router train)"
    if not any(c in model.models for c in candidates):
        return candidates[0], (
            f"champion {model.version} knows none of {list(candidates)}: first candidate"
        )
    choice = model.route_one(tenant_id, task_type, prompt_tokens, candidates)
    return choice.model, f"champion {model.version}: {choice.reason}"


# -- evaluation and gated retraining ----------------------------------------------------


def evaluate(
    lh: Lakehouse,
    candidate: RouterModel,
    champion: RouterModel | None,
    heldout_days: Sequence[date],
    *,
    truth: TruthFn | None = None,
    n_boot: int = 300,
    seed: int = 0,
) -> RouterEvaluation:
    """Off-policy evaluation of ``candidate`` (and ``champion``) on held-out days of the
    training set, against always-strongest and always-cheapest (ranked on those days)."""
    rows, _ = read_training(lh, heldout_days)
    return evaluate_router(
        candidate,
        rows,
        strongest=strength_ranking(rows),
        cheapest=price_ranking(rows),
        champion=champion,
        truth=truth(rows) if truth else None,
        n_boot=n_boot,
        seed=seed,
    )


def gate(evaluation: RouterEvaluation, quality_floor: float = QUALITY_FLOOR) -> Decision:
    """Promote only a candidate at >= ``quality_floor`` of always-strongest's quality that beats
    the champion's cost at no worse quality (within the candidate's interval)."""
    strongest = evaluation.policies["strongest"].quality.value
    return promote(
        evaluation.policies["candidate"],
        evaluation.policies.get("champion"),
        min_quality=quality_floor * strongest,
    )


@dataclass
class EvaluationReport:
    """The audit report of a model evaluation (satisfies ``lakehouse.publish.wap.AuditReport``)."""

    candidate_version: str
    evaluation: RouterEvaluation
    decision: Decision

    @property
    def success(self) -> bool:
        return self.decision.promote

    def summary(self) -> str:
        verdict = "promoted" if self.decision.promote else "refused"
        return f"router {self.candidate_version} {verdict}: " + "; ".join(self.decision.reasons)


@dataclass
class ModelEvaluationAudit:
    """The audit of a ``router_models`` write: evaluate the candidate written on the branch.

    Satisfies :class:`lakehouse.publish.wap.Audit`. The candidate must be on the audit branch with
    status
    ``candidate``; it is judged by :func:`evaluate` and :func:`gate` against the champion *on the
    audit branch* (which starts at the target's head): when another retrain published while this
    one trained, or the write is replayed after the target moved, the candidate is judged against
    the champion it would replace, not the one seen when the retrain started. The last report is
    kept; ``champion`` ends as the champion it was judged against.
    """

    candidate: RouterModel
    champion: RouterModel | None
    heldout_days: Sequence[date]
    truth: TruthFn | None = None
    quality_floor: float = QUALITY_FLOOR
    n_boot: int = 300
    report: EvaluationReport | None = field(default=None, init=False)

    def __call__(
        self, lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
    ) -> EvaluationReport:
        on_branch = models(lh, branch)
        mine = on_branch.filter(pc.equal(pc.field("version"), self.candidate.version)).to_pylist()
        if not mine or mine[0]["status"] != "candidate":
            raise ValidationError(
                f"{table}@{branch} lacks candidate {self.candidate.version}; write it first"
            )
        rivals = [r for r in on_branch.to_pylist() if r["status"] == "champion"]
        current = rivals[0]["version"] if rivals else None
        if current != (self.champion.version if self.champion else None):
            self.champion = load_version(lh, current, branch) if current else None
        evaluation = evaluate(
            lh,
            self.candidate,
            self.champion,
            self.heldout_days,
            truth=self.truth,
            n_boot=self.n_boot,
        )
        self.report = EvaluationReport(
            self.candidate.version, evaluation, gate(evaluation, self.quality_floor)
        )
        return self.report


@dataclass
class _PromoteOnPass:
    """Runs the evaluation audit; when it passes, stages the promotion on the audit branch so
    the publish that follows makes the candidate champion and retires the previous one at once."""

    inner: ModelEvaluationAudit

    def __call__(
        self, lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
    ) -> EvaluationReport:
        report = self.inner(lh, table, branch, day, lineage)
        if report.success:
            _stage_promotion(lh, branch, report.candidate_version, lineage)
        return report


def _stage_promotion(lh: Lakehouse, branch: str, version: str, lineage: Lineage) -> None:
    """Rewrite the branch's rows with ``version`` champion and every other champion retired.

    This status write goes to the audit branch only; main changes in the one atomic ref move of
    the publish that follows, so a failure or crash between the two leaves main with its previous
    champion (and the staged promotion on the audit branch, which expires with it). One row per
    version is kept, and the staged rows are checked to hold exactly one champion before they
    are written.

    Raises:
        ValidationError: the staged rows would not hold exactly one champion.
    """
    rows: dict[str, dict[str, Any]] = {}
    for row in lh.read(MODELS, branch=branch).to_pylist():
        if row["version"] == version:
            row["status"] = "champion"
        elif row["status"] == "champion":
            row["status"] = "retired"
        rows.setdefault(row["version"], row)
    champions = [v for v, r in rows.items() if r["status"] == "champion"]
    if champions != [version]:
        raise ValidationError(
            f"promotion of {version} on {branch} would leave champions {champions}; not staged"
        )
    iceberg = lh.table(MODELS)
    staged = pa.Table.from_pylist(list(rows.values()), ROUTER_MODELS.arrow_schema)
    data = conform(ROUTER_MODELS, iceberg, staged)
    iceberg.overwrite(data, snapshot_properties=lineage.properties(), branch=branch)


@dataclass(frozen=True)
class RetrainResult:
    """What one gated retraining did."""

    candidate: RouterModel
    previous_champion: str | None
    published: bool
    audit_branch: str
    evaluation: RouterEvaluation
    decision: Decision
    evaluation_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_version": self.candidate.version,
            "previous_champion": self.previous_champion,
            "published": self.published,
            "audit_branch": self.audit_branch,
            "decision": "promoted" if self.published else "refused",
            "reasons": self.decision.reasons,
            "evaluation_id": self.evaluation_id,
            **summary(self.evaluation),
        }


def retrain(
    lh: Lakehouse,
    train_days: Sequence[date],
    heldout_days: Sequence[date],
    *,
    candidate: RouterModel | None = None,
    truth: TruthFn | None = None,
    lineage: Lineage | None = None,
    quality_floor: float = QUALITY_FLOOR,
    threshold: float = DEFAULT_THRESHOLD,
    n_boot: int = 300,
) -> RetrainResult:
    """Train a candidate (or take ``candidate``) and promote it through write-audit-publish.

    The held-out days must not overlap the training days.

    Raises:
        ValidationError: the days overlap, or the training set lacks them.
    """
    if set(train_days) & set(heldout_days):
        raise ValidationError("held-out days must not overlap the training days")
    lineage = lineage or Lineage(asset="router_model", run_id=uuid.uuid4().hex[:12])
    if candidate is None:
        candidate = train(lh, train_days, threshold=threshold)
    uri = save_artifact(lh, candidate)
    current = champion(lh)
    audit = ModelEvaluationAudit(
        candidate, current, heldout_days, truth=truth, quality_floor=quality_floor, n_boot=n_boot
    )
    row = pa.Table.from_pylist([model_row(candidate, uri)], ROUTER_MODELS.arrow_schema)

    def write(branch: str) -> WriteResult:
        return lh.append(MODELS, row, lineage=lineage, branch=branch)

    wap = audit_and_publish(lh, MODELS, write, audit=_PromoteOnPass(audit), lineage=lineage)
    assert wap is not None and audit.report is not None
    evaluation_id = record_evaluation(
        lh, audit.report.evaluation, audit.report.decision, wap.audit_branch, lineage
    )
    log.info("%s", audit.report.summary())
    return RetrainResult(
        candidate=candidate,
        previous_champion=audit.champion.version if audit.champion else None,
        published=wap.published,
        audit_branch=wap.audit_branch,
        evaluation=audit.report.evaluation,
        decision=audit.report.decision,
        evaluation_id=evaluation_id,
    )


def record_evaluation(
    lh: Lakehouse,
    evaluation: RouterEvaluation,
    decision: Decision | None,
    audit_branch: str | None,
    lineage: Lineage | None = None,
) -> str:
    """Append the evaluation's rows (with the gate's decision) to ``router_evaluations``."""
    evaluation_id = uuid.uuid4().hex[:16]
    rows = evaluation.to_rows(evaluation_id, datetime.now(UTC))
    for row in rows:
        row["decision"] = (
            None if decision is None else ("promoted" if decision.promote else "refused")
        )
        row["reasons"] = None if decision is None else "; ".join(decision.reasons)
        row["audit_branch"] = audit_branch
    table = pa.Table.from_pylist(rows, lh.spec(EVALUATIONS).arrow_schema)
    lh.append(EVALUATIONS, table, lineage=lineage)
    return evaluation_id


def summary(evaluation: RouterEvaluation) -> dict[str, Any]:
    """The headline figures: saving and quality ratio against always-strongest with their
    intervals, APGR, the champion's version, and the ground truth when known."""
    out: dict[str, Any] = {
        "candidate_version": evaluation.candidate_version,
        "champion_version": evaluation.champion_version,
        "cost_saving": evaluation.cost_saving.value,
        "cost_saving_low": evaluation.cost_saving.low,
        "cost_saving_high": evaluation.cost_saving.high,
        "quality_ratio": evaluation.quality_ratio.value,
        "quality_ratio_low": evaluation.quality_ratio.low,
        "quality_ratio_high": evaluation.quality_ratio.high,
        "apgr": evaluation.apgr,
        "n": evaluation.policies["candidate"].n,
    }
    cand, strong = evaluation.policies["candidate"].truth, evaluation.policies["strongest"].truth
    if cand is not None and strong is not None:
        out["truth_cost_saving"] = 1 - cand["cost"] / strong["cost"]
        out["truth_quality_ratio"] = cand["quality"] / strong["quality"]
    return out


def curve_markdown(evaluation: RouterEvaluation) -> str:
    """The cost/quality curve over the policy's threshold as a markdown table."""
    truth = any(p.truth_cost is not None for p in evaluation.curve)
    head = "| threshold | cost (DR) | quality (DR) |" + (
        " cost (truth) | quality (truth) |" if truth else ""
    )
    lines = [head, "|---" * (5 if truth else 3) + "|"]
    for p in evaluation.curve:
        line = f"| {p.threshold:.2f} | {p.cost:.6f} | {p.quality:.4f} |"
        if truth:
            line += f" {p.truth_cost:.6f} | {p.truth_quality:.4f} |"
        lines.append(line)
    return "\n".join(lines)
