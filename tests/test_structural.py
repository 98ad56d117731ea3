"""dml.structural: cross-correlation marginals, S_struct = sum T s, its limits and symmetry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dml.structural import cross_correlation_marginals, structural_similarity


def _parts(seed: int, pairs: int = 6, parts: int = 16, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    zx = F.normalize(torch.randn(pairs, parts, dim, generator=g, dtype=torch.float64), dim=2)
    zy = F.normalize(torch.randn(pairs, parts, dim, generator=g, dtype=torch.float64), dim=2)
    gx, gy = F.normalize(zx.mean(1), dim=1), F.normalize(zy.mean(1), dim=1)
    return zx, gx, zy, gy


def test_cross_correlation_marginals_by_hand() -> None:
    zx, _, _, gy = _parts(0)
    u = cross_correlation_marginals(zx, gy)
    for p in range(len(zx)):
        weights = [max(float(zx[p, i] @ gy[p]), 0.0) for i in range(zx.shape[1])]
        expected = torch.tensor(weights, dtype=torch.float64) / (sum(weights) + 1e-5)
        torch.testing.assert_close(u[p], expected)


def test_score_is_the_plan_weighted_part_similarity() -> None:
    zx, gx, zy, gy = _parts(1)
    score, plan, s = structural_similarity(zx, gx, zy, gy, return_plan=True, tol=0)
    torch.testing.assert_close(s, zx @ zy.transpose(1, 2))
    torch.testing.assert_close(score, (plan * s).sum(dim=(1, 2)))
    torch.testing.assert_close(plan.sum(1), cross_correlation_marginals(zy, gx), atol=1e-6, rtol=0)


def test_identical_images_with_uniform_marginals_match_each_part_to_itself() -> None:
    zx, gx, _, _ = _parts(2)
    score, plan, _ = structural_similarity(
        zx, gx, zx, gx, marginals="uniform", epsilon=0.01, tol=0, iterations=2000, return_plan=True
    )
    assert (score > 0.95).all()  # S_struct -> mean_i s_ii = 1 as epsilon -> 0
    assert (plan.diagonal(dim1=1, dim2=2).sum(1) > 0.95).all()


def test_symmetric_in_the_two_images() -> None:
    zx, gx, zy, gy = _parts(3)
    forward = structural_similarity(zx, gx, zy, gy, tol=0, iterations=500)
    backward = structural_similarity(zy, gy, zx, gx, tol=0, iterations=500)
    torch.testing.assert_close(forward, backward, atol=1e-6, rtol=0)


def test_bad_marginals_and_shapes_fail() -> None:
    zx, gx, zy, gy = _parts(4)
    with pytest.raises(ValueError, match="marginals"):
        structural_similarity(zx, gx, zy, gy, marginals="cc")
    with pytest.raises(ValueError, match="same P"):
        structural_similarity(zx, gx, zy[:2], gy[:2])
