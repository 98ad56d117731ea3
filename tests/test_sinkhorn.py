"""dml.sinkhorn: marginals, agreement with an exact small OT (linprog and permutations), batching, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from dml.sinkhorn import sinkhorn


def _problem(seed: int, batch: int = 3, rows: int = 5, cols: int = 4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(batch, rows, cols, generator=g, dtype=dtype) * 2
    u = torch.rand(batch, rows, generator=g, dtype=dtype) + 0.1
    v = torch.rand(batch, cols, generator=g, dtype=dtype) + 0.1
    return cost, u / u.sum(1, keepdim=True), v / v.sum(1, keepdim=True)


def _exact_ot(cost: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    """min <T, C> over T >= 0 with T 1 = u, T^T 1 = v, by linear programming."""
    r, c = cost.shape
    rows = np.kron(np.eye(r), np.ones((1, c)))
    cols = np.kron(np.ones((1, r)), np.eye(c))
    result = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([u, v]), bounds=(0, None))
    assert result.success
    return float(result.fun)


@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_marginals_hold_to_tolerance(epsilon: float) -> None:
    cost, u, v = _problem(0)
    plan = sinkhorn(cost, u, v, epsilon=epsilon, iterations=2000, tol=0)
    assert (plan >= 0).all()
    torch.testing.assert_close(plan.sum(2), u, atol=1e-8, rtol=0)
    torch.testing.assert_close(plan.sum(1), v, atol=1e-10, rtol=0)


def test_released_tolerance_stops_early_with_columns_exact() -> None:
    cost, u, v = _problem(1)
    loose = sinkhorn(cost, u, v, epsilon=0.05)  # DIML's rule: mean |delta r| < 0.1
    torch.testing.assert_close(loose.sum(1), v, atol=1e-10, rtol=0)
    assert (loose.sum(2) - u).abs().max() > 1e-8  # it did stop before convergence


def test_small_epsilon_matches_linear_programming() -> None:
    cost, u, v = _problem(2, batch=4)
    plan = sinkhorn(cost, u, v, epsilon=1e-3, iterations=20000, tol=0)  # the log-domain path
    for b in range(4):
        exact = _exact_ot(cost[b].numpy(), u[b].numpy(), v[b].numpy())
        assert abs(float((plan[b] * cost[b]).sum()) - exact) < 5e-3


def test_uniform_marginals_small_epsilon_is_the_best_permutation() -> None:
    n = 5
    cost, _, _ = _problem(3, batch=2, rows=n, cols=n)
    uniform = torch.full((2, n), 1.0 / n, dtype=torch.float64)
    plan = sinkhorn(cost, uniform, uniform, epsilon=1e-3, iterations=20000, tol=0)
    for b in range(2):
        best = min(itertools.permutations(range(n)), key=lambda p: sum(float(cost[b, i, p[i]]) for i in range(n)))
        permutation = torch.zeros(n, n, dtype=torch.float64)
        permutation[torch.arange(n), torch.tensor(best)] = 1.0 / n
        torch.testing.assert_close(plan[b], permutation, atol=2e-3, rtol=0)


def test_batched_equals_one_by_one_and_float32_path_agrees() -> None:
    cost, u, v = _problem(4)
    together = sinkhorn(cost, u, v, tol=0, iterations=200)
    for b in range(3):
        torch.testing.assert_close(
            together[b : b + 1], sinkhorn(cost[b : b + 1], u[b : b + 1], v[b : b + 1], tol=0, iterations=200)
        )
    single = sinkhorn(cost.float(), u.float(), v.float(), tol=0, iterations=200)
    torch.testing.assert_close(single.double(), together, atol=1e-5, rtol=1e-4)


def test_a_zero_marginal_gives_a_zero_plan_not_nan() -> None:
    cost, u, v = _problem(5, batch=1)
    plan = sinkhorn(cost, torch.zeros_like(u), v)
    assert torch.isfinite(plan).all() and plan.abs().max() == 0


def test_bad_input_fails_with_the_shapes() -> None:
    cost, u, v = _problem(6)
    with pytest.raises(ValueError, match="cost"):
        sinkhorn(cost, u[:, :2], v)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(cost, u, v, epsilon=0)
    with pytest.raises(ValueError, match="non-negative"):
        sinkhorn(cost, -u, v)
