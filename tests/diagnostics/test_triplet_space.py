"""dml.diagnostics.triplet_space: easiest positive vs hardest negative per anchor, and the hard-triplet ratio."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from dml.diagnostics import hard_triplet_ratio, plot_triplet_space, triplet_space


def _circle(angles_deg: list[float]) -> np.ndarray:
    a = np.deg2rad(np.asarray(angles_deg, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def test_coordinates_on_a_hand_made_configuration() -> None:
    # class 0 at 0 and 90 degrees, class 1 at 60 and 180 degrees, class 2 alone at 270 degrees
    x = _circle([0, 90, 60, 180, 270]) * np.array([[1.0], [3.0], [0.5], [2.0], [1.0]])  # norms do not matter
    space = triplet_space(x, [0, 0, 1, 1, 2])
    cos = lambda deg: np.cos(np.deg2rad(deg))
    np.testing.assert_allclose(space.s_ap[:4], [cos(90), cos(90), cos(120), cos(120)], atol=1e-6)
    np.testing.assert_allclose(space.s_an, [cos(60), cos(30), cos(30), cos(90), cos(90)], atol=1e-6)
    assert np.isnan(space.s_ap[4]) and space.valid.tolist() == [True, True, True, True, False]
    assert space.hard.tolist() == [True, True, True, True, False]  # every anchor's nearest neighbour is a negative
    assert space.hard_ratio == 1.0
    assert space.margin == pytest.approx(np.mean(space.s_ap[:4] - space.s_an[:4]))


def test_hard_ratio_counts_valid_anchors_with_a_more_similar_negative() -> None:
    # two tight classes far apart: no hard anchor; then move one point next to the other class
    x = _circle([0, 5, 180, 185])
    assert hard_triplet_ratio(x, [0, 0, 1, 1]) == 0.0
    x = _circle([0, 120, 180, 185])
    assert hard_triplet_ratio(x, [0, 0, 1, 1]) == pytest.approx(1 / 4)  # only the point at 120 degrees is hard


def test_near_duplicates_are_not_positives_and_chunking_changes_nothing() -> None:
    x = _circle([0, 0, 40, 100])
    space = triplet_space(x, [0, 0, 0, 1])
    assert space.s_ap[0] == pytest.approx(np.cos(np.deg2rad(40)), abs=1e-6)  # the duplicate is skipped
    kept = triplet_space(x, [0, 0, 0, 1], duplicate_threshold=None)
    assert kept.s_ap[0] == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(50, 8)), rng.integers(0, 5, size=50)
    whole, chunked = triplet_space(emb, labels), triplet_space(torch.tensor(emb), torch.tensor(labels), chunk_size=7)
    np.testing.assert_allclose(whole.s_ap, chunked.s_ap, atol=1e-6)
    np.testing.assert_allclose(whole.s_an, chunked.s_an, atol=1e-6)
    assert 0.0 <= whole.hard_ratio <= 1.0


def test_no_valid_anchor_gives_nan_and_bad_input_fails() -> None:
    assert np.isnan(triplet_space(_circle([0, 90]), [0, 1]).hard_ratio)
    with pytest.raises(ValueError, match="different lengths"):
        triplet_space(_circle([0, 90, 180]), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        triplet_space(np.array([[1.0, np.nan], [0.0, 1.0]]), [0, 0])
    with pytest.raises(ValueError, match="chunk_size"):
        triplet_space(_circle([0, 90]), [0, 0], chunk_size=0)


def test_plot_draws_one_scatter_per_set() -> None:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    spaces = {name: triplet_space(rng.normal(size=(40, 4)), rng.integers(0, 4, size=40)) for name in ("train", "test")}
    ax = plot_triplet_space(spaces)
    assert len(ax.collections) == 3  # the shaded hard region and two scatters
    assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == ["train", "test"]
    plt.close(ax.figure)
