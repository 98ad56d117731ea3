"""A user's own labelled images as a dataset: the shared part of ``imagefolder`` and ``imagelist``.

:class:`UserImageDataset` takes the image files and their class names (from the folder tree or the list), numbers
the classes, splits the images (:mod:`dml.data.splits`: by class, zero-shot, the default; per class; or by the
list's own column; or exactly as a run saved it, ``split_file=``) and is an :class:`~dml.data.ImageFileDataset`
of the requested split, so every pipeline (``jpeg``, ``cached``) and the evaluation treat it like a benchmark.

Class ids: when every class name is an integer (e.g. hotel ids in a list) those integers are the labels;
otherwise the sorted names are numbered ``0..C−1``. ``class_names[label]`` (or the mapping ``class_of``) gives the
name back. ``relative_paths`` are the files relative to the data folder, the ids a search reports.

Caches of these datasets (``pipeline: cached``) never go into the data folder: :func:`dml.data.cache.cache_dir`
puts them under the dml data folder's ``cache/`` (or ``data.cache_dir``), named by the fingerprint of the list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dml.data.base import Transform, check_split
from dml.data.files import ImageFileDataset
from dml.data.images import FIX, MissingImageError
from dml.data.splits import assign_splits, read_split_file

#: File name endings read as images (lower case); anything else is not an image to these loaders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: The registry names of the datasets of a user's own images.
USER_DATASETS = ("imagefolder", "imagelist")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends with one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def class_ids(names: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
    """``(labels, class_of)``: integer names as they are, other names numbered in sorted order."""
    distinct = sorted(set(names))
    try:
        ids = {name: int(name) for name in distinct}
    except ValueError:
        ids = {name: i for i, name in enumerate(distinct)}
    labels = np.array([ids[name] for name in names], dtype=np.int64)
    return labels, {ids[name]: name for name in distinct}


class UserImageDataset(ImageFileDataset):
    """One split of a user's labelled image files.

    Args:
        kind: ``"imagefolder"`` or ``"imagelist"`` (for messages).
        split: ``"train"``, ``"test"`` or ``"all"``.
        base: The data folder; ``relative_paths`` are relative to it.
        paths: Every image file (absolute), ``names`` its class name, ``listed`` its list split (or ``None``).
        split_by, test_fraction, seed: How to split (:func:`dml.data.splits.assign_splits`).
        split_file: A saved ``split.csv``: use its assignment instead (every file it lists must exist; files it
            does not list are left out).
        transform, skip_corrupt: As for :class:`~dml.data.ImageFileDataset`.
    """

    def __init__(
        self,
        *,
        kind: str,
        split: str,
        base: Path,
        paths: Sequence[Path],
        names: Sequence[str],
        listed: Sequence[str] | None,
        split_by: str,
        test_fraction: float,
        seed: int,
        split_file: str | os.PathLike | None,
        transform: Transform | None,
        skip_corrupt: bool,
    ) -> None:
        check_split(split)
        labels, self.class_of = class_ids(list(names))
        relative = np.array([Path(p).relative_to(base).as_posix() for p in paths], dtype=object)
        if split_file is not None:
            saved = read_split_file(split_file)
            missing = sorted(set(saved) - set(relative))
            if missing:
                raise MissingImageError(
                    f"Image file {base / missing[0]} is missing ({len(missing)} of the "
                    f"{len(saved)} images of {split_file} are gone from {base}). {FIX}"
                )
            assignment = np.array([saved.get(r, "") for r in relative], dtype="<U5")
        else:
            if split_by == "list" and listed is None and kind == "imagefolder":
                raise ValueError(
                    "split_by='list' needs a list with a split column; an image folder has none. Use "
                    "split_by='class' (zero-shot) or split_by='image' (per class)."
                )
            assignment = assign_splits(labels, split_by=split_by, test_fraction=test_fraction, seed=seed, listed=listed)
        keep = assignment != "" if split == "all" else assignment == split
        if not keep.any():
            raise ValueError(
                f"{kind} {base}: the {split!r} split holds no image (split_by={split_by!r}); check the "
                "list's split column or test_fraction."
            )
        super().__init__(
            split=split,
            paths=[p for p, k in zip(paths, keep) if k],
            labels=labels[keep],
            transform=transform,
            skip_corrupt=skip_corrupt,
            root=base,
            extras={"relative_paths": relative[keep], "split_of": assignment[keep]},
        )
        self.split_by = "file" if split_file is not None else split_by

    @property
    def class_names(self) -> list[str]:
        """The class name of every image of this split."""
        return [self.class_of[int(label)] for label in self.labels]
