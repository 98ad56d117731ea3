"""Contrastive loss on cosine similarity.

Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006, written on the
cosine similarity :math:`s_{ij}` instead of the Euclidean distance (the form used by pytorch-metric-learning's
``ContrastiveLoss(distance=CosineSimilarity())``, see Musgrave et al., "A Metric Learning Reality Check", ECCV 2020):

.. math::
    \\ell^+_{ij} = [m_+ - s_{ij}]_+ \\quad (y_i = y_j,\\ i \\ne j), \\qquad
    \\ell^-_{ij} = [s_{ij} - m_-]_+ \\quad (y_i \\ne y_j)

.. math::
    \\mathcal{L} = \\operatorname{mean}_{(i,j) \\in \\mathcal{P}}\\ \\ell^+_{ij}
                + \\operatorname{mean}_{(i,j) \\in \\mathcal{N}}\\ \\ell^-_{ij}

Positive pairs are pulled towards similarity ``pos_margin`` (1 = identical directions) and negatives pushed below
``neg_margin``. The two means are taken separately. With ``reduction="nonzero"`` (default, as
pytorch-metric-learning's ``AvgNonZeroReducer``) each mean runs over the pairs whose loss is > 0, so easy pairs do
not dilute the gradient as training progresses; with ``reduction="all"`` over every valid pair. A term with no
pair contributes 0.

By default :math:`\\mathcal{P}` and :math:`\\mathcal{N}` are all positive and negative pairs of the batch. With
``miner=`` they are the mined pairs: a pair miner's ``Pairs`` directly, a triplet miner's ``Triplets`` as the
pairs ``(a, p)`` and ``(a, n)`` of every triplet, repeats kept (as PML's ``convert_to_pairs`` does), so a pair that
appears in several triplets weighs more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import PairLoss, mean_of_positive, mean_or_zero, pair_masks
from dml.losses.registry import register
from dml.mining import Miner, Pairs, resolve
from dml.utils.checks import check_choice

_REDUCTIONS = ("nonzero", "all")


@register("contrastive")
class ContrastiveLoss(PairLoss):
    """Contrastive loss on cosine similarity (Hadsell et al. 2006); see the module docstring for the equations."""

    def __init__(
        self,
        *,
        pos_margin: float = 1.0,
        neg_margin: float = 0.5,
        reduction: str = "nonzero",
        miner: str | Mapping[str, Any] | Miner | None = None,
    ) -> None:
        super().__init__()
        check_choice(reduction, _REDUCTIONS, name="reduction")
        if not -1.0 <= neg_margin <= 1.0 or not -1.0 <= pos_margin <= 1.0:
            raise ValueError(
                f"Margins are cosine similarities and must lie in [-1, 1]; got pos_margin={pos_margin}, "
                f"neg_margin={neg_margin}."
            )
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.reduction = reduction
        self.miner = resolve(miner)

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        if self.miner is None:
            pos, neg = pair_masks(labels)
            s_pos, s_neg = sim[pos], sim[neg]
        else:
            mined = self.miner.mine(sim, labels)
            if isinstance(mined, Pairs):
                s_pos, s_neg = sim[mined.anchor_pos, mined.positive], sim[mined.anchor_neg, mined.negative]
            else:
                s_pos, s_neg = sim[mined.anchor, mined.positive], sim[mined.anchor, mined.negative]
        reduce = mean_of_positive if self.reduction == "nonzero" else mean_or_zero
        return reduce(F.relu(self.pos_margin - s_pos), sim) + reduce(F.relu(s_neg - self.neg_margin), sim)

    def extra_repr(self) -> str:
        return f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, reduction={self.reduction!r}"
