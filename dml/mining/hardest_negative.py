"""Hardest-negative ("batch-hard") mining.

For anchor ``a`` the hardest negative is the most similar sample of another class,
``n*(a) = argmax_{n: y_n != y_a} S_an``. It depends on the anchor only, so ``positives`` decides what it is paired
with:

* ``positives="all"`` (default): every anchor-positive pair ``(a, p)`` with ``n*(a)``: one triplet per positive pair,
  so each anchor's pull on all its positives is opposed by its hardest negative. (The easy positive with the
  hardest negative, the HN / EPHN selection of Xuan et al., is :class:`dml.mining.EasyPositiveMiner`.)
* ``positives="hardest"``: one triplet per anchor, the least similar positive with the hardest negative: the
  "batch hard" triplets of Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
  arXiv:1703.07737, 2017. Identical to pytorch-metric-learning's ``BatchHardMiner(distance=CosineSimilarity())``.

Anchors without a positive or without a negative yield no triplet. Ties go to the lowest batch index.
"""

from __future__ import annotations

from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.mining.registry import register
from dml.mining.select import masked_argmax, masked_argmin
from dml.similarity import pair_masks
from dml.utils.checks import check_choice

_POSITIVES = ("all", "hardest")


@register("hardest_negative")
class HardestNegativeMiner(Miner):
    """Each anchor's most similar negative, with all its positives or its hardest one; see the module docstring."""

    def __init__(self, *, positives: str = "all") -> None:
        super().__init__()
        check_choice(positives, _POSITIVES, name="positives")
        self.positives = positives

    def mine(self, sim: Tensor, labels: Tensor) -> Triplets:
        sim = sim.detach()
        pos, neg = pair_masks(labels)
        negative, has_negative = masked_argmax(sim, neg)
        if self.positives == "all":
            anchor, positive = (pos & has_negative[:, None]).nonzero(as_tuple=True)
            return Triplets(anchor, positive, negative[anchor])
        positive, has_positive = masked_argmin(sim, pos)
        anchor = (has_positive & has_negative).nonzero(as_tuple=True)[0]
        return Triplets(anchor, positive[anchor], negative[anchor])

    def extra_repr(self) -> str:
        return f"positives={self.positives!r}"
