"""The full model: images -> backbone feature map -> embedding head -> embeddings (B, embedding_dim)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dml.models.head import EmbeddingHead
from dml.models.registry import build_backbone


class EmbeddingModel(nn.Module):
    """``backbone`` (with ``out_channels``) followed by an :class:`EmbeddingHead`."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, *, channels_last: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = channels_last
        self.embedding_dim = head.embedding_dim

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4:
            raise ValueError(
                f"EmbeddingModel expects a batch of images (B, C, H, W); got shape {tuple(images.shape)}. "
                "Add a batch dimension with images.unsqueeze(0) for a single image."
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(images))


def build(
    backbone: str = "small_cnn",
    *,
    embedding_dim: int = 64,
    pooling: str = "avg",
    normalize: bool = True,
    pretrained: bool = False,
    channels_last: bool = False,
    backbone_kwargs: dict[str, Any] | None = None,
) -> EmbeddingModel:
    """Build an :class:`EmbeddingModel` from a registered backbone name.

    ``channels_last`` stores weights and inputs in NHWC memory format (faster convolutions with AMP on recent
    GPUs, no effect on results). ``backbone_kwargs`` go to the backbone factory (e.g. ``widths`` for small_cnn).
    """
    net = build_backbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
    head = EmbeddingHead(net.out_channels, embedding_dim=embedding_dim, pooling=pooling, normalize=normalize)
    model = EmbeddingModel(net, head, channels_last=channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
