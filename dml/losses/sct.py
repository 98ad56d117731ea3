"""Selectively contrastive triplet (SCT) loss.

Xuan, Stylianou, Liu & Pless, "Hard negative examples are hard, but useful", ECCV 2020, arXiv:2007.12749. Every
anchor keeps one triplet, its easy (most similar) positive and its hardest negative
(:class:`dml.mining.EasyPositiveMiner`). Easy triplets get the NCA two-way softmax; hard ones, where the negative
is more similar than the positive, only push the negative away:

.. math::
    \\ell(s_{ap}, s_{an}) = \\begin{cases}
        \\lambda\\, s_{an} & \\text{hard triplet} \\\\
        -\\log \\dfrac{e^{s_{ap}/\\tau}}{e^{s_{ap}/\\tau} + e^{s_{an}/\\tau}} & \\text{easy triplet}
    \\end{cases}

The hard branch has pair weights ``w_ap = 0, w_an = λ``: with the anchor-positive pull switched off, the shared
network cannot drag a near-duplicate negative along with the positive, which is how hardest-negative training
collapses (Xuan et al. 2020; released code github.com/littleredxh/HardNegative).

``rule`` picks the hard/easy split; the paper and the two released versions (littleredxh/HardNegative
``_code/Loss.py``) differ:

=============  ====================================  ================================
``rule``       hard triplet                          easy triplet
=============  ====================================  ================================
``"paper"``    ``s_an > s_ap``                       every other valid triplet
``"eccv2020"`` ``s_an > s_ap`` and ``s_an > 0.5``    every other valid triplet
``"feb2021"``  ``s_an > s_ap`` or ``s_an > 0.8``     ``s_an < s_ap`` and ``s_an < 0.8``
=============  ====================================  ================================

(``"feb2021"`` drops the measure-zero ties ``s_an = s_ap < 0.8``, as the code does.) ``reduction="mean"``
(Feb 2021 code) divides the sum of both branches by the number of easy plus hard triplets; ``"separate"`` (Sept
2020 ECCV code) adds the mean over easy triplets and ``λ`` times the mean over hard ones, a branch without
triplets contributing 0. Defaults: the paper's rule, the later code's reduction, ``λ = 1`` (every released run
script; the pre-ECCV development code used 0.1 for Hotels and SOP) and ``τ = 0.1`` (the code's; whether the printed
equation has a temperature is not established). Valid anchors follow the SCT code: a positive and a negative with
``-1 < s < 1``, positives above ``0.9999`` skipped as duplicates.

``mode="hn"`` and ``mode="shn"`` are the released code's baselines: easy positive with the hardest (HN) or
semi-hard (SHN) negative and the NCA mean over valid triplets, i.e. :class:`dml.losses.EPHNLoss` with
``validity="sct"``, which this class delegates to (``lam`` and ``rule`` then do not apply).
"""

from __future__ import annotations

from torch import Tensor

from dml.losses.base import PairLoss, mean_or_zero, zero_loss
from dml.losses.ephn import VALIDITY, EPHNLoss
from dml.losses.nca import nca_two_way
from dml.losses.registry import register
from dml.mining import EasyPositiveMiner
from dml.utils.checks import check_choice

_RULES = ("paper", "eccv2020", "feb2021")
_REDUCTIONS = ("mean", "separate")
_MODES = ("sct", "hn", "shn")


def hard_easy_split(s_ap: Tensor, s_an: Tensor, rule: str) -> tuple[Tensor, Tensor]:
    """Boolean masks ``(hard, easy)`` of the triplets ``(s_ap[i], s_an[i])`` under one of the SCT rules."""
    check_choice(rule, _RULES, name="SCT rule")
    harder = s_an > s_ap
    if rule == "paper":
        return harder, ~harder
    if rule == "eccv2020":
        hard = harder & (s_an > 0.5)
        return hard, ~hard
    return harder | (s_an > 0.8), (s_an < s_ap) & (s_an < 0.8)


@register("sct")
class SCTLoss(PairLoss):
    """Selectively contrastive triplet loss (Xuan et al., ECCV 2020); see the module docstring."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        temperature: float = 0.1,
        rule: str = "paper",
        reduction: str = "mean",
        mode: str = "sct",
        duplicate_threshold: float = 0.9999,
    ) -> None:
        super().__init__()
        check_choice(mode, _MODES, name="mode")
        check_choice(rule, _RULES, name="rule")
        check_choice(reduction, _REDUCTIONS, name="reduction")
        if not lam >= 0:
            raise ValueError(f"lam weighs the push on hard negatives and must be >= 0; got {lam}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature} (the released code uses 0.1).")
        if mode != "sct" and (lam != 1.0 or rule != "paper" or reduction != "mean"):
            raise ValueError(
                f"mode={mode!r} is the plain easy-positive NCA baseline: lam, rule and reduction do not "
                "apply to it; leave them at their defaults."
            )
        self.lam = lam
        self.temperature = temperature
        self.rule = rule
        self.reduction = reduction
        self.mode = mode
        low, high = VALIDITY["sct"]
        if mode == "sct":
            self.miner = EasyPositiveMiner(
                negatives="hardest", duplicate_threshold=duplicate_threshold, min_similarity=low, max_similarity=high
            )
        else:
            self.baseline = EPHNLoss(
                temperature=temperature,
                negatives="hardest" if mode == "hn" else "semihard",
                validity="sct",
                duplicate_threshold=duplicate_threshold,
            )

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        if self.mode != "sct":
            return self.baseline.from_similarity(sim, labels)
        triplets = self.miner.mine(sim, labels)
        s_ap = sim[triplets.anchor, triplets.positive]
        s_an = sim[triplets.anchor, triplets.negative]
        hard, easy = hard_easy_split(s_ap.detach(), s_an.detach(), self.rule)
        hard_terms = self.lam * s_an[hard]
        easy_terms = nca_two_way(s_ap[easy], s_an[easy], self.temperature)
        if self.reduction == "separate":
            return mean_or_zero(easy_terms, sim) + mean_or_zero(hard_terms, sim)
        count = hard_terms.numel() + easy_terms.numel()
        if count == 0:
            return zero_loss(sim)
        return (easy_terms.sum() + hard_terms.sum()) / count

    def extra_repr(self) -> str:
        return (
            f"lam={self.lam}, temperature={self.temperature}, rule={self.rule!r}, reduction={self.reduction!r}, "
            f"mode={self.mode!r}"
        )
