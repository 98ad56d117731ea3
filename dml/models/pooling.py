"""Global pooling: feature map (B, C, H, W) -> vector (B, C).

Generalised-mean (GeM) pooling, Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval with No Human
Annotation", TPAMI 2018 (arXiv:1711.02512), Eq. 2:

.. math::  f_c = \\Big(\\frac{1}{|\\mathcal{X}_c|}\\sum_{x \\in \\mathcal{X}_c} x^{p}\\Big)^{1/p}

``p = 1`` is average pooling and ``p -> inf`` tends to max pooling; ``p`` is learned (initialised to 3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dml.utils.checks import check_choice


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent ``p`` (shared by all channels).

    Activations are clamped to ``eps`` first so that ``x ** p`` is defined for fractional ``p``; after a ReLU the
    inputs are non-negative, so this only moves exact zeros.
    """

    def __init__(self, *, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(
                f"GeM needs p > 0; got p={p}. Use p=1 for average pooling or a large p for max-like pooling."
            )
        self.eps = eps
        p_tensor = torch.tensor(float(p))
        if learnable:
            self.p = nn.Parameter(p_tensor)
        else:
            self.register_buffer("p", p_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.to(x.dtype)
        pooled = x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1))
        return pooled.pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()):.4f}, eps={self.eps}, learnable={isinstance(self.p, nn.Parameter)}"


class AvgPool(nn.Module):
    """Global average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class MaxPool(nn.Module):
    """Global max pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(x, 1).flatten(1)


_POOLINGS: dict[str, Callable[[], nn.Module]] = {"avg": AvgPool, "max": MaxPool, "gem": GeM}


def available_poolings() -> list[str]:
    """Names accepted by :func:`build_pooling`."""
    return sorted(_POOLINGS)


def build_pooling(name: str) -> nn.Module:
    """``"avg"``, ``"max"`` or ``"gem"`` (learnable ``p = 3``)."""
    check_choice(name, available_poolings(), name="pooling")
    return _POOLINGS[name]()
