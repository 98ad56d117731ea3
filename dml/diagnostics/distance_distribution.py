"""Pairwise distances of an embedding against the distance law of points spread uniformly on the sphere.

Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567,
Sec. 4: for points drawn uniformly on the unit sphere ``S^{n-1}`` of ``R^n``, the distance ``d = ||f_i - f_j||`` of
two of them has the density

.. math::  q_n(d) = \\frac{d^{\\,n-2} \\left(1 - \\tfrac{d^2}{4}\\right)^{(n-3)/2}}{B\\left(\\tfrac12,
           \\tfrac{n-1}{2}\\right)}, \\qquad d \\in [0, 2],

which for large ``n`` concentrates around ``sqrt(2)`` (variance about ``1 / (2n)``). The normalising constant
follows from the cosine ``t = 1 - d^2/2`` having density ``(1 - t^2)^{(n-3)/2} / B(1/2, (n-1)/2)``; the
cumulative distribution is ``F_n(d) = I_{d^2/4}((n-1)/2, (n-1)/2)`` (regularised incomplete beta), since
``(1 + t)/2`` is ``Beta((n-1)/2, (n-1)/2)``. The paper states ``q`` up to its constant; the distance-weighted
sampler (:mod:`dml.mining.distance_weighted`) uses its inverse.

:func:`distance_distribution` compares an embedding's pairwise distances with ``q_n``, ``n`` its dimension, by a
Kolmogorov-Smirnov test. The distances of all pairs of a set are not independent (they share points), so the test
uses a random perfect matching of the points (each point in one pair): those ``N/2`` distances are independent
when the points are, and the p-value is then valid. All pairs (up to ``max_pairs``, drawn at random) are kept for
histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, unit_rows

__all__ = [
    "DistanceDistribution",
    "distance_distribution",
    "plot_distance_distribution",
    "sphere_distance_cdf",
    "sphere_distance_density",
]


def _check_dimension(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(
            f"dim is the dimension n of the space around the sphere S^(n-1) and must be an integer >= 2; got {dim!r}."
        )
    return int(dim)


def sphere_distance_density(d: Any, dim: int) -> np.ndarray:
    """``q_n(d)``, the density of the distance of two uniform points on ``S^{dim-1}`` (0 outside ``[0, 2]``)."""
    from scipy.special import betaln

    n = _check_dimension(dim)
    d = np.asarray(d, dtype=np.float64)
    inside = (d > 0) & (d < 2)
    safe = np.where(inside, d, 1.0)
    log_q = (n - 2) * np.log(safe) + 0.5 * (n - 3) * np.log1p(-0.25 * safe**2) - betaln(0.5, 0.5 * (n - 1))
    return np.where(inside, np.exp(log_q), 0.0)


def sphere_distance_cdf(d: Any, dim: int) -> np.ndarray:
    """``F_n(d) = P(||f_i - f_j|| <= d)`` for two uniform points on ``S^{dim-1}``."""
    from scipy.special import betainc

    n = _check_dimension(dim)
    d = np.clip(np.asarray(d, dtype=np.float64), 0.0, 2.0)
    return betainc(0.5 * (n - 1), 0.5 * (n - 1), 0.25 * d**2)


@dataclass(frozen=True)
class DistanceDistribution:
    """Pairwise distances of a set of unit embeddings and their KS test against ``q_n``.

    Attributes:
        distances: distances of (up to ``max_pairs``) distinct pairs ``i < j``, for histograms.
        matched: the ``N // 2`` distances of a random perfect matching (independent pairs), used by the test.
        dim: the embedding dimension ``n``.
        ks_statistic: the Kolmogorov-Smirnov statistic of ``matched`` against ``F_n``.
        ks_pvalue: its p-value (valid when the points are independent).
        mean: mean of ``distances``; ``sqrt(2) = 1.414`` for uniform points.
    """

    distances: np.ndarray
    matched: np.ndarray
    dim: int
    ks_statistic: float
    ks_pvalue: float
    mean: float


def distance_distribution(embeddings: Any, *, max_pairs: int | None = 200_000, seed: int = 0) -> DistanceDistribution:
    """Distances between the L2-normalised rows of (N, D) ``embeddings`` and their KS test against ``q_D``.

    Args:
        embeddings: (N, D) array or tensor, N >= 4, D >= 2.
        max_pairs: keep at most this many of the ``N (N - 1) / 2`` pairs in ``distances`` (``None``: all).
        seed: seeds the matching and the pair subsample (``numpy.random.default_rng``).
    """
    from scipy.stats import kstest

    x = as_float64_matrix(embeddings, min_rows=4)
    dim = _check_dimension(x.shape[1])
    unit = unit_rows(x)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unit))
    half = len(unit) // 2
    matched = np.linalg.norm(unit[order[:half]] - unit[order[half : 2 * half]], axis=1)
    rows, cols = np.triu_indices(len(unit), k=1)
    if max_pairs is not None and len(rows) > max_pairs:
        keep = np.sort(rng.choice(len(rows), size=int(max_pairs), replace=False))
        rows, cols = rows[keep], cols[keep]
    similarity = np.einsum("pd,pd->p", unit[rows], unit[cols])
    distances = np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, 4.0))
    test = kstest(matched, lambda d: sphere_distance_cdf(d, dim))
    return DistanceDistribution(
        distances=distances,
        matched=matched,
        dim=dim,
        ks_statistic=float(test.statistic),
        ks_pvalue=float(test.pvalue),
        mean=float(distances.mean()),
    )


def plot_distance_distribution(
    result: DistanceDistribution, *, ax: Any = None, bins: int = 60, label: str | None = None
) -> Any:
    """Histogram (as a density) of ``result.distances`` with ``q_n`` for its dimension drawn over it."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    edges = np.linspace(0.0, 2.0, bins + 1)
    ax.hist(result.distances, bins=edges, density=True, alpha=0.45, label=label or "embedding")
    grid = np.linspace(0.0, 2.0, 400)
    ax.plot(grid, sphere_distance_density(grid, result.dim), color="k", lw=1.2, label=f"$q_{{{result.dim}}}(d)$")
    ax.set(xlim=(0, 2), xlabel="distance $d$", ylabel="density")
    ax.legend(fontsize=8, frameon=False)
    return ax
