"""dml.diagnostics.density: π_intra, π_inter, π_ratio (Roth et al., ICML 2020) against a slow double loop."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine

from dml.diagnostics import embedding_density, plot_density


def _slow(x: np.ndarray, labels: np.ndarray, singletons: str) -> tuple[float, float, np.ndarray]:
    """The released metric written out pair by pair (scipy's cosine distance, class means of the raw rows)."""
    classes = np.unique(labels)
    per_class = []
    for c in classes:
        rows = x[labels == c]
        n = len(rows)
        total = sum(cosine(rows[i], rows[j]) for i in range(n) for j in range(n) if i != j)
        per_class.append(total / (n * (n - 1)) if n > 1 else np.nan)
    per_class = np.array(per_class)
    valid = ~np.isnan(per_class)
    filled = np.where(valid, per_class, np.max(per_class[valid]))
    intra = float(np.mean(filled if singletons == "max" else per_class[valid]))
    means = [x[labels == c].mean(axis=0) for c in classes]
    count = len(classes)
    inter = sum(cosine(means[a], means[b]) for a in range(count) for b in range(count) if a != b)
    return intra, inter / (count * (count - 1)), per_class


@pytest.mark.parametrize("singletons", ["max", "drop"])
def test_matches_a_double_loop_with_uneven_classes_and_singletons(singletons: str) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([3, 7, 8, 11, 20, 21], [5, 1, 9, 2, 1, 12])
    x = rng.normal(size=(len(labels), 6)) * rng.uniform(0.5, 3.0, size=(len(labels), 1)) + 0.4  # norms vary
    density = embedding_density(x, labels, singletons=singletons)
    intra, inter, per_class = _slow(x, labels, singletons)
    assert density.pi_intra == pytest.approx(intra, rel=1e-10)
    assert density.pi_inter == pytest.approx(inter, rel=1e-10)
    assert density.pi_ratio == pytest.approx(intra / inter, rel=1e-10)
    np.testing.assert_allclose(density.class_intra, per_class, rtol=1e-10)
    assert density.classes.tolist() == [3, 7, 8, 11, 20, 21] and density.counts.tolist() == [5, 1, 9, 2, 1, 12]


def test_hand_made_configuration_on_the_circle() -> None:
    deg = np.deg2rad([0.0, 90.0, 180.0, 240.0])
    x = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    density = embedding_density(x, ["a", "a", "b", "b"])  # string labels are fine
    np.testing.assert_allclose(density.class_intra, [1.0, 0.5])  # 1 - cos 90°, 1 - cos 60°
    assert density.pi_intra == pytest.approx(0.75)
    assert density.pi_inter == pytest.approx(1.0 - np.cos(np.deg2rad(165.0)))  # class means at 45° and 210°


def test_singletons_take_the_largest_class_value_or_are_dropped() -> None:
    deg = np.deg2rad([0.0, 90.0, 180.0, 240.0, 300.0])
    x = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    labels = [0, 0, 1, 1, 2]
    assert np.isnan(embedding_density(x, labels).class_intra[2])
    assert embedding_density(x, labels).pi_intra == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    assert embedding_density(x, labels, singletons="drop").pi_intra == pytest.approx(0.75)


def test_scale_of_each_row_does_not_change_intra_and_tensors_work() -> None:
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(30, 5)), rng.integers(0, 4, size=30)
    scaled = x * rng.uniform(0.1, 10.0, size=(30, 1))
    assert embedding_density(scaled, labels).pi_intra == pytest.approx(embedding_density(x, labels).pi_intra)
    from_tensor = embedding_density(torch.tensor(x, dtype=torch.float32), torch.tensor(labels))
    assert from_tensor.pi_ratio == pytest.approx(embedding_density(x, labels).pi_ratio, rel=1e-5)


def test_tight_well_separated_classes_have_a_small_ratio() -> None:
    rng = np.random.default_rng(2)
    centres = np.eye(4)
    labels = np.repeat(np.arange(4), 10)
    tight = embedding_density(centres[labels] + 0.01 * rng.normal(size=(40, 4)), labels)
    loose = embedding_density(centres[labels] + 0.5 * rng.normal(size=(40, 4)), labels)
    assert tight.pi_ratio < 0.01 < loose.pi_ratio
    assert tight.pi_inter == pytest.approx(1.0, abs=0.02)  # orthogonal class means: d = 1


def test_bad_input_fails_with_a_clear_message() -> None:
    x = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match="same label"):
        embedding_density(x, [0] * 6)
    with pytest.raises(ValueError, match="single image"):
        embedding_density(x, np.arange(6))
    with pytest.raises(ValueError, match="all-zero rows"):
        embedding_density(np.r_[x[:5], np.zeros((1, 3))], [0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="zero vector"):
        embedding_density(np.r_[x[:1], -x[:1], x[2:4]], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="different lengths"):
        embedding_density(x, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        embedding_density(np.r_[x[:5], [[np.inf, 0, 0]]], [0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="singletons policy"):
        embedding_density(x, [0, 0, 1, 1, 2, 2], singletons="mean")


def test_plot_density_marks_intra_and_inter() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 6)
    ax = plot_density(
        {
            "train": embedding_density(rng.normal(size=(30, 4)), labels),
            "test": embedding_density(rng.normal(size=(30, 4)), labels),
        }
    )
    assert len(ax.get_lines()) == 4  # two vertical lines per set
    assert len(ax.get_legend().get_texts()) == 2
