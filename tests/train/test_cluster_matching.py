"""Hungarian re-matching of clusterings, against a brute force over all permutations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dml.train.cluster_matching import disagreement, match_clusters, matched_overlap


def _brute_force(current: np.ndarray, previous: np.ndarray, k: int) -> tuple[int, set[tuple[int, ...]]]:
    """The least total disagreement over all K! labellings of ``current``, and every labelling reaching it."""
    best, winners = None, set()
    for sigma in itertools.permutations(range(k)):
        relabelled = np.where(current >= 0, np.array(sigma)[np.clip(current, 0, None)], -1)
        cost = sum(int(np.sum((relabelled == j) != (previous == j))) for j in range(k))
        if best is None or cost < best:
            best, winners = cost, {sigma}
        elif cost == best:
            winners.add(sigma)
    return best, winners


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_the_matching_minimises_the_disagreement_like_a_brute_force(k: int, seed: int) -> None:
    rng = np.random.default_rng([k, seed])
    previous = rng.integers(-1, k, 60)
    # the new clustering: a relabelled copy of the previous one with a fifth of the items moved
    current = np.array(rng.permutation(k))[np.clip(previous, 0, None)]
    moved = rng.random(60) < 0.2
    current[moved] = rng.integers(0, k, moved.sum())
    best, winners = _brute_force(current, previous, k)
    matched = match_clusters(current, previous, num_clusters=k)
    cost = sum(int(np.sum((matched == j) != (previous == j))) for j in range(k))
    assert cost == best
    sigma = tuple(int(matched[current == i][0]) if (current == i).any() else -1 for i in range(k))
    assert any(all(s == -1 or s == w[i] for i, s in enumerate(sigma)) for w in winners)


def test_the_cost_matrix_is_the_l1_distance_of_membership_indicators() -> None:
    rng = np.random.default_rng(0)
    current, previous = rng.integers(0, 3, 30), rng.integers(-1, 3, 30)
    cost = disagreement(current, previous, 3)
    for i, j in itertools.product(range(3), range(3)):
        assert cost[i, j] == np.abs((current == i).astype(int) - (previous == j).astype(int)).sum()


def test_a_relabelled_copy_is_matched_back_and_the_release_applies_the_inverse() -> None:
    previous = np.repeat(np.arange(4), 5)
    cycle = np.array([1, 2, 3, 0])  # a 4-cycle: not its own inverse
    current = cycle[previous]
    assert np.array_equal(match_clusters(current, previous, num_clusters=4), previous)
    released = match_clusters(current, previous, num_clusters=4, relabel="released")
    assert np.array_equal(released, cycle[cycle[previous]])  # the matching is cycle^-1; the release applies cycle
    assert matched_overlap(released, previous) == 0.0
    swap = np.array([1, 0, 3, 2])  # pairs swapped: its own inverse, so both relabellings agree
    assert np.array_equal(match_clusters(swap[previous], previous, num_clusters=4, relabel="released"), previous)


def test_matched_overlap_counts_the_items_that_keep_their_cluster() -> None:
    a = np.array([0, 0, 1, 1, -1, 2])
    b = np.array([0, 1, 1, 1, 0, -1])
    assert matched_overlap(a, b) == pytest.approx(3 / 4)  # items 0..3 used by both, 3 agree
    assert match_clusters(a, b, num_clusters=3)[4] == -1  # unused stays unused
    with pytest.raises(ValueError, match="share no item"):
        matched_overlap(np.array([-1, 0]), np.array([0, -1]))
    with pytest.raises(ValueError, match="one length"):
        disagreement(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="-1..1"):
        disagreement(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="relabel"):
        match_clusters(a, b, num_clusters=3, relabel="greedy")
