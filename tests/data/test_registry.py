"""The dataset registry: lookup, validation of names, splits and keywords, and the dataset contract."""
import numpy as np
import pytest
import torch

from dml.data import DMLDataset, UnknownDatasetError, available, build, register

SMALL = dict(num_classes=8, images_per_class=6, image_size=16)


def test_builtin_datasets_are_registered():
    assert {"synthetic", "digits"} <= set(available())
    assert available() == sorted(available())


def test_unknown_name_lists_available_and_closest(tmp_path):
    with pytest.raises(UnknownDatasetError) as info:
        build("synthtic", root=tmp_path)
    message = str(info.value)
    assert "'synthtic'" in message and "Did you mean 'synthetic'" in message
    for name in available():
        assert name in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_invalid_split_lists_valid_splits(tmp_path):
    with pytest.raises(ValueError, match="'train', 'test', 'all'"):
        build("synthetic", split="val", root=tmp_path, **SMALL)


def test_unknown_keyword_names_accepted_ones_and_closest(tmp_path):
    with pytest.raises(TypeError) as info:
        build("synthetic", root=tmp_path, num_class=8)
    message = str(info.value)
    assert "'num_class'" in message and "'num_class' -> 'num_classes'" in message
    assert "images_per_class" in message and "sibling_similarity" in message
    assert not list(tmp_path.iterdir()), "validation must happen before any generation"


def test_register_rejects_a_second_factory_under_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register("digits")(lambda **kw: None)


def test_register_and_build_a_custom_dataset():
    @register("test-tiny")
    class Tiny(DMLDataset):
        def __init__(self, split="train", *, root=None, transform=None, n: int = 4):
            super().__init__(split=split, labels=np.arange(n) % 2, transform=transform)

        def load(self, index):
            return torch.full((3, 2, 2), index / 10)

    try:
        ds = build("test-tiny", split="all", n=6, transform=lambda x: x * 2)
        assert len(ds) == 6 and ds.num_classes == 2 and ds.split == "all"
        image, label = ds[3]
        assert torch.allclose(image, torch.full((3, 2, 2), 0.6)) and label == 1
        with pytest.raises(TypeError, match="Accepted: n"):
            build("test-tiny", size=3)
    finally:
        from dml.data import registry
        registry._REGISTRY.unregister("test-tiny")


@pytest.mark.parametrize("name, kw", [("synthetic", SMALL), ("digits", {"image_size": 12})])
def test_dataset_contract(tmp_path, name, kw):
    ds = build(name, split="test", root=tmp_path, **kw)
    assert ds.labels.dtype == np.int64 and ds.labels.ndim == 1 and len(ds) == ds.labels.size
    assert ds.num_classes == np.unique(ds.labels).size
    assert ds.images.dtype == np.uint8 and ds.images.shape == (len(ds), kw["image_size"], kw["image_size"], 3)
    image, label = ds[len(ds) - 1]
    assert image.dtype == torch.float32 and image.shape == (3, kw["image_size"], kw["image_size"])
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert type(label) is int and label == ds.labels[-1]
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, ds.images[-1], atol=1e-4)
    flipped = build(name, split="test", root=tmp_path, transform=lambda x: x.flip(-1), **kw)
    assert torch.equal(flipped[0][0], ds[0][0].flip(-1))
