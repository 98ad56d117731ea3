"""Shared pieces of the metric losses: input validation, the cosine-similarity matrix and pair masks."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.utils import check_embeddings_and_labels


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
            raise ValueError(f"embeddings must be a floating-point tensor; got {embeddings.dtype}. "
                             "Pass the model's output, not class ids or indices.")
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be integer class ids; got {labels.dtype}. Convert with labels.long().")
        if embeddings.dtype in (torch.float16, torch.bfloat16):
            embeddings = embeddings.float()  # similarities and margins need float32 precision (AMP)
        return self.compute(embeddings, labels.long())

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement compute(embeddings, labels).")


def zero_loss(embeddings: Tensor) -> Tensor:
    """A scalar 0 with a gradient path to ``embeddings`` (all-zero gradients)."""
    return embeddings.sum() * 0.0


def cosine_similarity_matrix(embeddings: Tensor) -> Tensor:
    """``S[i, j] = <f_i, f_j> / (||f_i|| ||f_j||)``."""
    unit = F.normalize(embeddings, p=2, dim=1)
    return unit @ unit.t()


def pair_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean (N, N) masks of positive pairs (same label, ``i != j``) and negative pairs (different label)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


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
