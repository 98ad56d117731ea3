"""Retrieval metrics of deep metric learning: Recall@k, MAP@R, R-precision (and NMI), exact and memory-bounded.

Definitions (for each query ``q`` with ``R_q`` relevant gallery items, ``rel_q(i) = 1`` if its ``i``-th neighbour
has its label, ``P_q(i) = (1/i) Σ_{j≤i} rel_q(j)``):

* ``recall@k`` ("Recall@K" of the DML papers, not PML's ``precision_at_k``): 1 if **any** of the ``k`` nearest
  neighbours is relevant. ``recall@1`` equals PML's ``precision_at_1``.
* ``r_precision`` (Musgrave et al. 2020): ``(1/R_q) Σ_{i≤R_q} rel_q(i)``.
* ``map@r`` (Musgrave et al. 2020, MLRC's primary metric): ``(1/R_q) Σ_{i≤R_q} P_q(i)·rel_q(i)``. A perfect
  embedding scores 1.0 (unlike RevisitDML's ``mAP_c``, which divides by the class size including the query).
* ``nmi``: normalised mutual information between the labels and a seeded k-means clustering with as many clusters
  as classes (:func:`dml.eval.clustering.nmi`).

Every ranking metric is averaged over the queries that have at least one relevant gallery item. Queries without
one (a class of size 1 in self-retrieval, a query label absent from the gallery in query/gallery retrieval) are
excluded from **all** ranking metrics, as PML's AccuracyCalculator does with "lone query labels", and counted in
``num_queries_without_positives``; they still serve as gallery items for the other queries. If no query has a
positive (in either protocol), the ranking metrics are NaN, with a warning and the count.

Bad input fails loudly rather than giving a silently wrong number: embeddings with NaN or infinite entries are
refused, and so, under ``metric="cosine"``, are rows of zero norm (below the ``1e-12`` that
``torch.nn.functional.normalize`` divides by: such a row has no direction, and its cosine similarity to everything
would be read as 0). A ``k`` larger than the gallery each query is ranked against (``N - 1`` items in
self-retrieval, ``N_gallery`` otherwise) is capped at the gallery size, where every query with a positive is a hit:
one ``RuntimeWarning`` names the capped ``ks``, their ``recall@k`` equal the capped one, and the result records the
cap as ``ks_capped_to``.

``lone_queries="miss"`` computes ``recall@k`` as the code released with Xuan et al. (ECCV 2020, WACV 2020) does
(``recall`` and ``recall2`` in ``_code/Utils.py`` of github.com/littleredxh/HardNegative, commit f5f392377fd0, and
of github.com/littleredxh/EasyPositiveHardNegative, commit 22c3d58d56b9): the hits are divided by **all** ``N``
queries, so a query without a positive counts as a miss,

``recall@k (miss) = (1/N) Σ_q [q's first positive ranks <= k]
= recall@k · (1 - num_queries_without_positives / N)``.

The two agree when every query has a positive (CUB, Cars196, SOP: no singleton test class); they differ for
In-Shop queries whose item has no gallery image and for any split with single-image classes. ``map@r`` and
``r_precision`` always average over the queries with a positive.

Ranking: gallery items are ordered by (−score, gallery index), ties going to the lower index, and the query is
excluded from its own ranking by index; see :mod:`dml.eval.ranking`. The computation is exact and never builds the
N×N matrix: self-retrieval multiplies class-aligned tiles of about ``sqrt(max_bytes / 8)`` items (5,792 for the
default 256 MiB), each pair of tiles once (half the work of a full k-NN search); query/gallery retrieval multiplies
chunks of queries against the whole gallery; everything else is a top-k over a few candidates. It runs with torch
on the embeddings' device: CUDA tensors are evaluated on the GPU (same code, no host copies in the loop), NumPy
arrays and CPU tensors on the CPU, with the threads torch is configured with (they are not changed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from dml.eval.clustering import nmi as _nmi
from dml.eval.inputs import (
    as_embedding_tensor,
    as_label_array,
    check_chunk_size,
    check_include,
    check_ks,
    check_metric,
    encode_labels,
    score_operands,
)
from dml.eval.ranking import DEFAULT_MAX_BYTES, RankStatistics, rank_statistics
from dml.utils.checks import check_choice

#: Metric names accepted by ``include``.
METRIC_NAMES = ("recall", "map@r", "r_precision", "nmi")
#: Rows with a smaller L2 norm are refused under cosine similarity (the ``eps`` of ``F.normalize``).
NORM_EPS = 1e-12

#: How ``recall@k`` treats queries without a positive: left out, or counted as misses (the released code).
LONE_QUERIES = ("exclude", "miss")


def retrieval_metrics(
    embeddings: Any,
    labels: Any,
    *,
    ks: Iterable[int] = (1, 2, 4, 8),
    metric: str = "cosine",
    include: Iterable[str] = ("recall", "map@r", "r_precision", "nmi"),
    chunk_size: int | None = None,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    lone_queries: str = "exclude",
) -> dict[str, float | int]:
    """Self-retrieval metrics (CUB, Cars196, SOP protocol): every item queries all the others.

    Args:
        embeddings: ``(N, D)`` NumPy array or torch tensor (CPU or CUDA; computed on that device).
        labels: ``N`` class ids (any hashable NumPy dtype, or a tensor).
        ks: The ``k`` of ``recall@k`` (integers >= 1).
        metric: ``"cosine"`` (L2-normalise, rank by dot product) or ``"euclidean"`` (rank by squared L2 distance).
        include: Any of ``"recall"``, ``"map@r"``, ``"r_precision"``, ``"nmi"``.
        chunk_size: Query rows per block of scores: a block holds ``chunk_size × N`` scores (in self-retrieval as
            a square tile of about ``sqrt(chunk_size × N)`` items). ``None`` chooses it so that a block and its
            temporaries use about ``max_bytes``. It changes speed and memory; results could differ only where two
            scores are within float rounding of each other.
        seed: k-means seed for NMI.
        max_bytes: Memory budget of one tile or chunk (its score matrix and temporaries); 256 MiB by default.
        lone_queries: ``"exclude"`` (default): ``recall@k`` averages over the queries with a positive; ``"miss"``:
            over all queries, a query without a positive counting as a miss (the released code of Xuan et al.;
            module docstring).

    Returns:
        ``{"recall@k": ..., "map@r": ..., "r_precision": ..., "nmi": ..., "num_queries": N,
        "num_queries_without_positives": ...}`` with the requested metrics (floats; the counts are ints).
        ``num_queries`` counts all queries; the ranking metrics average over the
        ``num_queries - num_queries_without_positives`` queries whose class has another member. ``R_q`` is the
        class size − 1; the query is excluded from its own ranking by index and ties go to the lower index.
        ``ks_capped_to`` (an int) is present when some ``k`` exceeded the ``N - 1`` ranked items and was capped.

    Raises:
        ValueError: malformed or non-finite embeddings, unknown options, or (cosine) a row of zero norm.
    """
    x = as_embedding_tensor(embeddings, labels)
    y = _checked_labels(as_label_array(labels), "labels")
    include, ks, metric, chunk_size = _check_options(include, ks, metric, chunk_size, lone_queries, METRIC_NAMES)
    if metric == "cosine":
        _check_directions(x, "embeddings")
    (codes,) = encode_labels(y)
    result: dict[str, float | int] = {}
    k_max, cap = _capped_k_max(ks, x.shape[0] - 1) if "recall" in include else (None, None)
    if _ranking(include):
        a, b, offsets = score_operands(x, None, metric)
        codes_t = torch.from_numpy(codes).to(x.device)
        stats = rank_statistics(
            a,
            b,
            codes_t,
            codes_t,
            exclude_self=True,
            offsets=offsets,
            k_max=k_max,
            need_top_relevance=bool({"map@r", "r_precision"} & set(include)),
            chunk_size=chunk_size,
            max_bytes=max_bytes,
        )
        del a, b, offsets
        result.update(_summarise(stats, include, ks, lone_queries))
    if "nmi" in include:
        result["nmi"] = _nmi(x, y, metric=metric, seed=seed)
    if cap is not None:
        result["ks_capped_to"] = cap
    result["num_queries"] = int(x.shape[0])
    result["num_queries_without_positives"] = int((np.bincount(codes)[codes] < 2).sum())
    return result


def map_at_r_per_query(
    embeddings: Any, labels: Any, *, metric: str = "cosine", max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Each query's ``map@r`` in self-retrieval, ``(1/R_q) Σ_{i≤R_q} P_q(i)·rel_q(i)``, for the queries with a
    positive (in item order): the numbers whose mean is :func:`retrieval_metrics`'s ``map@r``, for confidence
    intervals that resample queries (a bootstrap over the test set)."""
    x = as_embedding_tensor(embeddings, labels)
    y = _checked_labels(as_label_array(labels), "labels")
    _check_options(("map@r",), (1,), metric, None, "exclude", METRIC_NAMES)
    if metric == "cosine":
        _check_directions(x, "embeddings")
    (codes,) = encode_labels(y)
    a, b, offsets = score_operands(x, None, metric)
    codes_t = torch.from_numpy(codes).to(x.device)
    stats = rank_statistics(
        a,
        b,
        codes_t,
        codes_t,
        exclude_self=True,
        offsets=offsets,
        k_max=None,
        need_top_relevance=True,
        max_bytes=max_bytes,
    )
    rel = stats.top_relevance.double()
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=torch.float64)
    values = (rel.cumsum(dim=1) / ranks * rel).sum(dim=1) / stats.num_positives.clamp_min(1).double()
    return values[stats.num_positives > 0].cpu().numpy()


def query_gallery_metrics(
    query_embeddings: Any,
    query_labels: Any,
    gallery_embeddings: Any,
    gallery_labels: Any,
    *,
    ks: Iterable[int] = (1, 10, 20, 30, 40, 50),
    metric: str = "cosine",
    include: Iterable[str] = ("recall", "map@r", "r_precision"),
    chunk_size: int | None = None,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    lone_queries: str = "exclude",
) -> dict[str, float | int]:
    """Query/gallery retrieval metrics (In-Shop protocol): queries are ranked against a separate gallery.

    The query set is *not* part of the gallery, so nothing is excluded by index; ``R_q`` is the number of gallery
    items with the query's label, and queries with no such item are excluded from the ranking metrics and counted
    in ``num_queries_without_positives`` (if no query has one, the ranking metrics are NaN, with a warning). Ties
    are broken by the lower gallery index. A ``k`` above ``N_gallery`` is capped (``ks_capped_to``). ``"nmi"`` (not
    computed by default) clusters the union of query and gallery embeddings. The gallery is moved to the query's
    device. Other arguments (``lone_queries`` included) as in :func:`retrieval_metrics`.
    """
    q = as_embedding_tensor(query_embeddings, query_labels, name="query_embeddings")
    g = as_embedding_tensor(gallery_embeddings, gallery_labels, name="gallery_embeddings")
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"query_embeddings have dimension {q.shape[1]} but gallery_embeddings have "
            f"{g.shape[1]}; both must come from the same model."
        )
    g = g.to(device=q.device, dtype=q.dtype) if (g.device != q.device or g.dtype != q.dtype) else g
    yq = _checked_labels(as_label_array(query_labels), "query_labels")
    yg = _checked_labels(as_label_array(gallery_labels), "gallery_labels")
    include, ks, metric, chunk_size = _check_options(include, ks, metric, chunk_size, lone_queries, METRIC_NAMES)
    if metric == "cosine":
        _check_directions(q, "query_embeddings")
        _check_directions(g, "gallery_embeddings")
    q_codes, g_codes = encode_labels(yq, yg)
    result: dict[str, float | int] = {}
    k_max, cap = _capped_k_max(ks, g.shape[0]) if "recall" in include else (None, None)
    if _ranking(include):
        a, b, offsets = score_operands(q, g, metric)
        stats = rank_statistics(
            a,
            b,
            torch.from_numpy(q_codes).to(q.device),
            torch.from_numpy(g_codes).to(q.device),
            exclude_self=False,
            offsets=offsets,
            k_max=k_max,
            need_top_relevance=bool({"map@r", "r_precision"} & set(include)),
            chunk_size=chunk_size,
            max_bytes=max_bytes,
        )
        del a, b, offsets
        result.update(_summarise(stats, include, ks, lone_queries))
    if "nmi" in include:
        result["nmi"] = _nmi(torch.cat([q, g]), np.concatenate([yq, yg]), metric=metric, seed=seed)
    in_gallery = np.zeros(max(int(q_codes.max()), int(g_codes.max())) + 1, dtype=bool)
    in_gallery[g_codes] = True
    if cap is not None:
        result["ks_capped_to"] = cap
    result["num_queries"] = int(q.shape[0])
    result["num_queries_without_positives"] = int((~in_gallery[q_codes]).sum())
    return result


def _check_options(include, ks, metric, chunk_size, lone_queries, valid):
    check_choice(lone_queries, LONE_QUERIES, name="lone_queries")
    return check_include(include, valid), check_ks(ks), check_metric(metric), check_chunk_size(chunk_size)


def _checked_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """``labels`` if none is missing (``None`` or NaN): an item without a class cannot be relevant or not."""
    if labels.dtype.kind == "f":
        missing = np.isnan(labels)
    elif labels.dtype.kind == "O":
        missing = np.array([label is None or (isinstance(label, float) and math.isnan(label)) for label in labels])
    else:
        return labels
    if missing.any():
        raise ValueError(
            f"{name} contain {int(missing.sum())} missing value(s) (None or NaN, first at index "
            f"{int(np.flatnonzero(missing)[0])}); every item needs a class id. Drop those items."
        )
    return labels


def _check_directions(x: torch.Tensor, name: str) -> None:
    """Refuse rows that cosine similarity cannot normalise (L2 norm below ``NORM_EPS``), as NaN rows are refused."""
    zero = torch.linalg.vector_norm(x, dim=1) < NORM_EPS
    count = int(zero.sum().item())
    if count:
        first = int(zero.nonzero()[0, 0].item())
        raise ValueError(
            f"{name} have {count} row(s) of zero norm (first at index {first}); a zero vector has no direction, so "
            "its cosine similarity is undefined. Drop those rows, check the model for dead outputs, or rank by "
            "metric='euclidean'."
        )


def _capped_k_max(ks: tuple[int, ...], gallery_size: int) -> tuple[int, int | None]:
    """``(max(ks) capped at the gallery size, the cap or None)``, with one warning when a ``k`` exceeds it.

    Recall@k is a hit iff a positive is among the ``k`` nearest of the ``gallery_size`` ranked items, so every
    ``k >= gallery_size`` gives the same value: that of ``k = gallery_size``.
    """
    over = [k for k in ks if k > gallery_size]
    if over:
        warnings.warn(
            f"ks {over} exceed the {gallery_size} gallery items each query is ranked against; they are capped at "
            f"{gallery_size} (their recall@k equals recall@{gallery_size}: every query with a positive is a hit) and "
            f"the result records ks_capped_to={gallery_size}. Lower ks (eval.ks) to the gallery size.",
            RuntimeWarning,
            stacklevel=3,
        )
    return max(1, min(max(ks), gallery_size)), (int(gallery_size) if over else None)


def _ranking(include: tuple[str, ...]) -> bool:
    return bool({"recall", "map@r", "r_precision"} & set(include))


def _summarise(
    stats: RankStatistics, include: tuple[str, ...], ks: tuple[int, ...], lone_queries: str = "exclude"
) -> dict[str, float]:
    """Average the per-query statistics over the queries that have a positive (``recall@k`` over all queries
    with ``lone_queries="miss"``)."""
    valid = stats.num_positives > 0
    n_valid = int(valid.sum().item())
    if n_valid == 0:
        warnings.warn(
            "No query has a relevant gallery item (every class has a single member, or no query label "
            "occurs in the gallery); the ranking metrics are NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
    out: dict[str, float] = {}

    def mean(per_query: torch.Tensor) -> float:
        return float(per_query[valid].double().sum().item()) / n_valid if n_valid else math.nan

    if "recall" in include:
        for k in ks:
            hits = stats.first_rank < k
            if lone_queries == "miss":
                out[f"recall@{k}"] = float(hits[valid].double().sum().item()) / max(len(valid), 1)
            else:
                out[f"recall@{k}"] = mean(hits)
    if stats.top_relevance is not None:
        rel = stats.top_relevance.double()
        r = stats.num_positives.clamp_min(1).double()
        if "map@r" in include:
            ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=torch.float64)
            precision = rel.cumsum(dim=1) / ranks
            out["map@r"] = mean((precision * rel).sum(dim=1) / r)
        if "r_precision" in include:
            out["r_precision"] = mean(rel.sum(dim=1) / r)
    return out
