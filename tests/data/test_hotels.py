"""hotels50k: hotel and chain labels, occlusion levels, images indexed from disk, missing rows tolerated."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

import dml.data
from dml.data import DatasetNotFoundError
from tests.fixtures.benchmarks import make_hotels


@pytest.fixture(scope="module")
def hotels(tmp_path_factory):
    return make_hotels(tmp_path_factory.mktemp("data") / "hotels50k", hotels=4, train_per_hotel=3,
                       test_per_hotel=1, missing_train=2)


def build(root, split="train", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return dml.data.build("hotels50k", split=split, root=root, **kw)


def test_hotel_and_chain_labels(hotels):
    train, test = build(hotels.root), build(hotels.root, "test")
    assert (len(train), len(test)) == (hotels.expected["train"], hotels.expected["test"]) == (10, 4)
    assert set(test.labels) <= set(train.labels)  # instance retrieval of known hotels, not zero-shot
    chain_of = {1: 1, 2: 0, 3: 1, 4: -1}
    for ds in (train, test):
        assert ds.chain_labels.tolist() == [chain_of[h] for h in ds.labels]
        for path, hotel, chain, source in zip(ds.paths, ds.labels, ds.chain_labels, ds.sources):
            assert path.parts[-4:-1] == (str(chain), str(hotel), source)
    assert set(test.sources) == {"traffickcam"} and {"traffickcam", "travel_website"} == set(train.sources)


def test_missing_images_are_dropped_with_one_warning(hotels):
    with pytest.warns(RuntimeWarning, match="2 image\\(s\\) listed in the CSVs of split 'train' have no file"):
        train = dml.data.build("hotels50k", split="train", root=hotels.root)
    assert train.num_missing == 2 and train.image_ids.tolist() == list(range(1, 11))
    everything = build(hotels.root, "all")
    assert len(everything) == 14 and everything.is_test.sum() == 4 and everything.num_missing == 2


def test_occlusion_levels_and_masks_skipped(hotels):
    plain, low = build(hotels.root, "test"), build(hotels.root, "test", occlusion="low")
    assert np.array_equal(plain.image_ids, low.image_ids) and np.array_equal(plain.labels, low.labels)
    assert all("low_occlusions" in p.parts and p.suffix == ".jpg" for p in low.paths)
    assert low.occlusion == "low"
    with pytest.raises(DatasetNotFoundError, match="high_occlusions"):
        build(hotels.root, "test", occlusion="high")
    with pytest.raises(ValueError, match="Unknown occlusion 'heavy'"):
        build(hotels.root, "test", occlusion="heavy")


def test_metadata_missing_points_to_the_repository(tmp_path):
    tree = make_hotels(tmp_path / "hotels50k", hotels=2, train_per_hotel=1, missing_train=0)
    shutil.rmtree(tree.root / "input")
    with pytest.raises(DatasetNotFoundError) as info:
        build(tree.root)
    assert "hotel_info.csv" in str(info.value) and "GWUvision/Hotels-50K" in str(info.value)
    assert "download_train.py" in str(info.value)


def test_folder_without_any_listed_image(tmp_path):
    tree = make_hotels(tmp_path / "hotels50k", hotels=2, train_per_hotel=1, missing_train=0)
    shutil.rmtree(tree.root / "images" / "train")
    (tree.root / "images" / "train").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds none of the 2 images"):
        build(tree.root)
