"""The backbone registry: ``name -> factory(*, pretrained, **kwargs) -> nn.Module`` with ``out_channels``."""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

BackboneFactory = Callable[..., nn.Module]
_BACKBONES: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding ``factory`` under ``name``; the factory takes ``pretrained`` and keyword options."""

    def decorator(factory: BackboneFactory) -> BackboneFactory:
        if name in _BACKBONES:
            raise ValueError(f"A backbone named {name!r} is already registered; pick another name.")
        _BACKBONES[name] = factory
        return factory

    return decorator


def available_backbones() -> list[str]:
    """Registered backbone names."""
    return sorted(_BACKBONES)


def build_backbone(name: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered backbone: a module mapping images (B, 3, H, W) to a feature map (B, C, h, w).

    The module exposes ``out_channels`` (= C). ``pretrained=True`` loads ImageNet weights through torchvision's
    weights API (downloaded once into ``torch.hub.get_dir()/checkpoints``).
    """
    if name not in _BACKBONES:
        close = difflib.get_close_matches(str(name), _BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown backbone {name!r}.{hint} Choose one of {available_backbones()}.")
    factory = _BACKBONES[name]
    accepted = [p for p in inspect.signature(factory).parameters if p != "pretrained"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"Backbone {name!r} got unknown option(s) {unknown}; it accepts {accepted or 'none'}.")
    return factory(pretrained=pretrained, **kwargs)
