"""Region queries: the similarity carried by a part of an image, and a search by that part.

Summing the heat map over a region ``R`` of image A gives the part of the similarity that comes from it
(derived from Stylianou, Souvenir & Pless, WACV 2019, consistent with its abstract's "similarity searches on objects
or sub-regions"):

.. math::

    s_R = \\sum_{i \\in R} H_A(i) = q_R \\cdot \\hat e_b, \\qquad
    q_R = \\frac{\\sum_{i\\in R} u_i}{\\lVert e_a\\rVert}

``s_R`` is linear in the other image's unit embedding :math:`\\hat e_b`, so a search by a region needs only the
query's cell contributions and the gallery's stored embeddings: no gallery feature map is recomputed. A region may
also weight cells fractionally (``w_i`` in [0, 1], e.g. the share of a cell a pixel mask covers):
:math:`s_R = \\sum_i w_i H_A(i)`. The full region gives ``s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dml.explain.contributions import Contributions
from dml.explain.maps import SimilarityMaps, as_image_batch, model_contributions
from dml.utils.checks import check_choice, check_positive_int


def cell_weights(region: Any, grid: tuple[int, int]) -> np.ndarray:
    """A region as ``(h, w)`` cell weights in [0, 1].

    Args:
        region: A 2-D array, either on the grid itself (``(h, w)``) or on the image (``(H, W)`` with ``H`` a multiple
            of ``h`` and ``W`` of ``w``; then each cell's weight is the share of its pixels in the region). Boolean,
            ``uint8`` (0-255, as object masks are stored) or float in [0, 1].
        grid: ``(h, w)`` of the feature map.
    """
    weights = np.asarray(region)
    if weights.ndim != 2:
        raise ValueError(f"A region must be a 2-D mask; got shape {weights.shape}.")
    if weights.dtype == np.uint8:
        weights = weights / 255.0
    weights = weights.astype(np.float64)
    if not np.all((weights >= 0) & (weights <= 1)):
        raise ValueError("Region weights must lie in [0, 1] (or be a boolean or uint8 0-255 mask).")
    h, w = grid
    if weights.shape == (h, w):
        return weights
    rows, cols = weights.shape
    if rows % h or cols % w:
        raise ValueError(
            f"A region of shape {weights.shape} does not tile the {h} x {w} feature grid; pass a mask of the grid's "
            f"shape or of the image's shape (a multiple of {h} x {w})."
        )
    return weights.reshape(h, rows // h, w, cols // w).mean(axis=(1, 3))


def region_similarity(maps: SimilarityMaps, region: Any, *, side: str = "a") -> float:
    """``s_R = sum_i w_i H(i)`` over a region of image A (``side="a"``) or B; the whole image gives ``similarity``."""
    check_choice(side, ("a", "b"), name="side")
    heat = maps.map_a if side == "a" else maps.map_b
    return float((cell_weights(region, heat.shape) * heat).sum())


def region_query(contributions: Contributions, region: Any, *, index: int = 0) -> Tensor:
    """The query vector ``q_R`` of one image's region: ``s_R(b) = q_R . e_b / ||e_b||`` for any image ``b``."""
    weights = torch.as_tensor(cell_weights(region, contributions.grid).reshape(-1))
    cells, embedding = contributions.cells[index], contributions.embedding[index]
    return (weights[:, None] * cells).sum(dim=0) / embedding.norm()


def region_search(
    model: Any, image: Any, region: Any, gallery: Tensor, *, k: int = 5, bias: str = "spread"
) -> tuple[np.ndarray, np.ndarray]:
    """Rank a gallery by the similarity carried by ``region`` of ``image`` ("find images that contain this part").

    Args:
        model: The ``EmbeddingModel`` that embedded the gallery.
        image: The query image ``(C, H, W)``.
        region: The part of the query, as for :func:`cell_weights`.
        gallery: ``(N, D)`` gallery embeddings from ``model`` (normalised or not): only their direction is used.
        k: How many gallery items to return.

    Returns:
        ``(indices, scores)`` of the ``k`` best gallery items, best first (ties by index); ``scores`` are ``s_R``.
    """
    k = check_positive_int(k, "k")
    gallery = torch.as_tensor(gallery).to(torch.float64)
    query = region_query(model_contributions(model, as_image_batch(image, "image"), bias=bias), region)
    if gallery.dim() != 2 or gallery.shape[1] != query.shape[0]:
        raise ValueError(
            f"gallery must be (N, {query.shape[0]}) embeddings of this model; got shape {tuple(gallery.shape)}."
        )
    scores = (F.normalize(gallery, dim=1) @ query).numpy()
    order = np.lexsort((np.arange(scores.size), -scores))[:k]
    return order, scores[order]
