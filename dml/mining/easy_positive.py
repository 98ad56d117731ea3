"""Easy-positive mining: each anchor's most similar positive, with its hardest or semi-hard negative.

Xuan, Stylianou & Pless, "Improved Embeddings with Easy Positive Triplet Mining", WACV 2020, arXiv:1904.04370; the
same selection feeds the SCT loss (Xuan et al., ECCV 2020, arXiv:2007.12749). As in the released code
(littleredxh/EasyPositiveHardNegative and littleredxh/HardNegative, ``_code/Loss.py``), one triplet per anchor:

.. math::
    p^*(a) = \\arg\\max_{p:\\ y_p = y_a,\\ p \\ne a,\\ S_{ap} \\le t} S_{ap}, \\qquad
    n^*(a) = \\arg\\max_{n:\\ y_n \\ne y_a} S_{an} \\ \\text{(hardest)}
    \\quad\\text{or}\\quad \\arg\\max_{n:\\ y_n \\ne y_a,\\ S_{an} \\le S_{ap^*}} S_{an} \\ \\text{(semi-hard)}

* ``duplicate_threshold`` ``t`` (0.9999 in the released code): positives more similar than ``t`` are treated as
  duplicates of the anchor and skipped, so the next most similar positive is used.
* ``negatives="semihard"`` keeps negatives with ``S_an <= S_ap*`` (the released code masks those *above* the easy
  positive's similarity, so equality stays). This is relative to the easy positive and has no margin, unlike
  FaceNet's semi-hard rule (:mod:`dml.mining.semihard`). It matches pytorch-metric-learning's
  ``BatchEasyHardMiner(pos_strategy="easy", neg_strategy="semihard")`` up to that tie (PML keeps ``<``); PML has no
  duplicate threshold.
* Validity: an anchor is kept when it has a selected positive and negative, and additionally, if set, when both
  similarities are ``> min_similarity`` and ``< max_similarity``. The released rules are: EPHN 2020 code
  ``V_pos > 0 and V_neg > 0`` (``min_similarity=0``); EPHN 2019 code ``> -1`` (``min_similarity=-1``, which with
  the code's ``-1`` fill value means "exists"); SCT code ``-1 < V < 1`` (``min_similarity=-1, max_similarity=1``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.mining.registry import register
from dml.mining.select import masked_argmax
from dml.similarity import pair_masks
from dml.utils.checks import check_choice

_NEGATIVES = ("hardest", "semihard")


@register("easy_positive")
class EasyPositiveMiner(Miner):
    """One triplet per anchor: most similar positive, hardest or semi-hard negative; see the module docstring."""

    def __init__(
        self,
        *,
        negatives: str = "hardest",
        duplicate_threshold: float = 0.9999,
        min_similarity: float | None = None,
        max_similarity: float | None = None,
    ) -> None:
        super().__init__()
        check_choice(negatives, _NEGATIVES, name="negatives")
        if not -1.0 < duplicate_threshold <= 1.0:
            raise ValueError(
                f"duplicate_threshold is a cosine similarity and must lie in (-1, 1]; got "
                f"{duplicate_threshold} (the released code uses 0.9999; 1 keeps every positive)."
            )
        if min_similarity is not None and max_similarity is not None and min_similarity >= max_similarity:
            raise ValueError(
                f"min_similarity ({min_similarity}) must be below max_similarity ({max_similarity}); "
                "otherwise no anchor can be valid."
            )
        self.negatives = negatives
        self.duplicate_threshold = duplicate_threshold
        self.min_similarity = min_similarity
        self.max_similarity = max_similarity

    def mine(self, sim: Tensor, labels: Tensor) -> Triplets:
        sim = sim.detach()
        pos, neg = pair_masks(labels)
        rows = torch.arange(len(labels), device=sim.device)
        positive, keep = masked_argmax(sim, pos & (sim <= self.duplicate_threshold))
        s_ap = sim[rows, positive]
        if self.negatives == "semihard":
            neg = neg & (sim <= s_ap[:, None]) & keep[:, None]
        negative, has_negative = masked_argmax(sim, neg)
        s_an = sim[rows, negative]
        keep = keep & has_negative
        if self.min_similarity is not None:
            keep = keep & (s_ap > self.min_similarity) & (s_an > self.min_similarity)
        if self.max_similarity is not None:
            keep = keep & (s_ap < self.max_similarity) & (s_an < self.max_similarity)
        anchor = keep.nonzero(as_tuple=True)[0]
        return Triplets(anchor, positive[anchor], negative[anchor])

    def extra_repr(self) -> str:
        return (
            f"negatives={self.negatives!r}, duplicate_threshold={self.duplicate_threshold}, "
            f"min_similarity={self.min_similarity}, max_similarity={self.max_similarity}"
        )
