"""Versioned router models: predicted quality and cost per (request, candidate model), and a policy.

A :class:`RouterModel` holds two scikit-learn ``HistGradientBoostingRegressor`` models trained on
the logged decisions, each seeing the request features plus the one-hot of the scored model, so
one model serves any number of candidate models: one predicts quality, one predicts log cost
(turned back into USD with Duan's smearing factor). The policy routes each request to the
cheapest candidate whose predicted quality clears ``threshold``; when none does, to the candidate
with the highest predicted quality. Candidates the model never saw are not scored; tenants it never
saw are encoded as no tenant.

Invariants of the stored artifact (a directory with ``model.skops`` and ``model.json``):
the estimators are serialised with skops, never pickle; loading checks the artifact's SHA-256 and
refuses any type outside :data:`TRUSTED_TYPES` (skops' trusted-types check). ``version`` is a
content hash of the estimators' bytes and the JSON metadata, so a version names exactly one model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.exceptions import AuraError, ValidationError
from lakehouse.router.features import FeatureEncoder
from lakehouse.table import storage

ARTIFACT = "model.skops"
METADATA = "model.json"
FORMAT = 1
# Types skops does not trust by default that a router artifact legitimately contains.
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
_COST_FLOOR = 1e-9


class ModelArtifactError(AuraError):
    """A stored router model is missing, altered, or contains types that are not trusted."""


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - declared dependency
        raise ModelArtifactError(
            "skops is needed to save or load router models: pip install skops"
        ) from None
    return sio


@dataclass(frozen=True)
class RouteChoice:
    """One routing decision of the policy, with the predictions behind it."""

    model: str
    predicted_quality: float
    predicted_cost: float
    reason: str


@dataclass
class RouterModel:
    """Quality and cost predictors over (request, model) and the threshold policy built on them."""

    encoder: FeatureEncoder
    estimators: dict[str, Any]
    cost_smearing: float
    threshold: float
    metadata: dict[str, Any]
    version: str = ""
    _artifact: bytes = field(default=b"", repr=False)

    @classmethod
    def train(
        cls,
        rows: pa.Table,
        *,
        threshold: float = 0.85,
        training_snapshot_ids: Sequence[int] = (),
        trained_at: datetime | None = None,
        max_iter: int = 100,
        seed: int = 0,
    ) -> RouterModel:
        """Fit both predictors on training-set rows (the observed outcome of the chosen model).

        Raises:
            ValidationError: when there are too few rows to train on.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor

        if rows.num_rows < 50:
            raise ValidationError(
                f"router training needs at least 50 decisions, got {rows.num_rows}; "
                "ingest more days of routing_decisions first"
            )
        encoder = FeatureEncoder.fit(rows)
        x = encoder.matrix(rows, rows.column("chosen_model").to_pylist())
        quality = rows.column("quality_score").to_numpy()
        log_cost = np.log(np.maximum(rows.column("cost_usd").to_numpy(), _COST_FLOOR))
        params = {
            "max_iter": max_iter,
            "max_leaf_nodes": 15,
            "learning_rate": 0.1,
            "random_state": seed,
        }
        with _one_thread():
            quality_model = HistGradientBoostingRegressor(**params).fit(x, quality)
            cost_model = HistGradientBoostingRegressor(**params).fit(x, log_cost)
            residual = log_cost - cost_model.predict(x)
            smearing = float(np.mean(np.exp(residual)))
            predicted_cost = np.exp(cost_model.predict(x)) * smearing
            fitted_quality = quality_model.predict(x)
        cost = np.exp(log_cost)
        metrics = {
            "train_quality_mae": float(np.mean(np.abs(fitted_quality - quality))),
            "train_cost_mape": float(np.mean(np.abs(predicted_cost - cost) / cost)),
        }
        metadata = {
            "trained_at": (trained_at or datetime.now(UTC)).isoformat(),
            "training_snapshot_ids": [int(s) for s in training_snapshot_ids],
            "training_rows": rows.num_rows,
            "features": encoder.feature_names,
            "metrics": metrics,
        }
        model = cls(
            encoder=encoder,
            estimators={"quality": quality_model, "cost": cost_model},
            cost_smearing=smearing,
            threshold=threshold,
            metadata=metadata,
        )
        model._seal(_skops().dumps(model.estimators))
        return model

    # -- prediction and policy ------------------------------------------------------------------

    @property
    def models(self) -> tuple[str, ...]:
        return self.encoder.models

    def predict(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted quality and cost, (rows, models), and the mask of scorable candidates."""
        request = self.encoder.request_matrix(rows)
        n, m = rows.num_rows, len(self.models)
        quality = np.empty((n, m))
        cost = np.empty((n, m))
        with _one_thread():
            for j, name in enumerate(self.models):
                x = self.encoder.with_model(request, name)
                quality[:, j] = self.estimators["quality"].predict(x)
                cost[:, j] = np.exp(self.estimators["cost"].predict(x)) * self.cost_smearing
        offered = request[:, -m:] > 0  # the multi-hot of candidates ends the request matrix
        return quality, cost, offered

    def route(self, rows: pa.Table, threshold: float | None = None) -> np.ndarray:
        """The policy's model per row (object array of model names)."""
        quality, cost, offered = self.predict(rows)
        return np.asarray(self.models, dtype=object)[
            choose(quality, cost, offered, self.threshold if threshold is None else threshold)
        ]

    def route_one(
        self,
        tenant_id: str,
        task_type: str,
        prompt_tokens: int,
        candidates: Sequence[str],
        ts: datetime | None = None,
    ) -> RouteChoice:
        """Route one request and say why (the basis of ``best_model_for``)."""
        from lakehouse.router.features import training_set

        known = [c for c in candidates if c in self.models]
        if not known:
            raise ValidationError(
                f"none of the candidates {list(candidates)} is known to router model "
                f"{self.version} (known: {list(self.models)})"
            )
        request = {
            "decision_id": ["request"],
            "ts": [ts or datetime.now(UTC)],
            "tenant_id": [tenant_id],
            "task_type": [task_type],
            "prompt_tokens": [int(prompt_tokens)],
            "candidate_models": [list(candidates)],
            "chosen_model": [known[0]],
            "cost_usd": [0.0],
            "latency_ms": [0.0],
            "quality_score": [0.0],
            "fallback_used": [False],
        }
        rows = training_set(pa.table(request))
        quality, cost, offered = self.predict(rows)
        j = int(choose(quality, cost, offered, self.threshold)[0])
        q, c = float(quality[0, j]), float(cost[0, j])
        if q >= self.threshold:
            reason = (
                f"cheapest candidate with predicted quality >= {self.threshold:.2f} "
                f"({q:.3f}, ${c:.6f})"
            )
        else:
            reason = f"no candidate reaches {self.threshold:.2f}; highest predicted quality {q:.3f}"
        return RouteChoice(self.models[j], q, c, reason)

    # -- persistence ----------------------------------------------------------------------------

    def _document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "encoder": self.encoder.to_json(),
            "cost_smearing": self.cost_smearing,
            "threshold": self.threshold,
            "metadata": self.metadata,
        }

    def _seal(self, artifact: bytes) -> None:
        self._artifact = artifact
        self.version = _version(artifact, self._document())

    def save(self, path: str | Path, properties: Mapping[str, str] | None = None) -> str:
        """Write the artifact directory (``model.skops`` + ``model.json``); returns it.

        ``path`` is a directory or a warehouse URI (``s3://...``), written through the
        file-system layer (:mod:`lakehouse.table.storage`) with the FileIO ``properties``.
        """
        directory, props = str(path), properties or {}
        storage.write_bytes(storage.child(directory, ARTIFACT), props, self._artifact)
        document = {
            **self._document(),
            "version": self.version,
            "artifact_sha256": hashlib.sha256(self._artifact).hexdigest(),
        }
        text = json.dumps(document, indent=2, sort_keys=True)
        storage.write_bytes(storage.child(directory, METADATA), props, text.encode())
        return directory

    @classmethod
    def load(cls, path: str | Path, properties: Mapping[str, str] | None = None) -> RouterModel:
        """Load a saved model with skops' trusted-types check (never unpickles); ``path`` as
        for :meth:`save`.

        Raises:
            ModelArtifactError: when a file is missing, the content does not match its hash or
                version, or the artifact holds a type outside :data:`TRUSTED_TYPES`.
        """
        directory, props = str(path), properties or {}
        try:
            name = METADATA
            document = json.loads(storage.read_bytes(storage.child(directory, name), props))
            name = ARTIFACT
            artifact = storage.read_bytes(storage.child(directory, name), props)
        except FileNotFoundError:
            raise ModelArtifactError(
                f"router model at {directory} is incomplete ({name} missing); "
                "save it again with RouterModel.save"
            ) from None
        except (ValueError, UnicodeError) as exc:
            raise ModelArtifactError(
                f"router model at {directory}: {METADATA} is not JSON ({exc}); it was altered"
            ) from None
        if not isinstance(document, dict):
            raise ModelArtifactError(f"router model at {directory}: {METADATA} is not an object")
        if document.get("format") != FORMAT:
            raise ModelArtifactError(f"unsupported router model format {document.get('format')}")
        if hashlib.sha256(artifact).hexdigest() != document.get("artifact_sha256"):
            raise ModelArtifactError(
                f"{storage.child(directory, ARTIFACT)} does not match the hash in {METADATA}: "
                "the artifact was altered or replaced; retrain or restore it"
            )
        sio = _skops()
        try:  # reads the skops schema only; nothing in the artifact is imported or called
            untrusted = sorted(set(sio.get_untrusted_types(data=artifact)) - set(TRUSTED_TYPES))
        except Exception as exc:  # not a skops file at all (a pickle, garbage, nothing)
            raise ModelArtifactError(
                f"router model at {directory}: {ARTIFACT} is not a skops artifact "
                f"({type(exc).__name__}: {str(exc)[:200]}); refusing to load it"
            ) from None
        if untrusted:
            raise ModelArtifactError(
                f"router model at {directory} contains untrusted types {untrusted}; refusing to "
                "load it (only scikit-learn's gradient boosting trees are allowed)"
            )
        try:
            estimators = sio.loads(artifact, trusted=list(TRUSTED_TYPES))
        except Exception as exc:
            raise ModelArtifactError(
                f"router model at {directory}: {ARTIFACT} does not load "
                f"({type(exc).__name__}: {str(exc)[:200]}); retrain or restore it"
            ) from None
        if not isinstance(estimators, dict) or set(estimators) != {"quality", "cost"}:
            raise ModelArtifactError(f"router model at {directory} lacks its two estimators")
        try:
            model = cls(
                encoder=FeatureEncoder.from_json(document["encoder"]),
                estimators=estimators,
                cost_smearing=float(document["cost_smearing"]),
                threshold=float(document["threshold"]),
                metadata=document["metadata"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelArtifactError(
                f"router model at {directory}: {METADATA} lacks or garbles {exc}; it was altered"
            ) from None
        model._seal(artifact)
        if model.version != document.get("version"):
            raise ModelArtifactError(
                f"router model at {directory}: version {document.get('version')} does not match "
                f"its content ({model.version}); the metadata was edited"
            )
        return model

    def with_threshold(self, threshold: float) -> RouterModel:
        """The same predictors with another policy threshold (a new version)."""
        model = RouterModel(
            encoder=self.encoder,
            estimators=self.estimators,
            cost_smearing=self.cost_smearing,
            threshold=threshold,
            metadata=dict(self.metadata),
        )
        model._seal(self._artifact)
        return model


def choose(
    quality: np.ndarray, cost: np.ndarray, offered: np.ndarray, threshold: float
) -> np.ndarray:
    """Column index per row: cheapest offered model clearing ``threshold``, else the best one.

    Raises:
        ValidationError: when a row offers no model the predictors know.
    """
    if not offered.any(axis=1).all():
        bad = int(np.flatnonzero(~offered.any(axis=1))[0])
        raise ValidationError(f"row {bad} offers no candidate model known to the router")
    eligible = offered & (quality >= threshold)
    cheapest = np.argmin(np.where(eligible, cost, np.inf), axis=1)
    best = np.argmax(np.where(offered, quality, -np.inf), axis=1)
    return np.where(eligible.any(axis=1), cheapest, best)


def _one_thread() -> Any:
    """OpenMP limited to one thread: on a shared 2-core machine HGB's thread team spin-waits
    (measured: routing 40x and training 1.6x faster with one thread under load)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _version(artifact: bytes, document: dict[str, Any]) -> str:
    digest = hashlib.sha256(artifact)
    digest.update(json.dumps(document, sort_keys=True).encode())
    return digest.hexdigest()[:16]
