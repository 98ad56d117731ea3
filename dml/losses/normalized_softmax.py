"""Normalized softmax: a classification loss with unit class weights and a temperature, used as a DML baseline.

Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning", BMVC 2019, arXiv:1811.12649. With unit
embedding :math:`f`, unit class weights :math:`\\hat w_c` (the proxies of :class:`~dml.losses.proxy.ProxyLoss`) and
temperature :math:`\\sigma`:

.. math::  \\ell = -\\log \\frac{e^{f^\\top \\hat w_y / \\sigma}}{\\sum_{c} e^{f^\\top \\hat w_c / \\sigma}},
           \\qquad \\mathcal L = \\operatorname{mean}_i\\, \\ell_i

It is the posterior of a von Mises–Fisher mixture with concentration :math:`\\kappa = 1/\\sigma`, and differs from
ProxyNCA++ (:class:`~dml.losses.proxy.ProxyNCALoss`) only in the scale of the logits (:math:`1/\\sigma` against
:math:`2/T`, 20 against 18 at the defaults).

Sources: we know of no official code; pytorch-metric-learning's ``NormalizedSoftmaxLoss`` (weights stored as
``(embedding_dim, num_classes)``, temperature 0.05, weights initialised N(0, 1)) and RevisitDML's ``softmax``
criterion compute this form. We store the weights as ``(num_classes, embedding_dim)`` like the other proxies, use
``temperature=0.05`` and N(0, 1) initialisation (the initial scale does not change the loss, which normalises the
weights). The paper's other ingredients (layer norm on the embedding, class-balanced sampling) belong to the model
and the sampler.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dml.losses.proxy import ProxyLoss
from dml.losses.registry import register


@register("normalized_softmax")
class NormalizedSoftmaxLoss(ProxyLoss):
    """Normalized softmax cross-entropy (Zhai & Wu 2019); see the module docstring for the equation."""

    def __init__(
        self, *, num_classes: int | None = None, embedding_dim: int | None = None, temperature: float = 0.05
    ) -> None:
        super().__init__("normalized_softmax", num_classes, embedding_dim, lambda tensor: tensor.normal_())
        if temperature <= 0:
            raise ValueError(f"The normalized_softmax temperature must be > 0; got {temperature}.")
        self.temperature = temperature

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(sim / self.temperature, labels)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, temperature={self.temperature}"
