"""Persistent homology of a workflow run's call graph, and its fixed-length signatures.

**Complex.** The run's directed graph is made undirected (``a -> b`` and ``b -> a`` merge, their
calls add up; self-loops are dropped: a vertex has no 1-simplex to itself). Vertices enter at
filtration 0 and edge ``{a, b}`` at ``1 / (1 + calls)``; ``SimplexTree.expansion(2)`` adds every
triangle at the largest value of its edges (the flag complex). Why call volume: heavy call paths
enter first, so H0 deaths record how strongly each agent is tied into the run (a tool called once
joins at 0.5, a loop taken 9 times at 0.1), and an H1 class is born when the *lightest* edge of a
cycle closes it. Latency is left to the scalar baseline on purpose: it is noisy per call, while the
shape of who calls whom is what changes before things break. All finite values lie in
``(0, 0.5]``.

**Infinite points.** In a graph's flag complex a cycle that no triangle fills never dies, and
each connected component has one H0 class that never dies. They are kept: diagrams carry
``inf`` deaths, ``betti_0`` / ``betti_1`` count them, and every place that needs finite numbers
(vectors, distances, entropy, landscapes) replaces ``inf`` by :data:`DEATH_CAP` = 1.0, a value
beyond any finite filtration value, so an essential class weighs ``1 - birth`` (at least 0.5)
rather than vanishing. gudhi needs ``persistence_dim_max=True``: a complex without triangles would
otherwise skip H1 silently.

**Bottleneck.** ``load(v)`` is the share of the run's calls (self-loops included) that have ``v``
as caller or callee; ``bottleneck_score`` is the largest load and ``bottleneck_agents`` the nodes
with load > 0.5, most loaded first. Load 1.0 means every call passes through ``v`` (the hub of a
star); above 0.5 more than half of all traffic waits on one node, so it is where calls pile up and
removing it cuts most of the run. It is a weighted, direction-agnostic degree share: in a run
graph direction only says who initiated, while a queue forms wherever calls meet.

**Vectors.** ``image``: persistence images of H0 and H1 (birth/persistence plane
``[0, 1] x [0, 1]``, :data:`IMAGE_RES` squared pixels each, Gaussian sigma :data:`IMAGE_SIGMA`,
weight = persistence), concatenated. ``betti``: Betti curves of H0 and H1 on :data:`CURVE_RES`
points of ``[0, DEATH_CAP]``, concatenated. Fixed lengths, so they index in Qdrant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

DEATH_CAP = 1.0
IMAGE_RES = 10
IMAGE_SIGMA = 0.05
CURVE_RES = 50
LANDSCAPE_K = 3
LANDSCAPE_RES = 100
BOTTLENECK_LOAD = 0.5
BOTTLENECK_E = 1e-9
SW_DIRECTIONS = 16

Diagram = np.ndarray
"""An ``(n, 2)`` float array of ``(birth, death)``; ``death`` may be ``inf``."""


class HasDiagrams(Protocol):
    """Anything that gives capped H0 / H1 diagrams (a signature, or one rebuilt from storage)."""

    def capped(self, dim: int) -> Diagram:
        """The diagram of ``dim`` with infinite deaths capped."""
        ...


@dataclass(frozen=True)
class TopologySignature:
    """The topology of one run: diagrams, summaries and retrieval vectors."""

    dgm0: Diagram
    dgm1: Diagram
    betti_0: int
    betti_1: int
    entropy: float
    landscape_l1: tuple[float, float]
    landscape_l2: tuple[float, float]
    bottleneck_score: float
    bottleneck_agents: tuple[str, ...]
    image: np.ndarray = field(repr=False)
    betti_curve: np.ndarray = field(repr=False)

    def capped(self, dim: int) -> Diagram:
        """The diagram of ``dim`` with infinite deaths replaced by :data:`DEATH_CAP`."""
        return cap(self.dgm0 if dim == 0 else self.dgm1)

    def as_row(self) -> dict[str, Any]:
        """Plain Python values for a table row (diagrams as ``[[birth, death], ...]``)."""
        return {
            "dgm0": self.dgm0.tolist(),
            "dgm1": self.dgm1.tolist(),
            "betti_0": self.betti_0,
            "betti_1": self.betti_1,
            "entropy": self.entropy,
            "landscape_l1_h0": self.landscape_l1[0],
            "landscape_l1_h1": self.landscape_l1[1],
            "landscape_l2_h0": self.landscape_l2[0],
            "landscape_l2_h1": self.landscape_l2[1],
            "bottleneck_score": self.bottleneck_score,
            "bottleneck_agents": list(self.bottleneck_agents),
            "image": self.image.tolist(),
            "betti_curve": self.betti_curve.tolist(),
        }


class StoredDiagrams:
    """Capped H0 / H1 diagrams rebuilt from stored ``[[birth, death], ...]`` lists, capped once."""

    def __init__(self, dgm0: Any, dgm1: Any) -> None:
        self._d = (cap(np.asarray(dgm0, dtype=float)), cap(np.asarray(dgm1, dtype=float)))

    def capped(self, dim: int) -> Diagram:
        """The capped diagram of ``dim`` (not a copy: don't modify it)."""
        return self._d[dim]


def cap(dgm: Diagram) -> Diagram:
    """A copy of ``dgm`` with infinite deaths set to :data:`DEATH_CAP`."""
    out = np.array(dgm, dtype=float).reshape(-1, 2)
    out[np.isinf(out[:, 1]), 1] = DEATH_CAP
    return out


def _undirected(edges: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    merged: dict[tuple[str, str], int] = {}
    for e in edges:
        a, b = e["src"], e["dst"]
        if a == b:
            continue
        key = (a, b) if a < b else (b, a)
        merged[key] = merged.get(key, 0) + int(e["calls"])
    return merged


def persistence_diagrams(
    nodes: Sequence[str], edges: Sequence[Mapping[str, Any]]
) -> tuple[Diagram, Diagram]:
    """H0 and H1 diagrams of the flag complex filtered by ``1 / (1 + calls)``."""
    import gudhi

    index = {n: i for i, n in enumerate(nodes)}
    st = gudhi.SimplexTree()
    for i in range(len(nodes)):
        st.insert([i], filtration=0.0)
    for (a, b), calls in _undirected(edges).items():
        st.insert([index[a], index[b]], filtration=1.0 / (1.0 + calls))
    st.expansion(2)
    st.compute_persistence(homology_coeff_field=2, min_persistence=0.0, persistence_dim_max=True)
    dgms = [st.persistence_intervals_in_dimension(d) for d in (0, 1)]
    return tuple(np.asarray(d, dtype=float).reshape(-1, 2) for d in dgms)  # type: ignore[return-value]


def persistence_entropy(dgms: Sequence[Diagram]) -> float:
    """Shannon entropy (nats) of the bar lengths of the capped diagrams together."""
    lengths = np.concatenate([np.diff(cap(d), axis=1).ravel() for d in dgms])
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        return 0.0
    p = lengths / lengths.sum()
    return float(-(p * np.log(p)).sum())


def landscape(dgm: Diagram, k: int = LANDSCAPE_K, res: int = LANDSCAPE_RES) -> np.ndarray:
    """The first ``k`` persistence landscapes of the capped diagram on ``[0, DEATH_CAP]``."""
    d = cap(dgm)
    t = np.linspace(0.0, DEATH_CAP, res)
    if d.shape[0] == 0:
        return np.zeros((k, res))
    tents = np.maximum(0.0, np.minimum(t[None, :] - d[:, :1], d[:, 1:] - t[None, :]))
    tents = -np.sort(-tents, axis=0)
    out = np.zeros((k, res))
    out[: min(k, tents.shape[0])] = tents[:k]
    return out


def landscape_norms(dgm: Diagram) -> tuple[float, float]:
    """L1 and L2 norms of the landscapes of ``dgm`` (Gidea & Katz), summed over the layers."""
    lam = landscape(dgm)
    dx = DEATH_CAP / (LANDSCAPE_RES - 1)
    return float(np.abs(lam).sum() * dx), float(np.sqrt((lam**2).sum() * dx))


def persistence_image(dgm: Diagram, res: int = IMAGE_RES, sigma: float = IMAGE_SIGMA) -> np.ndarray:
    """Persistence image of the capped diagram: ``res * res`` pixel values, row-major.

    Each point ``(b, d)`` is a Gaussian at ``(b, d - b)`` weighted by its persistence ``d - b``,
    integrated over pixels of ``[0, 1] x [0, 1]`` (exact, with error functions).
    """
    from scipy.special import erf

    d = cap(dgm)
    if d.shape[0] == 0:
        return np.zeros(res * res)
    births, pers = d[:, 0], d[:, 1] - d[:, 0]
    edges = np.linspace(0.0, 1.0, res + 1)
    scale = np.sqrt(2.0) * sigma

    def mass(centres: np.ndarray) -> np.ndarray:  # (n, res): Gaussian mass in each interval
        cdf = 0.5 * (1 + erf((edges[None, :] - centres[:, None]) / scale))
        return np.diff(cdf, axis=1)

    img = np.einsum("n,ni,nj->ij", pers, mass(births), mass(pers))
    return img.ravel()


def betti_curve(dgm: Diagram, res: int = CURVE_RES) -> np.ndarray:
    """Number of classes alive at each of ``res`` points of ``[0, DEATH_CAP]`` (half-open bars).

    An infinite class is alive at every point from its birth on, the cap included.
    """
    d = np.array(dgm, dtype=float).reshape(-1, 2)
    t = np.linspace(0.0, DEATH_CAP, res)
    alive = (d[:, :1] <= t[None, :]) & (t[None, :] < d[:, 1:])
    return alive.sum(axis=0).astype(float)


def call_load(edges: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each node's share of the run's calls as caller or callee (see the module docstring)."""
    total = sum(int(e["calls"]) for e in edges)
    load: dict[str, float] = {}
    for e in edges:
        for node in {e["src"], e["dst"]}:
            load[node] = load.get(node, 0.0) + int(e["calls"])
    return {n: v / total for n, v in load.items()} if total else {}


def signature(nodes: Sequence[str], edges: Sequence[Mapping[str, Any]]) -> TopologySignature:
    """The topology of one run from its node ids and edges (``src, dst, calls``)."""
    dgm0, dgm1 = persistence_diagrams(nodes, edges)
    norms = [landscape_norms(dgm0), landscape_norms(dgm1)]
    load = call_load(edges)
    ranked = sorted(load.items(), key=lambda kv: (-kv[1], kv[0]))
    return TopologySignature(
        dgm0=dgm0,
        dgm1=dgm1,
        betti_0=int(np.isinf(dgm0[:, 1]).sum()),
        betti_1=int(np.isinf(dgm1[:, 1]).sum()),
        entropy=persistence_entropy([dgm0, dgm1]),
        landscape_l1=(norms[0][0], norms[1][0]),
        landscape_l2=(norms[0][1], norms[1][1]),
        bottleneck_score=ranked[0][1] if ranked else 0.0,
        bottleneck_agents=tuple(n for n, v in ranked if v > BOTTLENECK_LOAD),
        image=np.concatenate([persistence_image(dgm0), persistence_image(dgm1)]),
        betti_curve=np.concatenate([betti_curve(dgm0), betti_curve(dgm1)]),
    )


def event_signature(event: Mapping[str, Any]) -> TopologySignature:
    """:func:`signature` of a parsed workflow-trace event."""
    return signature([n["id"] for n in event["nodes"]], event["edges"])


def diagram_distance(a: HasDiagrams, b: HasDiagrams) -> float:
    """Bottleneck distance of H0 plus that of H1, on capped diagrams (always finite).

    gudhi's approximation parameter is ``1e-9``: exact up to that additive error, and several
    times faster than the exact mode on diagrams with many equal points.
    """
    import gudhi

    return float(
        gudhi.bottleneck_distance(a.capped(0), b.capped(0), BOTTLENECK_E)
        + gudhi.bottleneck_distance(a.capped(1), b.capped(1), BOTTLENECK_E)
    )


_THETAS = np.linspace(-np.pi / 2, np.pi / 2, SW_DIRECTIONS, endpoint=False)
_DIRS = np.stack([np.cos(_THETAS), np.sin(_THETAS)])


def _sw(a: Diagram, b: Diagram) -> float:
    """Sliced Wasserstein distance (Carriere et al. 2017) of two finite diagrams."""
    if a.shape[0] == 0 and b.shape[0] == 0:
        return 0.0
    diag_a = np.repeat(a.mean(axis=1, keepdims=True), 2, axis=1)
    diag_b = np.repeat(b.mean(axis=1, keepdims=True), 2, axis=1)
    pa = np.sort(np.vstack([a, diag_b]) @ _DIRS, axis=0)
    pb = np.sort(np.vstack([b, diag_a]) @ _DIRS, axis=0)
    return float(np.abs(pa - pb).sum(axis=0).mean())


def _sw_matrix(diagrams: Sequence[Diagram]) -> np.ndarray:
    """:func:`_sw` between all pairs of ``diagrams``, one row of pairs per numpy sort.

    Each diagram is padded to the largest size with points on the diagonal: such a point adds
    the same projection to both sides of every pair, which leaves each 1-D Wasserstein distance
    (and so :func:`_sw`) unchanged.
    """
    n = len(diagrams)
    size = max((d.shape[0] for d in diagrams), default=0)
    out = np.zeros((n, n))
    if size == 0:
        return out
    points = np.zeros((n, size, 2))
    for i, d in enumerate(diagrams):
        points[i, : d.shape[0]] = d
    proj = points @ _DIRS  # (n, size, directions)
    diag = np.repeat(points.mean(axis=2, keepdims=True), 2, axis=2) @ _DIRS
    for i in range(n - 1):
        rest = slice(i + 1, n)
        k = n - i - 1
        left = np.sort(
            np.concatenate([np.broadcast_to(proj[i], (k, *proj[i].shape)), diag[rest]], axis=1),
            axis=1,
        )
        right = np.sort(
            np.concatenate([proj[rest], np.broadcast_to(diag[i], (k, *diag[i].shape))], axis=1),
            axis=1,
        )
        out[i, rest] = out[rest, i] = np.abs(left - right).sum(axis=1).mean(axis=1)
    return out


def sliced_wasserstein_matrix(items: Sequence[HasDiagrams]) -> np.ndarray:
    """:func:`sliced_wasserstein` between all pairs of ``items`` (a symmetric matrix)."""
    return _sw_matrix([x.capped(0) for x in items]) + _sw_matrix([x.capped(1) for x in items])


def sliced_wasserstein(a: HasDiagrams, b: HasDiagrams) -> float:
    """Sliced Wasserstein distance of H0 plus that of H1 on capped diagrams.

    :data:`SW_DIRECTIONS` evenly spaced directions of the half circle, each projection's 1-D
    Wasserstein-1 distance averaged: cheap in numpy, and it sums over all points where the
    bottleneck distance only sees the worst one, so a loop appearing in a fraction of runs moves it.
    """
    return _sw(a.capped(0), b.capped(0)) + _sw(a.capped(1), b.capped(1))
