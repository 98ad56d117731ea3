"""The similarity scatter: each image's nearest same-class against its nearest other-class similarity.

Liu, Xuan, Zhang, Stylianou & Pless, "Visualizing How Embeddings Generalize", ICML 2019 workshop, arXiv:1909.07464;
released code github.com/GWUvision/Embedding_visualization (``Scatter.py`` at commit 3bbbf28). For image ``i`` with
unit embedding ``f_i``:

.. math::  x_i = \\max_{j \\ne i,\\ y_j = y_i} f_i^\\top f_j , \\qquad y_i = \\max_{j:\\ y_j \\ne y_i} f_i^\\top f_j .

A point above the diagonal (``y_i > x_i``) is an image whose nearest neighbour belongs to another class, an R@1
failure, so the share of points above the diagonal is ``1 - R@1`` (ties counted as successes here). It is the
triplet-space diagnostic of Xuan et al. (:mod:`dml.diagnostics.triplet_space`) without its duplicate threshold.
Images alone in their class have no ``x_i``: they are marked invalid and left out. The released plot fixes both axes
to ``[0.3, 1]`` (``limits="released"``); ``limits="auto"`` fits the data. Rows are processed in chunks, so memory
is ``O(chunk x N)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dml.diagnostics._inputs import as_float64_matrix, as_label_array, check_positive_int
from dml.utils.checks import check_choice

__all__ = ["RELEASED_LIMITS", "SimilarityScatter", "plot_similarity_scatter", "similarity_scatter"]

RELEASED_LIMITS = (0.3, 1.0)


@dataclass(frozen=True)
class SimilarityScatter:
    """Per image: nearest same-class similarity ``positive``, nearest other-class similarity ``negative``.

    ``valid`` is False for images without a same-class or other-class partner (their entries are NaN);
    ``failure_rate`` is the share of valid images with ``negative > positive`` (= 1 - R@1).
    """

    positive: np.ndarray
    negative: np.ndarray
    valid: np.ndarray
    failure_rate: float


def similarity_scatter(embeddings: Any, labels: Any, *, chunk: int = 1024) -> SimilarityScatter:
    """The scatter coordinates of (N, D) ``embeddings`` with N ``labels`` (cosine similarity, self excluded)."""
    x = torch.from_numpy(as_float64_matrix(embeddings, labels, min_rows=2))
    chunk = check_positive_int(chunk, "chunk")
    _, codes = np.unique(as_label_array(labels).reshape(-1), return_inverse=True)
    y = torch.from_numpy(codes.reshape(-1))
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("Some embeddings are all-zero rows, which have no cosine similarity; drop or fix them.")
    unit = x / norms
    positive, negative = torch.empty(len(x), dtype=torch.float64), torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), chunk):
        rows = torch.arange(start, min(start + chunk, len(x)))
        sim = unit[rows] @ unit.T
        same = y[rows, None] == y[None, :]
        self_mask = rows[:, None] == torch.arange(len(x))[None, :]
        positive[rows] = sim.masked_fill(~same | self_mask, -np.inf).max(dim=1).values
        negative[rows] = sim.masked_fill(same, -np.inf).max(dim=1).values
    valid = torch.isfinite(positive) & torch.isfinite(negative)
    if not bool(valid.any()):
        raise ValueError(
            "No image has both a same-class and an other-class partner; pass at least two classes with two images."
        )
    positive, negative = positive.where(valid, torch.nan), negative.where(valid, torch.nan)
    failures = (negative[valid] > positive[valid]).double().mean()
    return SimilarityScatter(positive.numpy(), negative.numpy(), valid.numpy(), float(failures))


def plot_similarity_scatter(
    scatters: SimilarityScatter | dict[str, SimilarityScatter],
    *,
    axes: Any = None,
    limits: str = "released",
    size: float = 6.0,
) -> Any:
    """One panel per scatter (e.g. ``{"train": ..., "test": ...}``), failures (above the diagonal) in red.

    ``limits="released"`` fixes both axes to ``[0.3, 1]`` as the released ``Scatter.py`` does (points outside are
    not drawn; the title still counts them); ``"auto"`` fits the data. Returns the axes.
    """
    import matplotlib.pyplot as plt

    check_choice(limits, ("released", "auto"), name="limits")
    if isinstance(scatters, SimilarityScatter):
        scatters = {"": scatters}
    if axes is None:
        _, axes = plt.subplots(1, len(scatters), figsize=(3.4 * len(scatters), 3.4), squeeze=False, sharey=True)
        axes = axes[0]
    for ax, (name, scatter) in zip(np.atleast_1d(axes), scatters.items()):
        px, ny = scatter.positive[scatter.valid], scatter.negative[scatter.valid]
        failed = ny > px
        ax.scatter(px[~failed], ny[~failed], s=size, c="tab:blue", edgecolors="none", alpha=0.6)
        ax.scatter(px[failed], ny[failed], s=size, c="tab:red", edgecolors="none", alpha=0.8)
        if limits == "released":
            low, high = RELEASED_LIMITS
        else:
            low = float(min(px.min(), ny.min())) - 0.02
            high = min(1.0, float(max(px.max(), ny.max()))) + 0.02
        ax.plot([low, high], [low, high], color="0.3", ls="--", lw=1)
        ax.set(xlim=(low, high), ylim=(low, high), aspect="equal", xlabel="nearest same-class similarity")
        ax.set_title(f"{name + ': ' if name else ''}{scatter.failure_rate:.1%} above the diagonal", fontsize=10)
    np.atleast_1d(axes)[0].set_ylabel("nearest other-class similarity")
    return axes
