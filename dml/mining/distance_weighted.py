"""Distance-weighted negative sampling.

Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567.
Pairwise distances of points spread uniformly on the unit sphere ``S^{n-1}`` follow

.. math::  q(d) \\propto d^{\\,n-2} \\left(1 - \\tfrac{d^2}{4}\\right)^{(n-3)/2}, \\qquad d \\in [0, 2],

so sampling negatives with probability ``∝ q(d_an)^{-1}`` spreads the chosen distances over the whole range instead
of concentrating them near ``√2``. The paper caps the weight, ``Pr(n | a) ∝ min(λ, q(d_an)^{-1})``; the released
MXNet code (``example/gluon/embedding_learning/model.py``, ``DistanceWeightedSampling``) realises the cap by
clipping ``d`` from below at ``cutoff = 0.5`` (``q^{-1}`` grows without bound as ``d -> 0``) and keeps only negatives
with ``d < nonzero_loss_cutoff = 1.4`` (= β + α of the margin loss: farther negatives cannot give a loss).
Same-class entries get weight 0. Here ``d = sqrt(2 - 2S)`` from the (detached) cosine similarity, the weights are
computed in float64 in the log domain with the maximum subtracted per row (the released code subtracts the
global maximum, which can underflow whole rows), and :meth:`DistanceWeightedMiner.weights` exposes them.

Which triplets are formed, and the differences between implementations:

* released MXNet code: every anchor with each of its ``k - 1`` positives, and ``k - 1`` negatives drawn with
  replacement from the anchor's weights, one per positive; the upper cutoff is applied. An anchor whose weights are
  all zero falls back to ``k - 1`` *uniform* draws over the whole batch, positives and the anchor included.
* RevisitDML (Roth et al., ``batchminer/distance.py``): the same weights and lower cutoff, but the upper cutoff is
  read and **not** applied (a comment says cutting made results slightly worse), and one random positive and one
  weighted negative per anchor. An anchor that is alone in its class is paired with itself.
* pytorch-metric-learning ``DistanceWeightedMiner``: the weights and both cutoffs of the MXNet code (global-max
  subtraction; infinite weights set to 0), with ``n_p`` uniformly drawn positives (with replacement) per anchor.

This miner follows the released MXNet code by default (``positives="all"``, ``nonzero_loss_cutoff=1.4``);
``positives="random", nonzero_loss_cutoff=None`` gives RevisitDML's behaviour. In both, an anchor without a positive
or without a negative of non-zero weight yields no triplet (no uniform fallback), so a positive is never returned
as a negative. Without the upper cutoff, near-antipodal negatives (``d -> 2``, where ``q -> 0``) get very large
weights; the log of ``1 - d²/4`` is clamped at the smallest positive float64 so they stay finite.

The embedding dimension ``n`` is not recoverable from ``S``: pass ``dim`` or let the miner read it from the
embeddings it sees (``miner(embeddings, labels)``, or through a loss that owns it). Sampling uses the global torch
generator unless ``seed`` (or an explicit ``generator``) is given; the seeded generators' states are part of
``state_dict()``, so training resumes exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dml.mining.base import Miner, Triplets
from dml.mining.registry import register
from dml.mining.select import empty_triplets
from dml.similarity import pair_masks
from dml.utils.checks import check_choice

_POSITIVES = ("all", "random")


@register("distance_weighted")
class DistanceWeightedMiner(Miner):
    """Negatives drawn with probability ``∝ q(d)^{-1}`` (Wu et al. 2017); see the module docstring."""

    def __init__(
        self,
        *,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float | None = 1.4,
        positives: str = "all",
        dim: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_choice(positives, _POSITIVES, name="positives")
        if not 0.0 < cutoff < 2.0:
            raise ValueError(f"cutoff is a Euclidean distance on the unit sphere and must lie in (0, 2); got {cutoff}.")
        if nonzero_loss_cutoff is not None and not cutoff < nonzero_loss_cutoff <= 2.0:
            raise ValueError(
                f"nonzero_loss_cutoff must lie in (cutoff, 2] = ({cutoff}, 2]; got {nonzero_loss_cutoff}"
                ". Use None to apply no upper cutoff (RevisitDML)."
            )
        if dim is not None and dim < 2:
            raise ValueError(f"dim is the embedding dimension and must be >= 2; got {dim}.")
        if seed is not None and generator is not None:
            raise ValueError("Pass either seed or generator to the distance-weighted miner, not both.")
        self.cutoff = cutoff
        self.nonzero_loss_cutoff = nonzero_loss_cutoff
        self.positives = positives
        self.dim = dim
        self.seed = seed
        self.generator = generator
        self._generators: dict[str, torch.Generator] = {}
        self._observed_dim: int | None = None

    def observe(self, embeddings: Tensor) -> None:
        self._observed_dim = int(embeddings.shape[1])

    def _dimension(self) -> int:
        dim = self.dim if self.dim is not None else self._observed_dim
        if dim is None:
            raise ValueError(
                "Distance-weighted sampling needs the embedding dimension, which the similarity matrix "
                "does not carry. Pass dim=... to the miner, or call it on embeddings "
                "(miner(embeddings, labels)) before calling mine(sim, labels)."
            )
        if dim < 2:
            raise ValueError(f"Distance-weighted sampling needs embeddings of dimension >= 2; got {dim}.")
        return dim

    def weights(self, sim: Tensor, labels: Tensor) -> Tensor:
        """The (N, N) float64 sampling distribution: row ``a`` is ``Pr(n | a)`` (all zeros if nothing is eligible)."""
        n = self._dimension()
        sim = sim.detach().double()
        _, neg = pair_masks(labels)
        distance = (2.0 - 2.0 * sim).clamp_min(0.0).sqrt()
        clipped = distance.clamp(min=self.cutoff)
        tail = (1.0 - 0.25 * clipped.square()).clamp_min(torch.finfo(torch.float64).tiny)
        log_weight = (2.0 - n) * clipped.log() - 0.5 * (n - 3) * tail.log()
        eligible = neg.clone()
        if self.nonzero_loss_cutoff is not None:
            eligible &= distance < self.nonzero_loss_cutoff
        log_weight = log_weight.masked_fill(~eligible, float("-inf"))
        row_max = log_weight.amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).min)  # empty rows
        weight = (log_weight - row_max).exp()
        total = weight.sum(dim=1, keepdim=True)
        return torch.where(total > 0, weight / total.clamp_min(torch.finfo(torch.float64).tiny), weight)

    def _generator_for(self, device: torch.device) -> torch.Generator | None:
        if self.generator is not None:
            return self.generator
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def _draw(self, probabilities: Tensor) -> Tensor:
        """One index per row of ``probabilities`` (rows sum to 1), on the generator's device."""
        generator = self._generator_for(probabilities.device)
        device = generator.device if generator is not None else probabilities.device
        drawn = torch.multinomial(probabilities.to(device), 1, replacement=True, generator=generator)
        return drawn[:, 0].to(probabilities.device)

    def mine(self, sim: Tensor, labels: Tensor) -> Triplets:
        weight = self.weights(sim, labels)
        pos, _ = pair_masks(labels)
        usable = (weight.sum(dim=1) > 0) & pos.any(dim=1)
        if not bool(usable.any()):
            return empty_triplets(sim.device)
        if self.positives == "all":
            anchor, positive = (pos & usable[:, None]).nonzero(as_tuple=True)
        else:
            anchor = usable.nonzero(as_tuple=True)[0]
            positive = self._draw(pos[anchor].double())
        negative = self._draw(weight[anchor])
        return Triplets(anchor, positive, negative)

    def get_extra_state(self) -> Any:
        return {key: generator.get_state() for key, generator in self._generators.items()}

    def set_extra_state(self, state: Any) -> None:
        for key, generator_state in (state or {}).items():
            if self.seed is not None:
                self._generator_for(torch.device(key)).set_state(generator_state)

    def extra_repr(self) -> str:
        return (
            f"cutoff={self.cutoff}, nonzero_loss_cutoff={self.nonzero_loss_cutoff}, positives={self.positives!r}"
            f", dim={self.dim}, seed={self.seed}"
        )
