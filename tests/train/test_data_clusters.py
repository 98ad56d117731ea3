"""The divide step: faiss K-means of the features and the release's removal of classes alone in a cluster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from dml.train.data_clusters import kmeans_partition, prune_singletons


def test_kmeans_recovers_separated_blobs_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 10
    truth = np.repeat(np.arange(4), 50)
    x = (centres[truth] + rng.normal(size=(200, 16))).astype(np.float32)
    ids = kmeans_partition(x, 4, seed=3, niter=20, nredo=2)
    assert adjusted_rand_score(truth, ids) == 1.0
    assert np.array_equal(ids, kmeans_partition(x, 4, seed=3, niter=20, nredo=2))
    assert np.array_equal(kmeans_partition(x, 1), np.zeros(200, dtype=np.int64))
    with pytest.raises(ValueError, match="clusters"):
        kmeans_partition(x[:3], 4)
    with pytest.raises(ValueError, match="finite"):
        kmeans_partition(np.full((5, 2), np.nan), 2)


def test_prune_singletons_drops_exactly_the_classes_alone_in_their_cluster() -> None:
    rng = np.random.default_rng(1)
    clusters, labels = rng.integers(0, 3, 80), rng.integers(0, 20, 80)
    clusters[:3] = -1
    pruned = prune_singletons(clusters, labels)
    for i in range(80):
        alone = clusters[i] >= 0 and np.sum((clusters == clusters[i]) & (labels == labels[i])) == 1
        assert pruned[i] == (-1 if alone or clusters[i] < 0 else clusters[i])
    assert (pruned == -1).sum() > 3  # the draw does leave some classes alone
    with pytest.raises(ValueError, match="one shape"):
        prune_singletons(clusters, labels[:-1])
