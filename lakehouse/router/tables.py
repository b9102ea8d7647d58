"""Tables of the learned router: training set, model versions and evaluations.

``router_training_set`` holds one row per routing decision with its features and the observed
outcome of the chosen model (daily, by decision time). ``router_models`` holds one row per trained
model version; its artifact lives in the warehouse as a skops file. ``router_evaluations`` holds
the off-policy estimates of each evaluated policy, one row per (evaluation, policy, estimator).
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    ListType,
    LongType,
    StringType,
    TimestamptzType,
)

from lakehouse.table.expectations import between, in_set, not_null, unique
from lakehouse.table.registry import TableSpec, column, register

ROUTER_TRAINING_SET = register(
    TableSpec(
        name="router_training_set",
        schema=Schema(
            column(1, "decision_id", StringType(), doc="Id of the routing decision"),
            column(2, "ts", TimestamptzType(), doc="When the router decided (UTC)"),
            column(3, "tenant_id", StringType()),
            column(4, "task_type", StringType()),
            column(5, "prompt_tokens", LongType()),
            column(6, "log_prompt_tokens", DoubleType(), doc="ln(1 + prompt_tokens)"),
            column(7, "tod_sin", DoubleType(), doc="sin of the time of day (UTC) as an angle"),
            column(8, "tod_cos", DoubleType(), doc="cos of the time of day (UTC) as an angle"),
            column(9, "candidate_models", ListType(20, StringType(), element_required=True)),
            column(10, "n_candidates", LongType()),
            column(11, "chosen_model", StringType()),
            column(12, "cost_usd", DoubleType(), doc="Observed cost of the chosen model"),
            column(13, "latency_ms", DoubleType(), doc="Observed latency of the chosen model"),
            column(14, "quality_score", DoubleType(), doc="Observed quality in [0, 1]"),
            column(
                15,
                "propensity",
                DoubleType(),
                required=False,
                doc="Probability the logging router chose chosen_model; null for old events",
            ),
            column(16, "fallback_used", BooleanType()),
        ),
        time_column="ts",
        key=("decision_id",),
        description="Router training set: features and observed outcome per routing decision",
        expectations=(
            not_null("decision_id"),
            unique("decision_id"),
            between("quality_score", 0, 1),
            between("cost_usd", min_value=0),
            between("propensity", min_value=0, max_value=1),
        ),
    )
)

# `router_models` is a registry of versions, not a daily table: unpartitioned.
ROUTER_MODELS = register(
    TableSpec(
        name="router_models",
        schema=Schema(
            column(1, "version", StringType(), doc="Content hash of the model artifact"),
            column(2, "trained_at", TimestamptzType()),
            column(3, "status", StringType(), doc="candidate | champion | retired"),
            column(4, "artifact_uri", StringType(), doc="Where the skops artifact is stored"),
            column(5, "models", ListType(21, StringType(), element_required=True)),
            column(6, "features", ListType(22, StringType(), element_required=True)),
            column(
                7,
                "training_snapshot_ids",
                ListType(23, LongType(), element_required=True),
                doc="Snapshots of router_training_set the model was trained on",
            ),
            column(8, "threshold", DoubleType(), doc="Quality target of the policy"),
            column(9, "training_rows", LongType()),
            column(10, "metrics", StringType(), doc="Training metrics as a JSON object"),
        ),
        key=("version",),
        description="Versions of the learned router: artifact, lineage, metrics and status",
        expectations=(
            not_null("version"),
            unique("version"),
            in_set("status", ("candidate", "champion", "retired")),
        ),
        tenant_neutral=True,  # one row per day/model/policy across tenants
        tenant_private=("features",),  # one-hot names every tenant seen: "tenant=<id>"
    )
)

ROUTER_EVALUATIONS = register(
    TableSpec(
        name="router_evaluations",
        schema=Schema(
            column(1, "evaluation_id", StringType()),
            column(2, "evaluated_at", TimestamptzType()),
            column(3, "candidate_version", StringType()),
            column(4, "champion_version", StringType(), required=False),
            column(5, "policy", StringType(), doc="candidate | champion | strongest | ..."),
            column(6, "estimator", StringType(), doc="ips | snips | dr | truth"),
            column(7, "threshold", DoubleType(), required=False),
            column(8, "n", LongType(), doc="Held-out decisions evaluated"),
            column(9, "cost", DoubleType(), doc="Mean cost per request (USD)"),
            column(10, "cost_low", DoubleType(), required=False),
            column(11, "cost_high", DoubleType(), required=False),
            column(12, "quality", DoubleType(), doc="Mean quality per request"),
            column(13, "quality_low", DoubleType(), required=False),
            column(14, "quality_high", DoubleType(), required=False),
            column(15, "decision", StringType(), required=False, doc="promoted | refused"),
            column(16, "reasons", StringType(), required=False, doc="The gate's reasons"),
            column(17, "audit_branch", StringType(), required=False),
        ),
        time_column="evaluated_at",
        key=("evaluation_id", "policy", "estimator"),
        description="Off-policy evaluations of router policies on held-out decisions",
        tenant_neutral=True,  # one row per day/model/policy across tenants
    )
)
