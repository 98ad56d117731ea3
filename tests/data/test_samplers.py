"""PKSampler: P classes × K images per batch, deterministic per (seed, epoch), sharded for DDP."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dml.data import PKSampler

rng = np.random.default_rng(0)
# 13 classes of very different sizes (1 to 20 images), shuffled so class members are not contiguous.
LABELS = rng.permutation(np.repeat(np.arange(13) * 7 + 100, [1, 2, 3, 5, 8, 9, 10, 12, 15, 16, 18, 19, 20]))
VARIANTS = [dict(variant="filled"), dict(variant="sample-repeat", repeat=3)]


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
