"""dml.diagnostics.yoked_tsne: the yoked objective's gradient, alpha -> 0 (independent maps), large alpha (pinned)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from sklearn.manifold import TSNE, _t_sne

from dml.diagnostics import map_displacement, plot_yoked_tsne, yoke_objective, yoked_joint_tsne, yoked_tsne


def _clusters(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four classes in 8-D and a perturbed copy of the same images (a "later epoch")."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    first = 3.0 * np.eye(8)[labels] + rng.normal(size=(n, 8))
    return first, first + 0.4 * rng.normal(size=first.shape), labels


def _affinities(points: np.ndarray, perplexity: float = 8.0) -> np.ndarray:
    return _t_sne._joint_probabilities(squareform(pdist(points, "sqeuclidean")), perplexity, 0)


def test_yoked_gradient_matches_finite_differences() -> None:
    points, _, _ = _clusters(n=12)
    rng = np.random.default_rng(1)
    p = _affinities(points, perplexity=3.0)
    target, params = rng.normal(size=(12, 2)), rng.normal(size=24)
    objective = yoke_objective(_t_sne._kl_divergence, target, alpha=0.3)
    _, grad = objective(params, p, 1, 12, 2)
    step, numeric = 1e-6, np.empty(24)
    for k in range(24):
        up, down = params.copy(), params.copy()
        up[k] += step
        down[k] -= step
        numeric[k] = (objective(up, p, 1, 12, 2)[0] - objective(down, p, 1, 12, 2)[0]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    cost, _ = objective(params, p, 1, 12, 2)
    kl, _ = _t_sne._kl_divergence(params, p, 1, 12, 2)
    assert cost == pytest.approx(kl + 0.3 * np.sum((params.reshape(12, 2) - target) ** 2))


def test_alpha_zero_is_scikit_learns_tsne_from_the_same_start() -> None:
    first, later, _ = _clusters()
    result = yoked_tsne([first, later], alpha=0.0, perplexity=8.0, seed=2, max_iter=400)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    plain = TSNE(perplexity=8.0, init="pca", learning_rate="auto", random_state=2, max_iter=400, method="exact")
    np.testing.assert_array_equal(result.maps[0], plain.fit_transform(unit(first)))
    again = TSNE(
        perplexity=8.0,
        init=result.maps[0].astype(np.float32),
        learning_rate="auto",
        random_state=2,
        max_iter=400,
        method="exact",
    )
    np.testing.assert_allclose(result.maps[1], again.fit_transform(unit(later)), rtol=1e-6, atol=1e-6)
    independent = yoked_tsne([first, later], alpha=0.0, init="pca", perplexity=8.0, seed=2, max_iter=400)
    np.testing.assert_allclose(independent.maps[1], plain.fit_transform(unit(later)), rtol=1e-6, atol=1e-6)


def test_a_large_alpha_pins_the_maps_and_a_small_one_does_not() -> None:
    first, later, _ = _clusters()
    free = yoked_tsne([first, later], alpha=0.0, init="pca", perplexity=8.0, max_iter=400)
    pinned = yoked_tsne([first, later], alpha=1e-2, perplexity=8.0, max_iter=400)
    assert map_displacement(pinned.maps[1], pinned.maps[0], align=False) < 0.05
    assert map_displacement(free.maps[1], free.maps[0], align=False) > 0.3
    chained = yoked_tsne([first, later, first], alpha=1e-2, reference="previous", perplexity=8.0, max_iter=400)
    assert map_displacement(chained.maps[2], chained.maps[1], align=False) < 0.05
    assert len(chained.kl_divergences) == 3 and all(np.isfinite(chained.kl_divergences))


def test_map_displacement_ignores_rigid_motions_only_when_aligning() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(30, 2))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 3.0 * reference @ rotation * np.array([1, -1]) + 5.0
    assert map_displacement(moved, reference) == pytest.approx(0.0, abs=1e-9)
    assert map_displacement(moved, reference, align=False) > 1.0
    with pytest.raises(ValueError, match="same"):
        map_displacement(moved[:5], reference)


def test_bad_input_fails_with_a_clear_message() -> None:
    first, later, _ = _clusters(n=12)
    with pytest.raises(ValueError, match="list"):
        yoked_tsne(first)
    with pytest.raises(ValueError, match="same images"):
        yoked_tsne([first, later[:10]])
    with pytest.raises(ValueError, match="alpha"):
        yoked_tsne([first, later], alpha=-1.0)
    with pytest.raises(ValueError, match="too stiff"):
        yoked_tsne([first, later], alpha=1.0)
    with pytest.raises(ValueError, match="reference"):
        yoked_tsne([first, later], reference="last")


def test_plot_draws_one_panel_per_map() -> None:
    first, later, labels = _clusters(n=12)
    result = yoked_tsne([first, later], alpha=1e-3, max_iter=300)
    axes = plot_yoked_tsne(result, labels, titles=["epoch 1", "epoch 2"])
    assert [ax.get_title() for ax in axes] == ["epoch 1", "epoch 2"]
    with pytest.raises(ValueError, match="labels"):
        plot_yoked_tsne(result, labels[:5])


def test_yoked_joint_maps_keep_splits_and_pin_later_pairs() -> None:
    first, later, labels = _clusters(n=20)
    maps = yoked_joint_tsne(
        [first[:12], later[:12]], labels[:12], [first[12:], later[12:]], labels[12:], alpha=1e-2, max_iter=300
    )
    assert len(maps) == 2 and maps[0].split.tolist() == ["train"] * 12 + ["test"] * 8
    assert maps[1].labels.tolist() == labels.tolist() and maps[1].index.tolist() == list(range(12)) + list(range(8))
    assert map_displacement(maps[1].coords, maps[0].coords, align=False) < 0.05
    with pytest.raises(ValueError, match="one of each"):
        yoked_joint_tsne([first[:12]], labels[:12], [first[12:], later[12:]], labels[12:])
