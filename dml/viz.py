"""Pictures of datasets: one row per class (or per mode), a few examples in each.

The grid is assembled into a single image array and drawn with one ``imshow`` on one axes, so it can be placed in
any existing figure via ``ax=`` and stays fast for dozens of rows. Datasets with an ``images`` array (the built-in
ones) are read from it directly; any other dataset is read through ``__getitem__`` (after its transform) and
resized to a common cell size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_PAD = 2  # pixels of white between cells


def plot_image_grid(
    dataset: Any,
    *,
    classes: Sequence[int] | None = None,
    per_class: int = 8,
    seed: int = 0,
    ax: Any = None,
    title: str | None = None,
):
    """Draw ``per_class`` random images of each class in ``classes``, one row per class, labelled by class id.

    Args:
        dataset: Any dataset with ``labels``; ``images`` is used when present.
        classes: Class ids to show, top to bottom; default the first eight classes of the split.
        per_class: Examples per row; rows of smaller classes are left blank at the end.
        seed: Chooses which examples are shown.
        ax: Matplotlib axes to draw into; a new figure is created when ``None``.
        title: Axes title.

    Returns:
        The matplotlib ``Figure`` containing the grid.
    """
    labels = np.asarray(dataset.labels)
    if classes is None:
        classes = np.unique(labels)[:8]
    rng = np.random.default_rng(seed)
    rows = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            raise ValueError(f"Class {c} has no images in this split; pass class ids from dataset.labels.")
        rows.append(rng.choice(members, min(per_class, members.size), replace=False))
    return _draw(dataset, rows, [f"class {c}" for c in classes], per_class, ax, title)


def plot_modes(
    dataset: Any, class_id: int, *, per_mode: int = 8, seed: int = 0, ax: Any = None, title: str | None = None
):
    """Draw the modes of one class of a dataset with a ``modes`` attribute (e.g. ``synthetic``), one per row."""
    if not hasattr(dataset, "modes"):
        raise ValueError(
            f"{type(dataset).__name__} has no `modes` attribute; plot_modes needs a dataset that "
            "records a mode per image, such as build('synthetic')."
        )
    labels, modes = np.asarray(dataset.labels), np.asarray(dataset.modes)
    if not np.any(labels == class_id):
        raise ValueError(f"Class {class_id} has no images in this split; pass a class id from dataset.labels.")
    rng = np.random.default_rng(seed)
    mode_ids = np.unique(modes[labels == class_id])
    rows = [
        rng.choice(idx, min(per_mode, idx.size), replace=False)
        for idx in (np.flatnonzero((labels == class_id) & (modes == m)) for m in mode_ids)
    ]
    return _draw(
        dataset,
        rows,
        [f"mode {m}" for m in mode_ids],
        per_mode,
        ax,
        title if title is not None else f"class {class_id}",
    )


def _draw(dataset: Any, rows: list[np.ndarray], names: list[str], width: int, ax: Any, title: str | None):
    import matplotlib.pyplot as plt

    cell = _thumbnail(dataset, int(rows[0][0])).shape[0]
    step = cell + _PAD
    mosaic = np.ones((len(rows) * step - _PAD, width * step - _PAD, 3), dtype=np.float32)
    for r, indices in enumerate(rows):
        for c, index in enumerate(indices):
            mosaic[r * step : r * step + cell, c * step : c * step + cell] = _thumbnail(dataset, int(index), cell)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(2.0, 0.9 * width), max(1.5, 0.9 * len(rows))))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks(np.arange(len(rows)) * step + cell / 2, names)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return ax.figure


def _thumbnail(dataset: Any, index: int, size: int | None = None) -> np.ndarray:
    """Image ``index`` as ``float32`` H×W×3 in [0, 1], resized to ``size``×``size`` when given."""
    images = getattr(dataset, "images", None)
    if images is not None:
        image = np.asarray(images[index], dtype=np.float32) / 255.0
    else:
        import torch

        tensor = dataset[index][0]
        tensor = tensor if isinstance(tensor, torch.Tensor) else torch.as_tensor(np.asarray(tensor))
        image = tensor.detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if size is not None and image.shape[:2] != (size, size):
        import torch
        import torch.nn.functional as F

        resized = F.interpolate(
            torch.from_numpy(image).permute(2, 0, 1)[None], size=(size, size), mode="bilinear", align_corners=False
        )
        image = resized[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return image
