"""``inshop``: DeepFashion In-Shop Clothes Retrieval (Liu et al., "DeepFashion: Powering Robust Clothes
Recognition and Retrieval with Rich Annotations", CVPR 2016).

``Eval/list_eval_partition.txt`` starts with the number of images, then the header
``image_name item_id evaluation_status``, then one ``img/<...>.jpg id_00000001 train|query|gallery`` line per
image (format as documented for the benchmark and read by mmpretrain's ``InShop``). 25,882 training images of
3,997 items; the test items (3,985, disjoint from the training ones) are split into 14,218 query and 12,612
gallery images. Evaluation ranks each query against the gallery only (:func:`dml.eval.query_gallery_metrics`),
not against the other queries, and reports R@1/10/20/30/40. Beware of the last column when comparing with published
tables: the SCT README (Xuan et al., ECCV 2020) labels it R@40, but its ``_code/Evaluation.py`` computes R@30
(GitHub littleredxh/HardNegative).

How the registry's splits map onto the three partitions:

* ``split="train"``: the training images;
* ``split="test", subset="query"`` / ``subset="gallery"``: one side of the evaluation;
* ``split="test"`` (``subset=None``): queries then gallery, with ``is_query`` marking the queries, so one
  embedding pass serves both sides (``emb[ds.is_query]`` vs ``emb[~ds.is_query]``);
* ``split="all"``: every image (``subset`` must be ``None``).

Labels are the item numbers (``id_00000123`` → 123).
"""
from __future__ import annotations

import os

import numpy as np

from dml.data.base import Transform, check_split
from dml.data.files import (
    ImageFileDataset,
    dataset_dir,
    empty_annotation,
    not_found,
    read_lines,
    read_rows,
    require_rows,
)
from dml.data.registry import register

NAME = "inshop"
SUBSETS = ("query", "gallery")
HEADER = ["image_name", "item_id", "evaluation_status"]


@register(NAME)
class InShop(ImageFileDataset):
    """In-Shop Clothes Retrieval with its train / query / gallery partition.

    Args:
        split: ``"train"``, ``"test"`` (query + gallery) or ``"all"``.
        root: Dataset folder holding ``Eval/`` and ``Img/img/`` (or ``img/``); default ``data_root()/inshop``.
        transform: Applied to each ``float32`` ``3×H×W`` tensor.
        subset: With ``split="test"``: ``"query"``, ``"gallery"`` or ``None`` (both).
        skip_corrupt: Decode every file now and drop unreadable ones with a warning (slow).

    Attributes:
        paths, labels (item numbers), status (``"train"``, ``"query"`` or ``"gallery"`` per image),
        is_query (boolean mask), subset.

    Raises:
        DatasetNotFoundError: the partition file or the image folder is missing.
        EmptyAnnotationError: an annotation file lists no image (empty, header only, or none of the split).
        ValueError: an unknown ``subset``, or a ``subset`` with a split other than ``"test"``.
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, subset: str | None = None, skip_corrupt: bool = False) -> None:
        check_split(split)
        if subset is not None and subset not in SUBSETS:
            raise ValueError(f"Unknown subset {subset!r}; use 'query', 'gallery' or None (both).")
        if subset is not None and split != "test":
            raise ValueError(f"subset={subset!r} selects part of the test split; pass split='test' "
                             f"(got split={split!r}).")
        directory = dataset_dir(NAME, root)
        partition = directory / "Eval" / "list_eval_partition.txt"
        if not partition.is_file():
            raise not_found(NAME, directory, partition)
        images = directory / "Img" if (directory / "Img" / "img").is_dir() else directory
        if not (images / "img").is_dir():
            raise not_found(NAME, directory, directory / "Img" / "img")

        lines = [text for _, text in read_lines(partition)[:2]] + ["", ""]
        declared, header = lines[0].strip(), lines[1].split()
        if not declared and not header:
            raise empty_annotation(NAME, split, directory, partition)
        if header != HEADER:
            raise ValueError(f"{partition}, line 2 is {header}, not the official header {HEADER}; "
                             "re-download the file.")
        rows = require_rows(read_rows(partition, columns=3, skip=2), name=NAME, split=split, directory=directory,
                            path=partition, problem="has its count and header lines but no image row")
        if not declared.isdigit() or int(declared) != len(rows):
            raise ValueError(f"{partition} declares {declared!r} images on line 1 but lists {len(rows)}; the file "
                             "is truncated or edited. Re-download it.")
        wanted = {"train": {"train"}, "all": {"train", "query", "gallery"},
                  "test": {subset} if subset else {"query", "gallery"}}[split]
        if split == "test" and subset is None:
            rows = [r for r in rows if r[2] == "query"] + [r for r in rows if r[2] == "gallery"]
        else:
            rows = [r for r in rows if r[2] in wanted]
        if not rows:
            raise empty_annotation(NAME, split, directory, partition, "lists no image with evaluation_status "
                                   + " or ".join(repr(w) for w in sorted(wanted)))
        status = np.array([r[2] for r in rows], dtype=object)
        super().__init__(split=split, paths=[images / r[0] for r in rows],
                         labels=np.array([_item_number(r[1], partition) for r in rows], dtype=np.int64),
                         transform=transform, extras={"status": status, "is_query": status == "query"},
                         skip_corrupt=skip_corrupt, root=directory)
        self.subset = subset


def _item_number(item_id: str, path) -> int:
    digits = item_id.removeprefix("id_")
    if not digits.isdigit():
        raise ValueError(f"{path}: item id {item_id!r} is not of the form id_<digits>; re-download the file.")
    return int(digits)
