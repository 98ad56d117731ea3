"""``cub200``: Caltech-UCSD Birds-200-2011 with the zero-shot split of metric learning.

Wah et al., "The Caltech-UCSD Birds-200-2011 Dataset", Caltech CNS-TR-2011-001, 2011. The official archive
(CaltechDATA record 65de6-vp158, ``dml data download cub200``) unpacks to ``CUB_200_2011/`` with, per its README,
``images.txt`` (``<image_id> <image_name>``), ``image_class_labels.txt`` (``<image_id> <class_id>``) and
``bounding_boxes.txt`` (``<image_id> <x> <y> <width> <height>``). The official ``train_test_split.txt`` is a
classification split and is not used: deep metric learning (Oh Song et al., CVPR 2016, arXiv:1511.06452, and every
benchmark since) trains on classes 1-100 (5,864 images) and tests on the unseen classes 101-200 (5,924 images).
Rows are matched by image id, not by line order.
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
    read_rows,
    require_rows,
)
from dml.data.registry import register

NAME = "cub200"
TRAIN_CLASSES = range(1, 101)
TEST_CLASSES = range(101, 201)
CLASS_RANGES = {"train": "1-100", "test": "101-200", "all": "1-200"}


@register(NAME)
class CUB200(ImageFileDataset):
    """CUB-200-2011, classes 1-100 for training and 101-200 for testing.

    Args:
        split: ``"train"`` (classes 1-100), ``"test"`` (101-200) or ``"all"``.
        root: Dataset folder holding ``CUB_200_2011/`` (or its files); default ``data_root()/cub200``.
        transform: Applied to each ``float32`` ``3×H×W`` tensor.
        bbox_crop: Crop every image to its box from ``bounding_boxes.txt`` (``x, y, width, height`` in pixels,
            cropped as ``(x, y, x + width, y + height)`` and clipped to the image).
        skip_corrupt: Decode every file now and drop unreadable ones with a warning (slow); ``False`` raises
            when such a file is loaded, naming it.

    Attributes:
        paths: Image files. labels: class ids 1..200. image_ids: ids from ``images.txt``.
        boxes: ``(N, 4)`` crop boxes when ``bbox_crop`` is set, else ``None``.

    Raises:
        DatasetNotFoundError: the folder or an annotation file is missing (the message shows the layout and
            ``dml data download cub200``).
        EmptyAnnotationError: an annotation file lists no image (empty, header only, or none of the split).
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, bbox_crop: bool = False, skip_corrupt: bool = False) -> None:
        check_split(split)
        directory = dataset_dir(NAME, root)
        base = locate_folder(NAME, directory, ["CUB_200_2011/images.txt", "images.txt"])
        files = {"images": base / "images.txt", "labels": base / "image_class_labels.txt"}
        if bbox_crop:
            files["boxes"] = base / "bounding_boxes.txt"
        for path in files.values():
            if not path.is_file():
                raise not_found(NAME, directory, path)
        if not (base / "images").is_dir():
            raise not_found(NAME, directory, base / "images")

        where = {"name": NAME, "split": split, "directory": directory}
        rows = {key: require_rows(read_rows(files[key], columns=2, types=types), path=files[key], **where)
                for key, types in (("images", (int, str)), ("labels", (int, int)))}
        names = dict(rows["images"])
        classes = dict(rows["labels"])
        if names.keys() != classes.keys():
            raise ValueError(f"{files['images']} and {files['labels']} list different image ids "
                             f"({len(names)} vs {len(classes)}); re-extract the dataset.")
        wanted = {"train": set(TRAIN_CLASSES), "test": set(TEST_CLASSES),
                  "all": set(TRAIN_CLASSES) | set(TEST_CLASSES)}[split]
        ids = [i for i in sorted(names) if classes[i] in wanted]
        if not ids:
            raise empty_annotation(NAME, split, directory, [files["images"], files["labels"]],
                                   f"list no image of the split's classes {CLASS_RANGES[split]}")
        boxes = None
        if bbox_crop:
            box_rows = require_rows(read_rows(files["boxes"], columns=5, types=(int, float, float, float, float)),
                                    path=files["boxes"], **where)
            xywh = {row[0]: row[1:] for row in box_rows}
            missing = [i for i in ids if i not in xywh]
            if missing:
                raise ValueError(f"{files['boxes']} has no valid `x y width height` box for image id(s) "
                                 f"{missing[:5]}; re-extract the dataset or use bbox_crop=False.")
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (xywh[i] for i in ids)], dtype=np.float64)
        super().__init__(split=split, paths=[base / "images" / names[i] for i in ids],
                         labels=np.array([classes[i] for i in ids], dtype=np.int64), transform=transform,
                         boxes=boxes, extras={"image_ids": np.array(ids, dtype=np.int64)},
                         skip_corrupt=skip_corrupt, root=directory)
        self.bbox_crop = bbox_crop
