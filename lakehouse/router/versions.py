"""The router's versions: artifacts in the warehouse, rows in ``router_models``, the champion.

:func:`train` fits a :class:`~lakehouse.router.model.RouterModel` on days of the training set read
at one snapshot (recorded in the model as ``training_snapshot_ids``) and stores its artifact (skops,
never pickle) under ``<warehouse>/router_models/<version>/``; it does not register it
(:func:`lakehouse.router.promotion.retrain` does). :func:`best_model_for` answers with the
champion, loaded once per version and cached.

Invariants: main's ``router_models`` holds at most one ``champion``; a row's ``artifact_uri``
names a directory whose content hash is its ``version``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import ValidationError
from lakehouse.router.features import training_set
from lakehouse.router.model import METADATA, RouterModel
from lakehouse.router.training import read_training
from lakehouse.table import storage
from lakehouse.table.catalog import warehouse_properties
from lakehouse.table.paths import artifact_rel, join

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

MODELS = "router_models"
ARTIFACT_DIR = "router_models"
STATUSES = ("candidate", "champion", "retired")
DEFAULT_THRESHOLD = 0.85

_CACHE: dict[str, RouterModel] = {}
_CACHE_LOCK = threading.Lock()


def artifact_root(lh: Lakehouse) -> str:
    """``<warehouse>/router_models``: where model artifacts live (a directory or an
    ``s3://`` prefix, read and written through :mod:`lakehouse.table.storage`)."""
    return join(lh.settings.warehouse, ARTIFACT_DIR)


def save_artifact(lh: Lakehouse, model: RouterModel) -> str:
    """Store ``model`` in the warehouse (idempotent: a version is its content); returns its path
    relative to the warehouse (``router_models/<version>``), what rows store, so a restored or
    moved warehouse needs no rewrite."""
    directory = join(artifact_root(lh), model.version)
    properties = warehouse_properties(lh.settings)
    if not storage.exists(join(directory, METADATA), properties):
        model.save(directory, properties)
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


def artifact_path(lh: Lakehouse, row: dict[str, Any]) -> str:
    """The directory of a ``router_models`` row's artifact, always in this warehouse.

    Rows name it relative to the warehouse; older rows hold an absolute URI, perhaps of the home
    a backup came from, which resolves by its last part (:func:`lakehouse.table.paths.
    artifact_rel`). Loading verifies the content (its hash is the version) either way.
    """
    rel = artifact_rel(ARTIFACT_DIR, row["artifact_uri"] or "")
    return join(lh.settings.warehouse, rel or f"{ARTIFACT_DIR}/{row['version']}")


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
    model = RouterModel.load(artifact_path(lh, rows[0]), warehouse_properties(lh.settings))
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
