"""Shared pieces of the metric losses: input validation, the cosine-similarity matrix and pair masks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dml.similarity import cosine_similarity_matrix, euclidean_from_similarity, pair_masks
from dml.utils import check_embeddings_and_labels

__all__ = [
    "MetricLoss",
    "PairLoss",
    "cosine_similarity_matrix",
    "euclidean_from_similarity",
    "masked_logsumexp",
    "mean_of_positive",
    "mean_or_zero",
    "pair_masks",
    "zero_loss",
]


class MetricLoss(nn.Module):
    """Base class: ``loss(embeddings (N, D), labels (N,)) -> scalar``.

    ``forward`` validates the inputs (shape, length, finiteness; ``ValueError`` otherwise), upcasts half-precision
    embeddings to float32 and hands them to :meth:`compute`, which subclasses implement. A batch without a single
    valid pair or triplet gives :func:`zero_loss`: an exact 0 that is still connected to the graph, so
    ``backward()`` works and gives zero gradients instead of NaN.
    """

    def forward(self, embeddings: Tensor, labels: Any) -> Tensor:
        labels = torch.as_tensor(labels, device=embeddings.device)
        check_embeddings_and_labels(embeddings, labels)
        if not embeddings.is_floating_point():
            raise ValueError(
                f"embeddings must be a floating-point tensor; got {embeddings.dtype}. "
                "Pass the model's output, not class ids or indices."
            )
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be integer class ids; got {labels.dtype}. Convert with labels.long().")
        if embeddings.dtype in (torch.float16, torch.bfloat16):
            embeddings = embeddings.float()  # similarities and margins need float32 precision (AMP)
        return self.compute(embeddings, labels.long())

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement compute(embeddings, labels).")


class PairLoss(MetricLoss):
    """Base class of the pair-based losses: a function of the cosine-similarity matrix only.

    ``compute`` L2-normalises the embeddings, forms ``S = f f^T`` and calls :meth:`from_similarity`. Because the
    loss sees the embeddings *only* through ``S``, its gradient factors as (Xuan & Pless 2022, arXiv:2201.11307)

    .. math::  \\frac{\\partial L}{\\partial x_i} = \\frac{1}{\\lVert x_i\\rVert}(I - f_i f_i^\\top)
               \\sum_j \\Big(\\frac{\\partial L}{\\partial S_{ij}} + \\frac{\\partial L}{\\partial S_{ji}}\\Big) f_j ,

    which :func:`dml.gradients.decompose` exposes: the per-pair weights ``dL/dS`` are everything that distinguishes
    one pair-based loss from another. Euclidean losses use :func:`euclidean_from_similarity`
    (``D = sqrt(2 - 2S)`` on the unit sphere), so they too are functions of ``S``.

    Subclasses implement ``from_similarity(sim, labels)``. Row ``i`` of ``sim`` holds anchor ``i``; the diagonal
    (self-similarity, 1) is never a valid pair and must be masked with :func:`pair_masks`.
    """

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        self.observe(embeddings)
        return self.from_similarity(cosine_similarity_matrix(embeddings), labels)

    def observe(self, embeddings: Tensor) -> None:
        """Show the embeddings to the loss's ``miner``, if it has one (distance-weighted sampling needs the
        embedding dimension, which ``S`` does not carry). Code that calls :meth:`from_similarity` directly, such as
        :func:`dml.gradients.decompose`, calls this first."""
        miner = getattr(self, "miner", None)
        if miner is not None:
            miner.observe(embeddings)

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement from_similarity(sim (N, N), labels (N,)).")


def zero_loss(embeddings: Tensor) -> Tensor:
    """A scalar 0 with a gradient path to ``embeddings`` (all-zero gradients)."""
    return embeddings.sum() * 0.0


def mean_of_positive(losses: Tensor, embeddings: Tensor) -> Tensor:
    """Mean of the strictly positive entries of ``losses`` (0 with a gradient path if there are none)."""
    active = losses > 0
    if not bool(active.any()):
        return zero_loss(embeddings)
    return losses[active].mean()


def mean_or_zero(losses: Tensor, embeddings: Tensor) -> Tensor:
    """Mean of ``losses`` (0 with a gradient path if empty)."""
    if losses.numel() == 0:
        return zero_loss(embeddings)
    return losses.mean()


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1, *, add_one: bool = False) -> Tensor:
    """``log(sum_{mask} exp(x))`` along ``dim`` (``log(1 + sum ...)`` with ``add_one=True``), safe for empty masks.

    Computed as ``m + log(sum(mask * exp(x - m)))`` with ``m`` the detached masked maximum (``max(m, 0)`` with
    ``add_one``), so masked-out entries are never exponentiated: filling them with ``-inf`` or the most negative
    float instead makes ``exp`` underflow on most of the matrix, which costs CPUs 20-60 times a normal ``exp``.
    With ``add_one=True`` an empty mask gives exactly 0 with a zero gradient; without it, an arbitrary finite value
    (with a zero gradient) that the caller must mask out.
    """
    with torch.no_grad():
        peak = x.masked_fill(~mask, float("-inf")).amax(dim=dim, keepdim=True)
        peak = peak.clamp_min(0.0) if add_one else torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = (torch.where(mask, x - peak, torch.zeros_like(x)).exp() * mask).sum(dim=dim, keepdim=True)
    if add_one:
        total = total + torch.exp(-peak)
    else:
        total = torch.where(mask.any(dim=dim, keepdim=True), total, torch.ones_like(total))
    return (peak + total.log()).squeeze(dim)
