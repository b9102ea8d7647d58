"""The learned model router: training set, versioned models, off-policy evaluation, promotion.

``features`` turns routing decisions into model inputs and ``training`` writes them to
``router_training_set``; ``model`` trains the quality and cost predictors and their routing policy;
``versions`` stores artifacts, lists ``router_models`` and answers with the champion;
``evaluation`` estimates policies offline from logged decisions; ``promotion`` gates a candidate
through write-audit-publish; ``reports`` formats an evaluation. Nothing here imports Dagster.
"""

from lakehouse.router.model import RouterModel
from lakehouse.router.promotion import (
    EVALUATIONS,
    QUALITY_FLOOR,
    ModelEvaluationAudit,
    RetrainResult,
    TruthFn,
    evaluate,
    gate,
    record_evaluation,
    retrain,
)
from lakehouse.router.reports import curve_markdown, summary
from lakehouse.router.training import (
    DECISIONS,
    TRAINING,
    build_training_set,
    read_training,
    split_days,
    training_day,
    training_days,
)
from lakehouse.router.versions import (
    DEFAULT_THRESHOLD,
    MODELS,
    best_model_for,
    champion,
    champion_policy,
    champion_row,
    load_version,
    models,
    train,
)

__all__ = [
    "DECISIONS",
    "DEFAULT_THRESHOLD",
    "EVALUATIONS",
    "MODELS",
    "QUALITY_FLOOR",
    "TRAINING",
    "ModelEvaluationAudit",
    "RetrainResult",
    "RouterModel",
    "TruthFn",
    "best_model_for",
    "build_training_set",
    "champion",
    "champion_policy",
    "champion_row",
    "curve_markdown",
    "evaluate",
    "gate",
    "load_version",
    "models",
    "read_training",
    "record_evaluation",
    "retrain",
    "split_days",
    "summary",
    "train",
    "training_day",
    "training_days",
]
