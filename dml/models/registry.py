"""The backbone registry: ``name -> factory(*, pretrained, **kwargs) -> nn.Module`` with ``out_channels``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from dml.utils.registry import Registry

BackboneFactory = Callable[..., nn.Module]
_BACKBONES: Registry[BackboneFactory] = Registry("backbone", passed=("pretrained",))


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding ``factory`` under ``name``; the factory takes ``pretrained`` and keyword options."""
    return _BACKBONES.register(name)


def available_backbones() -> list[str]:
    """Registered backbone names."""
    return _BACKBONES.available()


def build_backbone(name: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered backbone: a module mapping images (B, 3, H, W) to a feature map (B, C, h, w).

    The module exposes ``out_channels`` (= C). ``pretrained=True`` loads ImageNet weights through torchvision's
    weights API (downloaded once into ``torch.hub.get_dir()/checkpoints``).
    """
    return _BACKBONES.build(name, pretrained=pretrained, **kwargs)


# Embedding heads: ``name -> factory(in_channels, *, embedding_dim, pooling, normalize, **kwargs) -> nn.Module``.
HeadFactory = Callable[..., nn.Module]
_HEADS: Registry[HeadFactory] = Registry("head", passed=("in_channels", "embedding_dim", "pooling", "normalize"))


def register_head(name: str) -> Callable[[HeadFactory], HeadFactory]:
    """Decorator adding an embedding head under ``name`` (``model.head`` of a config)."""
    return _HEADS.register(name)


def available_heads() -> list[str]:
    """Registered head names."""
    return _HEADS.available()


def build_head(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build a registered head mapping a feature map (B, C, h, w) to embeddings (B, embedding_dim)."""
    return _HEADS.check_keywords(name, kwargs)(in_channels, **kwargs)
