"""Multi-Similarity loss with its pair-mining step.

Wang, Han, Huang, Dong & Scott, "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
CVPR 2019, arXiv:1904.06627. For anchor ``i`` with mined positives :math:`\\tilde P_i` and negatives
:math:`\\tilde N_i`, cosine similarities :math:`s_{ik}`, scales :math:`\\alpha, \\beta` and threshold :math:`\\lambda`:

.. math::
    \\ell_i = \\frac{1}{\\alpha}\\log\\Big[1 + \\sum_{k \\in \\tilde P_i} e^{-\\alpha (s_{ik} - \\lambda)}\\Big]
            + \\frac{1}{\\beta}\\log\\Big[1 + \\sum_{k \\in \\tilde N_i} e^{\\beta (s_{ik} - \\lambda)}\\Big],
    \\qquad \\mathcal{L} = \\frac{1}{N} \\sum_{i \\text{ kept}} \\ell_i

**Mining** (``mining=True``), computed on the detached similarities: a negative is kept if it is more similar than
the anchor's least similar positive minus ``epsilon``, :math:`s_{ik} > \\min_{p \\in P_i} s_{ip} - \\epsilon`; a
positive is kept if it is less similar than the anchor's most similar negative plus ``epsilon``,
:math:`s_{ik} < \\max_{n \\in N_i} s_{in} + \\epsilon`. With ``mining=False`` every pair is kept.

Where the sources differ, and what this module follows:

* **Skipped anchors.** The released code (MalongTech/research-ms-loss,
  ``ret_benchmark/losses/multi_similarity_loss.py``) skips an anchor whose mined positive *or* negative set is
  empty and divides by the batch size ``N`` including the skipped anchors. We follow it.
  pytorch-metric-learning's ``MultiSimilarityLoss`` + ``MultiSimilarityMiner`` also divides by ``N`` but keeps the
  non-empty term of such an anchor; the two agree whenever every anchor keeps a positive and a negative.
* **Self-pairs.** The released code drops positives with :math:`s \\ge 1 - 10^{-5}` to exclude the anchor itself,
  which also drops exact duplicates; we exclude only the diagonal.
* **Defaults.** ``alpha=2, beta=50, threshold=0.5, epsilon=0.1``, pytorch-metric-learning's defaults (its ``base``
  is our ``threshold``). The released code uses the same threshold 0.5, margin 0.1 and ``SCALE_POS = 2``, but
  ``SCALE_NEG = 40`` in its default config.

The loss is a function of the similarity matrix only (:class:`~dml.losses.base.PairLoss`); the mining step selects
pairs but carries no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.losses.base import PairLoss, masked_logsumexp, pair_masks, zero_loss
from dml.losses.registry import register


@register("multi_similarity")
class MultiSimilarityLoss(PairLoss):
    """Multi-Similarity loss (Wang et al. 2019) with its mining step; see the module docstring for the equation."""

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        beta: float = 50.0,
        threshold: float = 0.5,
        epsilon: float = 0.1,
        mining: bool = True,
    ) -> None:
        super().__init__()
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"The multi-similarity scales must be > 0; got alpha={alpha}, beta={beta}.")
        if epsilon < 0:
            raise ValueError(f"The multi-similarity mining margin epsilon must be >= 0; got {epsilon}.")
        self.alpha = alpha
        self.beta = beta
        self.threshold = threshold
        self.epsilon = epsilon
        self.mining = mining

    def mine(self, sim: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Boolean (N, N) masks of the kept positive and negative pairs (see the module docstring)."""
        pos, neg = pair_masks(labels)
        if not self.mining:
            return pos, neg
        sim = sim.detach()
        inf = torch.tensor(float("inf"), dtype=sim.dtype, device=sim.device)
        min_pos = torch.where(pos, sim, inf).amin(dim=1, keepdim=True)
        max_neg = torch.where(neg, sim, -inf).amax(dim=1, keepdim=True)
        return pos & (sim - self.epsilon < max_neg), neg & (sim + self.epsilon > min_pos)

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        keep_pos, keep_neg = self.mine(sim, labels)
        anchors = keep_pos.any(dim=1) & keep_neg.any(dim=1)
        if not bool(anchors.any()):
            return zero_loss(sim)
        pos_term = masked_logsumexp(-self.alpha * (sim - self.threshold), keep_pos, add_one=True) / self.alpha
        neg_term = masked_logsumexp(self.beta * (sim - self.threshold), keep_neg, add_one=True) / self.beta
        return ((pos_term + neg_term) * anchors).sum() / len(labels)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, threshold={self.threshold}, epsilon={self.epsilon}, "
            f"mining={self.mining}"
        )
