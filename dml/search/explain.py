"""Why a match matches: the spatial similarity maps of :mod:`dml.explain` on a query and its matches, and region
queries, for ``dml search`` and its report.

For a query ``a`` and a match ``b`` the cosine similarity of their embeddings is an exact sum over the cells of
each image's feature map (Stylianou, Souvenir & Pless, "Visualizing Deep Similarity Networks", WACV 2019; exact for
average pooling, and for max and GeM pooling with the decomposition of :mod:`dml.explain.contributions`):
:math:`s = \\sum_i H_A(i) = \\sum_j H_B(j)`. :func:`pair_maps` gives :math:`H_A` and :math:`H_B` for one query against
several matches; :func:`heat_overlay` draws one over the image the model saw (the centre crop), red where a cell
raises the similarity, blue where it lowers it, on a colour scale shared by the pair.

A region query (``--region x0,y0,x1,y1``, pixels of the query file) ranks the gallery by the similarity carried by
that part of the query, :math:`s_R(b) = \\sum_{i} w_i H_A(i) = q_R \\cdot \\hat e_b` with :math:`w_i` the share of
cell ``i`` inside the region (:func:`dml.explain.region_query`): a linear function of the stored unit embeddings, so
the ranking is the exact search with the query vector :math:`q_R / \\lVert q_R\\rVert` and the scores are the
cosines times :math:`\\lVert q_R\\rVert`. :func:`input_box` maps the region through the preprocessing's resize and
centre crop (:mod:`dml.search.preprocess`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dml.explain import Contributions, maps_from_contributions, model_contributions, region_query
from dml.search.preprocess import Preprocessing


def model_input(pre: Preprocessing, path: str | Path) -> torch.Tensor:
    """The model's input ``(1, C, H, W)`` for the image file ``path``."""
    return pre.batch_transform()([pre.load(path)])


def display_image(pre: Preprocessing, batch: torch.Tensor) -> np.ndarray:
    """The first image of a model input batch as ``uint8`` H×W×3, normalisation undone."""
    x = batch[0].detach().cpu().float()
    if pre.mean is not None:
        x = x * torch.tensor(pre.std)[:, None, None] + torch.tensor(pre.mean)[:, None, None]
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def pair_maps(model: Any, query: torch.Tensor, matches: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(H_A (M, h, w), H_B (M, h', w'), similarities (M,))`` of the query input ``(1, C, H, W)`` against each of
    the ``M`` match inputs ``(M, C, H, W)``; ``H_A[m].sum() == H_B[m].sum() == similarities[m]``."""
    a = model_contributions(model, query)
    b = model_contributions(model, matches)
    m = matches.shape[0]
    tiled = Contributions(a.cells.expand(m, -1, -1), a.embedding.expand(m, -1), a.grid, a.exact)
    map_a, map_b, similarity = maps_from_contributions(tiled, b)
    return map_a.numpy(), map_b.numpy(), similarity.numpy()


def heat_overlay(image: np.ndarray, heat: np.ndarray, vmax: float, *, size: int = 96, alpha: float = 0.55) -> str:
    """``image`` (H×W×3 ``uint8``) with the signed map ``heat`` (h×w) blended over it (``RdBu_r``, ±``vmax``),
    shrunk to ``size`` pixels, as a JPEG ``data:`` URI."""
    from matplotlib import colormaps

    scaled = np.clip(heat / max(float(vmax), 1e-12), -1.0, 1.0) * 0.5 + 0.5
    colours = (colormaps["RdBu_r"](scaled)[..., :3] * 255).astype(np.uint8)
    picture = Image.fromarray(image)
    layer = Image.fromarray(colours).resize(picture.size, Image.NEAREST)
    blended = Image.blend(picture, layer, alpha)
    blended.thumbnail((size, size))
    buffer = io.BytesIO()
    blended.save(buffer, format="JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parse_region(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` as four numbers with ``x0 < x1`` and ``y0 < y1`` (``ValueError`` otherwise)."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(
            f"--region {text!r} must be x0,y0,x1,y1 in pixels of the query image, with x0 < x1 and y0 < y1."
        )
    return box  # type: ignore[return-value]


def input_box(pre: Preprocessing, size: tuple[int, int], box: Sequence[float]) -> tuple[float, ...]:
    """``box`` (pixels of an image of ``size`` = (W, H)) in pixels of the model's input, through the resize and
    centre-crop steps of ``pre``."""
    steps = []  # (shorter side after the resize, side of the square crop kept) per step
    if pre.pipeline == "cached":
        steps = [(pre.cache_size, pre.cache_size), (pre.test_resize, pre.size)]
    elif pre.pipeline == "jpeg":
        steps = [(pre.test_resize, pre.size)]
    else:
        steps = [(pre.size, pre.size)]
    w, h = size
    x0, y0, x1, y1 = box
    for short, crop in steps:
        if w <= h:
            new_w, new_h = short, int(short * h / w)
        else:
            new_w, new_h = int(short * w / h), short
        sx, sy = new_w / w, new_h / h
        left, top = round((new_w - crop) / 2.0), round((new_h - crop) / 2.0)
        x0, x1 = x0 * sx - left, x1 * sx - left
        y0, y1 = y0 * sy - top, y1 * sy - top
        w = h = crop
    return x0, y0, x1, y1


def box_weights(box: Sequence[float], side: int, grid: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` weights: the share of each feature-map cell (cells tile the ``side``×``side`` input evenly)
    inside ``box``; ``ValueError`` when the box misses the input."""
    h, w = grid

    def overlap(lo: float, hi: float, cells: int) -> np.ndarray:
        edges = np.arange(cells + 1) * side / cells
        return np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0, None) / (side / cells)

    weights = np.outer(overlap(box[1], box[3], h), overlap(box[0], box[2], w))
    if not weights.any():
        raise ValueError(
            "The region lies outside the part of the query the model sees (its centre crop); choose a "
            "region inside the image's central square."
        )
    return weights


def region_vector(model: Any, pre: Preprocessing, path: Path, region: Sequence[float]) -> torch.Tensor:
    """The query vector :math:`q_R` (float64, D) of ``region`` (pixels of the file ``path``)."""
    batch = model_input(pre, path)
    with Image.open(path) as image:
        size = image.size
    contributions = model_contributions(model, batch)
    weights = box_weights(input_box(pre, size, region), batch.shape[-1], contributions.grid)
    return region_query(contributions, weights)
