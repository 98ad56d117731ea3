"""Lifted structure loss, original and generalised, on the Euclidean distance between unit embeddings.

Oh Song, Xiang, Jegelka & Savarese, "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR 2016,
arXiv:1511.06452. Every positive pair is compared with *all* negatives of both of its ends. With
:math:`D_{ij} = \\lVert f_i - f_j \\rVert = \\sqrt{2 - 2 s_{ij}}`, margin :math:`\\alpha`, :math:`\\mathcal P` the
unordered positive pairs and :math:`N_i` the negatives of ``i``:

.. math::
    J_{ij} = \\log\\Big(\\sum_{k \\in N_i} e^{\\alpha - D_{ik}}
                   + \\sum_{l \\in N_j} e^{\\alpha - D_{jl}}\\Big) + D_{ij},
    \\qquad \\mathcal{L} = \\frac{1}{2 |\\mathcal P|} \\sum_{(i,j) \\in \\mathcal P} [J_{ij}]_+^2

Because :math:`\\log(a + b)` is ``logaddexp`` of the two per-anchor log-sum-exps, the loss costs one
(N, N) pass instead of one pass per positive pair.

``variant="generalized"`` is the per-anchor form of Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for
Person Re-Identification", arXiv:1703.07737, 2017 (also RevisitDML's ``lifted`` criterion):

.. math::  \\ell_i = \\Big[\\log \\sum_{p \\in P_i} e^{D_{ip}} + \\log \\sum_{n \\in N_i} e^{\\alpha - D_{in}}\\Big]_+,
           \\qquad \\mathcal L = \\operatorname{mean}_i \\ell_i

Where the sources differ, and what this module follows:

* We compute :math:`D` between unit embeddings (the course convention), so :math:`D \\in [0, 2]`; the default
  :math:`\\alpha = 1` is pytorch-metric-learning's default ``neg_margin``.
* pytorch-metric-learning's ``LiftedStructureLoss(neg_margin=1, pos_margin=0)`` averages
  :math:`\\tfrac12 [J_{ij}]_+^2` over *ordered* positive pairs, which is the same number as the equation above; it
  builds a (positive pairs × negative pairs) matrix, which is why it is slow for large batches.
* For ``generalized`` we average over the anchors that have at least one positive and one negative;
  pytorch-metric-learning's ``GeneralizedLiftedStructureLoss`` averages over all anchors and sets a missing term to 0.
  They agree when every anchor has a positive and a negative (any P×K batch with K ≥ 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import PairLoss, euclidean_from_similarity, masked_logsumexp, pair_masks, zero_loss
from dml.losses.registry import register
from dml.utils.checks import check_choice

_VARIANTS = ("original", "generalized")


@register("lifted_structure")
class LiftedStructureLoss(PairLoss):
    """Lifted structure loss (Oh Song et al. 2016) or its generalised form; see the module docstring."""

    def __init__(self, *, margin: float = 1.0, variant: str = "original") -> None:
        super().__init__()
        check_choice(variant, _VARIANTS, name="variant")
        self.margin = margin
        self.variant = variant

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        pos, neg = pair_masks(labels)
        dist = euclidean_from_similarity(sim)
        neg_lse = masked_logsumexp(self.margin - dist, neg, dim=1)  # log sum_{k in N_i} exp(alpha - D_ik)
        if self.variant == "generalized":
            anchors = pos.any(dim=1) & neg.any(dim=1)
            if not bool(anchors.any()):
                return zero_loss(sim)
            pos_lse = masked_logsumexp(dist, pos, dim=1)
            return F.relu(pos_lse[anchors] + neg_lse[anchors]).mean()
        if not bool(pos.any()) or not bool(neg.any()):
            return zero_loss(sim)
        i, j = pos.nonzero(as_tuple=True)  # ordered pairs: each unordered pair twice, with the same J
        joint = torch.logaddexp(neg_lse[i], neg_lse[j]) + dist[i, j]
        return F.relu(joint).pow(2).sum() / (2 * len(i))

    def extra_repr(self) -> str:
        return f"margin={self.margin}, variant={self.variant!r}"
