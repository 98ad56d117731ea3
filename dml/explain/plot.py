"""Heat maps drawn over their images: one overlay, or the two maps of a pair on one colour scale.

Maps are signed (a cell can lower the similarity), so the colour scale is diverging and centred on zero: red cells
raise the similarity, blue cells lower it. The map is stretched over the whole image (each feature-map cell covers
its block of pixels), drawn with ``interpolation="nearest"`` to show the cells as they are or ``"bilinear"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dml.explain.maps import SimilarityMaps


def as_display_image(image: Any) -> np.ndarray:
    """An image as ``(H, W, 3)`` floats in [0, 1] for ``imshow``: accepts ``(H, W, 3)`` ``uint8`` or float arrays and
    ``(3, H, W)`` tensors or arrays (the dataset's format)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"An image must be (H, W, 3), (3, H, W) or (H, W); got shape {image.shape}.")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype == np.uint8:
        return image / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def overlay(
    image: Any,
    heat: Any,
    *,
    ax: Any = None,
    alpha: float = 0.6,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    interpolation: str = "nearest",
    title: str | None = None,
    mask: Any = None,
):
    """Draw ``heat`` (``(h, w)``) over ``image``, stretched to the image's size; returns the map's ``AxesImage``.

    ``vmax`` sets the symmetric colour range ``[-vmax, vmax]`` (default: the map's largest absolute value).
    ``mask``: an optional ``(H, W)`` object mask of the image (``uint8`` 0-255, bool or float), outlined in black
    where it crosses one half.
    """
    import matplotlib.pyplot as plt

    picture = as_display_image(image)
    heat = np.asarray(heat, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"A heat map must be 2-D (h, w); got shape {heat.shape}. Reshape it to the feature grid.")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
    if vmax is None:
        vmax = float(np.abs(heat).max()) or 1.0
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    rows, cols = picture.shape[:2]
    ax.imshow(picture, extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    shown = ax.imshow(
        heat,
        cmap=cmap,
        vmin=-vmax,
        vmax=vmax,
        alpha=alpha,
        interpolation=interpolation,
        extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
    )
    if mask is not None:
        outline = np.asarray(mask)
        outline = outline / 255.0 if outline.dtype == np.uint8 else outline.astype(np.float64)
        if outline.shape != (rows, cols):
            raise ValueError(f"The mask has shape {outline.shape} but the image is {rows} x {cols}; pass its own mask.")
        ax.contour(outline, levels=[0.5], colors="black", linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return shown


def plot_similarity_maps(
    image_a: Any, image_b: Any, maps: SimilarityMaps, *, axes: Any = None, masks: Any = (None, None), **kwargs: Any
):
    """The two maps of a pair side by side on one colour scale, with a colour bar; returns the ``Figure``.

    Each panel's title gives the sum of its map (the similarity, when the decomposition is exact). ``masks``: the
    two images' object masks to outline (or ``None``). ``kwargs`` go to :func:`overlay`.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.8), constrained_layout=True)
    else:
        fig = np.ravel(axes)[0].figure
    axes = np.ravel(axes)
    if axes.size != 2:
        raise ValueError(f"plot_similarity_maps draws two panels; got {axes.size} axes.")
    vmax = kwargs.pop("vmax", None) or float(max(np.abs(maps.map_a).max(), np.abs(maps.map_b).max())) or 1.0
    shown = None
    panels = zip(axes, (image_a, image_b), (maps.map_a, maps.map_b), "AB", masks)
    for ax, image, heat, name, mask in panels:
        shown = overlay(image, heat, ax=ax, vmax=vmax, title=f"{name}: sum {heat.sum():.3f}", mask=mask, **kwargs)
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label="similarity per cell")
    return fig
