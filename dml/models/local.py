"""Local embeddings on a grid: the model's own linear head at every cell, pooled to ``grid x grid`` cells.

DIML (Zhao, Rao, Wang, Lu & Zhou, "Towards Interpretable Deep Metric Learning with Structural Matching",
ICCV 2021; released code github.com/wl-zhao/DIML, ``evaluation/eval_diml.py``) compares two images through the
embeddings of their parts: the embedding layer applied at every location of the last feature map,

.. math::  z_i = W \\phi_i(x) + b, \\qquad i = 1, \\dots, H W,

average-pooled to a ``4 x 4`` grid (``R = 16`` parts; a map whose size is not a multiple of the grid is first
resized bilinearly to ``4 grid``, as the released code does for 7 x 7) and L2-normalised. Because the head is
affine, the mean of the grid cells before normalisation is the average-pooled embedding before normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.models.head import EmbeddingHead
from dml.models.registry import register_head


def grid_pool(local: Tensor, height: int, width: int, *, grid: int = 4) -> Tensor:
    """``(B, H*W, D)`` cell embeddings (row-major) -> ``(B, grid*grid, D)`` by average pooling."""
    if grid < 1:
        raise ValueError(f"grid must be a positive integer; got {grid}.")
    b, cells, d = local.shape
    if cells != height * width:
        raise ValueError(f"local has {cells} cells but height x width = {height} x {width}.")
    x = local.transpose(1, 2).reshape(b, d, height, width)
    if height % grid or width % grid:
        x = F.interpolate(x, size=(4 * grid, 4 * grid), mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(x, grid).flatten(2).transpose(1, 2)


def local_embeddings(model: nn.Module, images: Tensor, *, grid: int = 4) -> tuple[Tensor, Tensor]:
    """``(global (B, D), local (B, grid*grid, D))``, both L2-normalised, of an :class:`EmbeddingModel` whose
    head is linear (``model.head.local``); the global one is the model's own output."""
    head = getattr(model, "head", None)
    if not isinstance(head, EmbeddingHead):
        raise ValueError(
            "local_embeddings needs a model with a linear embedding head (model.head: linear or diml), whose "
            f"layer can be applied at every cell; got head {type(head).__name__}."
        )
    features = model.backbone(images)
    embedding = head(features)  # bit for bit the model's output (an unnormalised head is normalised here)
    return (embedding if head.normalize else F.normalize(embedding, dim=1)), _grid(head, features, grid)


def _grid(head: EmbeddingHead, features: Tensor, grid: int) -> Tensor:
    local = grid_pool(head.local(features), features.shape[2], features.shape[3], grid=grid)
    return F.normalize(local, dim=2)


@register_head("diml")
class DIMLHead(EmbeddingHead):
    """The linear head, which in training mode also returns its normalised grid embeddings:
    ``[f | z_1 | ... | z_R]``, ``(B, D (1 + grid^2))``, for the ``diml`` loss (:mod:`dml.losses.diml`); in eval mode
    (and in :func:`dml.eval.embed`) it returns ``f`` alone."""

    def __init__(
        self, in_channels: int, *, embedding_dim: int, pooling: str = "avg", normalize: bool = True, grid: int = 4
    ) -> None:
        super().__init__(in_channels, embedding_dim=embedding_dim, pooling=pooling, normalize=normalize)
        if grid < 1:
            raise ValueError(f"grid must be a positive integer; got {grid}.")
        self.grid = grid

    def forward(self, features: Tensor) -> Tensor:
        embedding = super().forward(features)
        if not self.training:
            return embedding
        local = _grid(self, features, self.grid)
        return torch.cat([embedding, local.flatten(1)], dim=1)
