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
* The 2019 code summed over anchors with a default ``σ = 1`` that its ``run.py`` overrode to 0.1; the 2020 code
  averages. Here: mean, ``temperature=0.1``.
* Positives with ``s > duplicate_threshold = 0.9999`` are treated as duplicates of the anchor and skipped, in both
  versions.

pytorch-metric-learning has no EPHN loss; its ``BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard")``
selects the same triplets (without the duplicate threshold and the validity rule).
"""

from __future__ import annotations

from torch import Tensor

from dml.losses.base import PairLoss, mean_or_zero
from dml.losses.nca import nca_triplet_losses
from dml.losses.registry import register
from dml.mining import EasyPositiveMiner
from dml.utils.checks import check_choice

_NEGATIVES = ("hardest", "semihard")
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
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature} (the released code uses 0.1).")
        check_choice(negatives, _NEGATIVES, name="negatives")
        check_choice(validity, VALIDITY, name="validity")
        low, high = VALIDITY[validity]
        self.temperature = temperature
        self.negatives = negatives
        self.validity = validity
        self.miner = EasyPositiveMiner(
            negatives=negatives, duplicate_threshold=duplicate_threshold, min_similarity=low, max_similarity=high
        )

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        triplets = self.miner.mine(sim, labels)
        return mean_or_zero(nca_triplet_losses(sim, triplets, self.temperature), sim)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, negatives={self.negatives!r}, validity={self.validity!r}, "
            f"duplicate_threshold={self.miner.duplicate_threshold}"
        )
