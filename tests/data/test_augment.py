"""Batched augmentation: crop parameters, flips, normalisation, the test-time transform and the cached loader."""
from __future__ import annotations


import pytest
import torch
import torchvision.transforms.v2.functional as TF2

import dml.data
from dml.data.augment import (DATASET_STATS, IMAGENET_MEAN, IMAGENET_STD, BatchAugment, CachedBatchLoader,
                              CenterCropTransform, dataset_stats, normalize, random_crop_params,
                              random_resized_crop_params, released_recipe, resize_center_crop, resized_crops)


def _images(n: int = 6, height: int = 40, width: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8, generator=g)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_resized_crop_boxes_respect_scale_ratio_and_bounds() -> None:
    top, left, h, w = random_resized_crop_params(4000, 60, 80, scale=(0.2, 0.6), ratio=(0.5, 2.0),
                                                 generator=_seeded(0))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 60).all() and (left + w <= 80).all()
    fraction = (h * w).double() / (60 * 80)
    assert fraction.min() > 0.2 - 0.05 and fraction.max() < 0.6 + 0.05  # rounding of w and h
    aspect = w.double() / h.double()
    assert aspect.min() > 0.5 * 0.9 and aspect.max() < 2.0 * 1.1
    assert top.unique().numel() > 20 and left.unique().numel() > 20  # positions are spread, not centred
    # Where every candidate fits (small areas), the log aspect ratio is uniform on [log 1/2, log 2]: mean 0.
    _, _, h, w = random_resized_crop_params(4000, 100, 100, scale=(0.05, 0.2), ratio=(0.5, 2.0),
                                            generator=_seeded(1))
    assert abs(torch.log(w.double() / h.double()).mean()) < 0.03


def test_random_resized_crop_falls_back_to_a_centred_box() -> None:
    # No box of ratio in [3, 4] with ≥ 99 % of the area fits a square: every image takes the fallback.
    top, left, h, w = random_resized_crop_params(5, 30, 30, scale=(0.99, 1.0), ratio=(3.0, 4.0),
                                                 generator=_seeded(0))
    assert (w == 30).all() and (h == 10).all() and (top == 10).all() and (left == 0).all()


def test_crop_parameters_are_determined_by_the_seed() -> None:
    first = random_resized_crop_params(50, 64, 64, generator=_seeded(3))
    again = random_resized_crop_params(50, 64, 64, generator=_seeded(3))
    other = random_resized_crop_params(50, 64, 64, generator=_seeded(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    top, left, h, w = random_crop_params(200, 40, 50, 32, generator=_seeded(0))
    assert (h == 32).all() and (w == 32).all() and top.max() == 8 and left.max() == 18 and top.min() == 0
    with pytest.raises(ValueError, match="does not fit"):
        random_crop_params(1, 20, 20, 32)


def test_resized_crops_match_torchvision_per_image() -> None:
    images = _images(5, 40, 52)
    top, left, h, w = random_resized_crop_params(5, 40, 52, generator=_seeded(1))
    flip = torch.tensor([True, False, True, False, False])
    out = resized_crops(images, top, left, h, w, 24, flip=flip)
    assert out.dtype == torch.uint8 and out.shape == (5, 3, 24, 24)
    for j in range(5):
        expected = TF2.resized_crop(images[j], int(top[j]), int(left[j]), int(h[j]), int(w[j]), [24, 24],
                                    antialias=True)
        if flip[j]:
            expected = TF2.horizontal_flip(expected)
        torch.testing.assert_close(out[j], expected, atol=1, rtol=0)  # one grey level: kernel rounding
    fused = resized_crops(images, top, left, h, w, 24, flip=flip, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert fused.dtype == torch.float32 and fused.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fused, normalize(out, IMAGENET_MEAN, IMAGENET_STD), atol=1e-6, rtol=0)
    index = torch.tensor([3, 0, 3])
    via_index = resized_crops(images, top[:3], left[:3], h[:3], w[:3], 24, flip=flip[:3], index=index)
    gathered = resized_crops(images[index], top[:3], left[:3], h[:3], w[:3], 24, flip=flip[:3])
    torch.testing.assert_close(via_index, gathered, atol=0, rtol=0)


def test_flip_is_an_exact_mirror_and_probability_is_respected() -> None:
    images = _images(8, 32, 32)
    mirror = BatchAugment(size=32, crop="random", flip=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    keep = BatchAugment(size=32, crop="random", flip=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    kept = keep(images, generator=_seeded(0))
    torch.testing.assert_close(kept, images.float() / 255, atol=1e-7, rtol=0)  # a full-size crop is the image
    torch.testing.assert_close(mirror(images, generator=_seeded(0)), kept.flip(-1), atol=0, rtol=0)
    flips = BatchAugment(size=32, flip=0.3).params(20000, 32, 32, _seeded(0))["flip"]
    assert abs(flips.float().mean().item() - 0.3) < 0.02


def test_normalize_values_for_uint8_and_float_input() -> None:
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = normalize(images, mean, std)
    expected = torch.tensor([(0 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, (1.0 - 0.0) / 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected.expand(2, 3, 2, 2))
    torch.testing.assert_close(normalize(images.float() / 255, mean, std), out)
    buffer = torch.empty(2, 3, 2, 2)
    assert normalize(images, mean, std, out=buffer) is buffer
    with pytest.raises(ValueError, match="std must be positive"):
        normalize(images, mean, (1, 0, 1))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        normalize(images[0], mean, std)


def test_batch_augment_shapes_ranges_and_determinism() -> None:
    images = _images(16, 48, 48)
    augment = BatchAugment(size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    out = augment(images, generator=_seeded(0))
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = out.transpose(0, 1).reshape(3, -1)
    assert (per_channel.min(1).values >= low - 1e-5).all() and (per_channel.max(1).values <= high + 1e-5).all()
    torch.testing.assert_close(augment(images, generator=_seeded(0)), out, atol=0, rtol=0)
    assert not torch.equal(augment(images, generator=_seeded(1)), out)
    constant = torch.full((4, 3, 48, 48), 255, dtype=torch.uint8)
    torch.testing.assert_close(augment(constant, generator=_seeded(0)), high.view(1, 3, 1, 1).expand(4, 3, 32, 32))
    assert "RandomResizedCrop(32" in repr(augment)


def test_batch_augment_from_the_whole_source_equals_gathered_batch() -> None:
    source = _images(10, 40, 40)
    index = torch.tensor([7, 2, 2, 9])
    augment = BatchAugment(size=24)
    torch.testing.assert_close(augment(source, generator=_seeded(5), index=index),
                               augment(source[index], generator=_seeded(5)), atol=0, rtol=0)


@pytest.mark.parametrize("shape", [(3, 40, 40), (3, 30, 50), (3, 61, 45)])
def test_center_crop_transform_matches_torchvision_exactly(shape: tuple[int, int, int]) -> None:
    images = _images(3, shape[1], shape[2])
    out = CenterCropTransform(resize=32, size=28, mean=IMAGENET_MEAN, std=IMAGENET_STD)(images)
    for j in range(3):
        expected = TF2.center_crop(TF2.resize(images[j], [32], antialias=True), [28, 28])
        expected = TF2.normalize(TF2.to_dtype(expected, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
        torch.testing.assert_close(out[j], expected, atol=1e-6, rtol=0)
    assert resize_center_crop(images, resize=32, size=28).dtype == torch.uint8
    with pytest.raises(ValueError, match="must fit"):
        CenterCropTransform(resize=24, size=28)


def test_released_recipe_geometry() -> None:
    mean, std = dataset_stats("cub200")
    train, test = released_recipe(mean, std, cache_size=281)
    assert (train.crop, train.size, train.resize) == ("random", 256, None)
    assert (test.resize, test.size) == (256, 256)
    train288, _ = released_recipe(mean, std, cache_size=288)
    assert train288.resize == 281
    out = train288(_images(4, 288, 288), generator=_seeded(0))
    assert out.shape == (4, 3, 256, 256)
    assert set(DATASET_STATS) >= {"cub200", "cars196", "sop", "inshop", "hotels50k", "imagenet"}
    with pytest.raises(KeyError, match="mean= and std="):
        dataset_stats("mnist")


def test_bad_layouts_fail_with_a_fix() -> None:
    augment = BatchAugment(size=16)
    with pytest.raises(ValueError, match="permute"):
        augment(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="'random-resized'"):
        BatchAugment(crop="center")
    with pytest.raises(ValueError, match="probability"):
        BatchAugment(flip=2.0)


def test_cached_loader_pairs_pk_batches_with_the_memmap(tmp_path) -> None:
    from dml.data.cache import CachedDataset, write_cache

    data = dml.data.build("synthetic", split="train", root=tmp_path, num_classes=16, images_per_class=8,
                          image_size=24)
    cached = CachedDataset(write_cache(data, tmp_path / "cache", size=24))
    sampler = dml.data.PKSampler(cached.labels, p=4, k=2, seed=0)
    augment = BatchAugment(size=16)
    loader = CachedBatchLoader(cached, sampler, augment, seed=7)
    loader.set_epoch(1)
    batches = list(loader)
    assert len(batches) == len(loader) == len(sampler)
    sampler.set_epoch(1)
    indices = list(sampler)
    for (images, labels), index in zip(batches, indices):
        assert images.shape == (8, 3, 16, 16) and torch.equal(labels, torch.as_tensor(cached.labels[index]))
        assert (labels.view(4, 2)[:, 0] == labels.view(4, 2)[:, 1]).all()  # P classes × K images
    loader.set_epoch(1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, loader)), "an epoch must be reproducible"
    loader.set_epoch(2)
    assert not torch.equal(next(iter(loader))[0], batches[0][0])

    reusing = CachedBatchLoader(cached, sampler, augment, seed=7, reuse_buffers=True)
    reusing.set_epoch(1)
    pointers = []
    for (images, _), (expected, _) in zip(reusing, batches):
        torch.testing.assert_close(images, expected, atol=0, rtol=0)
        pointers.append(images.data_ptr())
    assert len(set(pointers)) == 2, "reuse_buffers alternates between two buffers"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_and_cpu_agree() -> None:
    images = _images(8, 48, 48)
    augment = BatchAugment(size=32)
    cpu = augment(images, generator=_seeded(0))
    gpu = augment(images.cuda(), generator=_seeded(0)).cpu()
    assert (gpu - cpu).abs().max() <= 1.01 / 255 / min(IMAGENET_STD)
