"""NMI: seeded k-means on the embeddings against the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.eval import kmeans_assign, nmi, retrieval_metrics


def separated(n_classes=12, per_class=6, dim=16, spread=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(labels)
    centres = 10 * rng.standard_normal((n_classes, dim))
    return (centres[labels] + spread * rng.standard_normal((labels.size, dim))).astype(np.float32), labels


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_perfect_clustering_gives_one(metric):
    x, y = separated()
    for seed in range(3):
        assert nmi(x, y, metric=metric, seed=seed) == pytest.approx(1.0)
    assert retrieval_metrics(x, y, include=("nmi",))["nmi"] == pytest.approx(1.0)


def test_identical_points_per_class_give_one():
    x, y = separated(spread=0.0)
    assert nmi(x, y) == pytest.approx(1.0)


def test_deterministic_given_seed():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 8)).astype(np.float32), rng.integers(0, 15, 300)
    for init in ("k-means++", "random"):
        a, b = nmi(x, y, seed=7, init=init), nmi(x, y, seed=7, init=init)
        assert a == b
        assert np.array_equal(kmeans_assign(x, 15, seed=7, init=init), kmeans_assign(x, 15, seed=7, init=init))
    assert 0.0 <= nmi(x, y) < 0.5  # random embedding: little information about the labels


def test_labels_are_permutation_invariant_and_accept_tensors():
    x, y = separated(seed=1)
    relabelled = np.array([f"class-{v * 7 % 13}" for v in y])
    assert nmi(torch.from_numpy(x), torch.from_numpy(y)) == nmi(x, relabelled)


def test_degenerate_inputs():
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    assert nmi(x, np.zeros(10)) == pytest.approx(1.0)  # one class, one cluster
    assert kmeans_assign(x, 1).tolist() == [0] * 10
    assert nmi(x, np.arange(10)) == pytest.approx(1.0)  # as many clusters as points
    with pytest.raises(ValueError, match="init"):
        kmeans_assign(x, 2, init="kmeans")
