"""FaceNet semi-hard negatives.

Schroff, Kalenichenko & Philbin, "FaceNet: A Unified Embedding for Face Recognition and Clustering", CVPR 2015,
arXiv:1503.03832. A negative is *semi-hard* for the pair ``(a, p)`` when it is farther from the anchor than the
positive but still inside the margin, ``D²_ap < D²_an < D²_ap + α``. On the unit sphere ``D² = 2 - 2S``, so in
cosine similarity the rule reads

.. math::  S_{ap} - m < S_{an} < S_{ap}, \\qquad m = \\alpha / 2,

which is the rule used here (FaceNet's ``α = 0.2`` is ``margin = 0.1``, the default). Such a negative gives the
cosine triplet loss ``[S_an - S_ap + m]_+`` a positive value without being the hardest one.

Two conventions exist and ``select`` picks one:

* ``select="all"`` (default): **every** semi-hard triplet of the batch. This is what pytorch-metric-learning's
  ``TripletMarginMiner(margin=m, type_of_triplets="semihard", distance=CosineSimilarity())`` returns; PML keeps
  ``0 < S_ap - S_an <= m``, which differs from ours only on the boundary ``S_an = S_ap - m``, where the loss is 0.
  ``dml.losses.TripletLoss(triplets="semihard")`` uses the same set. Anchors without a semi-hard negative
  contribute nothing.
* ``select="one"``: every anchor-positive pair of the batch (FaceNet mines online over all anchor-positive pairs)
  with **one** negative, chosen as TensorFlow Addons' ``triplet_semihard_loss`` does: the *most similar* negative that
  is still less similar than the positive (``S_an < S_ap``; TF's "smallest ``D_an`` with ``D_an > D_ap``"), with no
  margin bound, so it may lie outside the margin and give a zero loss. ``margin`` plays no role in this mode. When
  every negative is more similar than the positive, ``fallback`` decides: ``"drop"`` (default) drops the pair;
  ``"easiest"`` takes the anchor's *least* similar negative, TF Addons' "negatives_inside" (its largest ``D_an``).
  Because all of that anchor's negatives are then harder than the positive, this is the least hard of them, not
  the hardest, although some copies of the TF code label it "hardest negative".

RevisitDML's ``batchminer/semihard.py`` is a third, stochastic convention (one random positive per anchor, a random
semi-hard negative, a random negative when there is none); it is not offered here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.mining.registry import register
from dml.mining.select import count_below, empty_triplets, expand_ranges, masked_argmin, sort_negatives
from dml.similarity import pair_masks
from dml.utils.checks import check_choice

_SELECT = ("all", "one")
_FALLBACK = ("drop", "easiest")


@register("semihard")
class SemiHardMiner(Miner):
    """FaceNet semi-hard triplets ``S_ap - margin < S_an < S_ap``; see the module docstring for the conventions."""

    def __init__(self, *, margin: float = 0.1, select: str = "all", fallback: str = "drop") -> None:
        super().__init__()
        check_choice(select, _SELECT, name="select")
        check_choice(fallback, _FALLBACK, name="fallback")
        if select == "all" and fallback != "drop":
            raise ValueError(
                "fallback only applies to select='one' (one negative per anchor-positive pair); "
                "with select='all' a pair without semi-hard negatives simply yields no triplet."
            )
        if not 0.0 <= margin <= 2.0:
            raise ValueError(f"margin is a cosine-similarity gap and must lie in [0, 2]; got {margin}.")
        self.margin = margin
        self.select = select
        self.fallback = fallback

    def mine(self, sim: Tensor, labels: Tensor) -> Triplets:
        sim = sim.detach()
        pos, neg = pair_masks(labels)
        if not bool(pos.any()) or not bool(neg.any()):
            return empty_triplets(sim.device)
        negatives = sort_negatives(sim, neg)
        below_positive = count_below(negatives, sim, inclusive=False)  # sorted position of the first S_an >= S_ap
        anchor, positive = pos.nonzero(as_tuple=True)
        if self.select == "all":
            start = count_below(negatives, sim - self.margin, inclusive=True)  # first S_an > S_ap - m
            count = (below_positive - start).clamp_min(0)[anchor, positive]
            return expand_ranges(anchor, positive, start[anchor, positive], count, negatives.order)
        last = below_positive[anchor, positive] - 1  # the largest S_an below S_ap, if it is a real negative
        found = last >= negatives.missing[anchor]
        negative = negatives.order[anchor, last.clamp_min(0)]
        if self.fallback == "easiest":
            easiest, has_negative = masked_argmin(sim, neg)
            negative = torch.where(found, negative, easiest[anchor])
            found = has_negative[anchor]
        return Triplets(anchor[found], positive[found], negative[found])

    def extra_repr(self) -> str:
        return f"margin={self.margin}, select={self.select!r}, fallback={self.fallback!r}"
