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


def _replace_first(old: str, new: str):
    return lambda text: text.replace(old, new, 1)


# (dataset, fixture builder with its keywords, file, edit of its text (or new bytes), build keywords, message)
DAMAGED = {
    "cub-id-not-int": (
        "cub200",
        (make_cub, {}),
        "CUB_200_2011/images.txt",
        _replace_first("1 ", "x "),
        {},
        r"images.txt, line 1: 'x' is not an integer",
    ),
    "cub-class-not-int": (
        "cub200",
        (make_cub, {}),
        "CUB_200_2011/image_class_labels.txt",
        _replace_first("1 1\n", "1 one\n"),
        {},
        r"image_class_labels.txt, line 1: 'one' is not an integer",
    ),
    "cub-box-not-a-number": (
        "cub200",
        (make_cub, {}),
        "CUB_200_2011/bounding_boxes.txt",
        _replace_first("4.0", "four"),
        {"bbox_crop": True},
        r"bounding_boxes.txt, line 1: 'four' is not a number",
    ),
    "cub-box-short": (
        "cub200",
        (make_cub, {}),
        "CUB_200_2011/bounding_boxes.txt",
        _replace_first(" 16.0\n", "\n"),
        {"bbox_crop": True},
        r"bounding_boxes.txt, line 1: expected 5 whitespace-separated fields",
    ),
    "cub-binary": (
        "cub200",
        (make_cub, {}),
        "CUB_200_2011/images.txt",
        b"\xff\xfe\x00garbage\n",
        {},
        r"images.txt is not UTF-8 text \(byte 0",
    ),
    "sop-class-not-int": (
        "sop",
        (make_sop, {}),
        "Stanford_Online_Products/Ebay_train.txt",
        _replace_first("\n1 1 ", "\n1 x "),
        {},
        r"Ebay_train.txt, line 2: 'x' is not an integer",
    ),
    "inshop-binary": (
        "inshop",
        (make_inshop, {}),
        "Eval/list_eval_partition.txt",
        b"\x80\x81\n",
        {},
        r"list_eval_partition.txt is not UTF-8 text",
    ),
    "cars-csv-short-row": (
        "cars196",
        (make_cars, {"layout": "folders"}),
        "anno_train.csv",
        _replace_first(",", ";"),
        {},
        r"anno_train.csv, line 1: expected fname,x1,y1,x2,y2,class",
    ),
    "cars-csv-box-not-a-number": (
        "cars196",
        (make_cars, {"layout": "folders"}),
        "anno_train.csv",
        _replace_first(",5,", ",five,"),
        {},
        r"anno_train.csv, line 1: expected fname,x1,y1,x2,y2,class, got '00001.jpg,five",
    ),
    "cars-mat-garbage": (
        "cars196",
        (make_cars, {}),
        "cars_annos.mat",
        b"not a MATLAB file",
        {},
        r"cars_annos.mat is not a readable MATLAB file",
    ),
    "hotels-id-not-int": (
        "hotels50k",
        (make_hotels, {}),
        "input/dataset/train_set.csv",
        _replace_first("\n1,1,", "\n1,x,"),
        {},
        r"train_set.csv, line 2: 'x' is not an integer",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_annotation_names_the_file_and_the_line(case: str, tmp_path: Path) -> None:
    """Malformed values, binary junk or a foreign file: one line naming the file (and line), not a bare
    "invalid literal for int()", an IndexError or a scipy exception."""
    name, (make, make_kw), relative, change, kwargs, pattern = DAMAGED[case]
    tree = make(tmp_path / name, **make_kw)
    path = tree.root / relative
    if isinstance(change, bytes):
        path.write_bytes(change)
    else:
        text = path.read_text()
        assert change(text) != text, "the edit must change the file"
        path.write_text(change(text))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=pattern) as info:
            dml.data.build(name, split="train", root=tree.root, **kwargs)
    assert str(tree.root) in str(info.value) and "re-extract" in str(info.value).lower()
    if not kwargs:
        report = dml.data.check(name, tree.root)
        assert not report.ok and relative.rsplit("/", 1)[-1] in (report.error or ""), report.format()
