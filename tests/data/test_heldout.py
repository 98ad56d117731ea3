"""The ``heldout`` dataset: validation classes carved out of the training classes, never the test classes."""

from __future__ import annotations

import numpy as np
import pytest

import dml.data

KW = dict(num_classes=20, images_per_class=4, image_size=16, seed=0)


def test_heldout_splits_the_training_classes_only() -> None:
    train = dml.data.build("heldout", split="train", validation_classes=4, source_kwargs=KW)
    valid = dml.data.build("heldout", split="test", validation_classes=4, source_kwargs=KW)
    source = dml.data.build("synthetic", split="train", **KW)
    test = dml.data.build("synthetic", split="test", **KW)
    assert set(train.classes).isdisjoint(valid.classes)
    assert set(train.classes) | set(valid.classes) == set(source.classes)
    assert set(valid.classes).isdisjoint(test.classes)
    assert list(valid.classes) == sorted(source.classes)[-4:]
    picked = np.isin(source.labels, valid.classes)
    np.testing.assert_array_equal(valid.images, source.images[picked])


@pytest.mark.parametrize("count", [0, 9, True])
def test_heldout_rejects_a_bad_count(count) -> None:
    with pytest.raises(ValueError, match="validation_classes"):
        dml.data.build("heldout", split="train", validation_classes=count, source_kwargs=KW)
