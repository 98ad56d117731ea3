"""Approximate nearest-neighbour search with faiss, for galleries beyond about a million images.

Exact search (:func:`dml.search.exact.exact_topk`, the suite's chunked ranking) costs ``N_query × N_gallery × D``
multiply-adds: for Hotels-50K's 17,954 test photos against 1,027,871 training images at ``D = 256`` that is
4.7·10¹² — minutes on a few CPU cores, which an investigator answering one query at a time does not
wait for twice. faiss
(Johnson, Douze, Jégou, "Billion-scale similarity search with GPUs", IEEE Trans. Big Data 2019) trades a little
recall for much less work, by inner product on the L2-normalised embeddings (= cosine similarity):

* ``hnsw`` (galleries below :data:`APPROXIMATE_FROM`): a hierarchical navigable small-world graph (Malkov and
  Yashunin, IEEE TPAMI 2020), ``M = 32`` links per node, ``efConstruction = 80``, ``efSearch = 256`` (above the
  usual top 100): fast queries, but its build is the slow part and its graph adds ``2·M`` ints per item;
* ``ivf`` (from :data:`APPROXIMATE_FROM` items): an inverted file of ``nlist = 4·√N`` k-means cells (trained on a
  seeded sample of 64 points per cell), each query scanning the ``nprobe = 128`` nearest cells; the index
  holds the vectors once, so its memory is the gallery's.

The recall of the approximate top-k against the exact top-k (:func:`recall_against_exact`) is measured when the
index is built, on a seeded sample of gallery vectors used as queries, and recorded with the index: approximate
results are never presented as exact without their measured cost.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: From this gallery size on, ``dml index`` builds an approximate index (``--search auto``) and uses IVF.
APPROXIMATE_FROM = 1_000_000
KINDS = ("hnsw", "ivf")
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 256
IVF_TRAIN_PER_CELL = 64
IVF_NPROBE = 128
_ADD_CHUNK = 65536


def choose_kind(count: int) -> str:
    """``"hnsw"`` below :data:`APPROXIMATE_FROM` items, ``"ivf"`` from there."""
    return "hnsw" if count < APPROXIMATE_FROM else "ivf"


def build_approximate(embeddings: np.ndarray, kind: str, *, seed: int = 0):  # -> faiss.Index
    """A faiss index of the L2-normalised ``embeddings`` (any float dtype; added in chunks) by inner product."""
    import faiss

    n, d = embeddings.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # faiss wants at least 39 training points per cell
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = np.sort(np.random.default_rng(seed).permutation(n)[: min(n, IVF_TRAIN_PER_CELL * nlist)])
        index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
    else:
        raise ValueError(f"Unknown approximate index {kind!r}; choose one of {list(KINDS)}.")
    for start in range(0, n, _ADD_CHUNK):
        index.add(np.ascontiguousarray(embeddings[start : start + _ADD_CHUNK], dtype=np.float32))
    configure(index)
    return index


def configure(index) -> None:
    """The search-time settings (``efSearch``, ``nprobe``), which faiss does not store with the index."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        faiss.extract_index_ivf(index).nprobe = IVF_NPROBE


def approximate_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, gallery rows)``, both ``(Nq, k)``, best first (rows ``-1`` where fewer than ``k`` were found)."""
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k))


def recall_against_exact(approximate_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean over queries of ``|approximate top-k ∩ exact top-k| / k`` (recall@k of the approximate search)."""
    a, e = np.asarray(approximate_rows), np.asarray(exact_rows)
    hits = [np.intersect1d(a[i][a[i] >= 0], e[i]).size for i in range(len(e))]
    return float(np.mean(hits) / e.shape[1])


def save(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load(path: Path):
    import faiss

    index = faiss.read_index(str(path))
    configure(index)
    return index
