"""Decompose the gradient of a pair-based loss into scalar pair weights (Xuan & Pless 2022, arXiv:2201.11307).

A :class:`~dml.losses.PairLoss` sees the embeddings only through the cosine-similarity matrix ``S = f f^T`` of the
L2-normalised embeddings ``f_i = x_i / ||x_i||``. The chain rule therefore factors its gradient into the pair
weights ``W = dL/dS`` (an N x N matrix) and a fixed geometric part:

.. math::  \\frac{\\partial L}{\\partial x_i} = \\frac{1}{\\lVert x_i\\rVert}\\,(I - f_i f_i^\\top)
           \\sum_j \\big(W_{ij} + W_{ji}\\big)\\, f_j .

For an anchor ``a`` with positive ``p`` and negative ``n`` this is the three-line form of the course:
``dL/dx_a = (1/||x_a||)(I - f_a f_a^T)[W_ap f_p + W_an f_n]`` and so on. ``W_ap <= 0`` pulls the positive in
(``w_ap = -W_ap`` is the "pull" weight), ``W_an >= 0`` pushes the negative away (``w_an = W_an``). The diagonal
``W_ii`` (self-similarity, constant 1) contributes ``2 W_ii f_i``, which the projection removes.

The same view is the General Pair Weighting framework of Wang et al., "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019, arXiv:1904.06627.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dml.losses.base import PairLoss
from dml.similarity import cosine_similarity_matrix, pair_masks
from dml.utils import check_embeddings_and_labels

__all__ = ["Decomposition", "decompose", "gradient_from_weights"]


@dataclass(frozen=True)
class Decomposition:
    """What :func:`decompose` returns; every tensor is detached.

    Attributes:
        loss: the loss value (a 0-d tensor).
        similarity: ``S`` (N, N), cosine similarities of the embeddings.
        weights: ``dL/dS`` (N, N); row ``i`` holds the weights anchor ``i``'s terms put on its pairs.
        positive_weights, negative_weights: ``weights`` restricted to positive pairs (same label, ``i != j``) and
            to negative pairs (different label); zero elsewhere.
        positive_mask, negative_mask: the boolean (N, N) pair masks.
        gradient: ``dL/dx`` (N, D) rebuilt from ``weights`` with the formula of the module docstring.
    """

    loss: Tensor
    similarity: Tensor
    weights: Tensor
    positive_weights: Tensor
    negative_weights: Tensor
    positive_mask: Tensor
    negative_mask: Tensor
    gradient: Tensor

    @property
    def w_ap(self) -> Tensor:
        """Pull weights ``-dL/dS_ap`` on positive pairs (>= 0 for every standard loss), zero elsewhere."""
        return -self.positive_weights

    @property
    def w_an(self) -> Tensor:
        """Push weights ``dL/dS_an`` on negative pairs (>= 0 for every standard loss), zero elsewhere."""
        return self.negative_weights

    @property
    def symmetric_weights(self) -> Tensor:
        """``W + W^T``: the total weight on the unordered pair {i, j} (both rows that contain it)."""
        return self.weights + self.weights.t()


def loss_and_pair_weights(loss: PairLoss, sim: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(L, dL/dS)`` of a pair loss at the similarity matrix ``sim`` (treated as a leaf; zeros if L is constant)."""
    with torch.enable_grad():
        s = sim.detach().requires_grad_(True)
        value = loss.from_similarity(s, labels)
        (weights,) = torch.autograd.grad(value, s, allow_unused=True)
    if weights is None:  # the loss returned a constant (no valid pair)
        weights = torch.zeros_like(s)
    return value.detach(), weights


def gradient_from_weights(embeddings: Tensor, weights: Tensor) -> Tensor:
    """``dL/dx_i = (1/||x_i||)(I - f_i f_i^T) sum_j (W_ij + W_ji) f_j`` for pair weights ``W = dL/dS``."""
    embeddings = embeddings.detach()
    norms = embeddings.norm(dim=1, keepdim=True)
    unit = embeddings / norms
    along = (weights + weights.t()) @ unit  # dL/df_i
    tangent = along - (along * unit).sum(dim=1, keepdim=True) * unit
    return tangent / norms


def decompose(loss: PairLoss, embeddings: Tensor, labels: Any) -> Decomposition:
    """Pair weights ``dL/dS`` of ``loss`` at ``(embeddings, labels)`` and the gradient rebuilt from them.

    ``loss`` must be a :class:`~dml.losses.PairLoss` (a function of ``S`` only). Work in float64 to compare the
    rebuilt gradient with autograd's to round-off (the tests do, to 1e-8 relative error).

    >>> d = decompose(dml.losses.build("triplet"), embeddings, labels)
    >>> d.w_ap[a, p], d.w_an[a, n]        # the pull and push weights of anchor a
    >>> d.gradient                        # == autograd's dL/d(embeddings)
    """
    if not isinstance(loss, PairLoss):
        raise TypeError(
            f"decompose needs a dml.losses.PairLoss (a loss that sees the embeddings only through their "
            f"cosine-similarity matrix S); got {type(loss).__name__}. Proxy losses compare embeddings with "
            "learned class vectors, not with each other, so they have no pair weights: build a pair loss "
            "such as dml.losses.build('triplet')."
        )
    if not isinstance(embeddings, Tensor):
        raise TypeError(
            f"embeddings must be a torch.Tensor (N, D); got {type(embeddings).__name__}. "
            "Convert with torch.as_tensor(x, dtype=torch.float64)."
        )
    labels = torch.as_tensor(labels, device=embeddings.device)
    check_embeddings_and_labels(embeddings, labels)
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point; got {embeddings.dtype}. Use embeddings.double().")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class ids; got {labels.dtype}. Convert with labels.long().")
    labels = labels.long()
    if bool((embeddings.norm(dim=1) == 0).any()):
        raise ValueError(
            "an embedding is the zero vector, so it has no direction and S is undefined for it; "
            "remove it or check the model output."
        )

    loss.observe(embeddings)
    sim = cosine_similarity_matrix(embeddings.detach())
    value, weights = loss_and_pair_weights(loss, sim, labels)
    positive, negative = pair_masks(labels)
    zero = torch.zeros((), dtype=weights.dtype, device=weights.device)
    return Decomposition(
        loss=value,
        similarity=sim,
        weights=weights,
        positive_weights=torch.where(positive, weights, zero),
        negative_weights=torch.where(negative, weights, zero),
        positive_mask=positive,
        negative_mask=negative,
        gradient=gradient_from_weights(embeddings, weights),
    )
