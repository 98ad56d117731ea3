"""Uniform negative sampling: the baseline of distance-weighted sampling.

Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567,
compare distance-weighted sampling with drawing negatives uniformly at random from the batch,
``Pr(n | a) = 1 / |N_a|`` for every ``n`` with ``y_n != y_a``. Because pairwise distances concentrate near
``sqrt(2)`` (:mod:`dml.mining.distance_weighted`), uniform draws are mostly far, easy negatives.

Triplets are formed as by :class:`~dml.mining.DistanceWeightedMiner`, whose sampling this class reuses with
uniform weights: ``positives="all"`` pairs each anchor with every positive and draws one negative per pair (the
released example's layout), ``positives="random"`` draws one positive and one negative per anchor. Draws use the
global torch generator unless ``seed`` or ``generator`` is given (then part of ``state_dict()``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.mining.distance_weighted import DistanceWeightedMiner
from dml.mining.registry import register
from dml.similarity import pair_masks


@register("uniform")
class UniformNegativeMiner(DistanceWeightedMiner):
    """Negatives drawn uniformly from the anchor's other-class images; see the module docstring."""

    def __init__(
        self, *, positives: str = "all", seed: int | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(
            cutoff=0.5, nonzero_loss_cutoff=None, positives=positives, dim=2, seed=seed, generator=generator
        )

    def weights(self, sim: Tensor, labels: Tensor) -> Tensor:
        """The (N, N) float64 sampling distribution ``1 / |N_a|`` on the negatives of each anchor ``a``."""
        _, neg = pair_masks(labels)
        weight = neg.to(torch.float64)
        return weight / weight.sum(dim=1, keepdim=True).clamp_min(1.0)

    def extra_repr(self) -> str:
        return f"positives={self.positives!r}, seed={self.seed}"
