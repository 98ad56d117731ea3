"""``sop``: Stanford Online Products (Oh Song et al., "Deep Metric Learning via Lifted Structured Feature
Embedding", CVPR 2016, arXiv:1511.06452).

120,053 eBay product photos of 22,634 products in 12 super-classes (bicycle, cabinet, chair, ...). The official
files ``Ebay_train.txt`` and ``Ebay_test.txt`` already hold the zero-shot split: 59,551 images of classes
1-11,318 for training and 60,502 images of classes 11,319-22,634 for testing. Each starts with the header
``image_id class_id super_class_id path``; ``path`` is relative to the ``Stanford_Online_Products/`` folder.
The super-class ids (1-12) are kept as ``super_labels`` for hierarchical analyses.
"""
from __future__ import annotations

import os

import numpy as np

from dml.data.base import Transform, check_split
from dml.data.files import (
    ImageFileDataset,
    dataset_dir,
    empty_annotation,
    locate_folder,
    not_found,
    read_lines,
    read_rows,
    require_rows,
)
from dml.data.registry import register

NAME = "sop"
HEADER = ["image_id", "class_id", "super_class_id", "path"]


@register(NAME)
class StanfordOnlineProducts(ImageFileDataset):
    """Stanford Online Products with the official zero-shot split.

    Args:
        split: ``"train"`` (``Ebay_train.txt``), ``"test"`` (``Ebay_test.txt``) or ``"all"`` (both).
        root: Dataset folder holding ``Stanford_Online_Products/`` (or its files); default ``data_root()/sop``.
        transform: Applied to each ``float32`` ``3×H×W`` tensor.
        skip_corrupt: Decode every file now and drop unreadable ones with a warning (slow).

    Attributes:
        paths, labels (product ids), super_labels (super-class ids 1-12), image_ids.

    Raises:
        DatasetNotFoundError: the folder or a list file is missing.
        EmptyAnnotationError: an annotation file lists no image (empty, header only, or none of the split).
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, skip_corrupt: bool = False) -> None:
        check_split(split)
        directory = dataset_dir(NAME, root)
        base = locate_folder(NAME, directory, ["Stanford_Online_Products/Ebay_train.txt", "Ebay_train.txt"])
        rows = []
        for part in (["train", "test"] if split == "all" else [split]):
            path = base / f"Ebay_{part}.txt"
            if not path.is_file():
                raise not_found(NAME, directory, path)
            lines = read_lines(path)
            header = lines[0][1].split() if lines else []
            if not header:
                raise empty_annotation(NAME, split, directory, path)
            if header != HEADER:
                raise ValueError(f"{path} starts with {header}, not the official header {HEADER}; "
                                 "re-extract the dataset.")
            part_rows = read_rows(path, columns=4, skip=1, types=(int, int, int, str))
            rows += require_rows(part_rows, name=NAME, split=split, directory=directory, path=path,
                                 problem="has its header but no image row")
        super().__init__(split=split, paths=[base / r[3] for r in rows],
                         labels=np.array([r[1] for r in rows], dtype=np.int64), transform=transform,
                         extras={"super_labels": np.array([r[2] for r in rows], dtype=np.int64),
                                 "image_ids": np.array([r[0] for r in rows], dtype=np.int64)},
                         skip_corrupt=skip_corrupt, root=directory)
