"""dml.diagnostics.gradient_variance: direction variance of pair gradients, against a loop and the sigma / d law."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.diagnostics import pair_gradient_variance


def test_matches_a_loop_over_pairs_and_draws() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 2])
    draws = rng.normal(size=(6, 5, 4))
    result = pair_gradient_variance(torch.tensor(draws), labels, pairs="all", bins=4)
    unit = draws / np.linalg.norm(draws, axis=2, keepdims=True)
    expected_var, expected_dist = [], []
    for i in range(5):
        for j in range(i + 1, 5):
            u = unit[:, i] - unit[:, j]
            expected_dist.append(np.linalg.norm(u, axis=1).mean())
            u = u / np.linalg.norm(u, axis=1, keepdims=True)
            expected_var.append(np.mean(np.sum((u - u.mean(axis=0)) ** 2, axis=1)))
    np.testing.assert_allclose(result.variances, expected_var, atol=1e-12)
    np.testing.assert_allclose(result.distances, expected_dist, atol=1e-12)
    assert result.counts.sum() == 10 and result.edges.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    negatives = pair_gradient_variance(draws, labels, pairs="negative")
    assert negatives.counts.sum() == 8 and pair_gradient_variance(draws, labels, pairs="positive").counts.sum() == 2


def test_close_pairs_have_noisier_directions() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 32))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    base[100:] = base[:100] + 0.3 * rng.normal(size=(100, 32)) / np.sqrt(32)  # close partners
    draws = base[None] + 0.02 * rng.normal(size=(16, 200, 32))
    result = pair_gradient_variance(draws, np.arange(200), bins=10)
    filled = result.counts > 20
    assert np.all(np.diff(result.variance[filled]) < 0)  # variance falls with distance
    assert result.variance[filled][0] > 5 * result.variance[filled][-1]


def test_bad_input_fails_with_a_clear_message() -> None:
    draws = np.random.default_rng(0).normal(size=(3, 4, 2))
    with pytest.raises(ValueError, match=r"\(R, N, D\)"):
        pair_gradient_variance(draws[0], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="labels"):
        pair_gradient_variance(draws, [0, 1])
    with pytest.raises(ValueError, match="no negative pairs"):
        pair_gradient_variance(draws, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="pairs"):
        pair_gradient_variance(draws, [0, 0, 1, 1], pairs="hard")
