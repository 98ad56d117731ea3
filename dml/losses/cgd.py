"""CGD's training loss: batch-hard triplet on the combined descriptor + label-smoothed softmax on the first one.

Jun, Ko, Kim, Kim & Kim, "Combination of Multiple Global Descriptors for Image Retrieval", arXiv:1903.10663, 2019;
the released training code is the PyTorch re-implementation github.com/leftthomas/CGD (``utils.py``,
``train.py``), whose loss this is. For the unit embeddings :math:`f` (``model.head: cgd``, :mod:`dml.models.cgd`)
and Euclidean distances :math:`d_{ij} = \\lVert f_i - f_j \\rVert`,

.. math::
   L_\\text{triplet} = \\frac{1}{N} \\sum_a \\big[\\max_{p \\in P_a} d_{ap} - \\min_{n \\in N_a} d_{an} + m\\big]_+,
   \\qquad m = 0.1,

and on the first descriptor's raw vector :math:`g^{(1)}`, through ``BatchNorm1d`` and ``Linear(C, num_classes)``
(logits :math:`z`), the softmax with temperature :math:`\\tau` and label smoothing :math:`\\varepsilon`:

.. math::
   \\log p = \\operatorname{log\\_softmax}(z / \\tau), \\quad
   L_\\text{softmax} = -(1 - \\varepsilon) \\log p_y - \\frac{\\varepsilon}{C} \\sum_c \\log p_c,
   \\qquad \\varepsilon = 0.1,\\ \\tau = 0.5,

(the smoothing mass spread over all :math:`C` classes, the true one included). The loss is
:math:`L = L_\\text{triplet} + L_\\text{softmax}`, unweighted as in the re-implementation (the paper writes a weight
:math:`\\lambda` whose value is not established here). ``auxiliary=False`` is the triplet loss alone.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dml.losses.base import MetricLoss, cosine_similarity_matrix, euclidean_from_similarity, pair_masks, zero_loss
from dml.losses.proxy import check_class_indices
from dml.losses.registry import register


def batch_hard_euclidean(embeddings: Tensor, labels: Tensor, *, margin: float) -> Tensor:
    """CGD's ranking term: per anchor its farthest positive and nearest negative (Euclidean), hinge, mean."""
    distance = euclidean_from_similarity(cosine_similarity_matrix(embeddings))
    pos, neg = pair_masks(labels)
    valid = pos.any(dim=1) & neg.any(dim=1)
    if not bool(valid.any()):
        return zero_loss(embeddings)
    hardest_pos = distance.masked_fill(~pos, float("-inf")).amax(dim=1)
    hardest_neg = distance.masked_fill(~neg, float("inf")).amin(dim=1)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


@register("cgd")
class CGDLoss(MetricLoss):
    """Batch-hard triplet (Euclidean, margin ``margin``) plus, with ``auxiliary``, the label-smoothed softmax.

    Args:
        margin: The triplet margin :math:`m`.
        smoothing: Label smoothing :math:`\\varepsilon`. temperature: :math:`\\tau` (logits divided by it).
        auxiliary: Add the softmax term; the model must then be ``model.head: cgd`` with
            ``head_kwargs: {auxiliary: true}``, whose training output is ``[f | g^{(1)}]``.
        num_classes, embedding_dim, feature_dim: The training classes, ``D`` and the width of :math:`g^{(1)}`;
            ``dml train`` fills them in from the data and the model.
    """

    sized_by_run = True  # dml.train.build_loss fills in num_classes, embedding_dim and feature_dim

    def __init__(
        self,
        *,
        margin: float = 0.1,
        smoothing: float = 0.1,
        temperature: float = 0.5,
        auxiliary: bool = True,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        if margin < 0 or not 0 <= smoothing < 1 or temperature <= 0:
            raise ValueError(
                f"cgd needs margin >= 0, 0 <= smoothing < 1 and temperature > 0; got {margin}, {smoothing}, "
                f"{temperature}."
            )
        self.margin, self.smoothing, self.temperature, self.auxiliary = margin, smoothing, temperature, auxiliary
        self.embedding_dim = embedding_dim
        if auxiliary:
            sizes = {"num_classes": num_classes, "embedding_dim": embedding_dim, "feature_dim": feature_dim}
            missing = [key for key, value in sizes.items() if not isinstance(value, int) or value < 1]
            if missing:
                raise ValueError(
                    f"The cgd loss with auxiliary=True needs positive integers {missing} (dml train fills them in "
                    "with model.head: cgd and head_kwargs {auxiliary: true}); or set auxiliary: false."
                )
            self.num_classes = num_classes
            self.classifier = nn.Sequential(nn.BatchNorm1d(feature_dim), nn.Linear(feature_dim, num_classes))

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if not self.auxiliary:
            return batch_hard_euclidean(embeddings, labels, margin=self.margin)
        width = self.embedding_dim + self.classifier[0].num_features
        if embeddings.shape[1] != width:
            raise ValueError(
                f"The cgd loss expects [embedding | first descriptor] of width {self.embedding_dim} + "
                f"{self.classifier[0].num_features} = {width}, got {embeddings.shape[1]}; train with model.head: "
                "cgd and head_kwargs {auxiliary: true}, or set loss.kwargs.auxiliary: false."
            )
        check_class_indices(labels, self.num_classes, "The cgd loss's auxiliary classifier")
        f, first = embeddings[:, : self.embedding_dim], embeddings[:, self.embedding_dim :]
        ranking = batch_hard_euclidean(f, labels, margin=self.margin)
        logits = self.classifier(first) / self.temperature
        return ranking + F.cross_entropy(logits, labels, label_smoothing=self.smoothing)

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, smoothing={self.smoothing}, temperature={self.temperature}, "
            f"auxiliary={self.auxiliary}"
        )
