"""Gated promotion: a candidate becomes champion only through write-audit-publish.

:func:`retrain` writes the candidate's row (status ``candidate``) to an audit branch of
``router_models``; the audit is the model evaluation (:class:`ModelEvaluationAudit`: on held-out
days the candidate must reach ``quality_floor`` x always-strongest's quality and beat the
champion's estimated cost at no worse quality within its interval). Only when it passes is the
promotion staged on the same branch (candidate -> ``champion``, previous champion -> ``retired``)
and the branch published, so main moves from one champion to the next in a single step. A refused
candidate stays on its audit branch with status ``candidate``. Every evaluation is recorded in
``router_evaluations`` with its decision and reasons.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import ValidationError
from lakehouse.publish.wap import audit_and_publish
from lakehouse.router.evaluation import (
    Decision,
    RouterEvaluation,
    RoutingTruth,
    evaluate_router,
    price_ranking,
    promote,
    strength_ranking,
)
from lakehouse.router.model import RouterModel
from lakehouse.router.reports import summary
from lakehouse.router.tables import ROUTER_MODELS
from lakehouse.router.training import read_training
from lakehouse.router.versions import (
    DEFAULT_THRESHOLD,
    MODELS,
    champion,
    load_version,
    model_row,
    models,
    save_artifact,
    train,
)
from lakehouse.table.writer import Lineage, WriteResult, conform

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

log = logging.getLogger(__name__)

EVALUATIONS = "router_evaluations"
QUALITY_FLOOR = 0.95
TruthFn = Callable[[pa.Table], RoutingTruth]
"""Ground truth for held-out rows (simulated data only), aligned with them row for row."""


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
