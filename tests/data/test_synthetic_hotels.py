"""``synthetic-hotels``: rooms = the generator's classes (images unchanged), chains, sources, occluded queries."""

from __future__ import annotations

import numpy as np
import pytest

import dml.data
from dml.data.occlusion import OCCLUSION_LEVELS, mask_coverage

KW = {"rooms": 12, "images_per_room": 8, "queries_per_room": 2, "image_size": 16, "seed": 3}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, {s: dml.data.build("synthetic-hotels", split=s, root=root, **KW) for s in ("train", "test", "all")}


def test_rooms_are_the_generators_classes_unchanged(splits):
    root, s = splits
    source = dml.data.SyntheticDataset("all", root=root, num_classes=12, images_per_class=8, modes_per_class=2,
                                       siblings=4, sibling_similarity=0.6, image_size=16, seed=3)
    both = s["all"]
    assert np.array_equal(both.images, source.images[both.image_ids])
    assert np.array_equal(both.labels, source.labels[both.image_ids])


def test_queries_are_held_out_traffickcam_photos_of_training_rooms(splits):
    _, s = splits
    train, test = s["train"], s["test"]
    assert len(test) == 12 * 2 and len(train) == 12 * 6
    assert set(test.labels) == set(train.labels)  # not zero-shot: the gallery holds every room
    assert not set(test.image_ids) & set(train.image_ids)
    assert (test.sources == "traffickcam").all()
    assert (train.sources == "traffickcam").sum() == 12 * 2 and (train.sources == "travel_website").sum() == 12 * 4


def test_chains_are_sibling_groups_with_independent_hotels(splits):
    _, s = splits
    train = s["train"]
    chain_of = {room: set(train.chain_labels[train.labels == room]) for room in np.unique(train.labels)}
    assert all(len(c) == 1 for c in chain_of.values())
    chains = [c.pop() for c in chain_of.values()]
    # the generator's halves of 6 classes make 2 sibling groups of 3 each: 4 chains, one (25 %) independent
    assert chains.count(-1) == 3
    known = [c for c in chains if c != -1]
    assert sorted(np.unique(known, return_counts=True)[1]) == [3, 3, 3]
    wider = dml.data.build("synthetic-hotels", split="train", root=splits[0], **KW, groups_per_chain=2,
                           independent_share=0.0)
    assert sorted(np.unique(wider.chain_labels, return_counts=True)[1]) == [6 * 6, 6 * 6]  # rooms x images


def test_occluded_queries(splits):
    root, s = splits
    high = dml.data.build("synthetic-hotels", split="test", root=root, occlusion="high", **KW)
    lo, hi = OCCLUSION_LEVELS["high"]
    coverage = mask_coverage(high.masks)
    assert ((coverage >= lo) & (coverage <= hi)).all()
    changed = (high.images != s["test"].images).any(axis=-1)
    assert not changed[~high.masks].any() and changed[high.masks].mean() > 0.9
    again = dml.data.build("synthetic-hotels", split="test", root=root, occlusion="high", **KW)
    assert np.array_equal(high.images, again.images)
    train = dml.data.build("synthetic-hotels", split="train", root=root, occlusion="high", **KW)
    assert np.array_equal(train.images, s["train"].images) and train.masks is None  # the gallery is never occluded


def test_bad_arguments(splits):
    root, _ = splits
    with pytest.raises(ValueError, match="occlusion"):
        dml.data.build("synthetic-hotels", root=root, occlusion="extreme", **KW)
    with pytest.raises(ValueError, match="queries_per_room"):
        dml.data.build("synthetic-hotels", root=root, **{**KW, "queries_per_room": 3})
