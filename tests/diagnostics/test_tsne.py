"""dml.diagnostics.tsne: a joint, seeded t-SNE map of training and test embeddings (tiny sizes: t-SNE is slow)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from dml.diagnostics import joint_tsne, plot_joint_tsne


def _two_clusters(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training classes around +e0 and test classes around +e1 (orthogonal, so far apart in cosine)."""
    rng = np.random.default_rng(seed)
    train = np.eye(6)[0] + 0.1 * rng.normal(size=(n, 6))
    test = np.eye(6)[1] + 0.1 * rng.normal(size=(n, 6))
    return train, np.arange(n) % 3, test, 10 + np.arange(n) % 2


def test_shapes_splits_and_clipped_perplexity() -> None:
    train, train_y, test, test_y = _two_clusters()
    result = joint_tsne(train, train_y, test, test_y, max_iter=300)
    assert result.coords.shape == (24, 2) and np.isfinite(result.coords).all()
    assert result.split.tolist() == ["train"] * 12 + ["test"] * 12
    assert result.labels.tolist() == list(train_y) + list(test_y)
    assert result.index.tolist() == list(range(12)) * 2
    assert result.perplexity == pytest.approx(23 / 3)  # 30 is too large for 24 points
    assert result.method == "exact" and np.isfinite(result.kl_divergence)


def test_same_seed_same_map_and_separated_clusters_stay_separated() -> None:
    train, train_y, test, test_y = _two_clusters()
    first = joint_tsne(train, train_y, test, test_y, seed=3, max_iter=300)
    again = joint_tsne(torch.tensor(train), torch.tensor(train_y), test, test_y, seed=3, max_iter=300)
    np.testing.assert_array_equal(first.coords, again.coords)
    distances = np.linalg.norm(first.coords[:, None] - first.coords[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(axis=1)
    assert (first.split[nearest] == first.split).all()  # every point's neighbour is from its split
    is_train = first.split == "train"
    centres = np.stack([first.coords[is_train].mean(axis=0), first.coords[~is_train].mean(axis=0)])
    closest = np.linalg.norm(first.coords[:, None] - centres[None], axis=-1).argmin(axis=1)
    assert np.array_equal(closest == 0, is_train)  # every point is nearer its own cluster's centre


def test_max_points_subsamples_each_split_in_proportion_with_the_seed() -> None:
    train, train_y, test, test_y = _two_clusters(n=12)
    small = joint_tsne(train, train_y, test[:6], test_y[:6], max_points=9, seed=1, max_iter=300)
    assert (small.split == "train").sum() == 6 and (small.split == "test").sum() == 3
    for split, labels in (("train", train_y), ("test", test_y[:6])):
        index = small.index[small.split == split]
        assert (np.diff(index) > 0).all() and np.array_equal(small.labels[small.split == split], labels[index])
    assert small.perplexity == pytest.approx(8 / 3)
    again = joint_tsne(train, train_y, test[:6], test_y[:6], max_points=9, seed=1, max_iter=300)
    assert np.array_equal(small.index, again.index)
    other = joint_tsne(train, train_y, test[:6], test_y[:6], max_points=9, seed=2, max_iter=300)
    assert not np.array_equal(small.index, other.index)


def test_bad_input_fails_with_a_clear_message() -> None:
    train, train_y, test, test_y = _two_clusters(n=4)
    with pytest.raises(ValueError, match="dimensions"):
        joint_tsne(train, train_y, test[:, :5], test_y)
    with pytest.raises(ValueError, match="D >= 2"):
        joint_tsne(train[:, :1], train_y, test[:, :1], test_y)
    with pytest.raises(ValueError, match="at least 4"):
        joint_tsne(train[:2], train_y[:2], test[:1], test_y[:1])
    with pytest.raises(ValueError, match="different lengths"):
        joint_tsne(train, train_y[:3], test, test_y)
    with pytest.raises(ValueError, match="NaN"):
        joint_tsne(np.r_[train[:3], [[np.nan] * 6]], train_y, test, test_y)
    with pytest.raises(ValueError, match="perplexity"):
        joint_tsne(train, train_y, test, test_y, perplexity=0)
    with pytest.raises(ValueError, match="max_iter"):
        joint_tsne(train, train_y, test, test_y, max_iter=250)
    with pytest.raises(ValueError, match="max_points"):
        joint_tsne(train, train_y, test, test_y, max_points=3)
    with pytest.raises(ValueError, match="method"):
        joint_tsne(train, train_y, test, test_y, method="fast")


def test_plot_colours_splits_or_classes() -> None:
    train, train_y, test, test_y = _two_clusters(n=6)
    result = joint_tsne(train, train_y, test, test_y, max_iter=300)
    by_split = plot_joint_tsne(result)
    assert len(by_split.collections) == 2
    assert [t.get_text() for t in by_split.get_legend().get_texts()] == [
        "train (6 points, 3 classes)",
        "test (6 points, 2 classes)",
    ]
    by_class = plot_joint_tsne(result, color_by="class")
    assert len(np.unique(by_class.collections[0].get_facecolors(), axis=0)) == 3
    with pytest.raises(ValueError, match="color_by"):
        plot_joint_tsne(result, color_by="label")


def test_joint_panels_show_train_both_and_test() -> None:
    from dml.diagnostics import plot_joint_panels

    train, train_y, test, test_y = _two_clusters(n=6)
    axes = plot_joint_panels(joint_tsne(train, train_y, test, test_y, max_iter=300))
    assert [ax.get_title() for ax in axes] == ["training classes", "both", "test classes"]
    assert [len(ax.collections) for ax in axes] == [1, 2, 1]
    assert axes[0].get_xlim() == axes[2].get_xlim()
