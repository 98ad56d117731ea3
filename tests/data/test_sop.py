"""sop: the official Ebay_train/Ebay_test split, super-class labels and format errors."""
from __future__ import annotations

import numpy as np
import pytest

import dml.data
from dml.data import DatasetNotFoundError
from tests.fixtures.benchmarks import SOP_SUPER, make_sop, truncate


@pytest.fixture(scope="module")
def sop(tmp_path_factory):
    return make_sop(tmp_path_factory.mktemp("data") / "sop", train_classes=4, test_classes=3, per_class=2)


def test_splits_and_super_labels(sop):
    train = dml.data.build("sop", split="train", root=sop.root)
    test = dml.data.build("sop", split="test", root=sop.root)
    everything = dml.data.build("sop", split="all", root=sop.root)
    assert (len(train), len(test), len(everything)) == (8, 6, 14) == tuple(sop.expected[s] for s in
                                                                           ("train", "test", "all"))
    assert set(train.labels) == {1, 2, 3, 4} and set(test.labels) == {5, 6, 7}
    assert train.super_labels.tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    assert len(everything.super_labels) == len(everything) and everything.image_ids.tolist() == list(range(1, 15))
    for path, super_label in zip(everything.paths, everything.super_labels):
        assert path.parent.name == f"{SOP_SUPER[super_label - 1]}_final"
    assert np.array_equal(everything.labels, np.concatenate([train.labels, test.labels]))


def test_wrong_header_is_refused(tmp_path):
    tree = make_sop(tmp_path / "sop", train_classes=1, test_classes=1, per_class=1)
    listing = tree.root / "Stanford_Online_Products" / "Ebay_train.txt"
    listing.write_text(listing.read_text().replace("super_class_id", "super"))
    with pytest.raises(ValueError, match="official header"):
        dml.data.build("sop", root=tree.root)


def test_missing_test_list_and_missing_folder(tmp_path):
    tree = make_sop(tmp_path / "sop", train_classes=1, test_classes=1, per_class=1)
    (tree.root / "Stanford_Online_Products" / "Ebay_test.txt").unlink()
    dml.data.build("sop", split="train", root=tree.root)
    with pytest.raises(DatasetNotFoundError, match="Ebay_test.txt"):
        dml.data.build("sop", split="test", root=tree.root)
    with pytest.raises(DatasetNotFoundError, match=r"manual|no stable public URL"):
        dml.data.build("sop", root=tmp_path / "elsewhere")


def test_skip_corrupt_keeps_super_labels_aligned(tmp_path):
    tree = make_sop(tmp_path / "sop", train_classes=3, test_classes=1, per_class=2)
    full = dml.data.build("sop", root=tree.root)
    truncate(full.paths[2])
    with pytest.warns(RuntimeWarning, match="Skipping 1"):
        ds = dml.data.build("sop", root=tree.root, skip_corrupt=True)
    keep = [0, 1, 3, 4, 5]
    assert ds.paths == [full.paths[i] for i in keep]
    assert ds.super_labels.tolist() == full.super_labels[keep].tolist()
    assert ds.labels.tolist() == full.labels[keep].tolist()
