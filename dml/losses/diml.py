"""DIML training: a pair loss on the structural similarity of the parts, with the transport plan detached.

Zhao, Rao, Wang, Lu & Zhou, "Towards Interpretable Deep Metric Learning with Structural Matching", ICCV 2021
(released code github.com/wl-zhao/DIML, ``criteria/multisimilarity_diml.py``, ``criteria/margin_diml.py``). For
two images of the batch with unit local embeddings :math:`z_i, z'_j` (``model.head: diml``,
:mod:`dml.models.local`) and global ones :math:`f, f'`, the plan :math:`T` of
:func:`dml.structural.structural_similarity` is computed without gradient and

.. math::  S = \\tfrac12 \\sum_{ij} T_{ij} \\big(z_i^\\top z'_j + f^\\top f'\\big)
         = \\tfrac12 \\big(S_\\text{struct} + S_\\text{glob}\\big) \\quad (\\textstyle\\sum_{ij} T_{ij} = 1),

the matrix of these similarities goes to the base pair loss (``base``: ``multi_similarity``, as the release's MS
variant, or ``margin``). The release's margin variant instead averages the *distances*,
:math:`\\tfrac12 (\\sum T_{ij} \\lVert z_i - z'_j \\rVert + \\lVert f - f' \\rVert)`; here the margin loss sees
:math:`\\sqrt{2 - 2S}` of the same :math:`S`, a difference stated rather than hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from dml.losses.base import MetricLoss, PairLoss
from dml.losses.registry import build, register
from dml.sinkhorn import EPSILON, ITERATIONS, RELEASED_TOL
from dml.structural import structural_similarity


@register("diml")
class DIMLLoss(MetricLoss):
    """``base`` pair loss on :math:`\\tfrac12 (S_\\text{struct} + S_\\text{glob})` of every pair of the batch.

    Args:
        base: A registered pair loss (``multi_similarity`` or ``margin``); ``base_kwargs`` its hyperparameters.
        grid: The grid of the ``diml`` head (``R = grid^2`` parts); the training output is
            ``[f | z_1 | ... | z_R]``.
        marginals, epsilon, iterations, tol: As :func:`dml.structural.structural_similarity`.
    """

    def __init__(
        self,
        *,
        base: str = "multi_similarity",
        base_kwargs: Mapping[str, Any] | None = None,
        grid: int = 4,
        marginals: str = "cross-correlation",
        epsilon: float = EPSILON,
        iterations: int = ITERATIONS,
        tol: float = RELEASED_TOL,
    ) -> None:
        super().__init__()
        self.base = build(base, **dict(base_kwargs or {}))
        if not isinstance(self.base, PairLoss):
            raise ValueError(f"diml's base must be a pair loss (multi_similarity, margin, ...); got {base!r}.")
        self.grid = grid
        self.matching = {"marginals": marginals, "epsilon": epsilon, "iterations": iterations, "tol": tol}

    def split(self, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """``(global (N, D), local (N, R, D))`` from the ``diml`` head's training output."""
        parts = 1 + self.grid**2
        if embeddings.shape[1] % parts:
            raise ValueError(
                f"The diml loss expects [embedding | {self.grid}x{self.grid} local embeddings], a width divisible "
                f"by {parts}; got {embeddings.shape[1]}. Train with model.head: diml and the same grid."
            )
        d = embeddings.shape[1] // parts
        return embeddings[:, :d], embeddings[:, d:].reshape(len(embeddings), self.grid**2, d)

    def similarity(self, embeddings: Tensor) -> Tensor:
        """The ``(N, N)`` matrix :math:`\\tfrac12 (S_\\text{struct} + S_\\text{glob})`, ``T`` detached."""
        f, z = self.split(embeddings)
        n = len(f)
        a, b = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
        with torch.no_grad():
            _, plan, _ = structural_similarity(
                z[a].detach(), f[a].detach(), z[b].detach(), f[b].detach(), return_plan=True, **self.matching
            )
        s = z[a] @ z[b].transpose(1, 2)
        struct = (plan * s).sum(dim=(1, 2)).view(n, n)
        return 0.5 * (struct + f @ f.t())

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        self.base.observe(self.split(embeddings)[0])  # a miner that needs D (distance-weighted) sees the global part
        return self.base.from_similarity(self.similarity(embeddings), labels)
