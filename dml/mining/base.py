"""What a miner is: a rule that picks index tuples out of a batch, given its similarity matrix and labels.

Miners return *indices*, never losses, so one loss can be trained with different selections
(pytorch-metric-learning's loss/miner split; Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).
They work on the cosine-similarity matrix ``S`` (detached: selecting a tuple is not differentiable), so the loss
that consumes the indices still sees the embeddings only through ``S`` and stays decomposable
(:mod:`dml.gradients`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from dml.similarity import cosine_similarity_matrix


class Triplets(NamedTuple):
    """Index triplets ``(anchor[t], positive[t], negative[t])``; three int64 tensors of equal length."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor


class Pairs(NamedTuple):
    """Positive pairs ``(anchor_pos[i], positive[i])`` and negative pairs ``(anchor_neg[j], negative[j])``."""

    anchor_pos: Tensor
    positive: Tensor
    anchor_neg: Tensor
    negative: Tensor


class Miner(torch.nn.Module):
    """Base class. Subclasses implement :meth:`mine`; call the miner on embeddings or use ``mine(sim, labels)``."""

    def forward(self, embeddings: Tensor, labels: Any) -> Triplets | Pairs:
        labels = torch.as_tensor(labels, device=embeddings.device).long()
        self.observe(embeddings)
        with torch.no_grad():
            sim = cosine_similarity_matrix(
                embeddings.float() if embeddings.dtype in (torch.float16, torch.bfloat16) else embeddings
            )
        return self.mine(sim, labels)

    def observe(self, embeddings: Tensor) -> None:
        """Hook called with the batch's embeddings before :meth:`mine`, by ``forward`` and by losses that own a miner.

        A rule that needs more than ``S`` records it here (distance-weighted sampling needs the embedding
        dimension); the default does nothing.
        """

    def mine(self, sim: Tensor, labels: Tensor) -> Triplets | Pairs:
        """Select tuples from the (N, N) cosine-similarity matrix ``sim`` (treated as detached)."""
        raise NotImplementedError(f"{type(self).__name__} must implement mine(sim, labels).")
