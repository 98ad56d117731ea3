"""Clustering quality: NMI between the labels and a seeded k-means on the embeddings."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

#: ``init="auto"`` uses k-means++ seeding while ``num_clusters * N * D`` stays below this (it costs one sequential
#: pass over the data per centroid), faiss's random seeding above it (SOP: 11,316 clusters).
KMEANS_PP_MAX_WORK = 2 * 10**10


def kmeans_assign(
    embeddings: Any, num_clusters: int, *, seed: int = 0, niter: int = 20, init: str = "auto"
) -> np.ndarray:
    """Cluster ids from k-means with ``num_clusters`` centroids, deterministic for a given ``seed``.

    Lloyd iterations run in faiss (exact assignment, ``niter`` iterations, no subsampling). Initial centroids:

    * ``"k-means++"``: D²-sampling (Arthur & Vassilvitskii 2007), seeded with ``seed``. On well-separated classes
      every class gets its own centroid, so a perfect embedding clusters perfectly (NMI 1.0).
    * ``"random"``: ``num_clusters`` random points (faiss's default, as in pytorch-metric-learning and RevisitDML).
      Cheap for thousands of clusters, but two initial centroids can fall into one class and stay there.
    * ``"auto"``: k-means++ unless ``num_clusters × N × D`` exceeds :data:`KMEANS_PP_MAX_WORK`.

    If faiss cannot be imported, scikit-learn's ``KMeans(n_init=1)`` is used instead (with a warning).
    """
    if init not in ("auto", "k-means++", "random"):
        raise ValueError(f"init must be 'auto', 'k-means++' or 'random'; got {init!r}")
    x = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    num_clusters = int(min(num_clusters, n))
    if num_clusters <= 1:
        return np.zeros(n, dtype=np.int64)
    if init == "auto":
        init = "k-means++" if num_clusters * n * d <= KMEANS_PP_MAX_WORK else "random"
    centroids = _kmeans_pp(x, num_clusters, seed) if init == "k-means++" else None
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a core dependency
        from sklearn.cluster import KMeans

        warnings.warn(
            "faiss is not installed; using scikit-learn KMeans for NMI (slower, slightly different "
            "clusters). Install faiss-cpu for the reference behaviour.",
            RuntimeWarning,
            stacklevel=2,
        )
        km = KMeans(
            num_clusters,
            n_init=1,
            max_iter=niter,
            random_state=seed,
            init=centroids if centroids is not None else "random",
        )
        return km.fit_predict(x).astype(np.int64)
    # min_points_per_centroid=1: no warning for few points per class; max_points_per_centroid=n: no subsampling.
    kmeans = faiss.Kmeans(
        d,
        num_clusters,
        niter=niter,
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max(n, 1),
    )
    kmeans.train(x, init_centroids=centroids)
    _, assignment = kmeans.index.search(x, 1)
    return assignment.reshape(-1).astype(np.int64)


def _kmeans_pp(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ seeding: each next centroid is drawn with probability proportional to its squared distance to
    the nearest centroid chosen so far (uniformly among all points once every point coincides with a centroid)."""
    generator = torch.Generator().manual_seed(int(seed))
    xt = torch.from_numpy(x).double()
    sq = (xt * xt).sum(dim=1)
    n = xt.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    dist = (sq - 2 * xt @ xt[chosen[0]] + sq[chosen[0]]).clamp_min_(0)
    for _ in range(k - 1):
        total = float(dist.sum())
        if total > 0:
            nxt = int(torch.multinomial(dist / total, 1, generator=generator))
        else:
            nxt = int(torch.randint(n, (1,), generator=generator))
        chosen.append(nxt)
        torch.minimum(dist, (sq - 2 * xt @ xt[nxt] + sq[nxt]).clamp_min_(0), out=dist)
    return np.ascontiguousarray(x[chosen])


def nmi(
    embeddings: Any, labels: Any, *, metric: str = "cosine", seed: int = 0, niter: int = 20, init: str = "auto"
) -> float:
    """Normalised mutual information between ``labels`` and k-means with as many clusters as classes.

    With ``metric="cosine"`` the embeddings are L2-normalised before clustering, matching the retrieval metrics.
    scikit-learn's ``normalized_mutual_info_score`` (arithmetic normalisation). Every item counts, also classes of
    size 1. Deterministic for a given ``seed``; see :func:`kmeans_assign` for ``init`` and ``niter``.
    """
    from sklearn.metrics import normalized_mutual_info_score

    x = embeddings.detach() if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
    x = x.to(torch.float32)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.reshape(-1)
    clusters = kmeans_assign(x, len(np.unique(y)), seed=seed, niter=niter, init=init)
    return float(normalized_mutual_info_score(y, clusters))
