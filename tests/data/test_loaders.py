"""``data.pipeline``: training on the real benchmarks' image files with per-image transforms (``jpeg``) or a decoded
cache (``cached``), the released recipe's resolution, and the config errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dml.data.augment import DATASET_STATS, released_recipe
from dml.train import ConfigError, from_dict, preflight, train
from dml.data import loaders
from tests.fixtures.benchmarks import make_cub


def _config(tmp_path: Path, **data: object) -> dict:
    return {
        "seed": 5,
        "deterministic": False,
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
        "data": {"name": "cub200", "root": str(tmp_path), "sampler": {"p": 3, "k": 3},
                 "augment": {"size": 32, "test_resize": 36}, "cache_size": 40, "cache_workers": 0, **data},
        "model": {"backbone": "small_cnn", "embedding_dim": 8, "backbone_kwargs": {"widths": [8, 8]}},
        "loss": {"name": "triplet"},
        "train": {"epochs": 1, "log_every": 1},
        "eval": {"ks": [1, 2], "include": ["recall", "map@r"]},
    }


@pytest.fixture()
def cub(tmp_path: Path) -> Path:
    make_cub(tmp_path / "cub200")
    return tmp_path


def _check_run(out: Path, final: dict) -> None:
    assert final["epoch"] == 1
    for key in ("loss", "recall@1", "recall@2", "map@r"):
        assert math.isfinite(final[key]), (key, final[key])
    assert 0.0 <= final["recall@1"] <= final["recall@2"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["final"] == final


@pytest.mark.parametrize("augment", [{"crop": "random-resized"}, {"crop": "random", "resize": 36}])
def test_jpeg_pipeline_trains_on_image_files(cub: Path, augment: dict) -> None:
    config = from_dict(_config(cub, pipeline="jpeg", augment={"size": 32, "test_resize": 36, **augment}))
    _check_run(cub / "run", train(config))
    assert not (cub / "cache").exists()


def test_jpeg_evaluation_batches_are_centre_cropped_and_normalised(cub: Path) -> None:
    config = from_dict(_config(cub, pipeline="jpeg", augment={"size": 32, "test_resize": 36, "normalize": "cub200"}))
    data = loaders.build_loaders(config.data, protocol=config.eval.protocol, seed=config.seed,
                                  eval_batch_size=config.eval.batch_size)
    images, labels = next(iter(data.eval_data))
    assert images.shape == (9, 3, 32, 32) and labels.tolist() == sorted(labels.tolist())
    assert images.min() < 0  # normalised, not [0, 1] pixels
    train_images, _ = next(iter(data.loader))
    assert train_images.shape == (9, 3, 32, 32)


def test_cached_pipeline_builds_caches_and_trains(cub: Path) -> None:
    config = from_dict(_config(cub, pipeline="cached", augment={"size": 32, "test_resize": 36, "normalize": "cache"}))
    _check_run(cub / "run", train(config))
    assert sorted(p.name for p in (cub / "cache").iterdir()) == ["cub200-test-40", "cub200-train-40"]
    assert (cub / "cache" / "cub200-train-40" / "manifest.json").is_file()


def test_cached_loader_is_reseeded_every_epoch(cub: Path) -> None:
    config = from_dict(_config(cub, pipeline="cached"))
    data = loaders.build_loaders(config.data, protocol=config.eval.protocol, seed=config.seed,
                                  eval_batch_size=config.eval.batch_size)
    batches = {}
    for epoch in (1, 2, 1):
        data.set_epoch(epoch)
        assert data.loader.epoch == epoch and data.sampler.epoch == epoch
        batch = [images.clone() for images, _ in data.loader]
        if epoch in batches:
            assert all(torch.equal(a, b) for a, b in zip(batches[epoch], batch))
        batches[epoch] = batch
    assert not torch.equal(batches[1][0], batches[2][0])
    images, labels = next(iter(data.eval_data))
    assert images.shape == (9, 3, 32, 32) and images.dtype == torch.float32


def test_cached_run_resumed_after_an_epoch_matches_uninterrupted_run(cub: Path) -> None:
    base = {**_config(cub, pipeline="cached"), "loss": {"name": "triplet", "kwargs": {"margin": 1.0}}}
    full = train(from_dict({**base, "train": {"epochs": 2}, "output_dir": str(cub / "full")}))
    train(from_dict({**base, "train": {"epochs": 1}, "output_dir": str(cub / "part")}))
    resumed = train(from_dict({**base, "train": {"epochs": 2}, "output_dir": str(cub / "part")}), resume=True)
    assert resumed == full
    history = json.loads((cub / "part" / "metrics.json").read_text())["epochs"]
    assert [r["epoch"] for r in history] == [1, 2] and history[0]["loss"] > 0 and history[1]["loss"] > 0
    weights = [torch.load(cub / run / "checkpoint.pt", weights_only=False)["model"] for run in ("full", "part")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_released_recipe_resolves_to_resize_281_random_crop_256(cub: Path) -> None:
    config = from_dict(_config(cub, pipeline="cached", cache_size=281,
                               augment={"size": 256, "crop": "random", "test_resize": 256, "normalize": "cub200"}))
    preflight(config)
    mean, std = loaders.normalization(config.data.augment)
    assert (mean, std) == DATASET_STATS["cub200"]
    train_t, test_t = loaders.batch_transforms(config.data, mean, std)
    ref_train, ref_test = released_recipe(mean, std, cache_size=281)
    assert repr(train_t) == repr(ref_train) and repr(test_t) == repr(ref_test)
    # The 281 cache is Resize(281); the batch augmentation adds RandomCrop(256) → flip(0.5) → normalise.
    assert (train_t.crop, train_t.size, train_t.resize, train_t.flip) == ("random", 256, None, 0.5)
    assert (test_t.resize, test_t.size) == (256, 256)
    # The same recipe on the jpeg pipeline: Resize(281) → RandomCrop(256) → flip → normalise, per image.
    jpeg = from_dict(_config(cub, pipeline="jpeg", augment={"size": 256, "crop": "random", "resize": 281,
                                                             "test_resize": 256, "normalize": "cub200"}))
    train_i, test_i = loaders.image_transforms(jpeg.data.augment, mean, std)
    names = [type(t).__name__ for t in train_i.transforms]
    assert names == ["Resize", "RandomCrop", "RandomHorizontalFlip", "Normalize"]
    assert tuple(train_i.transforms[0].size) == (281,) and tuple(train_i.transforms[1].size) == (256, 256)
    assert [type(t).__name__ for t in test_i.transforms] == ["Resize", "CenterCrop", "Normalize"]
    assert tuple(test_i.transforms[0].size) == (256,) and tuple(test_i.transforms[1].size) == (256, 256)
    out = train_i(torch.rand(3, 300, 400))
    assert out.shape == (3, 256, 256)


@pytest.mark.parametrize(("data", "message"), [
    ({"pipeline": "jpg"}, "Did you mean 'jpeg'"),
    ({"pipeline": "jpeg", "name": "synthetic"}, "not files"),
    ({"pipeline": "tensor"}, "data.pipeline=jpeg"),
    ({"pipeline": "cached", "augment": {"normalize": "cub"}}, "Did you mean 'cub200'"),
    ({"pipeline": "jpeg", "augment": {"normalize": "cache"}}, "needs data.pipeline=cached"),
    ({"pipeline": "jpeg", "augment": {"crop": "random"}}, "data.augment.resize"),
    ({"pipeline": "cached", "augment": {"crop": "randm"}}, "Did you mean 'random'"),
    ({"pipeline": "cached", "augment": {"size": 300, "crop": "random", "test_resize": 300}}, "raise data.cache_size"),
    ({"pipeline": "cached", "augment": {"size": 64, "test_resize": 32}}, "centre crop fits"),
    ({"pipeline": "cached", "augment": {"flip": 1.5}}, "probability"),
    ({"pipeline": "cached", "name": "cached"}, "not 'cached'"),
])
def test_config_errors_name_the_key_and_the_fix(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preflight(from_dict(_config(tmp_path, **data)))


def test_tensor_pipeline_is_the_default_and_old_checkpoint_configs_resume() -> None:
    from dml.train.checkpoint import check_resumable as _check_resumable, with_defaults as _with_defaults
    from dml.train.config import to_dict

    config = from_dict({})
    assert config.data.pipeline == "tensor"
    old = to_dict(config)
    for key in ("pipeline", "augment", "cache_size", "cache_workers"):
        del old["data"][key]
    _check_resumable(_with_defaults(old), to_dict(config))  # a checkpoint from before these keys still resumes


def test_a_pipeline_trains_from_a_replacement_sampler() -> None:
    """``Pipeline.use_sampler``: the same pipeline, batches from another batch sampler (divide and conquer's)."""
    import numpy as np

    from dml.data.cluster_sampler import ClusterBatchSampler
    from dml.data.loaders import Pipeline, build_loaders
    from dml.data.settings import DataConfig

    config = DataConfig(
        name="synthetic",
        kwargs={"num_classes": 8, "images_per_class": 6, "image_size": 16, "seed": 1},
        pipeline="tensor",
    )
    config.sampler.p, config.sampler.k = 2, 3
    data = build_loaders(config)
    sampler = ClusterBatchSampler(data.train_set.labels, p=2, k=3)
    sampler.set_clusters(np.arange(len(data.train_set.labels)) % 2)
    data.use_sampler(sampler)
    assert data.sampler is sampler and len(data.loader) == len(sampler)
    for _, labels in data.loader:
        assert labels.shape == (6,)
        sampler.pop_cluster()
    bare = Pipeline(train_set=data.train_set, sampler=data.sampler, loader=data.loader, evaluation=None)
    with pytest.raises(ValueError, match="loader_of"):
        bare.use_sampler(sampler)


def _user_config(root, pipeline: str, **extra):
    from dml.data import DataConfig
    from dml.data.settings import AugmentConfig, SamplerConfig

    return DataConfig(name="imagefolder", root=str(root), pipeline=pipeline, cache_size=28,
                      augment=AugmentConfig(size=24, test_resize=28), sampler=SamplerConfig(p=3, k=2), **extra)


@pytest.mark.parametrize("pipeline", ["jpeg", "cached"])
def test_an_image_folder_of_mixed_sizes_batches_in_every_pipeline(tmp_path, monkeypatch, pipeline: str) -> None:
    from dml.data.loaders import build_loaders, check_pipeline
    from tests.fixtures.user_images import make_image_folder

    monkeypatch.setenv("DML_DATA", str(tmp_path))
    config = _user_config(make_image_folder(tmp_path / "photos"), pipeline, cache_workers=0)
    check_pipeline(config)
    data = build_loaders(config)
    images, labels = next(iter(data.loader))
    assert images.shape == (6, 3, 24, 24) and len(set(labels.tolist())) == 3
    batch = next(iter(data.eval_data))
    assert batch[0].shape[1:] == (3, 24, 24)


def test_a_registered_file_dataset_is_served_by_jpeg_and_refused_by_tensor(tmp_path) -> None:
    """Issue 17: a user's registered dataset of files was refused by the jpeg pipeline."""
    from dml.data import ConfigError, DataConfig, ImageFileDataset
    from dml.data.loaders import check_pipeline
    from dml.data.registry import _REGISTRY, register

    @register("my_files_for_test")
    class Mine(ImageFileDataset):
        def __init__(self, split="train", *, root=None, transform=None):
            super().__init__(split=split, paths=[], labels=[], transform=transform)

    try:
        check_pipeline(DataConfig(name="my_files_for_test", pipeline="jpeg"))
        with pytest.raises(ConfigError, match="reads image files of any size"):
            check_pipeline(DataConfig(name="my_files_for_test", pipeline="tensor"))
    finally:
        _REGISTRY.unregister("my_files_for_test")


def test_images_of_different_sizes_in_one_tensor_batch_are_one_line() -> None:
    from dml.data.loaders import collate

    batch = [(torch.zeros(3, 8, 8), 0), (torch.zeros(3, 9, 8), 1)]
    with pytest.raises(ValueError, match="differ in size .* data.pipeline=jpeg"):
        collate(batch)
    assert collate(batch[:1])[0].shape == (1, 3, 8, 8)


OCCLUSION = {"p": 1.0, "scale": [0.5, 0.7]}


@pytest.mark.parametrize("pipeline", ["jpeg", "cached"])
def test_occlusion_augmentation_reaches_the_training_batches_only(cub: Path, tmp_path: Path, pipeline: str) -> None:
    augment = {"size": 32, "test_resize": 36, "flip": 0.0, "crop": "random", "resize": 32}
    plain = from_dict(_config(tmp_path, pipeline=pipeline, augment=augment))
    occluded = from_dict(_config(tmp_path, pipeline=pipeline, augment={**augment, "occlusion": OCCLUSION}))
    with_masks = loaders.build_loaders(occluded.data, seed=0)
    without = loaders.build_loaders(plain.data, seed=0)
    if pipeline == "cached":
        with_masks.loader.set_epoch(1)
        without.loader.set_epoch(1)
    else:
        torch.manual_seed(0)
    x, _ = next(iter(with_masks.loader))
    if pipeline == "jpeg":
        torch.manual_seed(0)
    y, _ = next(iter(without.loader))
    differs = (x != y).any(dim=1).float().mean(dim=(1, 2))
    assert (differs > 0.02).all()  # every training crop got a person (crops equal: size = resize, no flip)
    # evaluation batches are the same with and without the augmentation
    a = next(iter(with_masks.evaluation.data))[0]
    b = next(iter(without.evaluation.data))[0]
    assert torch.equal(a, b)


def test_occlusion_augmentation_on_the_tensor_pipeline_spares_the_hotel_gallery(tmp_path: Path) -> None:
    kw = {"rooms": 8, "images_per_room": 8, "queries_per_room": 2, "image_size": 16}
    config = from_dict(_config(tmp_path, name="synthetic-hotels", kwargs=kw, pipeline="tensor",
                               sampler={"variant": "source-balanced", "p": 2, "k": 4},
                               augment={"occlusion": OCCLUSION}))
    data = loaders.build_loaders(config.data, protocol="hotels", seed=0)
    index = 0
    raw = data.train_set.images[index]
    occluded = data.train_set[index][0]
    assert not torch.equal(occluded, torch.from_numpy(raw).permute(2, 0, 1).float() / 255)
    gallery = data.evaluation.gallery[index][0]
    assert torch.allclose(gallery, torch.from_numpy(raw).permute(2, 0, 1).float() / 255)
    batch = next(iter(data.sampler))
    assert (data.train_set.sources[batch] == "traffickcam").sum() == 4  # 2 rooms x (4 / 2)


def test_source_balanced_needs_sources(cub: Path, tmp_path: Path) -> None:
    config = from_dict(_config(tmp_path, pipeline="jpeg", sampler={"variant": "source-balanced", "p": 2, "k": 2}))
    with pytest.raises(ConfigError, match="'sources'"):
        loaders.build_loaders(config.data, seed=0)
    unknown = from_dict(_config(tmp_path, pipeline="jpeg", sampler={"variant": "source-balance", "p": 2, "k": 2}))
    with pytest.raises(ConfigError, match="Did you mean 'source-balanced'"):
        loaders.build_loaders(unknown.data, seed=0)


def test_occluded_test_sets_share_the_training_cache(tmp_path: Path) -> None:
    from tests.fixtures.benchmarks import make_hotels

    make_hotels(tmp_path / "hotels50k", hotels=4, train_per_hotel=3, missing_train=0)
    for occlusion in ("unoccluded", "low"):
        config = from_dict(_config(tmp_path, name="hotels50k", pipeline="cached", kwargs={"occlusion": occlusion},
                                   sampler={"p": 2, "k": 2}, augment={"size": 32, "test_resize": 36,
                                                                      "normalize": "cache"}))
        data = loaders.build_loaders(config.data, protocol="hotels", seed=0)
        assert len(data.evaluation.data.dataset) == 4  # one test photo per hotel
    caches = sorted(p.name.rsplit("-", 1)[0] if p.name.count("-") > 2 else p.name
                    for p in (tmp_path / "cache").iterdir())
    assert caches == ["hotels50k-test-40", "hotels50k-test-40", "hotels50k-train-40"], caches
