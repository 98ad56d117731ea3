"""dml.diagnostics.distance_distribution: q_n(d) of uniform points on the sphere, and the KS test against it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.integrate import quad

from dml.diagnostics import (
    distance_distribution,
    plot_distance_distribution,
    sphere_distance_cdf,
    sphere_distance_density,
)


@pytest.mark.parametrize("dim", [2, 3, 8, 32, 128, 512])
def test_density_integrates_to_one_and_matches_its_cdf(dim: int) -> None:
    total, _ = quad(lambda d: float(sphere_distance_density(d, dim)), 0.0, 2.0, points=[np.sqrt(2)], limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)
    for d in (0.3, 1.0, 1.4, 1.9):
        part, _ = quad(lambda t: float(sphere_distance_density(t, dim)), 0.0, d, limit=200)
        assert float(sphere_distance_cdf(d, dim)) == pytest.approx(part, abs=1e-6)


def test_density_has_the_closed_forms_of_small_dimensions() -> None:
    d = np.array([0.5, 1.0, 1.5])
    np.testing.assert_allclose(sphere_distance_density(d, 3), d / 2)  # uniform cosine on S^2
    np.testing.assert_allclose(sphere_distance_density(d, 2), 1 / (np.pi * np.sqrt(1 - d**2 / 4)))  # circle
    assert sphere_distance_density(np.array([-0.1, 2.1]), 8).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dim", [3, 16, 128])
def test_uniform_points_pass_the_ks_test_and_clustered_points_fail_it(dim: int) -> None:
    rng = np.random.default_rng(dim)
    uniform = distance_distribution(rng.normal(size=(2000, dim)), seed=1)
    assert uniform.ks_pvalue > 0.01 and uniform.matched.shape == (1000,)
    assert uniform.mean == pytest.approx(np.sqrt(2), abs=0.1 if dim == 3 else 0.03)
    clustered = distance_distribution(np.eye(dim)[rng.integers(0, 2, 2000)] + 0.3 * rng.normal(size=(2000, dim)))
    assert clustered.ks_pvalue < 1e-6


def test_pairs_are_subsampled_with_the_seed_and_input_is_checked() -> None:
    x = np.random.default_rng(0).normal(size=(100, 4))
    small = distance_distribution(x, max_pairs=500, seed=3)
    assert small.distances.shape == (500,) and small.dim == 4
    np.testing.assert_array_equal(small.distances, distance_distribution(x, max_pairs=500, seed=3).distances)
    assert distance_distribution(x, max_pairs=None).distances.shape == (4950,)
    with pytest.raises(ValueError, match="integer >= 2"):
        distance_distribution(x[:, :1])
    with pytest.raises(ValueError, match="at least 4"):
        distance_distribution(x[:3])
    with pytest.raises(ValueError, match="integer >= 2"):
        sphere_distance_density(1.0, 1)


def test_plot_draws_histogram_and_density() -> None:
    result = distance_distribution(np.random.default_rng(0).normal(size=(200, 8)))
    ax = plot_distance_distribution(result, label="random")
    assert len(ax.get_lines()) == 1 and [t.get_text() for t in ax.get_legend().get_texts()] == ["random", "$q_{8}(d)$"]
