"""The DREML class -> meta-class bagging: balanced, seeded, independent across learners; the collision rates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dml.data.meta_classes import (
    collision_fraction,
    indistinguishable_pairs,
    meta_class_maps,
    pair_collision_probability,
)


@pytest.mark.parametrize(("classes", "meta"), [(48, 12), (50, 12), (100, 3), (7, 7), (13, 2)])
def test_every_learner_is_balanced(classes: int, meta: int) -> None:
    maps = meta_class_maps(classes, learners=20, meta_classes=meta, seed=1)
    assert maps.shape == (20, classes) and maps.dtype == torch.int64
    for row in maps:
        counts = np.bincount(row.numpy(), minlength=meta)
        assert len(counts) == meta and counts.min() >= classes // meta
        assert counts.max() <= -(-classes // meta) and counts.sum() == classes
        assert (counts == classes // meta + 1).sum() == classes % meta


def test_seeded_and_different_across_learners_and_seeds() -> None:
    a = meta_class_maps(48, learners=6, meta_classes=12, seed=3)
    assert torch.equal(a, meta_class_maps(48, learners=6, meta_classes=12, seed=3))
    assert not torch.equal(a, meta_class_maps(48, learners=6, meta_classes=12, seed=4))
    assert len({tuple(row.tolist()) for row in a}) == 6  # the learners are different bags
    # the first learners do not depend on how many learners are drawn
    assert torch.equal(a[:3], meta_class_maps(48, learners=3, meta_classes=12, seed=3))


def test_which_meta_classes_get_the_extra_class_is_random() -> None:
    maps = meta_class_maps(13, learners=400, meta_classes=4, seed=0)  # sizes 4, 3, 3, 3
    big = [int(np.argmax(np.bincount(row.numpy(), minlength=4))) for row in maps]
    assert set(big) == {0, 1, 2, 3}


def test_pair_collision_probability_matches_brute_force_and_the_empirical_rate() -> None:
    for classes, meta in ((12, 4), (13, 4), (10, 3)):
        small, extra = divmod(classes, meta)
        sizes = [small + 1] * extra + [small] * (meta - extra)
        same = sum(n * (n - 1) for n in sizes)  # ordered pairs inside a meta-class
        assert pair_collision_probability(classes, meta) == pytest.approx(same / (classes * (classes - 1)))
    assert pair_collision_probability(48, 12) == pytest.approx(3 / 47)  # (C/D - 1) / (C - 1) < 1/D
    maps = meta_class_maps(48, learners=2000, meta_classes=12, seed=0)
    per_learner = [collision_fraction(maps[i : i + 1]) for i in range(len(maps))]
    assert np.mean(per_learner) == pytest.approx(3 / 47, rel=1e-9)  # exact for every balanced row


def test_indistinguishable_pairs_against_a_loop() -> None:
    maps = meta_class_maps(9, learners=2, meta_classes=3, seed=5)
    expected = torch.zeros(9, 9, dtype=torch.bool)
    for i, j in itertools.product(range(9), repeat=2):
        expected[i, j] = i != j and all(int(maps[k, i]) == int(maps[k, j]) for k in range(2))
    assert torch.equal(indistinguishable_pairs(maps), expected)
    assert collision_fraction(maps) == pytest.approx(float(expected.sum()) / 72)


def test_collisions_fall_as_p_to_the_l() -> None:
    rates = []
    for learners in (1, 2, 3):
        fractions = [
            collision_fraction(meta_class_maps(60, learners=learners, meta_classes=4, seed=s)) for s in range(40)
        ]
        rates.append(np.mean(fractions))
    p = pair_collision_probability(60, 4)
    for learners, rate in zip((1, 2, 3), rates):
        assert rate == pytest.approx(p**learners, rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 10, "learners": 2, "meta_classes": 11}, "more than the 10 classes"),
        ({"num_classes": 10, "learners": 0, "meta_classes": 2}, "learners must be an integer >= 1"),
        ({"num_classes": 10, "learners": 2, "meta_classes": 1}, "meta_classes must be an integer >= 2"),
        ({"num_classes": 10.0, "learners": 2, "meta_classes": 2}, "num_classes must be an integer"),
    ],
)
def test_bad_sizes_fail_with_the_fix(kwargs: dict, message: str) -> None:
    num_classes = kwargs.pop("num_classes")
    with pytest.raises(ValueError, match=message):
        meta_class_maps(num_classes, **kwargs)
