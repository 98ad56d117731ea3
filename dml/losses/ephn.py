"""Easy positive with hard negative (EPHN) or semi-hard negative (EPSHN).

Xuan, Stylianou & Pless, "Improved Embeddings with Easy Positive Triplet Mining", WACV 2020, arXiv:1904.04370.
Each anchor keeps one triplet, its most similar positive ``p*`` and its hardest (EPHN) or semi-hard (EPSHN,
``s_an <= s_ap*``) negative ``n*`` (:class:`dml.mining.EasyPositiveMiner`), and the loss is the NCA two-way softmax
with temperature ``τ = 0.1``:

.. math::  \\mathcal{L} = \\operatorname{mean}_{a\\ \\text{valid}}
           -\\log \\frac{e^{s_{ap^*}/\\tau}}{e^{s_{ap^*}/\\tau} + e^{s_{an^*}/\\tau}}

Only the easy positive is pulled, so a class may spread into several clusters as long as every image has a close
same-class neighbour.

Where the versions differ (released code: littleredxh/EasyPositiveHardNegative ``_code/Loss.py``):

* ``validity="2020"`` (default; July 2020 code): an anchor counts only if ``s_ap* > 0`` and ``s_an* > 0``.
  ``"2019"`` (initial code): ``> -1``, i.e. both exist. ``"sct"``: ``-1 < s < 1``, the rule of the SCT release
  (littleredxh/HardNegative), used by its ``hn`` / ``shn`` baselines (:class:`dml.losses.SCTLoss`,
  ``mode="hn"|"shn"``), which are exactly this loss.
* The 2019 code (initial commit 436c344, ``loss = Prob[Mask_not_drop].sum()``) summed over the valid anchors,
  with a default ``σ = 1`` that its ``run.py`` overrode to 0.1; the 2020 code (commit 22c3d58d56b9) averages.
  ``reduction="mean"`` (default) is the 2020 loss, ``reduction="sum"`` the 2019 one,
  ``Σ_{a valid} -log(e^{s_ap*/τ} / (e^{s_ap*/τ} + e^{s_an*/τ}))``, whose gradient, and hence the learning rate
  it needs, scales with the number of valid anchors. Both give 0 (with a gradient path) when no anchor is valid.
  ``temperature=0.1`` in both.
* Positives with ``s > duplicate_threshold = 0.9999`` are treated as duplicates of the anchor and skipped, in both
  versions.

pytorch-metric-learning has no EPHN loss; its ``BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard")``
selects the same triplets (without the duplicate threshold and the validity rule).
"""

from __future__ import annotations

from torch import Tensor

from dml.losses.base import PairLoss, mean_or_zero, zero_loss
from dml.losses.nca import nca_triplet_losses
from dml.losses.registry import register
from dml.mining import EasyPositiveMiner
from dml.utils.checks import check_choice

_NEGATIVES = ("hardest", "semihard")
_REDUCTIONS = ("mean", "sum")
VALIDITY = {"2020": (0.0, None), "2019": (-1.0, None), "sct": (-1.0, 1.0)}


@register("ephn")
class EPHNLoss(PairLoss):
    """Easy-positive NCA loss with hardest (EPHN) or semi-hard (EPSHN) negatives; see the module docstring."""

    def __init__(
        self,
        *,
        temperature: float = 0.1,
        negatives: str = "hardest",
        validity: str = "2020",
        duplicate_threshold: float = 0.9999,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature} (the released code uses 0.1).")
        check_choice(negatives, _NEGATIVES, name="negatives")
        check_choice(validity, VALIDITY, name="validity")
        check_choice(reduction, _REDUCTIONS, name="reduction")
        low, high = VALIDITY[validity]
        self.temperature = temperature
        self.negatives = negatives
        self.validity = validity
        self.reduction = reduction
        self.miner = EasyPositiveMiner(
            negatives=negatives, duplicate_threshold=duplicate_threshold, min_similarity=low, max_similarity=high
        )

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        losses = nca_triplet_losses(sim, self.miner.mine(sim, labels), self.temperature)
        if self.reduction == "sum":
            return losses.sum() if losses.numel() else zero_loss(sim)
        return mean_or_zero(losses, sim)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, negatives={self.negatives!r}, validity={self.validity!r}, "
            f"duplicate_threshold={self.miner.duplicate_threshold}, reduction={self.reduction!r}"
        )
