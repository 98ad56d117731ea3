"""Similarities and pair masks shared by the losses, the miners and the diagnostics.

Everything in the course works on L2-normalised embeddings ``f_i = x_i / ||x_i||``, where cosine similarity
``S_ij = f_i . f_j`` and Euclidean distance are tied by ``||f_i - f_j||^2 = 2 - 2 S_ij``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_similarity_matrix(embeddings: Tensor) -> Tensor:
    """``S[i, j] = <x_i, x_j> / (||x_i|| ||x_j||)``, an (N, N) matrix."""
    unit = F.normalize(embeddings, p=2, dim=1)
    return unit @ unit.t()


def euclidean_from_similarity(sim: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distance between unit vectors from their cosine similarity: ``D = sqrt(max(2 - 2S, eps))``.

    The clamp keeps the gradient ``dD/dS = -1/D`` finite on the diagonal and for duplicates (``S = 1``).
    """
    return (2.0 - 2.0 * sim).clamp_min(eps).sqrt()


def pair_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean (N, N) masks of positive pairs (same label, ``i != j``) and negative pairs (different label)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same
