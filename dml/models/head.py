"""Embedding head: feature map -> pooled vector -> linear projection -> (optional) unit-length embedding.

.. math::  f(x) = \\frac{W\\,\\mathrm{pool}(\\phi(x)) + b}{\\lVert W\\,\\mathrm{pool}(\\phi(x)) + b \\rVert_2}

L2 normalisation puts every embedding on the unit sphere, where squared Euclidean distance and cosine similarity
are equivalent (``||a - b||^2 = 2 - 2 a.b``); most DML losses assume it (Wu et al., "Sampling Matters in Deep
Embedding Learning", ICCV 2017; Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dml.models.pooling import build_pooling
from dml.models.registry import register_head


@register_head("linear")
class EmbeddingHead(nn.Module):
    """``pooling`` ("avg", "max", "gem") -> ``nn.Linear(in_channels, embedding_dim)`` -> L2 normalisation."""

    def __init__(self, in_channels: int, *, embedding_dim: int, pooling: str = "avg", normalize: bool = True) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive integer; got {embedding_dim}.")
        self.pool = build_pooling(pooling)
        self.fc = nn.Linear(in_channels, embedding_dim)
        self.normalize = normalize
        self.embedding_dim = embedding_dim

    def forward(self, features: Tensor) -> Tensor:
        x = self.fc(self.pool(features))
        return F.normalize(x, p=2, dim=1) if self.normalize else x

    def local(self, features: Tensor) -> Tensor:
        """The linear projection applied at every cell of the feature map, before pooling and normalisation.

        Returns ``(B, H*W, embedding_dim)`` (cells in row-major order): ``z_i = W phi_i(x) + b``. With average
        pooling, ``W mean_i(phi_i) + b = mean_i(z_i)``, so the pooled embedding is the mean of these local
        embeddings (before normalisation); spatial similarity maps (Stylianou et al., WACV 2019) and structural
        matching (DIML, Zhao et al., ICCV 2021) compare them.
        """
        if features.dim() != 4:
            raise ValueError(f"local expects a feature map (B, C, H, W); got shape {tuple(features.shape)}.")
        return self.fc(features.flatten(2).transpose(1, 2))
