"""dml.explain.scores: mass on the object and the pointing game, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from dml.explain import cell_coverage, mass_on_mask, pointing_game


def test_coverage_is_the_share_of_each_cells_pixels() -> None:
    masks = np.zeros((2, 4, 6), np.uint8)
    masks[0, :2, :3] = 255
    masks[1, 0, 0] = 255
    coverage = cell_coverage(masks, (2, 2))
    np.testing.assert_allclose(coverage[0], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(coverage[1], [[1 / 6, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(cell_coverage(masks[0] > 0, (2, 2))[0], coverage[0])


def test_mass_on_mask_counts_only_positive_mass() -> None:
    heat = np.array([[[0.3, -0.5], [0.1, 0.0]], [[-1.0, -1.0], [-1.0, -1.0]]])
    coverage = np.array([[[1.0, 1.0], [0.5, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    scores = mass_on_mask(heat, coverage)
    assert scores[0] == pytest.approx((0.3 + 0.05) / 0.4)
    assert np.isnan(scores[1])  # no positive mass: undefined, not zero


def test_a_uniform_map_scores_the_mean_coverage() -> None:
    coverage = np.random.default_rng(0).uniform(size=(3, 4, 4))
    np.testing.assert_allclose(mass_on_mask(np.ones((3, 4, 4)), coverage), coverage.mean(axis=(1, 2)))


def test_pointing_game_hits_where_the_maximum_is_on_the_object() -> None:
    heat = np.array([[[0.1, 0.9], [0.2, 0.0]], [[0.9, 0.1], [0.2, 0.0]]])
    coverage = np.array([[[0.0, 0.6], [0.0, 0.0]], [[0.0, 0.6], [0.0, 0.0]]])
    assert pointing_game(heat, coverage).tolist() == [True, False]
    assert pointing_game(heat, coverage, threshold=0.7).tolist() == [False, False]


def test_bad_shapes_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="must have the same") as info:
        mass_on_mask(np.ones((2, 4, 4)), np.ones((2, 2, 2)))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="do not tile a 3 x 3 grid"):
        cell_coverage(np.ones((1, 8, 8), np.uint8), (3, 3))
    with pytest.raises(ValueError, match="threshold"):
        pointing_game(np.ones((2, 2)), np.ones((2, 2)), threshold=0.0)
