"""Per-cell contributions to a pooled embedding: the pooled vector written exactly as a sum over feature-map cells.

Average, max and GeM pooling are positively homogeneous of degree 1 in the feature map ``x`` (scaling ``x`` scales
the pooled vector), so Euler's theorem writes each pooled channel as a sum of *gradient × input* terms, one per cell:

.. math::  f_k = \\sum_i c_{ik}, \\qquad c_{ik} = x_{ik}\\,\\frac{\\partial f_k}{\\partial x_{ik}}

* average pooling: :math:`c_{ik} = x_{ik} / n` (Stylianou, Souvenir & Pless, "Visualizing Deep Similarity Networks",
  WACV 2019; released code GWUvision/Similarity-Visualization ``similarity_ops.py`` @ db545bd);
* max pooling: :math:`c_{ik} = x_{ik}` at the channel's arg-max cell, 0 elsewhere (each channel credited to the cell
  it was taken from; derived here, the paper's own formula for max pooling is not available to us);
* GeM, :math:`f_k = (\\tfrac1n \\sum_i x_{ik}^p)^{1/p}`: :math:`c_{ik} = x_{ik}^p / (n f_k^{p-1})`, each cell's
  share of the p-th-power mean (derived; exact, since :math:`\\sum_i x_{ik}^p / (n f_k^{p-1}) = f_k^p / f_k^{p-1}`),
  with ``x`` clamped at ``eps`` as :class:`dml.models.GeM` does. ``p = 1`` gives average and ``p -> inf`` max
  pooling's credit.

A linear head :math:`e = W f + b` is pushed inside the sum: :math:`u_i = W c_i + b / n`, so that
:math:`e = \\sum_i u_i` exactly (the WACV 2022 transformer follow-up of Black, Stylianou, Pless & Souvenir applies
the final linear layer before pooling the same way; vidarlab/xformer-paired-viz @ 6ef0c80). The bias is *spread*
evenly over the ``n`` cells (``bias="spread"``); with average pooling this is ``EmbeddingHead.local(x) / n``.
``bias="drop"`` leaves it out, so the cells sum to :math:`e - b` and the maps built from them are not exact.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from dml.models.pooling import AvgPool, GeM, MaxPool
from dml.utils.checks import check_choice

POOLINGS = ("avg", "max", "gem")
BIAS_MODES = ("spread", "drop")


class Contributions(NamedTuple):
    """Per-cell contributions of a batch of feature maps (``float64``).

    Attributes:
        cells: ``(B, n, D)``, cells in row-major order; they sum over ``n`` to ``embedding`` (``bias="spread"``) or
            to ``embedding - b`` (``bias="drop"``).
        embedding: ``(B, D)``, the pooled (and projected) embedding before L2 normalisation.
        grid: ``(h, w)`` of the feature map, ``h * w = n``.
        exact: whether ``cells`` sum to ``embedding``.
    """

    cells: Tensor
    embedding: Tensor
    grid: tuple[int, int]
    exact: bool


def _channel_contributions(x: Tensor, *, pooling: str, p: float, eps: float) -> tuple[Tensor, Tensor]:
    """``(c, f)``: per-cell contributions ``(B, n, C)`` and the pooled vector ``(B, C)``, for ``x`` of ``(B, n, C)``."""
    n = x.shape[1]
    if pooling == "avg":
        c = x / n
    elif pooling == "max":
        winner = x.argmax(dim=1, keepdim=True)  # (B, 1, C): the cell each channel is taken from
        c = torch.zeros_like(x).scatter_(1, winner, x.gather(1, winner))
    else:
        x = x.clamp(min=eps)
        powered = x.pow(p)
        f = powered.mean(dim=1).pow(1.0 / p)
        c = powered / (n * f.pow(p - 1.0)).unsqueeze(1)
        return c, f
    return c, c.sum(dim=1)


def cell_contributions(
    features: Tensor,
    *,
    pooling: str = "avg",
    linear: nn.Linear | None = None,
    p: float = 3.0,
    eps: float = 1e-6,
    bias: str = "spread",
) -> Contributions:
    """Write the embedding ``linear(pool(features))`` of each feature map as a sum over its cells (see the module).

    Args:
        features: ``(B, C, h, w)`` feature maps (a single map ``(C, h, w)`` is treated as a batch of one).
        pooling: ``"avg"``, ``"max"`` or ``"gem"``.
        linear: The embedding head's linear layer ``C -> D``; ``None`` decomposes the pooled feature itself.
        p, eps: GeM's exponent and clamp (ignored for the other poolings).
        bias: ``"spread"`` (``b / n`` added to every cell: exact) or ``"drop"`` (cells without the bias).

    Returns:
        :class:`Contributions` in ``float64``.
    """
    check_choice(pooling, POOLINGS, name="pooling")
    check_choice(bias, BIAS_MODES, name="bias")
    if features.dim() == 3:
        features = features.unsqueeze(0)
    if features.dim() != 4:
        raise ValueError(f"features must be (B, C, h, w) feature maps; got shape {tuple(features.shape)}.")
    if pooling == "gem" and p <= 0:
        raise ValueError(f"GeM needs p > 0; got p={p}.")
    _, channels, h, w = features.shape
    x = features.detach().to(torch.float64).flatten(2).transpose(1, 2)  # (B, n, C)
    c, f = _channel_contributions(x, pooling=pooling, p=float(p), eps=float(eps))
    if linear is None:
        return Contributions(c, f, (h, w), True)
    if linear.in_features != channels:
        raise ValueError(
            f"The linear head expects {linear.in_features} input channels but the feature maps have {channels}; "
            "pass the head that belongs to the backbone that produced the features."
        )
    weight = linear.weight.detach().to(torch.float64)
    offset = linear.bias.detach().to(torch.float64) if linear.bias is not None else None
    cells = c @ weight.T
    embedding = f @ weight.T
    exact = True
    if offset is not None:
        embedding = embedding + offset
        if bias == "spread":
            cells = cells + offset / (h * w)
        else:
            exact = not bool(torch.any(offset != 0))
    return Contributions(cells, embedding, (h, w), exact)


def head_pooling(head: Any) -> dict[str, Any]:
    """The pooling of an :class:`dml.models.EmbeddingHead` as keyword arguments of :func:`cell_contributions`."""
    pool = getattr(head, "pool", None)
    if isinstance(pool, AvgPool):
        return {"pooling": "avg"}
    if isinstance(pool, MaxPool):
        return {"pooling": "max"}
    if isinstance(pool, GeM):
        return {"pooling": "gem", "p": float(pool.p.detach()), "eps": float(pool.eps)}
    raise ValueError(
        f"Cannot decompose a head with pooling {type(pool).__name__}; the spatial decomposition supports the "
        "average, max and GeM pooling of dml.models.EmbeddingHead."
    )


def head_contributions(head: Any, features: Tensor, *, bias: str = "spread") -> Contributions:
    """:func:`cell_contributions` with the pooling and the linear layer of an ``EmbeddingHead``."""
    linear = getattr(head, "fc", None)
    if not isinstance(linear, nn.Linear):
        raise ValueError(
            f"The head {type(head).__name__} has no linear layer `fc`; pass a dml.models.EmbeddingHead, or call "
            "cell_contributions with pooling= and linear= yourself."
        )
    return cell_contributions(features, linear=linear, bias=bias, **head_pooling(head))
