"""``imagefolder``: a folder of class subfolders, any image size, the issue's failures reproduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dml.data
from dml.cli import main
from tests.fixtures.user_images import make_image_folder


def test_classes_are_subfolders_with_images_and_splits_are_class_disjoint(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "photos")
    (root / "empty_cache").mkdir()
    (root / "empty_cache" / "images.npy").write_bytes(b"\x93NUMPY")  # a folder of non-images is no class
    with pytest.warns(RuntimeWarning, match="left out 1 file"):
        train = dml.data.build("imagefolder", split="train", root=root)
    with pytest.warns(RuntimeWarning):
        test = dml.data.build("imagefolder", split="test", root=root)
    assert len(train) + len(test) == 24 and train.num_classes == test.num_classes == 3
    assert not set(train.class_names) & set(test.class_names)
    assert sorted(set(train.class_names) | set(test.class_names)) == [f"class_{c}" for c in range(6)]
    image, label = train[0]
    assert image.dtype == np.float32 or image.dtype.is_floating_point
    assert train.class_of[label] == train.class_names[0] and train.relative_paths[0].startswith(train.class_names[0])


def test_per_class_split_and_split_file(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "photos")
    test = dml.data.build("imagefolder", split="test", root=root, split_by="image", test_fraction=0.25)
    assert test.num_classes == 6 and len(test) == 6
    (tmp_path / "split.csv").write_text(
        "path,label,split\nclass_0/img0.jpg,class_0,test\nclass_1/img1.png,class_1,train\n"
    )
    saved = dml.data.build("imagefolder", split="test", root=root, split_file=tmp_path / "split.csv")
    assert list(saved.relative_paths) == ["class_0/img0.jpg"]
    (root / "class_0" / "img0.jpg").unlink()
    with pytest.raises(dml.data.MissingImageError, match="img0.jpg is missing"):
        dml.data.build("imagefolder", split="test", root=root, split_file=tmp_path / "split.csv")


def test_missing_or_empty_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dml.data.build("imagefolder", root=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no class subfolder with images"):
        dml.data.build("imagefolder", root=tmp_path)
    with pytest.raises(ValueError, match="needs its folder"):
        dml.data.build("imagefolder")


def _train(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    return [
        "train",
        "configs/smoke_synthetic.yaml",
        "--output-dir",
        str(tmp_path / "run"),
        "--set",
        "data.name=imagefolder",
        "--set",
        f"data.root={root}",
        "--set",
        "data.kwargs={}",
        "--set",
        "data.augment={size: 24, test_resize: 28}",
        "--set",
        "data.sampler={p: 3, k: 2}",
        "--set",
        "train.epochs=1",
        "--set",
        "eval.include=[recall]",
        *extra,
    ]


def test_dml_train_accepts_an_image_folder_and_saves_its_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 17: `dml train` refused data.name=imagefolder ("unknown value 'imagefolder'")."""
    root = make_image_folder(tmp_path / "photos")
    assert main(_train(tmp_path, root, "--set", "data.pipeline=jpeg")) == 0, capsys.readouterr().err
    lines = (tmp_path / "run" / "split.csv").read_text().splitlines()
    assert lines[0] == "path,label,split" and len(lines) == 25
    assert {line.split(",")[2] for line in lines[1:]} == {"train", "test"}


def test_the_tensor_pipeline_on_files_is_one_line_not_a_stack_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 17: images of different sizes crashed with a raw torch.stack error."""
    root = make_image_folder(tmp_path / "photos")
    assert main(_train(tmp_path, root, "--set", "data.pipeline=tensor")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.pipeline=jpeg" in err and "stack" not in err
