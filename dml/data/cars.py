"""``cars196``: Stanford Cars with the zero-shot split of metric learning (classes 1-98 train, 99-196 test).

Krause et al., "3D Object Representations for Fine-Grained Categorization", ICCV Workshops (3dRR) 2013. The split
follows Oh Song et al. (CVPR 2016, arXiv:1511.06452): the first 98 classes (8,054 images) for training, the other
98 (8,131 images) for testing, ignoring the official classification train/test split.

Three on-disk layouts are read (the first one found wins; ``.layout`` says which):

``"annos"``: the original release, ``cars_annos.mat`` + ``car_ims/``. The MATLAB struct array ``annotations`` has
    ``relative_im_path`` (e.g. ``car_ims/000001.jpg``), ``bbox_x1``, ``bbox_y1``, ``bbox_x2``, ``bbox_y2``,
    ``class`` (1..196) and ``test`` (the classification split, unused).
``"devkit"``: the devkit release (the layout of ``torchvision.datasets.StanfordCars``): ``devkit/cars_train_annos.mat``
    and ``cars_test_annos_withlabels.mat`` (at the top or in ``devkit/``), struct arrays with ``bbox_x1..y2``,
    ``class`` and ``fname``, images in ``cars_train/`` and ``cars_test/`` (or ``cars_train/cars_train/`` and
    ``cars_test/cars_test/`` as some mirrors nest them). Train and test images are pooled, then split by class.
``"folders"``: the class-folder repackage used by pytorch-metric-learning's ``Cars196`` (Kaggle
    ``jutrera/stanford-car-dataset-by-classes-folder``): ``names.csv`` (one class name per line, line ``i`` is
    class ``i``), ``anno_train.csv`` / ``anno_test.csv`` (``fname,x1,y1,x2,y2,class``) and images in
    ``car_data/car_data/{train,test}/<class name with "/" replaced by "-">/<fname>``.

Boxes are inclusive pixel coordinates ``x1..x2``, ``y1..y2``; ``bbox_crop=True`` crops ``(x1 - 1, y1 - 1, x2, y2)``,
which treats them as 1-based as MATLAB annotations are, and is at most one pixel off if they are 0-based.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dml.data.base import Transform, check_split
from dml.data.files import (
    ImageFileDataset,
    damaged,
    dataset_dir,
    empty_annotation,
    first_existing,
    not_found,
    read_lines,
    require_rows,
)
from dml.data.registry import register

NAME = "cars196"
TRAIN_CLASSES = range(1, 99)
TEST_CLASSES = range(99, 197)
CLASS_RANGES = {"train": "1-98", "test": "99-196", "all": "1-196"}
LAYOUTS = ("annos", "devkit", "folders")


@register(NAME)
class Cars196(ImageFileDataset):
    """Stanford Cars, classes 1-98 for training and 99-196 for testing.

    Args:
        split: ``"train"`` (classes 1-98), ``"test"`` (99-196) or ``"all"``.
        root: Dataset folder in one of the layouts of the module docstring; default ``data_root()/cars196``.
        transform: Applied to each ``float32`` ``3×H×W`` tensor.
        bbox_crop: Crop every image to its annotated box.
        skip_corrupt: Decode every file now and drop unreadable ones with a warning (slow).

    Attributes:
        paths, labels (class ids 1..196), boxes (when ``bbox_crop``), layout (``"annos"``, ``"devkit"`` or
        ``"folders"``).

    Raises:
        DatasetNotFoundError: no supported layout is found, or its image folder is missing.
        EmptyAnnotationError: an annotation file lists no image (empty, header only, or none of the split).
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, bbox_crop: bool = False, skip_corrupt: bool = False) -> None:
        check_split(split)
        directory = dataset_dir(NAME, root)
        if (directory / "cars_annos.mat").is_file():
            layout, (records, annotations) = "annos", _read_annos(directory)
        elif (directory / "devkit" / "cars_train_annos.mat").is_file():
            layout, (records, annotations) = "devkit", _read_devkit(directory)
        elif (directory / "names.csv").is_file():
            layout, (records, annotations) = "folders", _read_folders(directory, split)
        else:
            raise not_found(NAME, directory, directory / "cars_annos.mat",
                            "Neither cars_annos.mat, devkit/cars_train_annos.mat nor names.csv was found.")
        wanted = {"train": set(TRAIN_CLASSES), "test": set(TEST_CLASSES),
                  "all": set(TRAIN_CLASSES) | set(TEST_CLASSES)}[split]
        keep = [r for r in records if r[1] in wanted]
        if not keep:
            raise empty_annotation(NAME, split, directory, annotations,
                                   f"list no image of the split's classes {CLASS_RANGES[split]}")
        boxes = None
        if bbox_crop:
            boxes = np.array([[x1 - 1, y1 - 1, x2, y2] for _, _, (x1, y1, x2, y2) in keep], dtype=np.float64)
        super().__init__(split=split, paths=[r[0] for r in keep], labels=np.array([r[1] for r in keep], np.int64),
                         transform=transform, boxes=boxes, skip_corrupt=skip_corrupt, root=directory)
        self.layout = layout
        self.bbox_crop = bbox_crop


Record = tuple[Path, int, tuple[float, float, float, float]]
Annotations = tuple[list[Record], list[Path]]  # the records and the annotation files they were read from


def _struct_rows(path: Path) -> list:
    from scipy.io import loadmat

    try:
        mat = loadmat(path, squeeze_me=True)
    except Exception as error:  # scipy's MatReadError, ValueError, ... for a truncated or foreign file
        raise ValueError(f"{path} is not a readable MATLAB file ({type(error).__name__}: {error}); it is damaged or "
                         "not the official one. Re-extract the dataset.") from None
    if "annotations" not in mat:
        raise ValueError(f"{path} has no 'annotations' struct array (variables: "
                         f"{sorted(k for k in mat if not k.startswith('__'))}); it is not the official file.")
    return list(np.atleast_1d(mat["annotations"]))


def _box(row) -> tuple[float, float, float, float]:
    return tuple(float(row[key]) for key in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"))


def _records(path: Path, image_of: Callable[[Any], Path]) -> list[Record]:
    """The ``(image, class, box)`` of every entry of the ``annotations`` struct array in ``path``."""
    records = []
    for number, row in enumerate(_struct_rows(path), start=1):
        try:
            records.append((image_of(row), int(row["class"]), _box(row)))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"{path}, annotation {number}: {type(error).__name__}: {error}; the file is damaged or "
                             "not the official one. Re-extract the dataset.") from None
    return records


def _read_annos(directory: Path) -> Annotations:
    if not (directory / "car_ims").is_dir():
        raise not_found(NAME, directory, directory / "car_ims", "cars_annos.mat was found but not its images.")
    path = directory / "cars_annos.mat"
    return _records(path, lambda row: directory / str(row["relative_im_path"])), [path]


def _read_devkit(directory: Path) -> Annotations:
    test_annos = first_existing(directory, ["cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"])
    if test_annos is None:
        raise not_found(NAME, directory, directory / "cars_test_annos_withlabels.mat",
                        "The devkit's cars_test_annos.mat has no labels; the labelled file is distributed "
                        "separately.")
    records = []
    files = [directory / "devkit" / "cars_train_annos.mat", test_annos]
    for part, annos in zip(("train", "test"), files):
        images = first_existing(directory, [f"cars_{part}/cars_{part}", f"cars_{part}"])
        if images is None or not images.is_dir():
            raise not_found(NAME, directory, directory / f"cars_{part}")
        records += _records(annos, lambda row, images=images: images / str(row["fname"]))
    return records, files


def _read_folders(directory: Path, split: str) -> Annotations:
    names = [line.strip() for _, line in read_lines(directory / "names.csv") if line.strip()]
    require_rows(names, name=NAME, split=split, directory=directory, path=directory / "names.csv",
                 problem="is empty (it names no class)")
    records = []
    for part in ("train", "test"):
        annos = directory / f"anno_{part}.csv"
        images = directory / "car_data" / "car_data" / part
        for needed in (annos, images):
            if not needed.exists():
                raise not_found(NAME, directory, needed)
        reader = csv.reader(line for _, line in read_lines(annos))
        for row in reader:
            if not row:
                continue
            try:
                fname, x1, y1, x2, y2, label = row[0], *map(float, row[1:5]), int(row[5])
            except (ValueError, IndexError):
                raise damaged(annos, reader.line_num, f"expected fname,x1,y1,x2,y2,class, got {','.join(row)!r}"
                              ) from None
            if not 1 <= label <= len(names):
                raise ValueError(f"{annos}: class {label} of {fname} is outside 1..{len(names)} "
                                 f"(names.csv has {len(names)} names).")
            folder = names[label - 1].replace("/", "-")
            records.append((images / folder / fname, label, (x1, y1, x2, y2)))
    return records, [directory / "anno_train.csv", directory / "anno_test.csv"]
