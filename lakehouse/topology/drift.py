"""Drift of workflow shape: a reference window of runs against a current window, seeded.

**Topology test** (Robinson & Turner 2017): pool the ``n_ref + n_cur`` signatures, compute all
pairwise diagram distances once (sliced Wasserstein by default, or bottleneck; H0 plus H1 on
capped diagrams, so an appearing loop that never dies counts), and take as statistic
``mean distance between the windows - mean distance within them`` (within pooled over both
windows, as in their joint loss). Under "same shape distribution" the labels are exchangeable, so
the p-value is ``(1 + #{permuted >= observed}) / (1 + n_permutations)`` over label permutations
drawn from ``numpy.random.default_rng(seed)``: exact in level for any sample sizes, and the same
inputs and seed always give the same report.

**Landscape-norm statistic** (Gidea & Katz 2018): each run's L1 landscape norm (H0 plus H1); the
statistic is the difference of window means over the reference standard deviation, with a
permutation p-value on the same permutations.

**Scalar baseline**: two-sample Kolmogorov-Smirnov tests on node count, edge count, mean edge
latency and error rate per run, Bonferroni-combined (``min(1, 4 * min p)``): what a column-drift
tool would see on the same runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse.topology.tda import (
    TopologySignature,
    diagram_distance,
    sliced_wasserstein,
    sliced_wasserstein_matrix,
)

DEFAULT_ALPHA = 0.01
DEFAULT_PERMUTATIONS = 999
DISTANCES = {"sliced_wasserstein": sliced_wasserstein, "bottleneck": diagram_distance}


@dataclass(frozen=True)
class DriftReport:
    """The outcome of one drift test between a reference and a current window."""

    detector: str
    statistic: float
    p_value: float
    drifted: bool
    alpha: float
    n_ref: int
    n_cur: int
    n_permutations: int
    seed: int
    distance: str = ""
    landscape_statistic: float | None = None
    landscape_p_value: float | None = None


def _check(n_ref: int, n_cur: int) -> None:
    if n_ref < 2 or n_cur < 2:
        raise ValueError(
            f"a drift test needs at least 2 runs per window, got {n_ref} and {n_cur}; "
            "widen the reference window or wait for more runs"
        )


def distance_matrix(
    signatures: Sequence[TopologySignature], distance: str = "sliced_wasserstein"
) -> np.ndarray:
    """Symmetric matrix of a diagram distance (a key of :data:`DISTANCES`) between all pairs.

    Runs of the same workflow often have identical diagrams; each distinct pair is computed once.
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown diagram distance {distance!r}; use one of {sorted(DISTANCES)}")
    keys: dict[bytes, int] = {}
    distinct: list[TopologySignature] = []
    index = np.empty(len(signatures), dtype=np.intp)
    for i, s in enumerate(signatures):
        key = s.capped(0).tobytes() + b"|" + s.capped(1).tobytes()
        if key not in keys:
            keys[key] = len(distinct)
            distinct.append(s)
        index[i] = keys[key]
    if distance == "sliced_wasserstein":
        unique = sliced_wasserstein_matrix(distinct)
    else:
        metric = DISTANCES[distance]
        n = len(distinct)
        unique = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                unique[i, j] = unique[j, i] = metric(distinct[i], distinct[j])
    return unique[np.ix_(index, index)]


def _between_minus_within(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The statistic for each row of ``labels`` (``(p, n)`` booleans: True = current window)."""
    cur = labels.astype(float)
    ref = 1.0 - cur
    n_cur = cur.sum(axis=1)
    n_ref = ref.sum(axis=1)
    cc = np.einsum("pi,ij,pj->p", cur, dist, cur)
    rr = np.einsum("pi,ij,pj->p", ref, dist, ref)
    rc = np.einsum("pi,ij,pj->p", ref, dist, cur)
    within = (cc + rr) / (n_cur * (n_cur - 1) + n_ref * (n_ref - 1))
    return rc / (n_ref * n_cur) - within


def _landscape_shift(norms: np.ndarray, labels: np.ndarray) -> np.ndarray:
    cur = labels.astype(float)
    ref = 1.0 - cur
    mean_cur = (cur * norms).sum(axis=1) / cur.sum(axis=1)
    mean_ref = (ref * norms).sum(axis=1) / ref.sum(axis=1)
    var_ref = (ref * (norms - mean_ref[:, None]) ** 2).sum(axis=1) / (ref.sum(axis=1) - 1)
    return (mean_cur - mean_ref) / np.sqrt(np.maximum(var_ref, 1e-12))


def topology_drift(
    reference: Sequence[TopologySignature],
    current: Sequence[TopologySignature],
    *,
    alpha: float = DEFAULT_ALPHA,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    distance: str = "sliced_wasserstein",
) -> DriftReport:
    """Permutation test of "same shape distribution" between two windows of runs.

    Args:
        reference: Signatures of the reference window's runs.
        current: Signatures of the current window's runs.
        alpha: Level: ``drifted`` is ``p_value < alpha``.
        n_permutations: Label permutations drawn.
        seed: Seed of the permutations.
        distance: ``sliced_wasserstein`` (default: sensitive to many small changes) or
            ``bottleneck`` (H0 plus H1, :func:`~lakehouse.topology.tda.diagram_distance`).
    """
    n_ref, n_cur = len(reference), len(current)
    _check(n_ref, n_cur)
    pooled = [*reference, *current]
    dist = distance_matrix(pooled, distance)
    norms = np.array([s.landscape_l1[0] + s.landscape_l1[1] for s in pooled])
    observed = np.zeros((1, n_ref + n_cur), dtype=bool)
    observed[0, n_ref:] = True
    rng = np.random.default_rng(seed)
    perms = np.zeros((n_permutations, n_ref + n_cur), dtype=bool)
    for p in range(n_permutations):
        perms[p, rng.permutation(n_ref + n_cur)[:n_cur]] = True
    stat = float(_between_minus_within(dist, observed)[0])
    null = _between_minus_within(dist, perms)
    p_value = float((1 + np.sum(null >= stat - 1e-12)) / (1 + n_permutations))
    shift = float(_landscape_shift(norms, observed)[0])
    null_shift = np.abs(_landscape_shift(norms, perms))
    shift_p = float((1 + np.sum(null_shift >= abs(shift) - 1e-12)) / (1 + n_permutations))
    return DriftReport(
        detector="topology",
        statistic=stat,
        p_value=p_value,
        drifted=p_value < alpha,
        alpha=alpha,
        n_ref=n_ref,
        n_cur=n_cur,
        n_permutations=n_permutations,
        seed=seed,
        distance=distance,
        landscape_statistic=shift,
        landscape_p_value=shift_p,
    )


def run_scalars(event: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """Node count, edge count, mean edge latency (ms) and error rate of one run."""
    edges = event["edges"]
    calls = sum(e["calls"] for e in edges)
    latency = float(np.mean([e["latency_ms"] for e in edges])) if edges else 0.0
    errors = sum(e["errors"] for e in edges) / calls if calls else 0.0
    return float(len(event["nodes"])), float(len(edges)), latency, errors


def scalar_drift(
    reference: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    alpha: float = DEFAULT_ALPHA,
) -> DriftReport:
    """KS tests on :func:`run_scalars` of parsed events, Bonferroni over the four scalars."""
    from scipy.stats import ks_2samp

    n_ref, n_cur = len(reference), len(current)
    _check(n_ref, n_cur)
    ref = np.array([run_scalars(e) for e in reference])
    cur = np.array([run_scalars(e) for e in current])
    with warnings.catch_warnings():
        # With many ties scipy falls back from the exact to the asymptotic p-value and says so.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
        tests = [ks_2samp(ref[:, i], cur[:, i]) for i in range(ref.shape[1])]
    best = min(range(len(tests)), key=lambda i: float(tests[i].pvalue))
    p_value = min(1.0, len(tests) * float(tests[best].pvalue))
    return DriftReport(
        detector="scalar",
        statistic=float(tests[best].statistic),
        p_value=p_value,
        drifted=p_value < alpha,
        alpha=alpha,
        n_ref=n_ref,
        n_cur=n_cur,
        n_permutations=0,
        seed=0,
    )
