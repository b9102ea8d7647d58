"""Persistent homology of run graphs: known answers, and the vectors' fixed shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lakehouse.topology.tda import (
    CURVE_RES,
    DEATH_CAP,
    IMAGE_RES,
    betti_curve,
    diagram_distance,
    landscape,
    persistence_image,
    signature,
    sliced_wasserstein,
)


def _edges(pairs: list[tuple[str, str]], calls: int = 1) -> list[dict[str, object]]:
    return [{"src": a, "dst": b, "calls": calls} for a, b in pairs]


def test_a_triangle_is_filled_and_has_no_h1() -> None:
    sig = signature(list("abc"), _edges([("a", "b"), ("b", "c"), ("c", "a")]))
    assert (sig.betti_0, sig.betti_1) == (1, 0)
    assert sig.dgm1.shape == (0, 2)
    assert sorted(sig.dgm0[:, 1].tolist()) == [0.5, 0.5, math.inf]


def test_a_four_cycle_has_one_infinite_h1_class_kept_not_dropped() -> None:
    sig = signature(list("abcd"), _edges([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")], 3))
    assert (sig.betti_0, sig.betti_1) == (1, 1)
    assert sig.dgm1.tolist() == [[0.25, math.inf]]
    assert sig.capped(1).tolist() == [[0.25, DEATH_CAP]]
    assert sig.betti_curve[CURVE_RES:].max() == 1  # the loop is alive in the Betti curve
    assert sig.image[IMAGE_RES * IMAGE_RES :].sum() > 0  # and weighs in the H1 image


def test_a_chord_fills_the_cycle_when_it_arrives() -> None:
    square = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
    edges = _edges(square, 9) + _edges([("a", "c")], 1)  # cycle at 0.1, chord at 0.5
    sig = signature(list("abcd"), edges)
    assert sig.betti_1 == 0
    assert sig.dgm1.tolist() == [[0.1, 0.5]]


def test_a_tree_has_no_loops_and_directions_and_self_loops_do_not_matter() -> None:
    tree = _edges([("r", "a"), ("r", "b"), ("a", "c"), ("a", "d"), ("b", "e")])
    sig = signature(list("rabcde"), tree)
    assert (sig.betti_0, sig.betti_1) == (1, 0)
    back = _edges([("a", "r"), ("b", "r"), ("c", "a"), ("d", "a"), ("e", "b"), ("a", "a")])
    assert signature(list("rabcde"), back).betti_1 == 0


def test_heavy_call_paths_enter_first() -> None:
    sig = signature(
        list("abc"), [{"src": "a", "dst": "b", "calls": 9}, {"src": "b", "dst": "c", "calls": 1}]
    )
    assert sorted(sig.dgm0[:, 1].tolist()) == [0.1, 0.5, math.inf]


def test_components_count_and_isolated_nodes() -> None:
    sig = signature(list("abcxy"), _edges([("a", "b"), ("b", "c"), ("x", "y")]))
    assert sig.betti_0 == 2
    alone = signature(["solo"], [])
    assert (alone.betti_0, alone.betti_1, alone.bottleneck_score) == (1, 0, 0.0)


def test_a_stars_hub_is_the_bottleneck() -> None:
    leaves = [f"tool{i}" for i in range(6)]
    sig = signature(["hub", *leaves], _edges([("hub", t) for t in leaves], 2))
    assert sig.bottleneck_agents == ("hub",)
    assert sig.bottleneck_score == 1.0
    ring = [f"n{i}" for i in range(6)]
    cycle = signature(ring, _edges([(ring[i], ring[(i + 1) % 6]) for i in range(6)]))
    assert cycle.bottleneck_agents == ()  # calls spread evenly: nowhere to pile up
    assert cycle.bottleneck_score == pytest.approx(2 / 6)


def test_entropy_landscapes_and_vectors_have_known_values() -> None:
    one = np.array([[0.2, 0.6]])
    lam = landscape(one)
    assert lam[0].max() == pytest.approx(0.2, abs=0.01)  # the tent's peak at t = 0.4
    assert lam[1:].max() == 0
    assert betti_curve(np.array([[0.0, 0.5], [0.0, math.inf]])).tolist() == [
        2.0 if t < 0.5 else 1.0 for t in np.linspace(0, 1, CURVE_RES)
    ]
    img = persistence_image(one)
    assert img.shape == (IMAGE_RES * IMAGE_RES,)
    assert img.sum() == pytest.approx(0.4, rel=0.02)  # weight = persistence, mass inside
    two_equal = signature(list("abc"), _edges([("a", "b"), ("b", "c")]))
    # bars (0, .5), (0, .5), (0, cap): lengths .5, .5, 1 -> entropy of (.25, .25, .5)
    assert two_equal.entropy == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)))


def test_distances_are_finite_zero_on_equal_and_see_a_new_loop() -> None:
    square = signature(list("abcd"), _edges([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]))
    path = signature(list("abcd"), _edges([("a", "b"), ("b", "c"), ("c", "d")]))
    assert diagram_distance(square, square) == pytest.approx(0, abs=1e-8)
    assert sliced_wasserstein(square, square) == 0
    assert diagram_distance(square, path) == pytest.approx(0.25)  # (0.5, cap) vs the diagonal
    assert 0 < sliced_wasserstein(square, path) < math.inf


def test_a_path_names_its_middle_and_a_square_names_nobody() -> None:
    path = signature(list("abc"), _edges([("a", "b"), ("b", "c")]))
    assert path.bottleneck_agents == ("b",)
    square = signature(list("abcd"), _edges([("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]))
    assert square.bottleneck_agents == ()
