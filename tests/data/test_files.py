"""Shared loader machinery of ``dml.data.files``: an empty annotation file names the dataset, the file and the split.

Each case blanks (or reduces to its header) one official annotation file of a fixture tree, or builds a tree whose
files list no image of the requested split, and checks the one-line error a new user gets instead of an empty
dataset (which used to fail much later, in the sampler) or a message naming neither dataset nor split.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import dml.data
from dml.data.files import EmptyAnnotationError
from tests.fixtures.benchmarks import make_cars, make_cub, make_hotels, make_inshop, make_sop

SOP_HEADER = "image_id class_id super_class_id path\n"
INSHOP_HEADER = "0\nimage_name item_id evaluation_status\n"
HOTELS_HEADER = "image_id,hotel_id,image_url,image_source,upload_timestamp\n"

# (dataset, fixture builder with its keywords, {file relative to the tree: new content}, split, build keywords,
#  the file the message must name)
CASES = {
    "cub-images-empty": ("cub200", (make_cub, {}), {"CUB_200_2011/images.txt": ""}, "train", {}, "images.txt"),
    "cub-labels-empty": (
        "cub200",
        (make_cub, {}),
        {"CUB_200_2011/image_class_labels.txt": ""},
        "test",
        {},
        "image_class_labels.txt",
    ),
    "cub-both-empty": (
        "cub200",
        (make_cub, {}),
        {"CUB_200_2011/images.txt": "", "CUB_200_2011/image_class_labels.txt": ""},
        "all",
        {},
        "images.txt",
    ),
    "cub-boxes-empty": (
        "cub200",
        (make_cub, {}),
        {"CUB_200_2011/bounding_boxes.txt": "\n"},
        "train",
        {"bbox_crop": True},
        "bounding_boxes.txt",
    ),
    "cub-no-test-class": ("cub200", (make_cub, {"classes": (1, 2, 3)}), {}, "test", {}, "images.txt"),
    "sop-train-empty": (
        "sop",
        (make_sop, {}),
        {"Stanford_Online_Products/Ebay_train.txt": ""},
        "train",
        {},
        "Ebay_train.txt",
    ),
    "sop-test-header-only": (
        "sop",
        (make_sop, {}),
        {"Stanford_Online_Products/Ebay_test.txt": SOP_HEADER},
        "test",
        {},
        "Ebay_test.txt",
    ),
    "sop-all-test-header-only": (
        "sop",
        (make_sop, {}),
        {"Stanford_Online_Products/Ebay_test.txt": SOP_HEADER},
        "all",
        {},
        "Ebay_test.txt",
    ),
    "inshop-empty": (
        "inshop",
        (make_inshop, {}),
        {"Eval/list_eval_partition.txt": ""},
        "train",
        {},
        "list_eval_partition.txt",
    ),
    "inshop-header-only": (
        "inshop",
        (make_inshop, {}),
        {"Eval/list_eval_partition.txt": INSHOP_HEADER},
        "test",
        {},
        "list_eval_partition.txt",
    ),
    "inshop-no-query": (
        "inshop",
        (make_inshop, {"test_items": 0}),
        {},
        "test",
        {"subset": "query"},
        "list_eval_partition.txt",
    ),
    "cars-folders-empty": (
        "cars196",
        (make_cars, {"layout": "folders"}),
        {"anno_train.csv": "", "anno_test.csv": ""},
        "train",
        {},
        "anno_train.csv",
    ),
    "cars-names-empty": ("cars196", (make_cars, {"layout": "folders"}), {"names.csv": ""}, "test", {}, "names.csv"),
    "cars-no-test-class": ("cars196", (make_cars, {"classes": (1, 2, 3)}), {}, "test", {}, "cars_annos.mat"),
    "hotels-train-empty": (
        "hotels50k",
        (make_hotels, {}),
        {"input/dataset/train_set.csv": ""},
        "train",
        {},
        "train_set.csv",
    ),
    "hotels-test-header-only": (
        "hotels50k",
        (make_hotels, {}),
        {"input/dataset/test_set.csv": HOTELS_HEADER},
        "test",
        {},
        "test_set.csv",
    ),
    "hotels-hotel-info-empty": (
        "hotels50k",
        (make_hotels, {}),
        {"input/dataset/hotel_info.csv": ""},
        "train",
        {},
        "hotel_info.csv",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_empty_annotation_names_the_dataset_the_file_and_the_split(case: str, tmp_path: Path) -> None:
    name, (make, make_kw), blanks, split, kwargs, named = CASES[case]
    tree = make(tmp_path / name, **make_kw)
    for relative, text in blanks.items():
        (tree.root / relative).write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Hotels-50K warns about its rotted URLs
        with pytest.raises(EmptyAnnotationError) as info:
            dml.data.build(name, split=split, root=tree.root, **kwargs)
    message = str(info.value)
    assert f"Dataset {name!r}, split {split!r}:" in message, message
    assert str(tree.root) in message and named in message, message
    assert f"dml data check {name} --root" in message and "\n" not in message, message
    assert isinstance(info.value, ValueError)  # caught like every other annotation problem
    if not kwargs:  # `dml data check` reads the default files of every split (no boxes, no subset)
        report = dml.data.check(name, tree.root)
        assert not report.ok and named in report.format()


def test_a_complete_tree_still_loads(tmp_path: Path) -> None:
    tree = make_sop(tmp_path / "sop", train_classes=1, test_classes=1, per_class=1)
    assert [len(dml.data.build("sop", split=s, root=tree.root)) for s in ("train", "test", "all")] == [1, 1, 2]
