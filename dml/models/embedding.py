"""The full model: images -> backbone feature map -> embedding head -> embeddings (B, embedding_dim)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dml.models.registry import build_backbone, build_head


class EmbeddingModel(nn.Module):
    """``backbone`` (with ``out_channels``) followed by a head (:class:`EmbeddingHead` or a registered one)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, channels_last: bool = False) -> None:
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
    head: str = "linear",
    head_kwargs: dict[str, Any] | None = None,
) -> EmbeddingModel:
    """Build an :class:`EmbeddingModel` from a registered backbone name.

    ``channels_last`` stores weights and inputs in NHWC memory format (faster convolutions with AMP on recent
    GPUs, no effect on results). ``backbone_kwargs`` go to the backbone factory (e.g. ``widths`` for small_cnn).
    ``head`` names a registered head (``"linear"``: :class:`EmbeddingHead`; ``"split"``: divide and conquer's
    separately normalised slices; ``"cgd"``: CGD's multi-descriptor head; ``"diml"``: the linear head that also
    returns grid embeddings in training), ``head_kwargs`` its options.
    """
    net = build_backbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
    module = build_head(
        head,
        net.out_channels,
        embedding_dim=embedding_dim,
        pooling=pooling,
        normalize=normalize,
        **(head_kwargs or {}),
    )
    model = EmbeddingModel(net, module, channels_last=channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
