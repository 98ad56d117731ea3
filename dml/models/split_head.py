"""A split embedding head: one linear layer whose output is cut into K slices, each L2-normalised on its own.

Sanakoyeu, Tschernezki, Büchler & Ommer, "Divide and Conquer the Embedding Space for Metric Learning", CVPR 2019
(released code github.com/CompVis/metric-learning-divide-and-conquer, commit 1766c2c, ``lib/model.py``). With
``z = W pool(phi(x)) + b`` of dimension D and the slices ``z^{(k)}`` of ``ceil(D / K)`` consecutive neurons (the
last one shorter when K does not divide D), learner k's embedding and the full embedding are

.. math::  f^{(k)}(x) = \\frac{z^{(k)}}{\\lVert z^{(k)} \\rVert_2}, \\qquad
   f(x) = \\frac{1}{\\sqrt{K}} \\big[f^{(1)}(x), \\dots, f^{(K)}(x)\\big],

so the full embedding has unit length and ``f(x)^T f(y) = mean_k f^{(k)}(x)^T f^{(k)}(y)``: its cosine similarity
is the mean of the learners' similarities. (The release returns the concatenation without the ``1 / sqrt(K)`` and
normalises it in the loss; the rankings are the same.) Each slice's weights are initialised with Xavier-normal
on their own, as released (``init_splitted``).

``layout``: ``"shared"`` (one ``nn.Linear``, as released) or ``"separate"`` (one ``nn.Linear`` per slice, the same
function and initialisation). A loss on slice k gives the other slices' weights a zero gradient in both; with
``"separate"`` their gradient is ``None``, so an optimiser with momentum or weight decay (Adam) leaves them exactly
unchanged, while with ``"shared"`` Adam's moment estimates and weight decay still move them, as in the release.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.models.pooling import build_pooling
from dml.models.registry import register_head
from dml.utils.checks import check_choice

LAYOUTS = ("shared", "separate")


def slice_bounds(embedding_dim: int, num_slices: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the K slices: ``ceil(D / K)`` neurons each, the last cut at D (as released)."""
    if num_slices < 1 or embedding_dim < num_slices:
        raise ValueError(
            f"A split head needs 1 <= num_slices <= embedding_dim; got num_slices={num_slices}, "
            f"embedding_dim={embedding_dim}. Lower num_slices or raise model.embedding_dim."
        )
    width = math.ceil(embedding_dim / num_slices)
    bounds = [(k * width, min((k + 1) * width, embedding_dim)) for k in range(num_slices)]
    if any(start >= stop for start, stop in bounds):
        raise ValueError(
            f"embedding_dim={embedding_dim} cut into slices of ceil({embedding_dim}/{num_slices}) = {width} "
            f"leaves slice {num_slices} empty; choose num_slices dividing embedding_dim."
        )
    return bounds


@register_head("split")
class SplitEmbeddingHead(nn.Module):
    """``pooling`` -> dropout -> linear to ``embedding_dim`` -> K slices, each normalised (module docstring).

    Args:
        in_channels: Channels of the backbone's feature map.
        embedding_dim: D, the full embedding dimension.
        num_slices: K, the number of learners.
        pooling: ``"avg"``, ``"max"`` or ``"gem"``.
        dropout: Dropout on the pooled features (the release uses 0.01).
        layout: ``"shared"`` or ``"separate"`` (module docstring).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        embedding_dim: int,
        num_slices: int,
        pooling: str = "avg",
        dropout: float = 0.0,
        layout: str = "shared",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        check_choice(layout, LAYOUTS, name="layout")
        if not normalize:
            raise ValueError("The split head normalises every slice; set model.normalize=true with model.head=split.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout}.")
        self.bounds = slice_bounds(embedding_dim, num_slices)
        self.pool = build_pooling(pooling)
        self.dropout = nn.Dropout(dropout)
        self.layout, self.num_slices, self.embedding_dim = layout, num_slices, embedding_dim
        self.normalize = True
        sizes = [stop - start for start, stop in self.bounds]
        if layout == "shared":
            self.fc = nn.Linear(in_channels, embedding_dim)
            for (start, stop), part in zip(self.bounds, self._init_slices(in_channels, sizes)):
                self.fc.weight.data[start:stop], self.fc.bias.data[start:stop] = part.weight.data, part.bias.data
        else:
            self.slices = nn.ModuleList(self._init_slices(in_channels, sizes))

    @staticmethod
    def _init_slices(in_channels: int, sizes: list[int]) -> list[nn.Linear]:
        layers = [nn.Linear(in_channels, size) for size in sizes]
        for layer in layers:
            nn.init.xavier_normal_(layer.weight, gain=1.0)
        return layers

    def features(self, feature_map: Tensor) -> Tensor:
        """The L2-normalised pooled features (the penultimate layer D&C clusters), without dropout."""
        return F.normalize(self.pool(feature_map), p=2, dim=1)

    def learners(self, feature_map: Tensor) -> list[Tensor]:
        """The K unit-length learner embeddings ``f^{(k)}``, ``[(B, D_k), ...]``."""
        x = self.dropout(self.pool(feature_map))
        if self.layout == "shared":
            z = self.fc(x)
            parts = [z[:, start:stop] for start, stop in self.bounds]
        else:
            parts = [layer(x) for layer in self.slices]
        return [F.normalize(part, p=2, dim=1) for part in parts]

    def learner(self, feature_map: Tensor, k: int) -> Tensor:
        """Learner k's unit embedding ``f^{(k)}`` alone: with ``layout="separate"`` no other slice is computed,
        so a loss on it leaves the other slices' gradients ``None``."""
        if not 0 <= k < self.num_slices:
            raise IndexError(f"learner {k} does not exist; the head has learners 0..{self.num_slices - 1}.")
        x = self.dropout(self.pool(feature_map))
        if self.layout == "shared":
            start, stop = self.bounds[k]
            return F.normalize(self.fc(x)[:, start:stop], p=2, dim=1)
        return F.normalize(self.slices[k](x), p=2, dim=1)

    def forward(self, feature_map: Tensor) -> Tensor:
        return torch.cat(self.learners(feature_map), dim=1) / math.sqrt(self.num_slices)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, num_slices={self.num_slices}, layout={self.layout!r}"
