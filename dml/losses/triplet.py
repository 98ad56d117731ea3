"""Triplet margin loss on cosine similarity, over all triplets of the batch ("batch-all").

Weinberger & Saul, "Distance Metric Learning for Large Margin Nearest Neighbor Classification", JMLR 2009;
Schroff, Kalenichenko & Philbin, "FaceNet", CVPR 2015 (semi-hard triplets); Hermans, Beyer & Leibe, "In Defense of
the Triplet Loss for Person Re-Identification", arXiv:1703.07737, 2017 (batch-all averaging over active triplets).

For every anchor ``a``, positive ``p`` (``y_p = y_a``, ``p != a``) and negative ``n`` (``y_n != y_a``):

.. math::  \\ell_{apn} = [s_{an} - s_{ap} + m]_+, \\qquad
           \\mathcal{L} = \\frac{1}{|\\{\\ell_{apn} > 0\\}|} \\sum_{\\ell_{apn} > 0} \\ell_{apn}

``triplets="semihard"`` keeps only the semi-hard triplets of FaceNet, whose negative is less similar than the
positive but still inside the margin: :math:`s_{ap} - m < s_{an} < s_{ap}`. All ``N^3`` triplets are formed as
one tensor, which is fine for batches up to a few hundred embeddings.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import MetricLoss, cosine_similarity_matrix, mean_of_positive, pair_masks
from dml.losses.registry import register

_TRIPLETS = ("all", "semihard")


@register("triplet")
class TripletLoss(MetricLoss):
    """Batch-all triplet margin loss on cosine similarity; see the module docstring for the equation."""

    def __init__(self, *, margin: float = 0.1, triplets: str = "all") -> None:
        super().__init__()
        if triplets not in _TRIPLETS:
            raise ValueError(f"Unknown triplets={triplets!r} for the triplet loss; choose one of {list(_TRIPLETS)}.")
        if margin < 0:
            raise ValueError(f"The triplet margin must be >= 0; got {margin}.")
        self.margin = margin
        self.triplets = triplets

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        sim = cosine_similarity_matrix(embeddings)
        pos, neg = pair_masks(labels)
        s_ap = sim[:, :, None]  # [a, p, 1]
        s_an = sim[:, None, :]  # [a, 1, n]
        valid = pos[:, :, None] & neg[:, None, :]
        if self.triplets == "semihard":
            valid = valid & (s_an < s_ap)
        losses = F.relu(s_an - s_ap + self.margin)[valid]
        return mean_of_positive(losses, embeddings)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, triplets={self.triplets!r}"
