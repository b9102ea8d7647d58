"""The routing domain's tables: decisions, their dead letters, and the daily model summary."""

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

from lakehouse.ingest.streams import rejected_table_spec
from lakehouse.table.expectations import between, not_null, unique
from lakehouse.table.registry import TableSpec, column, register

ROUTING_DECISIONS = register(
    TableSpec(
        name="routing_decisions",
        schema=Schema(
            column(1, "decision_id", StringType(), doc="Unique id of the routing decision"),
            column(2, "ts", TimestamptzType(), doc="When the router decided (UTC)"),
            column(3, "tenant_id", StringType()),
            column(4, "task_type", StringType()),
            column(5, "prompt_tokens", LongType()),
            column(6, "candidate_models", ListType(14, StringType(), element_required=True)),
            column(7, "chosen_model", StringType()),
            column(8, "cost_usd", DoubleType()),
            column(9, "latency_ms", DoubleType()),
            column(10, "quality_score", DoubleType(), doc="Quality in [0, 1]"),
            column(11, "fallback_used", BooleanType()),
            column(12, "stream_id", StringType(), required=False, doc="Redis stream entry id"),
            column(13, "ingested_at", TimestamptzType(), required=False),
            column(
                14,
                "propensity",
                DoubleType(),
                required=False,
                doc="Probability with which the router chose chosen_model; null for old events",
            ),
            column(
                15,
                "router",
                StringType(),
                required=False,
                doc="Which router decided: 'hand-tuned' or the learned model's version; null for "
                "old events",
            ),
        ),
        time_column="ts",
        key=("decision_id",),
        description="One row per model-router decision, from the aura:events:routing stream",
        expectations=(
            not_null("decision_id"),
            unique("decision_id"),
            not_null("ts"),
            not_null("chosen_model"),
            between("quality_score", 0, 1),
            between("cost_usd", min_value=0),
            between("latency_ms", min_value=0),
            between("prompt_tokens", min_value=0),
        ),
        diff_metrics={
            "quality_score mean": ("quality_score", "mean"),
            "cost_usd sum": ("cost_usd", "sum"),
            "latency_ms mean": ("latency_ms", "mean"),
            "prompt_tokens mean": ("prompt_tokens", "mean"),
            "fallback rate": ("fallback_used", "mean"),
        },
    )
)

ROUTING_DECISIONS_REJECTED = register(
    rejected_table_spec(
        "routing_decisions_rejected",
        "Dead letters: routing events that failed validation, with the reason",
    )
)

ROUTING_MODEL_DAILY = register(
    TableSpec(
        name="routing_model_daily",
        schema=Schema(
            column(1, "day", TimestamptzType(), doc="UTC midnight of the day summarised"),
            column(2, "chosen_model", StringType()),
            column(3, "decisions", LongType()),
            column(4, "cost_usd", DoubleType()),
            column(5, "latency_p50_ms", DoubleType()),
            column(6, "latency_p95_ms", DoubleType()),
            column(7, "quality_mean", DoubleType()),
            column(8, "fallback_rate", DoubleType()),
        ),
        time_column="day",
        key=("day", "chosen_model"),
        description="Daily per-model summary of routing decisions",
        expectations=(
            not_null("chosen_model"),
            unique("day", "chosen_model"),
            between("decisions", min_value=0),
            between("cost_usd", min_value=0),
            between("quality_mean", 0, 1),
            between("fallback_rate", 0, 1),
        ),
        tenant_neutral=True,  # one row per day/model/policy across tenants
    )
)
