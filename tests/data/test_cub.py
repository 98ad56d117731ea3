"""cub200: the zero-shot split (classes 1-100 / 101-200), bbox crop, paths, errors naming the fix, skip_corrupt."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dml.data
from dml.data import CorruptImageError, DatasetNotFoundError
from tests.fixtures.benchmarks import IMAGE_SIZE, make_cub, truncate


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    return make_cub(tmp_path_factory.mktemp("data") / "cub200")


def test_zero_shot_split_and_counts(cub):
    train = dml.data.build("cub200", split="train", root=cub.root)
    test = dml.data.build("cub200", split="test", root=cub.root)
    everything = dml.data.build("cub200", split="all", root=cub.root)
    assert (len(train), len(test), len(everything)) == (cub.expected["train"], cub.expected["test"],
                                                         cub.expected["all"])
    assert set(train.labels) == {1, 2, 3} and set(test.labels) == {101, 102, 103}
    assert np.all(train.labels <= 100) and np.all(test.labels > 100)
    assert len(everything.paths) == len(everything) and all(p.is_file() for p in everything.paths)
    assert sorted(map(str, everything.paths)) == sorted(map(str, cub.files))


def test_labels_follow_the_annotation_files_by_image_id(cub):
    ds = dml.data.build("cub200", split="all", root=cub.root)
    for path, label, image_id in zip(ds.paths, ds.labels, ds.image_ids):
        assert path.parent.name.startswith(f"{label:03d}.")  # class folder agrees with image_class_labels.txt
        assert path.stem.endswith(f"_{1000 + image_id}")


def test_items_are_float_images_in_unit_range(cub):
    ds = dml.data.build("cub200", split="test", root=cub.root)
    image, label = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, IMAGE_SIZE[1], IMAGE_SIZE[0])
    assert 0.0 <= image.min() and image.max() <= 1.0 and isinstance(label, int) and label == 101


def test_bbox_crop_uses_x_y_width_height(cub):
    plain = dml.data.build("cub200", root=cub.root)
    cropped = dml.data.build("cub200", root=cub.root, bbox_crop=True)
    assert cropped.boxes.tolist()[0] == [4.0, 6.0, 24.0, 22.0]
    image = cropped[0][0]
    assert image.shape == (3, 16, 20)
    assert torch.equal(image, plain[0][0][:, 6:22, 4:24])


def test_root_may_be_the_data_folder_or_the_dataset_folder(cub, monkeypatch):
    via_parent = dml.data.build("cub200", root=cub.root.parent)
    via_folder = dml.data.build("cub200", root=cub.root)
    assert via_parent.paths == via_folder.paths and via_parent.root == cub.root
    monkeypatch.setenv("DML_DATA", str(cub.root.parent))
    assert dml.data.build("cub200").paths == via_folder.paths


def test_missing_root_names_layout_and_download_command(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        dml.data.build("cub200", root=tmp_path / "nowhere")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "images.txt" in message and "image_class_labels.txt" in message
    assert "dml data download cub200" in message and str(tmp_path / "nowhere") in message


def test_missing_annotation_file_is_named(tmp_path):
    tree = make_cub(tmp_path / "cub200", classes=(1, 101), per_class=1)
    (tree.root / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    dml.data.build("cub200", root=tree.root)  # boxes are only needed for bbox_crop
    with pytest.raises(DatasetNotFoundError, match="bounding_boxes.txt"):
        dml.data.build("cub200", root=tree.root, bbox_crop=True)


def test_truncated_annotation_line_is_reported(tmp_path):
    tree = make_cub(tmp_path / "cub200", classes=(1, 101), per_class=1)
    (tree.root / "CUB_200_2011" / "image_class_labels.txt").write_text("1 1\n2\n")
    with pytest.raises(ValueError, match=r"image_class_labels.txt, line 2"):
        dml.data.build("cub200", root=tree.root)


def test_corrupt_file_error_names_it_and_skip_mode_drops_it(tmp_path):
    tree = make_cub(tmp_path / "cub200", classes=(1, 2, 101), per_class=2)
    ds = dml.data.build("cub200", root=tree.root)
    broken = truncate(ds.paths[1])
    with pytest.raises(CorruptImageError, match=str(broken)):
        ds[1]
    with pytest.warns(RuntimeWarning, match=r"Skipping 1 unreadable image file\(s\) of 4"):
        skipped = dml.data.build("cub200", root=tree.root, skip_corrupt=True, bbox_crop=True)
    assert len(skipped) == 3 and broken not in skipped.paths and skipped.skipped == [broken]
    assert len(skipped.boxes) == len(skipped.image_ids) == len(skipped.labels) == 3
    for i in range(len(skipped)):
        skipped[i]
