"""The dataset contract every loader in :mod:`dml.data` honours.

Metric learning needs less from a dataset than classification does, but needs it reliably:

* ``labels``: a 1-D ``int64`` array of the *original* class ids, so samplers can group images by class without
  touching pixels, and so train and test ids never collide (the splits use disjoint classes);
* ``split``: ``"train"``, ``"test"`` or ``"all"``, the zero-shot protocol of CUB, Cars196, SOP and In-Shop where
  the test classes are never seen in training;
* ``__getitem__`` returning ``(image, label)`` with ``image`` a ``float32`` tensor ``C×H×W`` in ``[0, 1]`` before the
  optional ``transform``, and ``label`` a Python ``int``.

:class:`DMLDataset` holds that contract and leaves one method, :meth:`DMLDataset.load`, to subclasses, so a loader
for files on disk (the real benchmarks) and one for arrays in memory (:class:`InMemoryDataset`, the built-in
synthetic and digits sets) share everything else.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from dml.utils.checks import check_choice

SPLITS = ("train", "test", "all")

Transform = Callable[[torch.Tensor], torch.Tensor]


def check_split(split: str) -> str:
    """Return ``split`` unchanged if it is one of :data:`SPLITS`, else raise a ``ValueError`` listing them."""
    check_choice(split, SPLITS, name="split")
    return split


class DMLDataset(Dataset):
    """Base class: labels, split and transform; subclasses implement :meth:`load`.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        labels: One class id per image; stored as a 1-D ``int64`` array.
        transform: Applied to the ``float32`` ``C×H×W`` tensor returned by :meth:`load`.
    """

    def __init__(self, *, split: str, labels: np.ndarray, transform: Transform | None = None) -> None:
        self.split = check_split(split)
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a 1-D integer array; got shape {labels.shape} and dtype "
                             f"{labels.dtype}. Pass one integer class id per image.")
        self.labels = labels.astype(np.int64, copy=False)
        self.transform = transform

    @property
    def classes(self) -> np.ndarray:
        """The sorted distinct class ids present in this split."""
        return np.unique(self.labels)

    @property
    def num_classes(self) -> int:
        """How many distinct classes this split holds."""
        return int(self.classes.size)

    def __len__(self) -> int:
        return int(self.labels.size)

    def load(self, index: int) -> torch.Tensor:
        """Return image ``index`` as a ``float32`` tensor ``C×H×W`` in ``[0, 1]``, before any transform."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(index) -> float32 C×H×W tensor.")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.load(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, images={len(self)}, classes={self.num_classes})"


class InMemoryDataset(DMLDataset):
    """A dataset whose images fit in memory as one ``uint8`` array of shape ``(N, H, W, 3)``.

    ``uint8`` keeps the array four times smaller than ``float32`` and is what plotting code wants; ``load``
    converts one image at a time. The array is exposed as ``images`` so lessons can draw grids without a loader.
    """

    def __init__(self, *, split: str, images: np.ndarray, labels: np.ndarray,
                 transform: Transform | None = None) -> None:
        super().__init__(split=split, labels=labels, transform=transform)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3); got {images.dtype} "
                             f"{images.shape}.")
        if len(images) != len(self.labels):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels; they must match one to one.")
        self.images = images

    def load(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index]).permute(2, 0, 1).float().div_(255.0)
