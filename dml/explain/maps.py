"""Spatial similarity maps: where on each image the cosine similarity of two embeddings comes from.

With each embedding written as a sum of per-cell contributions, :math:`e_a = \\sum_i u_i`, :math:`e_b = \\sum_j u'_j`
(:mod:`dml.explain.contributions`), the cosine similarity is a double sum (Stylianou, Souvenir & Pless,
"Visualizing Deep Similarity Networks", WACV 2019; for average pooling :math:`u_i = z_i / n`):

.. math::

    s = \\frac{e_a \\cdot e_b}{\\lVert e_a\\rVert \\lVert e_b\\rVert} = \\sum_{i,j} M_{ij}, \\qquad
    M_{ij} = \\frac{u_i \\cdot u'_j}{\\lVert e_a\\rVert \\lVert e_b\\rVert}, \\qquad
    H_A(i) = \\sum_j M_{ij} = \\frac{u_i \\cdot e_b}{\\lVert e_a\\rVert \\lVert e_b\\rVert}, \\qquad
    H_B(j) = \\sum_i M_{ij}

so :math:`\\sum_i H_A(i) = \\sum_j H_B(j) = s` exactly (up to float64 rounding). For average pooling,
:math:`M_{ij} = z_i \\cdot z'_j / (n^2 \\lVert \\bar z\\rVert \\lVert \\bar z'\\rVert)` with :math:`z_i` the
embedding head applied at cell ``i`` (``EmbeddingHead.local``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dml.explain.contributions import Contributions, head_contributions, head_pooling


@dataclasses.dataclass(frozen=True)
class SimilarityMaps:
    """The spatial decomposition of the similarity of one pair of images.

    Attributes:
        map_a: ``(h, w)`` heat map :math:`H_A` on the first image's feature grid.
        map_b: ``(h', w')`` heat map :math:`H_B` on the second image's grid.
        similarity: the cosine similarity :math:`s` of the two embeddings.
        exact: whether each map sums to ``similarity`` by construction (``False`` only with ``bias="drop"`` and a
            non-zero bias).
        pooling: ``"avg"``, ``"max"`` or ``"gem"``.
        matrix: ``(h * w, h' * w')`` cell-to-cell matrix :math:`M` (rows: cells of image A, row-major).
    """

    map_a: np.ndarray
    map_b: np.ndarray
    similarity: float
    exact: bool
    pooling: str
    matrix: np.ndarray

    @property
    def residual(self) -> float:
        """``similarity - map_a.sum()``: 0 up to rounding when ``exact``, else the share the maps leave out."""
        return float(self.similarity - self.map_a.sum())


def maps_from_contributions(a: Contributions, b: Contributions) -> tuple[Tensor, Tensor, Tensor]:
    """Heat maps of aligned pairs: row ``k`` of ``a`` with row ``k`` of ``b``.

    Returns:
        ``(map_a, map_b, similarity)``: ``(P, h, w)``, ``(P, h', w')`` and ``(P,)`` ``float64`` tensors.
    """
    if a.cells.shape[0] != b.cells.shape[0] or a.cells.shape[2] != b.cells.shape[2]:
        raise ValueError(
            f"Pairs need as many maps on each side and embeddings of one size; got {tuple(a.cells.shape)} and "
            f"{tuple(b.cells.shape)} (pairs, cells, dim)."
        )
    scale = a.embedding.norm(dim=1) * b.embedding.norm(dim=1)  # (P,)
    map_a = torch.einsum("pnd,pd->pn", a.cells, b.embedding) / scale[:, None]
    map_b = torch.einsum("pnd,pd->pn", b.cells, a.embedding) / scale[:, None]
    similarity = (a.embedding * b.embedding).sum(dim=1) / scale
    return map_a.reshape(-1, *a.grid), map_b.reshape(-1, *b.grid), similarity


def as_image_batch(image: Any, name: str) -> Tensor:
    """One image ``(C, H, W)`` or ``(1, C, H, W)`` as a batch of one; anything else is a ``ValueError``."""
    image = torch.as_tensor(image)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(
            f"{name} must be one image (C, H, W) or a batch of one (1, C, H, W); got shape {tuple(image.shape)}. "
            "Use model_contributions for many images."
        )
    return image


def _parts(model: Any) -> tuple[Any, Any]:
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    if backbone is None or head is None:
        raise ValueError(
            f"{type(model).__name__} has no `backbone` and `head`; the spatial decomposition needs a "
            "dml.models.EmbeddingModel (a backbone feature map followed by an EmbeddingHead)."
        )
    return backbone, head


def model_contributions(model: Any, images: Tensor, *, batch_size: int = 256, bias: str = "spread") -> Contributions:
    """Per-cell contributions of a batch of images ``(B, C, H, W)`` under an ``EmbeddingModel`` (eval mode).

    The model's train/eval mode is restored afterwards. The backbone runs in the model's dtype; the decomposition
    is computed in ``float64``.
    """
    backbone, head = _parts(model)
    head_pooling(head)  # fail early on a head that cannot be decomposed
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch (B, C, H, W); got shape {tuple(images.shape)}.")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                features = backbone(images[start : start + batch_size].to(device))
                parts.append(head_contributions(head, features, bias=bias))
    finally:
        model.train(was_training)
    cells = torch.cat([c.cells.cpu() for c in parts])
    embedding = torch.cat([c.embedding.cpu() for c in parts])
    return Contributions(cells, embedding, parts[0].grid, all(c.exact for c in parts))


def similarity_maps(model: Any, image_a: Any, image_b: Any, *, bias: str = "spread") -> SimilarityMaps:
    """The spatial similarity maps of two images under a trained ``EmbeddingModel``.

    Args:
        model: A :class:`dml.models.EmbeddingModel` with average, max or GeM pooling and its linear head.
        image_a, image_b: ``(C, H, W)`` images as the model takes them (the two may differ in size).
        bias: How the head's bias enters the maps: ``"spread"`` over the cells (exact) or ``"drop"``.

    Returns:
        :class:`SimilarityMaps`; ``map_a.sum()`` and ``map_b.sum()`` equal ``similarity``, the cosine of the model's
        two embeddings.
    """
    a = model_contributions(model, as_image_batch(image_a, "image_a"), bias=bias)
    b = model_contributions(model, as_image_batch(image_b, "image_b"), bias=bias)
    return pair_maps(a, b, pooling=head_pooling(model.head)["pooling"])


def pair_maps(a: Contributions, b: Contributions, *, pooling: str) -> SimilarityMaps:
    """:class:`SimilarityMaps` of the first row of ``a`` with the first row of ``b`` (the matrix included)."""
    map_a, map_b, similarity = maps_from_contributions(
        Contributions(a.cells[:1], a.embedding[:1], a.grid, a.exact),
        Contributions(b.cells[:1], b.embedding[:1], b.grid, b.exact),
    )
    scale = a.embedding[0].norm() * b.embedding[0].norm()
    matrix = (a.cells[0] @ b.cells[0].T) / scale
    return SimilarityMaps(
        map_a=map_a[0].numpy(),
        map_b=map_b[0].numpy(),
        similarity=float(similarity[0]),
        exact=a.exact and b.exact,
        pooling=pooling,
        matrix=matrix.numpy(),
    )
