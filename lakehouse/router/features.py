"""Features of the learned router, from routing decisions.

:func:`training_set` maps decisions (the ``routing_decisions`` columns, Arrow or polars) to rows
of ``router_training_set``: one row per decision id, sorted by (ts, decision_id), so the same
decisions always give the same table. ``propensity`` is kept when the events carry it and null
otherwise. :class:`FeatureEncoder` turns training-set rows into the numeric matrix the models
see for one *scored* model: numeric features, one-hot task type and tenant (unseen values map to
all zeros), the candidate set as a multi-hot over the known models, and the scored model one-hot.
The encoder is plain data (lists of strings), so it is stored as JSON next to the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from lakehouse.exceptions import ValidationError
from lakehouse.router.tables import ROUTER_TRAINING_SET
from lakehouse.routing.events import REQUIRED_FIELDS as DECISION_FIELDS

NUMERIC_FEATURES = ("log_prompt_tokens", "tod_sin", "tod_cos", "n_candidates")
_DECISION_COLUMNS = DECISION_FIELDS  # every field a routing event carries


def training_set(decisions: pa.Table | pl.DataFrame) -> pa.Table:
    """Training-set rows (schema of ``router_training_set``) for routing decisions.

    Raises:
        ValidationError: when a required decision column is missing.
    """
    frame = decisions if isinstance(decisions, pl.DataFrame) else pl.from_arrow(decisions)
    assert isinstance(frame, pl.DataFrame)
    missing = [c for c in _DECISION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(f"decisions lack column(s) {missing}; pass rows of routing_decisions")
    if "propensity" not in frame.columns:
        frame = frame.with_columns(propensity=pl.lit(None, dtype=pl.Float64))
    ts = pl.col("ts").dt.convert_time_zone("UTC")
    seconds = ts.dt.hour() * 3600 + ts.dt.minute() * 60 + ts.dt.second()
    angle = (seconds.cast(pl.Float64) + ts.dt.microsecond() / 1e6) / 86_400 * (2 * math.pi)
    out = (
        frame.unique(subset="decision_id", keep="last", maintain_order=True)
        .with_columns(
            log_prompt_tokens=pl.col("prompt_tokens").cast(pl.Float64).log1p(),
            tod_sin=angle.sin(),
            tod_cos=angle.cos(),
            n_candidates=pl.col("candidate_models").list.len().cast(pl.Int64),
            propensity=pl.col("propensity").cast(pl.Float64),
        )
        .sort("ts", "decision_id")
    )
    schema = ROUTER_TRAINING_SET.arrow_schema
    table = out.select([f.name for f in schema]).to_arrow()
    return table.cast(schema)


def multi_hot(candidates: pa.Array | pa.ChunkedArray, models: Sequence[str]) -> np.ndarray:
    """(rows, len(models)) 0/1 matrix: which known models are among each row's candidates."""
    lists = candidates.to_pylist()
    index = {m: j for j, m in enumerate(models)}
    out = np.zeros((len(lists), len(models)), dtype=np.float64)
    for i, row in enumerate(lists):
        for m in row:
            j = index.get(m)
            if j is not None:
                out[i, j] = 1.0
    return out


@dataclass(frozen=True)
class FeatureEncoder:
    """Vocabularies that turn training-set rows into a model matrix (JSON-serialisable)."""

    models: tuple[str, ...]
    task_types: tuple[str, ...]
    tenants: tuple[str, ...]

    @classmethod
    def fit(cls, rows: pa.Table) -> FeatureEncoder:
        """Vocabularies from training rows: every model seen as a candidate, tasks, tenants."""
        models = {m for row in rows.column("candidate_models").to_pylist() for m in row}
        return cls(
            models=tuple(sorted(models)),
            task_types=tuple(sorted(set(rows.column("task_type").to_pylist()))),
            tenants=tuple(sorted(set(rows.column("tenant_id").to_pylist()))),
        )

    @property
    def feature_names(self) -> list[str]:
        return [
            *NUMERIC_FEATURES,
            *(f"task={t}" for t in self.task_types),
            *(f"tenant={t}" for t in self.tenants),
            *(f"candidate={m}" for m in self.models),
            *(f"model={m}" for m in self.models),
        ]

    def request_matrix(self, rows: pa.Table) -> np.ndarray:
        """The request part of the matrix (everything but the scored model)."""
        numeric = np.column_stack(
            [rows.column(c).to_numpy().astype(np.float64) for c in NUMERIC_FEATURES]
        )
        return np.hstack(
            [
                numeric,
                _one_hot(rows.column("task_type").to_pylist(), self.task_types),
                _one_hot(rows.column("tenant_id").to_pylist(), self.tenants),
                multi_hot(rows.column("candidate_models"), self.models),
            ]
        )

    def matrix(self, rows: pa.Table, scored: Sequence[str] | str) -> np.ndarray:
        """Matrix for scoring ``scored`` (one model for all rows, or one per row)."""
        request = self.request_matrix(rows)
        return self.with_model(request, scored)

    def with_model(self, request: np.ndarray, scored: Sequence[str] | str) -> np.ndarray:
        """Append the scored model's one-hot to a request matrix."""
        names = [scored] * request.shape[0] if isinstance(scored, str) else list(scored)
        unknown = sorted(set(names) - set(self.models))
        if unknown:
            raise ValidationError(
                f"model(s) {unknown} were never seen in training (known: {list(self.models)}); "
                "retrain the router with decisions that include them"
            )
        return np.hstack([request, _one_hot(names, self.models)])

    def to_json(self) -> dict[str, list[str]]:
        return {
            "models": list(self.models),
            "task_types": list(self.task_types),
            "tenants": list(self.tenants),
        }

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> FeatureEncoder:
        return cls(
            models=tuple(data["models"]),
            task_types=tuple(data["task_types"]),
            tenants=tuple(data["tenants"]),
        )


def _one_hot(values: Sequence[str], vocabulary: Sequence[str]) -> np.ndarray:
    index = {v: j for j, v in enumerate(vocabulary)}
    out = np.zeros((len(values), len(vocabulary)), dtype=np.float64)
    for i, v in enumerate(values):
        j = index.get(v)
        if j is not None:
            out[i, j] = 1.0
    return out
