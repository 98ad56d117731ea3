"""PKSampler: P classes × K images per batch, deterministic per (seed, epoch), sharded for DDP."""
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dml.data import PKSampler

rng = np.random.default_rng(0)
# 13 classes of very different sizes (1 to 20 images), shuffled so class members are not contiguous.
LABELS = rng.permutation(np.repeat(np.arange(13) * 7 + 100, [1, 2, 3, 5, 8, 9, 10, 12, 15, 16, 18, 19, 20]))
VARIANTS = [dict(variant="filled"), dict(variant="sample-repeat", repeat=3)]
# LABELS has classes smaller than K on purpose; the warning about them is tested on its own below.
pytestmark = pytest.mark.filterwarnings("ignore:k=.* images per class:UserWarning")


def check_batch(batch, labels, p, k):
    assert len(batch) == p * k
    batch_labels = labels[batch].reshape(p, k)
    assert np.all(batch_labels == batch_labels[:, :1]), "each class's K indices must be contiguous"
    assert np.unique(batch_labels[:, 0]).size == p, "no class may appear twice in one batch"


@pytest.mark.parametrize("kw", VARIANTS)
def test_every_batch_has_p_distinct_classes_with_k_contiguous_images(kw):
    sampler = PKSampler(LABELS, p=4, k=3, seed=1, **kw)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        check_batch(batch, LABELS, 4, 3)
        assert all(type(i) is int and 0 <= i < LABELS.size for i in batch)


def test_batch_counts_follow_the_documented_rounds():
    filled = PKSampler(LABELS, p=4, k=3)  # len_max = 21: 7 rounds of 13 // 4 = 3 batches
    assert filled.len_max == 21 and len(filled) == len(list(filled)) == 7 * 3
    assert len(PKSampler(LABELS, p=4, k=3, len_max=6)) == 2 * 3
    sample = PKSampler(LABELS, p=4, k=3, variant="sample-repeat", repeat=5)
    assert len(sample) == len(list(sample)) == 5 * 3


def test_filled_covers_every_image_when_classes_divide_evenly():
    labels = np.repeat(np.arange(6), [2, 3, 4, 5, 6, 7])
    sampler = PKSampler(labels, p=3, k=2, seed=4)  # len_max = 8; 6 classes = 2 full batches per round
    seen = np.concatenate(list(sampler))
    assert set(seen) == set(range(labels.size))
    assert np.all(np.bincount(labels[seen]) == 8), "every class is padded or cut to len_max"


def test_filled_subsamples_classes_larger_than_len_max():
    sampler = PKSampler(LABELS, p=2, k=2, len_max=4)
    per_class = np.bincount(np.searchsorted(np.unique(LABELS), LABELS[np.concatenate(list(sampler))]))
    assert per_class.max() <= 4


def test_sample_repeat_pads_small_classes_to_k():
    sampler = PKSampler(LABELS, p=13, k=4, variant="sample-repeat")
    (batch,) = list(sampler)
    check_batch(batch, LABELS, 13, 4)
    singleton = np.flatnonzero(LABELS == 100)[0]
    assert batch.count(singleton) == 4
    two = set(np.flatnonzero(LABELS == 107))
    assert two <= set(batch), "a class smaller than K contributes all its images before padding"


@pytest.mark.parametrize("kw", VARIANTS)
def test_deterministic_per_seed_and_epoch_and_different_across_epochs(kw):
    a, b = PKSampler(LABELS, p=4, k=2, seed=5, **kw), PKSampler(LABELS, p=4, k=2, seed=5, **kw)
    assert list(a) == list(b) == list(a), "iterating again without set_epoch repeats the epoch"
    epoch0 = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != epoch0
    assert list(PKSampler(LABELS, p=4, k=2, seed=6, **kw)) != epoch0


@pytest.mark.parametrize("kw", VARIANTS)
def test_ddp_shards_partition_the_global_batch(kw):
    p, k, world = 4, 3, 2
    full = PKSampler(LABELS, p=p, k=k, seed=2, **kw)
    shards = [PKSampler(LABELS, p=p, k=k, seed=2, rank=r, world_size=world, **kw) for r in range(world)]
    for sampler in [full, *shards]:
        sampler.set_epoch(3)
    assert all(len(s) == len(full) for s in shards)
    for global_batch, *parts in zip(full, *shards):
        assert sum(parts, []) == global_batch
        for part in parts:
            check_batch(part, LABELS, p // world, k)


def test_usable_as_a_dataloader_batch_sampler():
    dataset = TensorDataset(torch.arange(LABELS.size), torch.from_numpy(LABELS))
    loader = DataLoader(dataset, batch_sampler=PKSampler(LABELS, p=3, k=2))
    indices, labels = next(iter(loader))
    assert indices.shape == (6,) and torch.equal(labels, torch.from_numpy(LABELS[indices.numpy()]))


@pytest.mark.parametrize("kw, match", [
    (dict(p=14, k=2), "only 13 classes"),
    (dict(p=3, k=2, world_size=2), "divisible by 2"),
    (dict(p=2, k=3, len_max=4), "multiple of k=3"),
    (dict(p=2, k=2, variant="balanced"), "'filled'.*'sample-repeat'"),
    (dict(p=2, k=2, repeat=2), "repeat=2"),
    (dict(p=2, k=2, rank=2, world_size=2), "rank=2"),
    (dict(p=0, k=2), "positive"),
])
def test_invalid_settings_raise_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        PKSampler(LABELS, **kw)


def test_labels_must_be_integers():
    with pytest.raises(ValueError, match="integer"):
        PKSampler(np.array([0.5, 1.5]), p=1, k=1)


# --------------------------------------------------------------------------- the released epoch structure
# My reading of _code/Sampler.py and exp_*/main.py of github.com/littleredxh/HardNegative (commit f5f392377fd0):
# BalanceSampler_filled pads or cuts every class to len_max, shuffles the class order once, and emits round after
# round (each class's next group of K, in that order); BalanceSampler_sample emits `repeat` passes of one group of K
# per class, each pass in a new class order. The DataLoader cuts the stream into batches of B = P K and main.py skips
# the final batch shorter than B.


def released_len_max(sizes, k):
    len_max = max(sizes)
    if len_max % k:
        len_max = len_max - len_max % k + (0 if len_max % k < int(0.3 * k) else k)
    return len_max


def released_filled_stream(sizes, k, rng):
    """Labels of the released filled sampler's index stream (one per image)."""
    len_max = released_len_max(sizes, k)
    order = rng.permutation(len(sizes))
    rows = np.stack([np.full(len_max, c) for c in order])  # (C, len_max), in the shuffled class order
    return rows.reshape(k * len(sizes), -1).T.reshape(-1)  # the release's reshape: round by round


def released_sample_stream(sizes, k, repeat, rng):
    stream = []
    for _ in range(repeat):
        for c in rng.permutation(len(sizes)):
            stream += [c] * min(k, sizes[c])
    return np.array(stream)


def released_batch_count(stream, batch):
    return len(stream) // batch  # the last partial batch is skipped


def stream_labels(sampler, labels):
    return np.concatenate([labels[b] for b in sampler])


CUB_LIKE = [60] * 40 + [59] * 56 + [40] * 4  # 100 classes of at most 60 images, 5,864 images in all


def test_released_filled_gives_the_release_batch_count_at_cub_sizes():
    labels = np.repeat(np.arange(100), CUB_LIKE)
    assert labels.size == 5864
    released = released_batch_count(released_filled_stream(CUB_LIKE, 2, np.random.default_rng(0)), 128)
    ours = PKSampler(labels, p=64, k=2, batching="released")
    assert released == len(ours) == len(list(ours)) == 46
    assert len(PKSampler(labels, p=64, k=2)) == 30, "per-round: 30 rounds of one batch of 64 classes"


def test_released_sample_repeat_gives_the_release_batch_count_at_2000_classes():
    sizes = list(np.random.default_rng(1).integers(2, 12, size=2000))
    labels = np.repeat(np.arange(2000), sizes)
    released = released_batch_count(released_sample_stream(sizes, 2, 5, np.random.default_rng(0)), 512)
    ours = PKSampler(labels, p=256, k=2, variant="sample-repeat", repeat=5, batching="released")
    assert released == len(ours) == len(list(ours)) == 39
    assert len(PKSampler(labels, p=256, k=2, variant="sample-repeat", repeat=5)) == 35


def test_released_filled_keeps_one_class_order_and_cuts_straight_through_the_rounds():
    sizes = [7, 3, 9, 5, 8, 6, 4]
    labels = np.repeat(np.arange(7), sizes)
    sampler = PKSampler(labels, p=3, k=2, batching="released", seed=3)  # len_max 10: 5 rounds of 7 classes
    groups = stream_labels(sampler, labels).reshape(-1, 2)
    assert np.all(groups[:, 0] == groups[:, 1])
    order = groups[:7, 0]
    assert sorted(order) == list(range(7))
    # the same order in every round; 35 groups cut into 11 batches of 3, only the last 2 groups dropped
    assert len(groups) == 33 and np.array_equal(groups[:, 0], np.tile(order, 5)[:33])
    release = released_filled_stream(sizes, 2, np.random.default_rng(0)).reshape(-1, 2)[:, 0]
    assert np.array_equal(release, np.tile(release[:7], 5)), "the release's stream has the same layout"
    for batch in sampler:
        check_batch(batch, labels, 3, 2)  # a batch that straddles two rounds still holds 3 distinct classes


def test_released_sample_repeat_cuts_across_the_passes():
    labels = np.repeat(np.arange(5), 3)
    sampler = PKSampler(labels, p=2, k=2, variant="sample-repeat", repeat=3, batching="released", seed=2)
    groups = stream_labels(sampler, labels).reshape(-1, 2)[:, 0]
    assert len(sampler) == 7 and len(groups) == 14  # 15 groups, the 15th dropped; per-round would give 3 x 2
    for start in (0, 5):
        assert sorted(groups[start:start + 5]) == list(range(5)), "each pass is one group of every class"
    assert not np.array_equal(groups[:5], groups[5:10]), "each pass has its own class order"


def test_released_len_max_rounds_as_the_release():
    for largest, k in [(60, 2), (97, 16), (60, 16), (15, 7), (17, 7), (3, 4)]:
        labels = np.repeat(np.arange(3), [largest, 2, 1])
        with pytest.warns(UserWarning, match="fewer"):  # the classes of 2 and 1 images
            sampler = PKSampler(labels, p=2, k=k, batching="released")
        assert sampler.len_max == max(k, released_len_max([largest, 2, 1], k))
    # Cars-like largest class 97 with G = 16: the release rounds down to 96, per-round rounds up to 112
    assert released_len_max([97], 16) == 96
    assert PKSampler(np.repeat(np.arange(2), [97, 16]), p=2, k=16).len_max == 112


@pytest.mark.parametrize("kw", [dict(variant="filled"), dict(variant="sample-repeat", repeat=3)])
def test_released_batching_is_deterministic_and_shards_for_ddp(kw):
    full = PKSampler(LABELS, p=4, k=3, seed=2, batching="released", **kw)
    shards = [PKSampler(LABELS, p=4, k=3, seed=2, batching="released", rank=r, world_size=2, **kw) for r in (0, 1)]
    for sampler in [full, *shards]:
        sampler.set_epoch(4)
    assert list(full) == list(full)
    for global_batch, *parts in zip(full, *shards):
        assert sum(parts, []) == global_batch


def test_a_class_smaller_than_k_warns_once_with_the_counts():
    labels = np.repeat(np.arange(6), [1, 3, 8, 8, 8, 8])
    with pytest.warns(UserWarning, match=r"k=4 .* 2 of 6 classes have fewer \(class: images 0: 1, 1: 3\)") as record:
        sampler = PKSampler(labels, p=3, k=4)
        list(sampler)
        sampler.set_epoch(1)
        list(sampler)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PKSampler(labels, p=3, k=1)


def test_invalid_batching_is_refused():
    with pytest.raises(ValueError, match="batching.*'per-round'.*'released'"):
        PKSampler(LABELS, p=2, k=2, batching="stream")


def test_released_sample_repeat_gives_all_images_of_a_class_smaller_than_k():
    sizes = list(np.random.default_rng(5).integers(2, 13, size=300))  # SOP-like classes of 2-12 images, G = 16
    labels = np.repeat(np.arange(300), sizes)
    with pytest.warns(UserWarning, match="fewer than 16 images to a batch"):
        sampler = PKSampler(labels, p=8, k=16, variant="sample-repeat", batching="released", seed=1)
    released = released_batch_count(released_sample_stream(sizes, 16, 1, np.random.default_rng(0)), 128)
    batches = list(sampler)
    assert len(sampler) == len(batches) == released == sum(sizes) // 128
    seen = np.concatenate(batches)
    assert all(len(batch) == 128 for batch in batches)
    assert np.unique(seen).size == seen.size, "no image is repeated: small classes are not padded"
    runs = np.flatnonzero(np.diff(labels[seen]) != 0).size + 1
    assert runs == np.unique(labels[seen]).size, "each class's images are contiguous in the stream"
