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
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import MetricLoss, cosine_similarity_matrix, mean_of_positive, mean_or_zero, pair_masks
from dml.losses.registry import register

_REDUCTIONS = ("nonzero", "all")


@register("contrastive")
class ContrastiveLoss(MetricLoss):
    """Contrastive loss on cosine similarity (Hadsell et al. 2006); see the module docstring for the equations."""

    def __init__(self, *, pos_margin: float = 1.0, neg_margin: float = 0.5, reduction: str = "nonzero") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Unknown reduction {reduction!r} for the contrastive loss; "
                             f"choose one of {list(_REDUCTIONS)}.")
        if not -1.0 <= neg_margin <= 1.0 or not -1.0 <= pos_margin <= 1.0:
            raise ValueError(f"Margins are cosine similarities and must lie in [-1, 1]; got pos_margin={pos_margin}, "
                             f"neg_margin={neg_margin}.")
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.reduction = reduction

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        sim = cosine_similarity_matrix(embeddings)
        pos, neg = pair_masks(labels)
        pos_losses = F.relu(self.pos_margin - sim[pos])
        neg_losses = F.relu(sim[neg] - self.neg_margin)
        reduce = mean_of_positive if self.reduction == "nonzero" else mean_or_zero
        return reduce(pos_losses, embeddings) + reduce(neg_losses, embeddings)

    def extra_repr(self) -> str:
        return f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, reduction={self.reduction!r}"
