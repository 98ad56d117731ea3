"""``imagelist``: a CSV/TSV list of path,label[,split]; splits from the list or drawn; bad rows named."""

from __future__ import annotations

from pathlib import Path

import pytest

import dml.data
from tests.fixtures.user_images import make_image_folder, write_list


def test_list_with_split_column_uses_it(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "photos")
    listed = write_list(tmp_path / "photos", tmp_path / "list.csv")
    train = dml.data.build("imagelist", split="train", root=listed)
    test = dml.data.build("imagelist", split="test", root=listed)
    assert sorted(set(train.class_names)) == ["class_0", "class_2", "class_4"]
    assert sorted(set(test.class_names)) == ["class_1", "class_3", "class_5"]
    assert train.paths[0].is_file() and train.relative_paths[0] == "photos/class_0/img0.jpg"
    drawn = dml.data.build("imagelist", split="test", root=listed, split_by="image", test_fraction=0.5)
    assert drawn.num_classes == 6 and len(drawn) == 12


def test_tsv_without_split_is_split_by_class_and_integer_labels_are_kept(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "photos")
    listed = write_list(tmp_path / "photos", tmp_path / "list.tsv", with_split=False, delimiter="\t")
    text = listed.read_text().replace("class_", "")  # labels 0..5, as integer class ids
    listed.write_text(text.replace("photos/", "photos/class_"))
    every = dml.data.build("imagelist", split="all", root=listed)
    assert sorted(set(every.labels.tolist())) == [0, 1, 2, 3, 4, 5]
    train = dml.data.build("imagelist", split="train", root=listed)
    test = dml.data.build("imagelist", split="test", root=listed)
    assert train.num_classes == 3 and not set(train.labels) & set(test.labels)


@pytest.mark.parametrize(
    "row,message",
    [
        ("notes.txt,a,train", "'notes.txt' is not an image file name"),
        ("a.jpg,a,valid", "split 'valid' is not 'train' or 'test'"),
        ("a.jpg,a,train,extra", "expected 3 fields"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, row: str, message: str) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text(f"path,label,split\nb.jpg,b,test\n{row}\n")
    with pytest.raises(ValueError, match=f"line 3: {message}"):
        dml.data.build("imagelist", root=listed)


def test_missing_list_and_empty_list(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dml.data.build("imagelist", root=tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="lists no image"):
        dml.data.build("imagelist", root=tmp_path / "empty.csv")
