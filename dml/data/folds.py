"""Class-disjoint k-fold cross-validation on a dataset's training classes (the MLRC split).

Musgrave, Belongie & Lim, "A Metric Learning Reality Check", ECCV 2020 (arXiv:2003.08505; released code
github.com/KevinMusgrave/powerful-benchmarker, branch ``metric-learning``, ``split_managers/mlrc_split_manager.py``)
use the first half of the classes for training and validation and the second half for test, and cross-validate
on the first half with ``k = 4`` class-disjoint folds: fold ``i`` validates on a contiguous block of the sorted
class ids and trains on the others. The zero-shot splits of CUB-200-2011, Cars196 and SOP are already "first half
/ second half" by class id, so the dataset's ``train`` split is the train + validation half and its ``test`` split
the test half.

:func:`class_folds` gives the blocks: with :math:`n` sorted classes, fold :math:`i` validates positions
:math:`\\lfloor i n / k \\rfloor, \\dots, \\lfloor (i + 1) n / k \\rfloor - 1`, optionally rotated by ``offset``
positions with wrap-around (``offset=0``, the default, gives blocks that tile the list in order). Every class is
validated exactly once, the folds are deterministic (no random number is drawn), and block sizes differ by at most
one when ``k`` does not divide ``n``.

The dataset ``class_fold`` (``build("class_fold", split=..., source="synthetic", folds=4, fold=0,
source_kwargs={...})``) carves fold ``fold`` out of ``source``'s training split: ``split="train"`` holds the
fold's training classes, ``split="test"`` its validation classes (what the trainer evaluates on), ``split="all"``
both. Labels keep the source's class ids and the source's test split is never read. It works for the in-memory
sets (``synthetic``, ``digits``) and for the image-file benchmarks (the file list is filtered).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from dml.data.base import DMLDataset, InMemoryDataset, Transform
from dml.data.files import ImageFileDataset
from dml.data.registry import build, register


def class_folds(classes: Any, *, folds: int, offset: int = 0) -> list[np.ndarray]:
    """The validation classes of each of ``folds`` class-disjoint folds: contiguous (wrapped) blocks of the sorted
    distinct ``classes``, the block of fold ``i`` starting ``offset`` positions after ``floor(i n / folds)``."""
    classes = np.unique(np.asarray(classes))
    n = len(classes)
    if isinstance(folds, bool) or int(folds) != folds or not 2 <= folds <= n // 2:
        raise ValueError(
            f"folds must be an integer in [2, {n // 2}] for {n} classes (each fold needs at least two "
            f"validation classes); got {folds!r}."
        )
    order = np.roll(classes, -int(offset))
    bounds = [i * n // folds for i in range(folds + 1)]
    return [np.sort(order[bounds[i] : bounds[i + 1]]) for i in range(folds)]


@register("class_fold")
def class_fold(
    *,
    split: str = "train",
    root: Any = None,
    transform: Transform | None = None,
    source: str = "synthetic",
    folds: int = 4,
    fold: int = 0,
    offset: int = 0,
    source_kwargs: Mapping[str, Any] | None = None,
) -> DMLDataset:
    """Fold ``fold`` of ``folds`` of ``source``'s training classes: its training (``"train"``) or validation
    (``"test"``) classes, or both (``"all"``)."""
    if source in ("class_fold", "heldout"):
        raise ValueError(f"source={source!r} would carve a carved split; name the original dataset, e.g. 'cub200'.")
    full = build(source, split="train", root=root, **dict(source_kwargs or {}))
    blocks = class_folds(full.labels, folds=folds, offset=offset)
    if isinstance(fold, bool) or int(fold) != fold or not 0 <= fold < len(blocks):
        raise ValueError(f"fold must be an integer in [0, {len(blocks) - 1}] for folds={folds}; got {fold!r}.")
    held = np.isin(full.labels, blocks[int(fold)])
    keep = {"train": ~held, "test": held}.get(split, np.ones(len(full.labels), dtype=bool))
    return subset(full, keep, split=split, transform=transform)


def subset(dataset: DMLDataset, keep: np.ndarray, *, split: str, transform: Transform | None) -> DMLDataset:
    """The items of ``dataset`` where ``keep`` is true, as a dataset of the same kind with ``split`` and
    ``transform``."""
    if isinstance(dataset, InMemoryDataset):
        return InMemoryDataset(
            split=split, images=dataset.images[keep], labels=dataset.labels[keep], transform=transform
        )
    if isinstance(dataset, ImageFileDataset):
        part = copy.copy(dataset)
        part.paths = [path for path, k in zip(dataset.paths, keep) if k]
        part.labels = dataset.labels[keep]
        part.boxes = None if dataset.boxes is None else dataset.boxes[keep]
        for key, value in vars(dataset).items():
            if isinstance(value, np.ndarray) and value.shape[:1] == keep.shape and key not in ("labels", "boxes"):
                setattr(part, key, value[keep])
        part.split, part.transform = split, transform
        return part
    raise ValueError(
        f"class_fold can carve in-memory datasets and image-file benchmarks; {type(dataset).__name__} is neither."
    )
