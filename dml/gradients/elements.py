"""Gradient elements: a pair-wise update built from a triplet weight, pair weights, a direction and a projection.

Xuan & Pless, "Dissecting the impact of different loss functions with gradient surgery", arXiv:2201.11307, 2022,
describe a pair-wise loss by the gradient it produces and construct updates from chosen pieces. Only the abstract
of that paper is public; the factorisation used here follows the same first author's follow-up (Xuan & Chen,
"Dissecting Deep Metric Learning Losses for Image-Text Retrieval", WACV 2023, arXiv:2210.13188; its "GOAL"
framework, released as github.com/microsoft/VSE_Gradient ``Gradient/gradient.py`` at commit 3db6c6d), re-implemented
from its description. For a triplet ``(a, p, n)`` with cosine similarities ``s_ap``, ``s_an`` the update on the
similarities is

.. math::  -\\frac{\\partial \\ell}{\\partial s_{ap}} = T(s_{ap}, s_{an})\\, w^+(s_{ap}), \\qquad
           \\frac{\\partial \\ell}{\\partial s_{an}} = T(s_{ap}, s_{an})\\, w^-(s_{an}),

a **triplet weight** ``T`` (how much the triplet counts) times a **pull weight** ``w+`` on the positive and a
**push weight** ``w-`` on the negative. The weights are gathered into the pair-weight matrix ``W = dL/dS`` of
:mod:`dml.gradients.decompose` (averaged over the mined triplets, times ``scale``) and handed to
:func:`dml.gradients.surgery_loss`, which applies the **direction** (``"cosine"``: along the other vector;
``"euclidean"``: along the unit chord on the sphere) and the **projection** of the L2 normalisation (on: the exact
chain rule; off: the radial part is kept). Nothing is differentiated through the weights: a combination that is the
gradient of no loss (see :func:`curl`) trains as well as one that is.

Elements (``TRIPLET_WEIGHTS``, ``PAIR_WEIGHTS``; each class's docstring has its formula and origin):

============================  =================================================  ==================================
element                       formula                                            comes from
============================  =================================================  ==================================
triplet ``constant``          ``T = 1``                                          every loss without triplet weight
triplet ``nca``               ``T = σ((s_an - s_ap)/τ)``                         NCA / softmax triplet
triplet ``circle``            ``T = σ(γ z)``, ``z`` in :class:`CircleTriplet`    Circle loss (one pair)
triplet ``margin``            ``T = [s_an - s_ap + m > 0]``                      triplet margin loss
pair ``constant``             ``(w+, w-) = (1, 1)``                              triplet, NCA
pair ``linear``               ``(1 + m - s_ap, [s_an + m]_+)``                   Circle's α; GOAL's ``lin`` (m = 0)
pair ``multi_similarity``     ``(σ(-α(s_ap - λ)), σ(β(s_an - λ)))``              multi-similarity, one pair
pair ``contrastive``          ``([s_ap < m+], [s_an > m-])``                     contrastive loss
============================  =================================================  ==================================

``mining`` picks the triplets: ``"all"`` valid triplets, ``"hardest"`` (batch hard: least similar positive and most
similar negative per anchor), ``"easy_hard"`` (most similar positive, hardest negative: the SCT / EPHN selection of
Xuan et al.), or ``"pairs"``: every positive and every negative pair on its own, as the contrastive loss does (the
triplet weight must then be ``constant``). ``reduction="mean"`` divides by the number of triplets (or of positive
and of negative pairs); ``"active"`` only by those with a non-zero weight (the ``nonzero`` reduction of the triplet
and contrastive losses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dml.gradients.simulation import UpdateRule
from dml.gradients.surgery import DIRECTIONS, surgery_loss
from dml.losses.base import PairLoss
from dml.losses.registry import register
from dml.mining import EasyPositiveMiner, HardestNegativeMiner, Triplets
from dml.similarity import cosine_similarity_matrix, euclidean_from_similarity, pair_masks
from dml.utils.checks import check_choice

__all__ = [
    "MINING",
    "PAIR_WEIGHTS",
    "REDUCTIONS",
    "TRIPLET_WEIGHTS",
    "GradientSurgeryLoss",
    "build_update",
    "curl",
]

MINING = ("all", "hardest", "easy_hard", "pairs")
REDUCTIONS = ("mean", "active")
_EPS = 1e-12


def _sigmoid(x: Tensor) -> Tensor:
    return torch.sigmoid(x)


class ConstantTriplet:
    """``T = 1``: every triplet counts the same (the triplet margin loss inside its margin, contrastive, MS)."""

    def __call__(self, s_ap: Tensor, s_an: Tensor) -> Tensor:
        return torch.ones_like(s_ap + s_an)


class NCATriplet:
    """``T = σ((s_an - s_ap)/τ)``: the NCA (two-way softmax) triplet, ``ℓ = τ softplus((s_an - s_ap)/τ)``.

    The probability of the negative in the softmax over ``(s_ap, s_an)/τ`` (Goldberger et al., NIPS 2004, on
    triplets as in Xuan et al., ECCV 2020; GOAL's ``nca`` with ``τ`` as a divisor). The loss
    :class:`dml.losses.NCALoss` is ``softplus((s_an - s_ap)/τ)``, i.e. this element with ``scale = 1/τ``.
    """

    def __init__(self, *, temperature: float = 0.1) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature} (the NCA loss of this suite uses 0.1).")
        self.temperature = temperature

    def __call__(self, s_ap: Tensor, s_an: Tensor) -> Tensor:
        return _sigmoid((s_an - s_ap) / self.temperature)


class CircleTriplet:
    """``T = σ(γ z)``, ``z = [s_an + m]_+ (s_an - m) - [1 + m - s_ap]_+ (s_ap - 1 + m)``: Circle loss on one pair.

    Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization", CVPR 2020, arXiv:2002.10857:
    ``ℓ = softplus(γ z)`` with the weights ``α_p = [1 + m - s_ap]_+`` and ``α_n = [s_an + m]_+`` treated as
    constants. Its gradient is ``γ σ(γ z)`` times the ``linear`` pair weights with the same margin. For
    ``s_an > -m``, ``z = (1 - s_ap)^2 + s_an^2 - 2m^2``, GOAL's ``cir`` (which writes ``0.5`` for ``2m^2``).
    Defaults ``γ = 80, m = 0.4`` are pytorch-metric-learning's ``CircleLoss`` defaults.
    """

    def __init__(self, *, gamma: float = 80.0, margin: float = 0.4) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma (the Circle loss scale) must be > 0; got {gamma}.")
        self.gamma = gamma
        self.margin = margin

    def __call__(self, s_ap: Tensor, s_an: Tensor) -> Tensor:
        m = self.margin
        z = (s_an + m).clamp_min(0) * (s_an - m) - (1 + m - s_ap).clamp_min(0) * (s_ap - 1 + m)
        return _sigmoid(self.gamma * z)


class MarginTriplet:
    """``T = [s_an - s_ap + m > 0]``: the triplet margin loss ``[s_an - s_ap + m]_+`` (:class:`dml.losses.TripletLoss`).

    Weinberger & Saul, JMLR 2009; Schroff et al., FaceNet, CVPR 2015. With ``constant`` pair weights this is the
    exact gradient of the loss (its kink aside).
    """

    def __init__(self, *, margin: float = 0.1) -> None:
        self.margin = margin

    def __call__(self, s_ap: Tensor, s_an: Tensor) -> Tensor:
        return (s_an - s_ap + self.margin > 0).to(s_ap.dtype)


class ConstantPair:
    """``(w+, w-) = (1, 1)``: pull the positive and push the negative equally (triplet margin, NCA)."""

    def pull(self, s_ap: Tensor) -> Tensor:
        return torch.ones_like(s_ap)

    def push(self, s_an: Tensor) -> Tensor:
        return torch.ones_like(s_an)


class LinearPair:
    """``(w+, w-) = (1 + m - s_ap, [s_an + m]_+)``: pull harder the farther the positive, push the closer the negative.

    Circle loss's ``α_p, α_n`` (Sun et al., CVPR 2020); with ``m = 0`` GOAL's ``lin`` and the gradient of the
    group's "order 2" logits ``s_ap - s_ap^2/2``, ``s_an^2/2`` (github.com/GWUvision/HardNegative ``_code/Loss.py``).
    The clamp at 0 follows Circle loss (GOAL leaves ``w- = s_an`` unclamped).
    """

    def __init__(self, *, margin: float = 0.0) -> None:
        self.margin = margin

    def pull(self, s_ap: Tensor) -> Tensor:
        return 1.0 + self.margin - s_ap

    def push(self, s_an: Tensor) -> Tensor:
        return (s_an + self.margin).clamp_min(0)


class MultiSimilarityPair:
    """``(w+, w-) = (σ(-α(s_ap - λ)), σ(β(s_an - λ)))``: multi-similarity on a single positive and negative.

    Wang et al., "Multi-Similarity Loss with General Pair Weighting", CVPR 2019, arXiv:1904.06627: with one pair of
    each kind its loss ``(1/α) softplus(-α(s_ap - λ)) + (1/β) softplus(β(s_an - λ))`` has exactly these weights
    (GOAL's ``sig``). The relative-similarity terms of several pairs (GOAL's ``sig_ms``) are not included. Defaults
    are those of :class:`dml.losses.MultiSimilarityLoss`.
    """

    def __init__(self, *, alpha: float = 2.0, beta: float = 50.0, threshold: float = 0.5) -> None:
        if not (alpha > 0 and beta > 0):
            raise ValueError(f"alpha and beta must be > 0; got alpha={alpha}, beta={beta}.")
        self.alpha, self.beta, self.threshold = alpha, beta, threshold

    def pull(self, s_ap: Tensor) -> Tensor:
        return _sigmoid(-self.alpha * (s_ap - self.threshold))

    def push(self, s_an: Tensor) -> Tensor:
        return _sigmoid(self.beta * (s_an - self.threshold))


class ContrastivePair:
    """``(w+, w-) = ([s_ap < m+], [s_an > m-])``: the contrastive loss ``[m+ - s_ap]_+``, ``[s_an - m-]_+``.

    Hadsell, Chopra & LeCun, CVPR 2006, on cosine similarities (:class:`dml.losses.ContrastiveLoss`).
    """

    def __init__(self, *, pos_margin: float = 1.0, neg_margin: float = 0.5) -> None:
        self.pos_margin, self.neg_margin = pos_margin, neg_margin

    def pull(self, s_ap: Tensor) -> Tensor:
        return (s_ap < self.pos_margin).to(s_ap.dtype)

    def push(self, s_an: Tensor) -> Tensor:
        return (s_an > self.neg_margin).to(s_an.dtype)


TRIPLET_WEIGHTS: dict[str, type] = {
    "constant": ConstantTriplet,
    "nca": NCATriplet,
    "circle": CircleTriplet,
    "margin": MarginTriplet,
}
PAIR_WEIGHTS: dict[str, type] = {
    "constant": ConstantPair,
    "linear": LinearPair,
    "multi_similarity": MultiSimilarityPair,
    "contrastive": ContrastivePair,
}


def _element(kind: str, table: Mapping[str, type], name: str, kwargs: Mapping[str, Any] | None) -> Any:
    check_choice(name, table, name=f"{kind} weight")
    try:
        return table[name](**dict(kwargs or {}))
    except TypeError as err:
        raise TypeError(f"{kind} weight {name!r} does not accept {dict(kwargs or {})}: {err}.") from None


def _all_triplets(labels: Tensor) -> Triplets:
    pos, neg = pair_masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]
    anchor, positive, negative = valid.nonzero(as_tuple=True)
    return Triplets(anchor, positive, negative)


@register("gradient_surgery")
class GradientSurgeryLoss(PairLoss):
    """Train with an update composed of gradient elements; ``loss(embeddings, labels).backward()`` applies it.

    The returned scalar is a linear surrogate (``sum W S`` or ``-sum W D``, see :func:`dml.gradients.surgery_loss`)
    whose gradient is the constructed update; its value is not a loss to monitor. See the module docstring for the
    elements and :func:`build_update` for the arguments.
    """

    def __init__(
        self,
        *,
        triplet: str = "nca",
        pair: str = "constant",
        direction: str = "cosine",
        projection: bool = True,
        mining: str = "all",
        reduction: str = "mean",
        scale: float = 1.0,
        triplet_kwargs: Mapping[str, Any] | None = None,
        pair_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_choice(direction, DIRECTIONS, name="direction")
        check_choice(mining, MINING, name="mining")
        check_choice(reduction, REDUCTIONS, name="reduction")
        if mining == "pairs" and triplet != "constant":
            raise ValueError(
                f"mining='pairs' weighs every pair on its own, so it has no triplet to weigh: use "
                f"triplet='constant' (got {triplet!r}) or a triplet mining ('all', 'hardest', 'easy_hard')."
            )
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale multiplies the whole update and must be a finite number > 0; got {scale}.")
        self.triplet_name, self.pair_name = triplet, pair
        self.triplet_weight = _element("triplet", TRIPLET_WEIGHTS, triplet, triplet_kwargs)
        self.pair_weight = _element("pair", PAIR_WEIGHTS, pair, pair_kwargs)
        self.direction, self.projection = direction, bool(projection)
        self.mining, self.reduction, self.scale = mining, reduction, float(scale)
        self.miner = {
            "hardest": HardestNegativeMiner(positives="hardest"),
            "easy_hard": EasyPositiveMiner(negatives="hardest"),
        }.get(mining)

    @property
    def name(self) -> str:
        """``triplet/pair/direction/proj`` (or ``noproj``): the combination's short name."""
        return f"{self.triplet_name}/{self.pair_name}/{self.direction}/{'proj' if self.projection else 'noproj'}"

    def field(self, s_ap: Tensor, s_an: Tensor) -> tuple[Tensor, Tensor]:
        """Per-triplet ``(pull, push) = (T w+, T w-)`` at the similarities (any shape), before averaging."""
        weight = self.triplet_weight(s_ap, s_an)
        return weight * self.pair_weight.pull(s_ap), weight * self.pair_weight.push(s_an)

    def pair_weights(self, sim: Tensor, labels: Tensor) -> Tensor:
        """The constructed ``W = dL/dS`` (N, N) of the batch, from the detached similarities."""
        sim = sim.detach()
        if self.mining == "pairs":
            return self._pair_mode(sim, labels)
        triplets = self.miner.mine(sim, labels) if self.miner is not None else _all_triplets(labels)
        s_ap = sim[triplets.anchor, triplets.positive]
        s_an = sim[triplets.anchor, triplets.negative]
        pull, push = self.field(s_ap, s_an)
        weights = torch.zeros_like(sim)
        if s_ap.numel() == 0:
            return weights
        active = self.triplet_weight(s_ap, s_an) != 0 if self.reduction == "active" else None
        count = max(1, int(active.sum())) if active is not None else s_ap.numel()
        weights.index_put_((triplets.anchor, triplets.positive), -self.scale * pull / count, accumulate=True)
        weights.index_put_((triplets.anchor, triplets.negative), self.scale * push / count, accumulate=True)
        return weights

    def _pair_mode(self, sim: Tensor, labels: Tensor) -> Tensor:
        pos, neg = pair_masks(labels)
        zero = torch.zeros_like(sim)
        pull = torch.where(pos, self.pair_weight.pull(sim), zero)
        push = torch.where(neg, self.pair_weight.push(sim), zero)
        if self.reduction == "active":
            pulls, pushes = (pull != 0).sum(), (push != 0).sum()
        else:
            pulls, pushes = pos.sum(), neg.sum()
        return self.scale * (push / pushes.clamp_min(1) - pull / pulls.clamp_min(1))

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        with torch.no_grad():
            weights = self.pair_weights(cosine_similarity_matrix(embeddings.detach()), labels)
        return surgery_loss(embeddings, weights, direction=self.direction, projection=self.projection)

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        """The surrogate as a function of ``S``, for :func:`dml.gradients.decompose` (projection on only)."""
        if not self.projection:
            raise ValueError(
                "projection=False keeps the radial part of the update, which the similarity matrix S cannot "
                "see, so decompose cannot rebuild it; decompose the projection=True update or call the loss itself."
            )
        weights = self.pair_weights(sim, labels)
        if self.direction == "cosine":
            return (weights * sim).sum()
        off_diagonal = ~torch.eye(len(sim), dtype=torch.bool, device=sim.device)
        return -(weights * euclidean_from_similarity(sim, _EPS) * off_diagonal).sum()

    def rule(self) -> UpdateRule:
        """The update as a :class:`~dml.gradients.UpdateRule` of one triplet, for the triplet-space simulation."""

        def weights(s_ap: np.ndarray, s_an: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pull, push = self.field(
                torch.as_tensor(s_ap, dtype=torch.float64), torch.as_tensor(s_an, dtype=torch.float64)
            )
            return (self.scale * pull).numpy(), (self.scale * push).numpy()

        return UpdateRule(self.name, weights, direction=self.direction)

    def extra_repr(self) -> str:
        return f"{self.name}, mining={self.mining!r}, reduction={self.reduction!r}, scale={self.scale}"


def build_update(
    *,
    triplet: str = "nca",
    pair: str = "constant",
    direction: str = "cosine",
    projection: bool = True,
    mining: str = "all",
    reduction: str = "mean",
    scale: float = 1.0,
    triplet_kwargs: Mapping[str, Any] | None = None,
    pair_kwargs: Mapping[str, Any] | None = None,
) -> GradientSurgeryLoss:
    """An objective composed of gradient elements, usable wherever a loss is (also ``loss.name: gradient_surgery``).

    Args:
        triplet: a name of ``TRIPLET_WEIGHTS`` (``constant``, ``nca``, ``circle``, ``margin``).
        pair: a name of ``PAIR_WEIGHTS`` (``constant``, ``linear``, ``multi_similarity``, ``contrastive``).
        direction: ``"cosine"`` or ``"euclidean"`` (:mod:`dml.gradients.surgery`).
        projection: keep the tangent projection of the L2 normalisation (the exact chain rule) or drop it.
        mining: ``"all"``, ``"hardest"``, ``"easy_hard"`` or ``"pairs"`` (module docstring).
        reduction: ``"mean"`` over the triplets (pairs) or ``"active"``: over those with a non-zero weight.
        scale: a constant factor on the whole update (``1/τ`` makes ``nca`` the NCA loss's gradient).
        triplet_kwargs, pair_kwargs: the elements' hyperparameters (e.g. ``{"temperature": 0.1}``).

    >>> update = build_update(triplet="nca", pair="linear", direction="cosine", projection=True)
    >>> update(embeddings, labels).backward()          # the constructed gradient lands in embeddings.grad
    """
    return GradientSurgeryLoss(
        triplet=triplet,
        pair=pair,
        direction=direction,
        projection=projection,
        mining=mining,
        reduction=reduction,
        scale=scale,
        triplet_kwargs=triplet_kwargs,
        pair_kwargs=pair_kwargs,
    )


def curl(update: GradientSurgeryLoss, s_ap: Tensor, s_an: Tensor) -> Tensor:
    """``∂g_an/∂s_ap - ∂g_ap/∂s_an`` of the 2-D field ``g = (-T w+, T w-)`` (the would-be ``∇ℓ(s_ap, s_an)``).

    A per-triplet loss ``ℓ(s_ap, s_an)`` exists whose gradient is the update (on a simply connected region) only if
    this vanishes everywhere: e.g. ``nca`` with ``constant`` pairs (the NCA loss) has zero curl, ``nca`` with
    ``linear`` pairs has ``σ'(1 - s_ap - [s_an]_+)/τ`` and integrates to no loss. Computed with autograd, in the
    dtype of the inputs (use float64); indicator elements (``margin``, ``contrastive``) have zero derivative off
    their kinks.
    """
    s_ap = torch.as_tensor(s_ap).detach().clone().requires_grad_(True)
    s_an = torch.as_tensor(s_an, dtype=s_ap.dtype).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        pull, push = update.field(s_ap, s_an)
        d_push_d_ap = _derivative(push, s_ap)
        d_pull_d_an = _derivative(-pull, s_an)
    return (d_push_d_ap - d_pull_d_an).detach()


def _derivative(output: Tensor, wrt: Tensor) -> Tensor:
    """Elementwise ``d output / d wrt`` of an elementwise function; zero where ``output`` does not depend on it."""
    if not output.requires_grad:  # an indicator element: piecewise constant
        return torch.zeros_like(wrt)
    (grad,) = torch.autograd.grad(output.sum(), wrt, allow_unused=True, retain_graph=True)
    return torch.zeros_like(wrt) if grad is None else grad
