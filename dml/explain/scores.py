"""Scores of a heat map against a known object mask: mass on the object and the pointing game.

Only data whose generator knows where the object is allows these checks (the ``synthetic`` dataset's
``masks``). With :math:`H(i)` a heat map and :math:`m_i \\in [0, 1]` the share of cell ``i`` that the object covers:

.. math::  \\text{mass on object} = \\frac{\\sum_i m_i \\max(H(i), 0)}{\\sum_i \\max(H(i), 0)}

the share of the *positive* similarity mass that falls on the object (a uniform map scores the mean coverage
:math:`\\bar m`, the chance level). The **pointing game** (Zhang et al., "Top-down Neural Attention by Excitation
Backprop", ECCV 2016) scores a hit when the map's maximum falls on a cell the object covers at least ``threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def cell_coverage(masks: Any, grid: tuple[int, int]) -> np.ndarray:
    """Object coverage per feature-map cell: ``(N, S, S)`` masks (``uint8`` 0-255, bool or float) -> ``(N, h, w)``.

    ``S`` must be a multiple of ``h`` and of ``w``; each cell's value is the mean of its pixels.
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, S, S) or (S, S); got shape {masks.shape}.")
    values = masks / 255.0 if masks.dtype == np.uint8 else masks.astype(np.float64)
    n, rows, cols = values.shape
    h, w = grid
    if rows % h or cols % w:
        raise ValueError(f"Masks of {rows} x {cols} pixels do not tile a {h} x {w} grid; use an image size that does.")
    return values.reshape(n, h, rows // h, w, cols // w).mean(axis=(2, 4))


def _check(heat: Any, coverage: Any) -> tuple[np.ndarray, np.ndarray]:
    heat, coverage = np.asarray(heat, dtype=np.float64), np.asarray(coverage, dtype=np.float64)
    if heat.shape != coverage.shape or heat.ndim < 2:
        raise ValueError(
            f"heat maps {heat.shape} and coverage {coverage.shape} must have the same (..., h, w) shape; compute "
            "the coverage with cell_coverage(masks, grid=heat.shape[-2:])."
        )
    return heat.reshape(*heat.shape[:-2], -1), coverage.reshape(*coverage.shape[:-2], -1)


def mass_on_mask(heat: Any, coverage: Any) -> np.ndarray:
    """Share of each map's positive mass on the object (``nan`` for a map without positive mass)."""
    heat, coverage = _check(heat, coverage)
    positive = np.clip(heat, 0, None)
    total = positive.sum(axis=-1)
    on_object = (positive * coverage).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, on_object / np.where(total > 0, total, 1.0), np.nan)


def pointing_game(heat: Any, coverage: Any, *, threshold: float = 0.5) -> np.ndarray:
    """Whether each map's maximum (first arg-max in row-major order) is on a cell covered at least ``threshold``."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1]; got {threshold}.")
    heat, coverage = _check(heat, coverage)
    best = heat.argmax(axis=-1)
    return np.take_along_axis(coverage, best[..., None], axis=-1)[..., 0] >= threshold
