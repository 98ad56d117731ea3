"""Triplet margin loss on cosine similarity: batch-all, semi-hard, batch-hard or mined triplets.

Weinberger & Saul, "Distance Metric Learning for Large Margin Nearest Neighbor Classification", JMLR 2009;
Schroff, Kalenichenko & Philbin, "FaceNet", CVPR 2015, arXiv:1503.03832 (semi-hard triplets); Hermans, Beyer &
Leibe, "In Defense of the Triplet Loss for Person Re-Identification", arXiv:1703.07737, 2017 (batch-all averaging
over active triplets; batch-hard triplets).

For an anchor ``a``, positive ``p`` (``y_p = y_a``, ``p != a``) and negative ``n`` (``y_n != y_a``):

.. math::  \\ell_{apn} = [s_{an} - s_{ap} + m]_+, \\qquad
           \\mathcal{L} = \\frac{1}{|\\{\\ell_{apn} > 0\\}|} \\sum_{\\ell_{apn} > 0} \\ell_{apn}

over the triplets ``T`` chosen by ``triplets``:

* ``"all"`` (default): every valid triplet ("batch all").
* ``"semihard"``: FaceNet's semi-hard triplets, ``s_ap - m < s_an < s_ap`` (every one of them, the convention of
  pytorch-metric-learning's ``TripletMarginMiner(type_of_triplets="semihard")``; see :mod:`dml.mining.semihard`,
  whose ``select="one"`` gives the TensorFlow Addons convention through ``miner=``).
* ``"hardest"``: batch hard, one triplet per anchor with its least similar positive and most similar negative
  (:class:`dml.mining.HardestNegativeMiner` with ``positives="hardest"``; PML's ``BatchHardMiner``).

``miner=`` (a registered name, a ``{"name": ..., **hyperparameters}`` mapping or a :class:`dml.mining.Miner`)
replaces the rule by any triplet miner. ``reduction="nonzero"`` (default; PML's ``AvgNonZeroReducer``) averages over
the triplets with a positive loss, ``reduction="all"`` over every triplet in ``T`` (the mean of Hermans et al.).

Cost. ``"all"`` and ``"semihard"`` never form the ``N^3`` triplet tensor. For each anchor the negative
similarities are sorted once; for a positive ``p`` the active negatives are those with ``s_an > s_ap - m`` (and
``< s_ap`` for semi-hard), a contiguous range ``[lo, hi)`` of the sorted row found by binary search, so

.. math::  \\sum_{n \\text{ active}} \\ell_{apn} = (C_{hi} - C_{lo}) - (hi - lo)(s_{ap} - m)

with ``C`` the prefix sums of the sorted row (kept in float64). This is exact, costs ``O(N^2 log N)`` time and
``O(N^2)`` memory, and autograd differentiates it through the sort and the prefix sums (the gradient is the same
pair weights, ``-|active n|`` on ``s_ap`` and ``|active p|`` on ``s_an``, divided by the count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dml.losses.base import PairLoss, mean_of_positive, mean_or_zero, pair_masks, zero_loss
from dml.losses.registry import register
from dml.mining import Miner, mine_triplets, resolve_triplet_rule
from dml.mining.select import count_below, sort_negatives
from dml.utils.checks import check_choice

_TRIPLETS = ("all", "semihard", "hardest")
_REDUCTIONS = ("nonzero", "all")


def batch_all_triplet_sums(
    sim: Tensor, labels: Tensor, margin: float, *, semihard: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(sum of the active triplet losses, number of active triplets, number of triplets considered)``.

    Active means ``s_an > s_ap - margin``. With ``semihard=True`` only the semi-hard triplets (active and
    ``s_an < s_ap``) are considered, so both counts are equal.
    The sum is float64 and differentiable with respect to ``sim``; the counts are int64.
    """
    pos, neg = pair_masks(labels)
    negatives = sort_negatives(sim, neg)
    values = torch.where(torch.isfinite(negatives.values), negatives.values, torch.zeros_like(negatives.values))
    prefix = F.pad(values.cumsum(dim=1, dtype=torch.float64), (1, 0))
    lo = count_below(negatives, sim - margin, inclusive=True)
    hi = count_below(negatives, sim, inclusive=False) if semihard else torch.full_like(lo, len(labels))
    count = (hi - lo).clamp_min(0) * pos
    considered = count.sum() if semihard else (neg.sum(dim=1) * pos.sum(dim=1)).sum()
    active_sum = prefix.gather(1, hi) - prefix.gather(1, lo.clamp_max(hi))
    per_pair = torch.where(count > 0, active_sum - count * (sim.double() - margin), torch.zeros_like(active_sum))
    return per_pair.sum(), count.sum(), considered


@register("triplet")
class TripletLoss(PairLoss):
    """Triplet margin loss on cosine similarity; see the module docstring for the equation and the options."""

    def __init__(
        self,
        *,
        margin: float = 0.1,
        triplets: str = "all",
        reduction: str = "nonzero",
        miner: str | Mapping[str, Any] | Miner | None = None,
    ) -> None:
        super().__init__()
        check_choice(triplets, _TRIPLETS, name="triplets")
        check_choice(reduction, _REDUCTIONS, name="reduction")
        if margin < 0:
            raise ValueError(f"The triplet margin must be >= 0; got {margin}.")
        self.margin = margin
        self.triplets = triplets
        self.reduction = reduction
        self.miner = resolve_triplet_rule(triplets, miner, loss="triplet")

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        if self.miner is not None:
            mined = mine_triplets(self.miner, sim, labels, loss="triplet")
            losses = F.relu(sim[mined.anchor, mined.negative] - sim[mined.anchor, mined.positive] + self.margin)
            return (mean_of_positive if self.reduction == "nonzero" else mean_or_zero)(losses, sim)
        total, active, considered = batch_all_triplet_sums(
            sim, labels, self.margin, semihard=self.triplets == "semihard"
        )
        denominator = active if self.reduction == "nonzero" else considered
        if int(active) == 0 or int(denominator) == 0:
            return zero_loss(sim)
        return (total / denominator).to(sim.dtype)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, triplets={self.triplets!r}, reduction={self.reduction!r}"
