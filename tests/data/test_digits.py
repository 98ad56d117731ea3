"""The digits dataset: counts, zero-shot split, scaling and upsampling."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from dml.data import build

TARGET = load_digits().target


def test_split_sizes_match_the_label_counts():
    train, test, everything = (build("digits", split=s) for s in ("train", "test", "all"))
    assert len(everything) == 1797
    assert len(train) == np.isin(TARGET, range(5)).sum() and len(test) == np.isin(TARGET, range(5, 10)).sum()
    assert len(train) + len(test) == 1797
    assert set(train.classes) == set(range(5)) and set(test.classes) == set(range(5, 10))
    counts = np.bincount(TARGET, minlength=10)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), np.r_[counts[:5], [0] * 5])
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), np.r_[[0] * 5, counts[5:]])


def test_native_resolution_is_the_raw_data_scaled_to_unit_range():
    ds = build("digits", split="all", image_size=8)
    raw = load_digits().images / 16.0
    assert ds.images.shape == (1797, 8, 8, 3)
    np.testing.assert_array_equal(ds.images[..., 0], ds.images[..., 2])
    np.testing.assert_allclose(ds[5][0][1].numpy(), raw[5], atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(ds.labels, TARGET)


def test_upsampled_images_keep_their_content():
    small, large = build("digits", split="test", image_size=8), build("digits", split="test")
    image, label = large[0]
    assert image.shape == (3, 32, 32) and label == small.labels[0] >= 5
    assert 0.0 <= image.min() and image.max() <= 1.0
    # Bilinear upsampling preserves the mean brightness of each image up to border effects and rounding.
    assert abs(float(image.mean()) - float(small[0][0].mean())) < 0.03


def test_invalid_image_size():
    with pytest.raises(ValueError, match="image_size"):
        build("digits", image_size=0)
