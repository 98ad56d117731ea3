"""Per-cluster batch streams of divide and conquer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dml.data.cluster_sampler import ClusterBatchSampler


def _setup() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 8)
    clusters = rng.integers(0, 3, len(labels))
    clusters[rng.random(len(labels)) < 0.05] = -1
    return labels, clusters


def test_every_batch_comes_from_one_cluster_in_turn() -> None:
    labels, clusters = _setup()
    sampler = ClusterBatchSampler(labels, p=4, k=3, seed=5)
    sampler.set_clusters(clusters)
    batches = list(sampler)
    sizes = [np.sum(clusters == c) for c in range(3)]
    per_pass = [max(1, n // 12) for n in sizes]
    assert sampler.per_pass == per_pass and len(batches) == len(sampler) == 3 * max(per_pass)
    for step, batch in enumerate(batches):
        cluster = sampler.pop_cluster()
        assert cluster == step % 3  # round robin: cluster 0, 1, 2, 0, ...
        assert len(batch) == 12 and set(clusters[batch]) == {cluster}  # never -1, never another cluster
        classes = labels[batch].reshape(4, 3)
        assert (classes == classes[:, :1]).all()  # 4 groups of 3 images of one class
    with pytest.raises(RuntimeError, match="more often"):
        sampler.pop_cluster()


def test_batches_are_a_function_of_seed_epoch_and_assignment() -> None:
    labels, clusters = _setup()

    def epoch(seed: int, e: int) -> list[list[int]]:
        s = ClusterBatchSampler(labels, p=4, k=3, seed=seed)
        s.set_clusters(clusters)
        s.set_epoch(e)
        return list(s)

    assert epoch(1, 2) == epoch(1, 2)
    assert epoch(1, 2) != epoch(1, 3) and epoch(1, 2) != epoch(2, 2)


def test_without_clusters_it_is_one_stream_and_small_clusters_still_train() -> None:
    labels = np.repeat(np.arange(6), 4)
    sampler = ClusterBatchSampler(labels, p=3, k=2)
    assert sampler.num_clusters == 1 and len(sampler) == 24 // 6
    clusters = np.zeros(24, dtype=np.int64)
    clusters[[0, 1]] = 1  # a two-image cluster of one class: fewer classes than p, drawn with replacement
    clusters[[4]] = 2  # a cluster without a positive pair cannot train: no batches
    sampler.set_clusters(clusters)
    assert sampler.per_pass[1:] == [1, 0] and len(sampler) == 2 * sampler.per_pass[0]
    batches = list(sampler)
    assert set(map(int, labels[batches[1]])) == {0}


def test_the_cluster_queue_survives_a_prefetching_loader() -> None:
    labels, clusters = _setup()
    sampler = ClusterBatchSampler(labels, p=4, k=3)
    sampler.set_clusters(clusters)
    dataset = TensorDataset(torch.arange(len(labels)))
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2, prefetch_factor=2)
    for (indices,) in loader:
        assert set(clusters[indices.numpy()]) == {sampler.pop_cluster()}


def test_bad_assignments_fail_with_the_fix() -> None:
    sampler = ClusterBatchSampler(np.repeat(np.arange(4), 2), p=2, k=2)
    with pytest.raises(ValueError, match="one integer cluster id per item"):
        sampler.set_clusters(np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="-1 for unused"):
        sampler.set_clusters(np.full(8, -2))
