"""How noisy a pair's gradient direction is, as a function of the pair's distance.

Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567,
Sec. 4. Any loss of the distance ``D_ij = ||f_i - f_j||`` of a pair pushes ``f_i`` along

.. math::  \\frac{\\partial \\ell(D_{ij})}{\\partial f_i} = \\ell'(D_{ij})\\, u_{ij}, \\qquad
           u_{ij} = \\frac{f_i - f_j}{\\lVert f_i - f_j \\rVert} ,

and the paper argues that for close pairs (the hardest negatives) the direction ``u_ij`` is dominated by noise in
the embeddings: a perturbation of size ``sigma`` turns it by about ``sigma / D_ij``. This module measures that on a
real batch. Given ``R`` embeddings of the same ``N`` images (``draws``, e.g. the same batch under ``R`` input
perturbations or augmentations), each pair's direction variance is the trace of the covariance of ``u_ij`` over
the draws,

.. math::  V_{ij} = \\frac{1}{R}\\sum_r \\lVert u^{(r)}_{ij} - \\bar u_{ij} \\rVert^2
           = 1 - \\lVert \\bar u_{ij} \\rVert^2

(unit vectors), between 0 (the same direction every time) and 1 (no preferred direction). Pairs are binned by
their mean distance over the draws; the result holds the mean ``V`` per bin. The loss factor ``ell'(D)`` is left
out on purpose: it is the same for every draw of a pair and only rescales that pair's gradient.

Memory is ``O(R N^2 D)`` (every pair's difference in every draw): meant for one batch, not a whole test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dml.diagnostics._inputs import as_label_array, check_positive_int
from dml.utils.checks import check_choice

__all__ = ["GradientVariance", "pair_gradient_variance"]


@dataclass(frozen=True)
class GradientVariance:
    """Direction variance of pair gradients binned by distance.

    Attributes:
        edges: ``bins + 1`` distance bin edges over ``[0, 2]``.
        centres: bin centres.
        variance: mean ``V_ij`` of the pairs in each bin (NaN for an empty bin).
        counts: pairs per bin.
        distances, variances: every pair's mean distance and ``V_ij`` (``i < j``), for scatter plots.
    """

    edges: np.ndarray
    centres: np.ndarray
    variance: np.ndarray
    counts: np.ndarray
    distances: np.ndarray
    variances: np.ndarray


def pair_gradient_variance(draws: Any, labels: Any, *, pairs: str = "negative", bins: int = 20) -> GradientVariance:
    """Direction variance ``V_ij`` of the pairs of ``R`` embeddings of one batch (see the module docstring).

    Args:
        draws: (R, N, D) array or tensor, ``R >= 2`` embeddings of the same N images; rows are L2-normalised.
        labels: N class ids.
        pairs: ``"negative"`` (different classes), ``"positive"`` or ``"all"``.
        bins: number of equal-width distance bins over ``[0, 2]``.
    """
    check_choice(pairs, ("negative", "positive", "all"), name="pairs")
    bins = check_positive_int(bins, "bins")
    x = torch.as_tensor(
        np.asarray(draws.detach().cpu() if isinstance(draws, torch.Tensor) else draws), dtype=torch.float64
    )
    if x.ndim != 3 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(
            f"draws must have shape (R, N, D) with R >= 2 draws of N >= 2 images; got {tuple(x.shape)}. "
            "Stack the embeddings of the same batch under R perturbations."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("draws contain NaN or infinite values; check the model's output.")
    y = torch.from_numpy(np.unique(as_label_array(labels).reshape(-1), return_inverse=True)[1].reshape(-1))
    if len(y) != x.shape[1]:
        raise ValueError(f"{len(y)} labels for {x.shape[1]} images per draw; pass one label per image.")
    unit = torch.nn.functional.normalize(x, dim=2)
    rows, cols = torch.triu_indices(len(y), len(y), offset=1)
    keep = {
        "negative": y[rows] != y[cols],
        "positive": y[rows] == y[cols],
        "all": torch.ones_like(rows, dtype=torch.bool),
    }[pairs]
    rows, cols = rows[keep], cols[keep]
    if len(rows) == 0:
        raise ValueError(
            f"The batch has no {pairs} pairs; pass at least two classes (negative) or two images of a class (positive)."
        )
    difference = unit[:, rows] - unit[:, cols]  # (R, pairs, D)
    length = difference.norm(dim=2)
    if bool((length == 0).any()):
        raise ValueError("Two images have identical embeddings in some draw, so their pair has no direction.")
    direction = (difference / length[..., None]).mean(dim=0)
    variances = (1.0 - direction.square().sum(dim=1)).clamp_min(0.0).numpy()
    distances = length.mean(dim=0).numpy()
    edges = np.linspace(0.0, 2.0, bins + 1)
    which = np.clip(np.digitize(distances, edges) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    sums = np.bincount(which, weights=variances, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return GradientVariance(edges, 0.5 * (edges[1:] + edges[:-1]), variance, counts, distances, variances)
