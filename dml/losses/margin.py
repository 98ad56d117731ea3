"""Margin loss with a learnable boundary β, on the Euclidean distance between unit embeddings.

Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567.
A pair is penalised when it sits on the wrong side of a band of half-width :math:`\\alpha` around the boundary
:math:`\\beta`. With :math:`D_{ij} = \\lVert f_i - f_j \\rVert = \\sqrt{2 - 2 s_{ij}}` and :math:`\\beta_i` the
boundary of anchor ``i`` (one scalar, or one entry per class :math:`\\beta_{y_i}`):

.. math::
    \\ell^+_{ij} = [D_{ij} - \\beta_i + \\alpha]_+ , \\qquad \\ell^-_{ik} = [\\beta_i - D_{ik} + \\alpha]_+

.. math::
    \\mathcal L = \\frac{\\sum_{(i,j)} \\ell^+_{ij} + \\sum_{(i,k)} \\ell^-_{ik} + \\nu \\sum_t \\beta_{a_t}}
                     {\\#\\{\\text{terms} > 0\\}}

**Which pairs.** With ``miner=None`` every ordered positive pair and every ordered negative pair of the batch is a
term (the paper's pairwise loss over all pairs). With a miner (anything :func:`dml.mining.resolve` accepts: a name
from :func:`dml.mining.available`, a mapping ``{"name": ..., **hyperparameters}`` or a :class:`~dml.mining.Miner`),
the miner runs on the detached similarity matrix and its :class:`~dml.mining.Pairs` are used as they are, or its
:class:`~dml.mining.Triplets` ``(a, p, n)`` each give one positive term ``(a, p)`` and one negative term
``(a, n)``. Wu et al. train it with distance-weighted sampling (``miner="distance_weighted"``). The regulariser sums
:math:`\\beta_{a_t}` over the tuples ``t``: one per pair, or one per triplet.

Where the sources differ, and what this module follows:

* **Normalisation.** We divide by the number of non-zero terms, as the released MXNet code
  (``example/gluon/embedding_learning/model.py::MarginLoss``) and pytorch-metric-learning (``DivisorReducer``) do;
  a batch in which every term is 0 gives 0.
* **Triplets.** The released sampler and pytorch-metric-learning's ``MarginLoss`` (``triplets_per_anchor="all"``
  by default) form triplets, so a positive pair is counted once per negative drawn with it; our default uses each
  pair once. Given the same triplets, the two agree.
* **The ν term.** The released code adds :math:`\\nu \\sum_t \\beta_{a_t}` only for class-specific β and divides it
  by the count, as we do for both kinds; pytorch-metric-learning does the same for class-specific β but adds
  :math:`\\nu \\beta` undivided for a scalar β. ν = 0 (the default everywhere) removes the difference.
* **Learning β.** β is an ``nn.Parameter`` by default (the released code learns it, with its own learning rate
  0.1); ``learn_beta=False`` keeps it fixed (pytorch-metric-learning's default). Defaults α = 0.2, β = 1.2, ν = 0 as
  in both. The paper's per-image β term is not implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.losses.base import PairLoss, euclidean_from_similarity, pair_masks, zero_loss
from dml.losses.proxy import check_class_indices
from dml.losses.registry import register
from dml.mining import Miner, Pairs, Triplets, resolve


@register("margin")
class MarginLoss(PairLoss):
    """Margin loss (Wu et al. 2017) with learnable β; see the module docstring for the equation and options.

    Args:
        margin: α, the half-width of the band around β (in distance units; unit embeddings have D in [0, 2]).
        beta: Initial boundary β.
        nu: Weight ν of the β regulariser.
        num_classes: ``None`` for one scalar β; an integer C for one β per class (labels must then lie in
            0..C-1, see :mod:`dml.losses.proxy` for remapping class ids).
        learn_beta: Make β an ``nn.Parameter`` (``True``) or a fixed buffer.
        miner: ``None`` (all pairs), a registered miner name, a mapping ``{"name": ..., **hyperparameters}``
            (the form a config file gives) or a :class:`~dml.mining.Miner` (see :func:`dml.mining.resolve`).
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        beta: float = 1.2,
        nu: float = 0.0,
        num_classes: int | None = None,
        learn_beta: bool = True,
        miner: str | Mapping[str, Any] | Miner | None = None,
    ) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"The margin-loss margin (alpha) must be >= 0; got {margin}.")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(
                f"num_classes must be None (one scalar beta) or a positive integer (one beta per "
                f"class); got {num_classes!r}."
            )
        self.margin = margin
        self.nu = nu
        self.num_classes = num_classes
        initial = torch.full((num_classes or 1,), float(beta))
        if learn_beta:
            self.beta = nn.Parameter(initial)
        else:
            self.register_buffer("beta", initial)
        self.miner = resolve(miner)

    def multiplicities(self, sim: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """How often each pair enters as a positive and as a negative term, ``(N, N)`` each, and how often each
        sample is the anchor of a tuple, ``(N,)`` (for the regulariser); all in ``sim``'s dtype.

        Counting instead of gathering one entry per tuple keeps the cost O(N^2) however many triplets a miner
        returns (all triplets of a 512 batch are 0.8 million).
        """
        n = len(labels)
        if self.miner is None:
            pos, neg = pair_masks(labels)
            pos_count, neg_count = pos.to(sim.dtype), neg.to(sim.dtype)
            return pos_count, neg_count, pos_count.sum(dim=1) + neg_count.sum(dim=1)
        mined = self.miner.mine(sim.detach(), labels)
        if isinstance(mined, Triplets):
            pa, pb, na, nb, anchors = mined.anchor, mined.positive, mined.anchor, mined.negative, mined.anchor
        elif isinstance(mined, Pairs):
            pa, pb, na, nb = mined
            anchors = torch.cat([pa, na])
        else:
            raise TypeError(
                f"The margin loss needs its miner to return dml.mining.Pairs or Triplets; "
                f"{type(self.miner).__name__} returned {type(mined).__name__}."
            )

        def count(index: Tensor, length: int) -> Tensor:
            return torch.bincount(index, minlength=length).to(sim.dtype)

        return (count(pa * n + pb, n * n).view(n, n), count(na * n + nb, n * n).view(n, n), count(anchors, n))

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        if self.num_classes is not None:
            check_class_indices(
                labels, self.num_classes, f"The margin loss with one beta per class (num_classes={self.num_classes})"
            )
        pos_count, neg_count, anchor_count = self.multiplicities(sim, labels)
        beta = self.beta.to(sim.dtype)
        beta = beta[labels] if self.num_classes is not None else beta.expand(len(labels))  # beta of each anchor
        dist = euclidean_from_similarity(sim)
        pos_losses = F.relu(dist - beta[:, None] + self.margin)
        neg_losses = F.relu(beta[:, None] - dist + self.margin)
        count = int((pos_count * (pos_losses > 0)).sum() + (neg_count * (neg_losses > 0)).sum())
        if count == 0:
            return zero_loss(sim)
        total = (pos_count * pos_losses).sum() + (neg_count * neg_losses).sum()
        if self.nu:
            total = total + self.nu * (anchor_count * beta).sum()
        return total / count

    def extra_repr(self) -> str:
        kind = "scalar" if self.num_classes is None else f"per-class ({self.num_classes})"
        return f"margin={self.margin}, beta={kind}, nu={self.nu}, learn_beta={isinstance(self.beta, nn.Parameter)}"
