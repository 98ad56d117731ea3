"""Multi-class N-pair loss on cosine similarity with a temperature.

Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016. From ``M`` classes take
one pair each, anchor :math:`a_m` and positive :math:`p_m`; every other class's positive is a negative of
:math:`a_m`. With cosine similarity :math:`s` and temperature :math:`\\tau`:

.. math::
    \\mathcal L = \\frac{1}{M} \\sum_{m=1}^{M}
        \\log\\Big(1 + \\sum_{k \\ne m} e^{(s(a_m, p_k) - s(a_m, p_m)) / \\tau}\\Big)
      = \\frac{1}{M} \\sum_m -\\log \\frac{e^{s(a_m, p_m)/\\tau}}{\\sum_k e^{s(a_m, p_k)/\\tau}},

a softmax cross-entropy over the (M, M) anchor–positive similarity matrix with the diagonal as targets.

**Which pair per class.** The anchor of a class is its first sample in the batch and the positive its second
(pytorch-metric-learning's ``NPairsLoss`` picks the same pair). Classes with a single sample are skipped, and
samples after the second of a class are unused, so the loss is meant for batches of K = 2 images per class
(Sohn's N-pair-mc batches); with fewer than two classes that have a pair there is no negative and the loss is 0.

Where the sources differ, and what this module follows:

* The paper uses the *unnormalised* inner product :math:`f_a^\\top f_p` and adds an L2 penalty
  :math:`\\lambda \\frac{1}{M}\\sum \\lVert f \\rVert^2` to keep the norms bounded (so does RevisitDML's ``npair``
  criterion); pytorch-metric-learning's default is the same unnormalised dot product without the penalty. The course
  works on unit embeddings, so we use cosine similarity, which needs the temperature :math:`\\tau` in place of the
  norm to sharpen the softmax (the same role as in NT-Xent / SupCon); there is no penalty term. ``temperature=1``
  equals pytorch-metric-learning's ``NPairsLoss(distance=CosineSimilarity())``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import PairLoss, zero_loss
from dml.losses.registry import register


def first_pair_per_class(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Indices of the first and second sample of every class that has at least two samples, in label order."""
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.ones_like(sorted_labels, dtype=torch.bool)
    starts[1:] = sorted_labels[1:] != sorted_labels[:-1]
    start = starts.nonzero(as_tuple=True)[0]
    second = (start + 1).clamp_max(len(labels) - 1)
    has_pair = (start + 1 < len(labels)) & (sorted_labels[second] == sorted_labels[start])
    return order[start[has_pair]], order[second[has_pair]]


@register("npair")
class NPairLoss(PairLoss):
    """Multi-class N-pair loss (Sohn 2016) on cosine similarity; see the module docstring for the equation."""

    def __init__(self, *, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"The N-pair temperature must be > 0; got {temperature}.")
        self.temperature = temperature

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        # Same value as from_similarity(S), but forms only the (M, M) block of S that the loss reads.
        anchor, positive = first_pair_per_class(labels)
        if len(anchor) < 2:
            return zero_loss(embeddings)
        return self._from_block(F.normalize(embeddings[anchor], dim=1) @ F.normalize(embeddings[positive], dim=1).t())

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        anchor, positive = first_pair_per_class(labels)
        if len(anchor) < 2:
            return zero_loss(sim)
        return self._from_block(sim[anchor][:, positive])

    def _from_block(self, block: Tensor) -> Tensor:
        targets = torch.arange(len(block), device=block.device)
        return F.cross_entropy(block / self.temperature, targets)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
