"""dml.eval.knn against a brute-force ranking by (-score, index)."""

from __future__ import annotations

import numpy as np
import pytest

from dml.eval.neighbours import knn


def brute_force(query, gallery, k, metric, self_retrieval):
    if metric == "cosine":
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        scores = query @ gallery.T
    else:
        scores = -((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    result = []
    for i, row in enumerate(scores):
        order = [j for j in np.lexsort((np.arange(len(row)), -row)) if not (self_retrieval and j == i)]
        result.append(order[:k])
    return np.array(result)


def _exact_unit_vectors(rng, n):
    """``n`` 4-d vectors, each a signed basis vector (norm 1) or a vector of four ±1 entries (norm 2)."""
    signs = rng.choice([-1.0, 1.0], size=(n, 4))
    basis = np.eye(4)[rng.integers(0, 4, size=n)] * signs
    return np.where(rng.random((n, 1)) < 0.5, basis, signs)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("self_retrieval", [True, False])
def test_knn_matches_brute_force_with_ties(metric, self_retrieval):
    rng = np.random.default_rng(0)
    if metric == "cosine":
        # Vectors of norm 1 or 2 with entries in {0, ±1}: their unit vectors have entries in {0, ±0.5, ±1}, so every
        # cosine similarity is exact in floating point and the many exact ties are the same in both rankings.
        query, gallery = _exact_unit_vectors(rng, 40), None if self_retrieval else _exact_unit_vectors(rng, 57)
    else:
        # Small integer vectors with duplicates: many exactly tied scores, all computed exactly in float64.
        query = rng.integers(-2, 3, size=(40, 3)).astype(np.float64)
        query[query.sum(1) == 0] += 1
        query[(query == 0).all(1)] = 1
        gallery = None if self_retrieval else rng.integers(-2, 3, size=(57, 3)).astype(np.float64) + 0.5
    expected = brute_force(query, query if self_retrieval else gallery, 7, metric, self_retrieval)
    _, indices = knn(query, gallery, k=7, metric=metric, chunk_size=6)
    np.testing.assert_array_equal(indices.numpy(), expected)


def test_knn_excludes_the_query_even_when_duplicated():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    _, indices = knn(x, k=2)
    assert indices[0].tolist() == [1, 2] and indices[1].tolist() == [0, 2]


def test_knn_rejects_k_larger_than_the_gallery():
    with pytest.raises(ValueError, match="k must be an integer between 1 and 2"):
        knn(np.eye(3), k=3)
