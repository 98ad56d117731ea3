"""Splits of a user's images: class-disjoint (zero-shot), per class, by the list, and the saved split file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dml.data.splits import assign_splits, read_split_file, write_split_file

LABELS = np.repeat(np.arange(10), 5)


def test_class_split_is_disjoint_seeded_and_sized() -> None:
    split = assign_splits(LABELS, split_by="class", test_fraction=0.3, seed=1)
    train, test = set(LABELS[split == "train"]), set(LABELS[split == "test"])
    assert not train & test and len(test) == 3 and len(train) == 7
    assert (assign_splits(LABELS, split_by="class", test_fraction=0.3, seed=1) == split).all()
    assert not (assign_splits(LABELS, split_by="class", test_fraction=0.3, seed=2) == split).all()


def test_image_split_keeps_every_class_in_both() -> None:
    split = assign_splits(LABELS, split_by="image", test_fraction=0.4, seed=0)
    for c in range(10):
        mine = split[c == LABELS]
        assert (mine == "test").sum() == 2 and (mine == "train").sum() == 3


def test_list_split_and_errors() -> None:
    assert list(assign_splits([0, 1], split_by="list", listed=["test", "train"])) == ["test", "train"]
    with pytest.raises(ValueError, match="needs a split column"):
        assign_splits([0, 1], split_by="list")
    with pytest.raises(ValueError, match="at least two classes"):
        assign_splits([3, 3, 3], split_by="class")
    with pytest.raises(ValueError, match="class 2 has one image"):
        assign_splits([1, 1, 2], split_by="image")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        assign_splits(LABELS, test_fraction=1.0)
    with pytest.raises(ValueError, match="Did you mean 'class'"):
        assign_splits(LABELS, split_by="clas")


def test_split_file_round_trip(tmp_path: Path) -> None:
    write_split_file(tmp_path / "split.csv", [("a/1.jpg", "a", "train"), ("b/2.jpg", "b", "test")])
    assert read_split_file(tmp_path / "split.csv") == {"a/1.jpg": "train", "b/2.jpg": "test"}
    (tmp_path / "bad.csv").write_text("path,label,split\na.jpg,a,val\n")
    with pytest.raises(ValueError, match="line 2: split 'val'"):
        read_split_file(tmp_path / "bad.csv")
