"""``hotels50k``: Hotels-50K (Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset", AAAI 2019,
arXiv:1901.11397; data and code at GitHub GWUvision/Hotels-50K).

Layout, as described in that repository's README and written by its ``download_train.py``:

* metadata ``input/dataset/{chain_info,hotel_info,train_set,test_set}.csv`` with the headers
  ``chain_id,chain_name``, ``hotel_id,hotel_name,chain_id,latitude,longitude`` and
  ``image_id,hotel_id,image_url,image_source,upload_timestamp``;
* training images ``images/train/<chain_id>/<hotel_id>/<image_source>/<image_id>.<ext>``;
* test images in four versions, ``images/test/{unoccluded,low_occlusions,medium_occlusions,high_occlusions}/``
  with the same sub-structure; the occluded versions also hold the people masks in ``.../masks/<image_id>.png``.

Unlike CUB, Cars196, SOP and In-Shop this is **not** a zero-shot benchmark: the test images (TraffickCam photos)
show hotels that are in the training set, and evaluation retrieves, for each test image, training images of the
same hotel (instance) or chain (:mod:`dml.eval.hotels`). So ``split="train"`` is the gallery and
``split="test"`` the queries, and both share class ids.

The images are distributed as URLs and many have rotted (the README calls the counts "roughly correct" after the
2020-04-27 refresh). The loader therefore indexes the image files actually on disk (matched to the CSV by
``image_id``, the file name's stem, whatever its extension) and drops CSV rows without a file, warning once with the
count (``num_missing``). Files on disk that the CSV does not list are ignored. Chain id ``-1`` marks a hotel of no
known chain, the convention of the released ``evaluate/retrieval.py`` (which keeps queries with chain ``> -1``).
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np

from dml.data.base import Transform, check_split
from dml.data.files import (
    ImageFileDataset,
    convert_fields,
    dataset_dir,
    empty_annotation,
    locate_folder,
    not_found,
    read_lines,
    require_rows,
)
from dml.data.registry import register
from dml.utils.checks import check_choice

NAME = "hotels50k"
UNKNOWN_CHAIN = -1
OCCLUSIONS = {"unoccluded": "unoccluded", "low": "low_occlusions", "medium": "medium_occlusions",
              "high": "high_occlusions"}
HOTEL_COLUMNS = ("hotel_id", "chain_id")
IMAGE_COLUMNS = ("image_id", "hotel_id", "image_source")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}


@register(NAME)
class Hotels50K(ImageFileDataset):
    """Hotels-50K images with hotel (instance) labels and chain labels.

    Args:
        split: ``"train"`` (the retrieval gallery), ``"test"`` (the TraffickCam queries) or ``"all"`` (train then
            test).
        root: Dataset folder (a clone of GWUvision/Hotels-50K with the images); default ``data_root()/hotels50k``.
        transform: Applied to each ``float32`` ``3×H×W`` tensor.
        occlusion: Which test version: ``"unoccluded"``, ``"low"``, ``"medium"`` or ``"high"``.
        skip_corrupt: Decode every file now and drop unreadable ones with a warning (slow).

    Attributes:
        paths, labels (hotel ids), chain_labels (chain ids, ``-1`` = no known chain), image_ids, sources
        (``image_source`` column), is_test (boolean mask, for ``split="all"``), num_missing (CSV rows of this
        split without an image file), occlusion.

    Raises:
        DatasetNotFoundError: the metadata CSVs or the image folder of the split are missing, or the folder holds
            none of the listed images.
        EmptyAnnotationError: an annotation file lists no image (empty, header only, or none of the split).
    """

    #: Keywords that change only the test split: the training split's cache is shared by the four test sets.
    TEST_ONLY_KWARGS = ("occlusion",)

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, occlusion: str = "unoccluded",
                 skip_corrupt: bool = False) -> None:
        check_split(split)
        check_choice(occlusion, OCCLUSIONS, name="occlusion")
        directory = dataset_dir(NAME, root)
        meta = locate_folder(NAME, directory, ["input/dataset/hotel_info.csv", "input/hotel_info.csv",
                                               "dataset/hotel_info.csv"])
        hotel_rows = _read_csv(meta / "hotel_info.csv", directory, HOTEL_COLUMNS, split)
        chain_of = {int(row["hotel_id"]): int(row["chain_id"]) for row in hotel_rows}

        paths, hotels, ids, sources, is_test = [], [], [], [], []
        self.num_missing = 0
        for part in (["train", "test"] if split == "all" else [split]):
            folder = directory / "images" / ("train" if part == "train" else f"test/{OCCLUSIONS[occlusion]}")
            if not folder.is_dir():
                raise not_found(NAME, directory, folder)
            on_disk = _index_images(folder)
            rows = _read_csv(meta / f"{part}_set.csv", directory, IMAGE_COLUMNS, split)
            kept = 0
            for row in rows:
                path = on_disk.get(row["image_id"])
                if path is None:
                    continue
                paths.append(path)
                hotels.append(int(row["hotel_id"]))
                ids.append(int(row["image_id"]))
                sources.append(row["image_source"])
                is_test.append(part == "test")
                kept += 1
            if kept == 0:
                raise not_found(NAME, directory, folder, f"The folder holds none of the {len(rows)} images listed "
                                f"in {meta / f'{part}_set.csv'}.")
            self.num_missing += len(rows) - kept
        if self.num_missing:
            warnings.warn(f"Hotels-50K: {self.num_missing} image(s) listed in the CSVs of split {split!r} have no "
                          f"file under {directory / 'images'} (rotted URLs or an incomplete download); using the "
                          f"{len(paths)} present.", RuntimeWarning, stacklevel=2)
        unknown = sorted({h for h in hotels if h not in chain_of})
        if unknown:
            raise ValueError(f"Hotel id(s) {unknown[:5]} are not in {meta / 'hotel_info.csv'}; the metadata is "
                             "inconsistent. Re-extract input/dataset.tar.gz.")
        super().__init__(split=split, paths=paths, labels=np.array(hotels, dtype=np.int64), transform=transform,
                         extras={"chain_labels": np.array([chain_of[h] for h in hotels], dtype=np.int64),
                                 "image_ids": np.array(ids, dtype=np.int64),
                                 "sources": np.array(sources, dtype=object),
                                 "is_test": np.array(is_test, dtype=bool)},
                         skip_corrupt=skip_corrupt, root=directory)
        self.occlusion = occlusion


def _read_csv(path: Path, directory: Path, required: tuple[str, ...], split: str) -> list[dict[str, str]]:
    """The rows of a metadata CSV with at least the ``required`` columns, whose id columns (``*_id``) hold integers;
    other problems raise a ``ValueError`` naming the file (and the line)."""
    if not path.is_file():
        raise not_found(NAME, directory, path)
    reader = csv.DictReader(line for _, line in read_lines(path))
    if reader.fieldnames is None:
        raise empty_annotation(NAME, split, directory, path)
    columns = [name.strip() for name in reader.fieldnames]
    if not set(required) <= set(columns):
        raise ValueError(f"{path} has columns {columns}; expected at least {list(required)}. It is not the "
                         "official file; re-extract input/dataset.tar.gz.")
    rows = []
    for row in reader:
        row = {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
        for key in required:
            if key.endswith("_id"):
                convert_fields([row[key]], [int], path, reader.line_num)
        rows.append(row)
    return require_rows(rows, name=NAME, split=split, directory=directory, path=path,
                        problem="has its header but no row")


def _index_images(folder: Path) -> dict[str, Path]:
    """``image_id`` (file stem) -> path of every image under ``folder``, skipping ``masks`` folders."""
    index = {}
    for current, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if d != "masks"]
        for name in files:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                index[stem] = Path(current) / name
    return index
