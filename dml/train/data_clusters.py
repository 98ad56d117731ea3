"""The "divide" step of divide and conquer: K-means of the training images' features into K data regions.

Sanakoyeu et al., CVPR 2019 (released code github.com/CompVis/metric-learning-divide-and-conquer, commit 1766c2c,
``lib/clustering.py``, ``lib/faissext.py``). K-means minimises the within-cluster squared distance

.. math::  \\min_{\\mu_1..\\mu_K,\\ c} \\sum_i \\lVert x_i - \\mu_{c(i)} \\rVert_2^2

of the L2-normalised features ``x_i`` (the release clusters the 2048-d penultimate features, not the embedding,
although the paper speaks of the embedding space), with faiss: 100 Lloyd iterations, the best of 5 restarts
(``nredo``), no subsampling, on the GPU when faiss has one. Then, within every cluster, a class with a single image
there is dropped from that cluster (its id becomes ``-1``): it has no positive to learn from.
"""

from __future__ import annotations

import numpy as np


def kmeans_partition(
    features: np.ndarray, num_clusters: int, *, seed: int = 0, niter: int = 100, nredo: int = 5, gpu: bool = False
) -> np.ndarray:
    """Cluster ids ``0..K-1`` of the rows of ``features`` (float32, ``(N, d)``) by faiss K-means (module
    docstring); deterministic for a given ``seed`` on the CPU. ``gpu=True`` uses faiss's GPU index when faiss has
    GPU support (faiss-cpu builds fall back to the CPU)."""
    import faiss

    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"features must be a finite (N, d) array; got shape {x.shape}.")
    if not 1 <= num_clusters <= len(x):
        raise ValueError(f"Cannot cut {len(x)} images into {num_clusters} clusters; use 1 <= K <= N.")
    if num_clusters == 1:
        return np.zeros(len(x), dtype=np.int64)
    use_gpu = bool(gpu) and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0
    kmeans = faiss.Kmeans(
        x.shape[1],
        num_clusters,
        niter=niter,
        nredo=nredo,
        seed=int(seed),
        verbose=False,
        gpu=use_gpu,
        min_points_per_centroid=1,
        max_points_per_centroid=max(len(x), 1),
    )
    kmeans.train(x)
    _, assignment = kmeans.index.search(x, 1)
    return assignment.reshape(-1).astype(np.int64)


def prune_singletons(assignment: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``assignment`` with ``-1`` for every image whose class has no other image in its cluster (as released)."""
    assignment, labels = np.asarray(assignment).copy(), np.asarray(labels)
    if assignment.shape != labels.shape:
        raise ValueError(f"assignment and labels must have one shape; got {assignment.shape} and {labels.shape}.")
    pairs = np.stack([assignment, labels], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    assignment[(counts[inverse.reshape(-1)] == 1) & (assignment >= 0)] = -1
    return assignment
