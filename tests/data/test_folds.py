"""Class-disjoint k-fold cross-validation on the training classes (the MLRC split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dml.data
from dml.data import class_folds
from tests.fixtures.benchmarks import make_cub

KW = dict(num_classes=24, images_per_class=4, image_size=16, seed=0)


@pytest.mark.parametrize(("n", "k"), [(12, 4), (50, 4), (13, 4), (10, 3), (7, 2)])
@pytest.mark.parametrize("offset", [0, 3])
def test_every_class_is_validated_exactly_once_in_contiguous_wrapped_blocks(n: int, k: int, offset: int) -> None:
    classes = np.random.default_rng(n).permutation(np.arange(100, 100 + 2 * n, 2))  # sparse ids, shuffled
    blocks = class_folds(classes, folds=k, offset=offset)
    assert len(blocks) == k
    validated = np.concatenate(blocks)
    assert sorted(validated) == sorted(classes) and len(validated) == n  # each class exactly once
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    ordered = np.sort(classes)
    for i, block in enumerate(blocks):
        positions = sorted((np.searchsorted(ordered, block) - offset) % n)  # contiguous after undoing the roll
        assert positions == list(range(positions[0], positions[0] + len(block)))
        assert positions[0] == i * n // k
    assert all(np.array_equal(a, b) for a, b in zip(blocks, class_folds(classes[::-1], folds=k, offset=offset)))


def test_the_first_fold_of_twelve_classes_by_hand() -> None:
    blocks = class_folds(np.arange(12), folds=4)
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    wrapped = class_folds(np.arange(12), folds=4, offset=10)
    assert wrapped[0].tolist() == [0, 10, 11]  # positions 10, 11, 0: the block wraps around the end


def test_class_fold_datasets_are_class_disjoint_cover_the_training_classes_and_never_read_the_test_split() -> None:
    source = dml.data.build("synthetic", split="train", **KW)
    test = dml.data.build("synthetic", split="test", **KW)
    seen = []
    for fold in range(4):
        train = dml.data.build("class_fold", split="train", folds=4, fold=fold, source_kwargs=KW)
        valid = dml.data.build("class_fold", split="test", folds=4, fold=fold, source_kwargs=KW)
        again = dml.data.build("class_fold", split="test", folds=4, fold=fold, source_kwargs=KW)
        assert set(train.classes).isdisjoint(valid.classes)
        assert set(train.classes) | set(valid.classes) == set(source.classes)
        assert set(valid.classes).isdisjoint(test.classes) and set(train.classes).isdisjoint(test.classes)
        np.testing.assert_array_equal(valid.images, again.images)  # deterministic
        np.testing.assert_array_equal(valid.images, source.images[np.isin(source.labels, valid.classes)])
        seen.extend(valid.classes.tolist())
    assert sorted(seen) == sorted(source.classes.tolist())


def test_class_fold_filters_an_image_file_benchmark(tmp_path: Path) -> None:
    make_cub(tmp_path, classes=(1, 2, 3, 4, 101, 102), per_class=2)
    valid = dml.data.build(
        "class_fold", split="test", root=tmp_path, source="cub200", folds=2, fold=1, source_kwargs={"bbox_crop": True}
    )
    train = dml.data.build("class_fold", split="train", root=tmp_path, source="cub200", folds=2, fold=1)
    assert valid.classes.tolist() == [3, 4] and train.classes.tolist() == [1, 2]
    assert len(valid.paths) == len(valid.labels) == 4 and valid.boxes.shape == (4, 4)
    assert all(f"{label:03d}." in str(path) for path, label in zip(valid.paths, valid.labels))
    image, label = valid[0]
    assert image.dim() == 3 and label == 3


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"folds": 1}, "folds"), ({"folds": 13}, "folds"), ({"fold": 4}, "fold"), ({"source": "heldout"}, "carved")],
)
def test_bad_folds_fail_with_the_fix(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dml.data.build("class_fold", split="train", source_kwargs=KW, **{"folds": 4, **kw})
