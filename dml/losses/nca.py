"""NCA on triplets: a two-way softmax between the positive and the negative similarity.

The per-triplet "NCA" loss of Xuan, Stylianou & Pless's easy-positive and SCT work (WACV 2020, arXiv:1904.04370;
ECCV 2020, arXiv:2007.12749), named after Goldberger et al.'s Neighbourhood Components Analysis (NIPS 2004):

.. math::  \\ell_{apn} = -\\log \\frac{e^{s_{ap}/\\tau}}{e^{s_{ap}/\\tau} + e^{s_{an}/\\tau}}
           = \\operatorname{softplus}\\Big(\\frac{s_{an} - s_{ap}}{\\tau}\\Big), \\qquad
           \\mathcal{L} = \\operatorname{mean}_{(a,p,n) \\in T}\\ \\ell_{apn}

with cosine similarities ``s`` and temperature ``τ`` (0.1 in the released code). Its pair weights (Xuan & Pless,
arXiv:2201.11307) are ``w_ap = w_an = σ((s_an - s_ap)/τ)/τ``: a smooth triplet loss whose weight fades as the
triplet becomes easy, with no margin. The triplets ``T`` are every valid triplet (``triplets="all"``), the batch-hard
ones (``"hardest"``: least similar positive, most similar negative per anchor), or those of any triplet miner
(``miner=``). Easy positive with a hard or semi-hard negative is :class:`dml.losses.EPHNLoss` (``"ephn"``).

``"all"`` is evaluated per positive pair against the anchor's negatives, ``O(|P| N)`` memory with ``|P|`` the
number of positive pairs (``N(K - 1)`` for P×K batches) instead of ``O(N^3)``, in blocks that are recomputed in
the backward pass (activation checkpointing) when there is more than one.

This is not pytorch-metric-learning's ``NCALoss``, which is Goldberger et al.'s original: for each anchor, the
softmax probability mass of *all* its positives against *all* other samples, with ``-D²`` as logits. The two
coincide only when every anchor has exactly one positive and one negative (e.g. a batch of three with labels
``[0, 0, 1]``), with ``softmax_scale = 1/τ`` and cosine similarity as the "distance".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from dml.losses.base import PairLoss, mean_or_zero, pair_masks, zero_loss
from dml.losses.registry import register
from dml.mining import Miner, Triplets, mine_triplets, resolve_triplet_rule

_TRIPLETS = ("all", "hardest")
_BLOCK_ELEMENTS = 2**22


def nca_two_way(s_ap: Tensor, s_an: Tensor, temperature: float) -> Tensor:
    """``-log_softmax([s_ap, s_an] / τ)[0] = softplus((s_an - s_ap) / τ)``, elementwise and numerically stable."""
    return F.softplus((s_an - s_ap) / temperature)


def nca_triplet_losses(sim: Tensor, triplets: Triplets, temperature: float) -> Tensor:
    """:func:`nca_two_way` of each mined triplet ``(anchor, positive, negative)``."""
    return nca_two_way(sim[triplets.anchor, triplets.positive], sim[triplets.anchor, triplets.negative], temperature)


def _block_sum(rows: Tensor, s_ap: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """Sum of the NCA losses of positive pairs with similarity ``s_ap`` against the negatives of their anchor rows."""
    losses = nca_two_way(s_ap[:, None], rows, temperature)
    return torch.where(negatives, losses, torch.zeros_like(losses)).sum()


def all_triplets_nca_mean(sim: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Mean NCA triplet loss over every valid triplet, without an ``(N, N, N)`` tensor."""
    pos, neg = pair_masks(labels)
    anchor, positive = pos.nonzero(as_tuple=True)
    negatives_per_pair = neg[anchor]
    count = int(negatives_per_pair.sum())
    if count == 0:
        return zero_loss(sim)
    block = max(1, _BLOCK_ELEMENTS // max(1, len(labels)))
    blocks = range(0, len(anchor), block)
    recompute = len(blocks) > 1 and torch.is_grad_enabled() and sim.requires_grad
    total = sim.new_zeros(())
    for start in blocks:
        part = slice(start, start + block)
        inputs = (sim[anchor[part]], sim[anchor[part], positive[part]], negatives_per_pair[part], temperature)
        total = total + (checkpoint(_block_sum, *inputs, use_reentrant=False) if recompute else _block_sum(*inputs))
    return total / count


@register("nca")
class NCALoss(PairLoss):
    """Two-way softmax (NCA) loss on triplets with temperature ``τ``; see the module docstring."""

    def __init__(
        self, *, temperature: float = 0.1, triplets: str = "all", miner: str | Mapping[str, Any] | Miner | None = None
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature} (the released code uses 0.1).")
        if triplets not in _TRIPLETS:
            raise ValueError(
                f"Unknown triplets={triplets!r} for the NCA loss; choose one of {list(_TRIPLETS)}, or "
                "pass miner=... for another selection (e.g. miner='semihard')."
            )
        self.temperature = temperature
        self.triplets = triplets
        self.miner = resolve_triplet_rule(triplets, miner, loss="NCA triplet")

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        if self.miner is None:
            return all_triplets_nca_mean(sim, labels, self.temperature)
        mined = mine_triplets(self.miner, sim, labels, loss="NCA triplet")
        return mean_or_zero(nca_triplet_losses(sim, mined, self.temperature), sim)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, triplets={self.triplets!r}"
