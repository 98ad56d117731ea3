"""cars196: the three supported layouts, the split by class (1-98 / 99-196), bbox crop and missing-file errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import dml.data
from dml.data import DatasetNotFoundError
from tests.fixtures.benchmarks import make_cars

LAYOUTS = ["annos", "devkit", "folders"]


@pytest.fixture(scope="module", params=LAYOUTS)
def cars(request, tmp_path_factory):
    return make_cars(tmp_path_factory.mktemp(request.param) / "cars196", layout=request.param), request.param


def test_split_by_class_in_every_layout(cars):
    tree, layout = cars
    train = dml.data.build("cars196", split="train", root=tree.root)
    test = dml.data.build("cars196", split="test", root=tree.root)
    everything = dml.data.build("cars196", split="all", root=tree.root)
    assert train.layout == test.layout == layout
    assert (len(train), len(test), len(everything)) == (tree.expected["train"], tree.expected["test"],
                                                         tree.expected["all"])
    assert set(train.labels) == {1, 2, 3} and set(test.labels) == {99, 100, 101}
    assert sorted(map(str, everything.paths)) == sorted(map(str, tree.files))


def test_labels_match_the_images(cars):
    """The fixture colours each image by its class, so a wrong path/label pairing shows in the pixels."""
    tree, _ = cars
    ds = dml.data.build("cars196", split="all", root=tree.root)
    means = torch.stack([ds[i][0].mean(dim=(1, 2)) for i in range(len(ds))]).numpy()
    for label in np.unique(ds.labels):
        expected = np.array([(label * 53) % 256, (label * 97) % 256, (label * 151) % 256]) / 255
        assert np.abs(means[ds.labels == label] - expected).max() < 0.05


def test_bbox_crop(cars):
    tree, _ = cars
    plain = dml.data.build("cars196", root=tree.root)
    cropped = dml.data.build("cars196", root=tree.root, bbox_crop=True)
    assert cropped[0][0].shape == (3, 16, 20)  # x1=5..x2=24, y1=7..y2=22, inclusive and 1-based
    assert torch.equal(cropped[0][0], plain[0][0][:, 6:22, 4:24])


def test_devkit_images_may_be_nested_as_on_some_mirrors(tmp_path):
    tree = make_cars(tmp_path / "cars196", layout="devkit", classes=(1, 99), per_class=2)
    for part in ("train", "test"):
        inner = tmp_path / f"cars_{part}"
        shutil.move(tree.root / f"cars_{part}", inner)
        (tree.root / f"cars_{part}").mkdir()
        shutil.move(inner, tree.root / f"cars_{part}" / f"cars_{part}")
    ds = dml.data.build("cars196", split="all", root=tree.root)
    assert len(ds) == 4 and all(p.is_file() for p in ds.paths)


def test_no_layout_found_lists_all_three(tmp_path):
    (tmp_path / "cars196").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        dml.data.build("cars196", root=tmp_path / "cars196")
    message = str(info.value)
    assert "cars_annos.mat" in message and "cars_train_annos.mat" in message and "names.csv" in message
    assert "dml data download cars196" in message


def test_devkit_without_labelled_test_annotations(tmp_path):
    tree = make_cars(tmp_path / "cars196", layout="devkit", classes=(1, 99), per_class=1)
    (tree.root / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match="cars_test_annos_withlabels.mat"):
        dml.data.build("cars196", root=tree.root)


def test_annotations_without_images(tmp_path):
    tree = make_cars(tmp_path / "cars196", layout="annos", classes=(1, 99), per_class=1)
    shutil.rmtree(tree.root / "car_ims")
    with pytest.raises(DatasetNotFoundError, match="car_ims"):
        dml.data.build("cars196", root=tree.root)
