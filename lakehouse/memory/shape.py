"""Shape-aware memory: a memory may carry the topology signature of the workflow run behind it.

A signature is stored as a string in the memory's ``signature`` field, in one of two forms:

- a run id: the run's diagrams are the ones the topology retrieval index holds
  (:mod:`lakehouse.topology.retrieval`, collection ``aura_topology_runs``, point
  ``point_id(tenant_id, run_id)``, payload ``dgm0``/``dgm1``), so the memory's tenant must own
  the run; a run not indexed (yet) makes the memory unmatchable, never another tenant's run;
- the diagrams themselves (a :class:`~lakehouse.topology.tda.TopologySignature`, or a pair of
  H0 / H1 diagrams), kept as JSON ``{"dgm0": [[birth, death], ...], "dgm1": [...]}`` with
  infinite deaths capped as the topology domain caps them and values rounded to 6 decimals;
  at most :data:`MAX_SIGNATURE` characters (larger diagrams: index the run, pass its id).

:func:`rank_by_shape` orders the tenant's memories that carry a signature by the topology
domain's :func:`~lakehouse.topology.tda.diagram_distance` (bottleneck H0 + H1) to the query:
exact, over every signed memory of the tenant (tenants' memories never mix: the caller passes
one tenant's memories, and run ids resolve only inside that tenant).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse.exceptions import ValidationError
from lakehouse.memory.model import Memory
from lakehouse.settings import Settings
from lakehouse.topology.retrieval import COLLECTION, open_index, stored_diagrams
from lakehouse.topology.tda import HasDiagrams, StoredDiagrams, diagram_distance

Shape = str | HasDiagrams | tuple[Any, Any]
"""A run id, a signature, or a pair of H0 / H1 diagrams."""
_MAX_RUN_ID = 256
MAX_SIGNATURE = 1024  # what a memory event's signature field may hold (lakehouse.memory.events)


@dataclass(frozen=True)
class ShapeHit:
    """One answer of ``search_by_shape``: the memory and its diagram distance to the query."""

    memory: Memory
    distance: float
    run_id: str | None


Diagrams = StoredDiagrams
"""Capped H0 / H1 diagrams (what :func:`diagram_distance` needs)."""


def _diagrams(shape: HasDiagrams | tuple[Any, Any]) -> Diagrams:
    try:
        if isinstance(shape, tuple):
            return Diagrams(*shape)
        return Diagrams(shape.capped(0), shape.capped(1))
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValidationError(
            f"a shape is a run id, a TopologySignature or a (dgm0, dgm1) pair of (n, 2) "
            f"diagrams; this one is not ({exc})"
        ) from None


def encode(shape: Shape | None) -> str | None:
    """The string stored in a memory's ``signature`` field."""
    if shape is None or isinstance(shape, str):
        if isinstance(shape, str) and not 0 < len(shape) <= _MAX_RUN_ID:
            raise ValidationError(f"a run id signature holds 1-{_MAX_RUN_ID} characters")
        return shape
    dgms = _diagrams(shape)
    rounded = {f"dgm{d}": np.round(dgms.capped(d), 6).tolist() for d in (0, 1)}
    text = json.dumps(rounded, separators=(",", ":"))
    if len(text) > MAX_SIGNATURE:
        raise ValidationError(
            f"these diagrams take {len(text)} characters as a signature, more than the "
            f"{MAX_SIGNATURE} a memory event carries; index the run and pass its run id instead"
        )
    return text


def _decoded(signature: str) -> Diagrams | None:
    """The diagrams of a JSON signature; None for a run id."""
    if not signature.startswith("{"):
        return None
    try:
        raw = json.loads(signature)
        return Diagrams(raw["dgm0"], raw["dgm1"])
    except (ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def runs_index(settings: Settings, client: Any) -> Iterator[Any]:
    """Where the topology domain keeps the runs' diagrams, or None when nothing is indexed.

    ``client`` (the memory store's Qdrant server client, or one a caller passed) when there is
    one. Embedded, the topology index is a Qdrant Edge shard under ``AURA_HOME/vectors``, opened
    for this call and closed after it: it holds a lock the topology index asset also takes.
    """
    if client is not None:
        yield client
    elif (settings.vectors_path / COLLECTION).exists():
        store = open_index(settings)
        try:
            yield store
        finally:
            store.close()
    else:
        yield None


def run_diagrams(index: Any, tenant_id: str, run_ids: Iterable[str]) -> dict[str, Diagrams]:
    """The indexed diagrams of the tenant's runs (runs not indexed are left out)."""
    wanted = sorted(set(run_ids))
    if not wanted or index is None:
        return {}
    return stored_diagrams(index, tenant_id, wanted)


def query_diagrams(index: Any, tenant_id: str, query: Shape) -> Diagrams:
    """The diagrams a query stands for (a run id must be one of the tenant's indexed runs)."""
    if isinstance(query, str):
        found = run_diagrams(index, tenant_id, [query])
        if query not in found:
            raise ValidationError(
                f"run {query!r} of tenant {tenant_id!r} is not in the topology index; "
                "index it first (asset topology_index, or lakehouse.topology.index.index_day)"
            )
        return found[query]
    return _diagrams(query)


def rank_by_shape(
    index: Any, tenant_id: str, query: Diagrams, memories: Sequence[Memory], k: int
) -> list[ShapeHit]:
    """The ``k`` memories (all the tenant's) closest in shape to ``query``, closest first."""
    runs = run_diagrams(
        index,
        tenant_id,
        (m.signature for m in memories if m.signature and not _decoded(m.signature)),
    )
    hits = []
    for memory in memories:
        if memory.tenant_id != tenant_id or not memory.signature:
            continue
        own = _decoded(memory.signature)
        run_id = None if own is not None else memory.signature
        dgms = own if own is not None else runs.get(memory.signature)
        if dgms is None:  # a run that is not indexed (yet)
            continue
        hits.append(ShapeHit(memory, diagram_distance(query, dgms), run_id))
    hits.sort(key=lambda h: (h.distance, -h.memory.created_ms, h.memory.id))
    return hits[:k]
