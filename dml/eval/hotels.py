"""Hotels-50K retrieval accuracy: hotel instance top-K (K = 1, 10, 100) and hotel chain top-K (K = 1, 3, 5).

Protocol of the released evaluation code (Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset",
AAAI 2019, arXiv:1901.11397; github.com/GWUvision/Hotels-50K ``evaluate/retrieval.py`` at commit
3614e4a51664e22a3a109b873b8d1eb40eca8beb). Each test image (query) comes
with a ranked list of 100 training images (the gallery), given as image ids in a CSV
(``query_id, result_id_1, ..., result_id_100``). With ``h(·)`` the hotel and ``c(·)`` the chain of an image:

* instance top-K = (1/|Q|) Σ_q 1[∃ i ≤ K: h(r_q,i) = h(q)], averaged over **all** queries;
* chain top-K = (1/|Q_c|) Σ_{q ∈ Q_c} 1[∃ i ≤ K: c(r_q,i) = c(q)], averaged over the queries ``Q_c`` whose hotel
  belongs to a known chain (chain id > -1); a result from a hotel without a known chain (chain id -1) never matches.

Paper vs released code: the repository README (same commit) notes that the paper's chain accuracy *also*
restricted the results to hotels of known chains, so its chain numbers differ from the released code's (which
gives 40.4 / 54.1 / 60.4 chain top-1/3/5 for the released model on unoccluded images). ``chain_results="all"``
(default) is the released code; ``chain_results="known"`` drops the results whose chain is unknown before taking the
top K, which is our reading of the README sentence; the paper's own evaluation code is not public.

The released evaluation's second metric, the multi-class **log loss** (``evaluate/log_loss.py`` with
``evaluate/convert_knn_to_probabilities.py``, same commit), turns each query's top-100 list into a posterior over the
``C`` training hotels and averages ``-log p_q(h(q))``: :func:`knn_log_loss`, which the ``hotels`` protocol reports
as ``log_loss`` next to the top-K accuracies.

The SCT paper's Hotels-50K numbers (Xuan et al., "Hard negative examples are hard, but useful", ECCV 2020,
arXiv:2007.12749) report instance R@1/10/100 and chain R@1/3/5 with the same definitions. Values here are fractions
in [0, 1], not percentages.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dml.data.hotels import UNKNOWN_CHAIN

INSTANCE_KS = (1, 10, 100)
CHAIN_KS = (1, 3, 5)
CHAIN_RESULTS = ("all", "known")
POSTERIORS = ("frequency", "released")
#: The clipping of scikit-learn's ``log_loss`` when the released code was written (0.20, 2018-2019).
LOG_LOSS_EPS = 1e-15


def hotel_topk_accuracy(
    query_hotels: Any,
    query_chains: Any,
    result_hotels: Any,
    result_chains: Any,
    *,
    instance_ks: Iterable[int] = INSTANCE_KS,
    chain_ks: Iterable[int] = CHAIN_KS,
    chain_results: str = "all",
) -> dict[str, float | int]:
    """Instance and chain top-K accuracy from ranked result lists.

    Args:
        query_hotels, query_chains: ``(Nq,)`` hotel and chain id of each query (chain ``-1`` = unknown).
        result_hotels, result_chains: ``(Nq, R)`` hotel and chain ids of each query's ranked results.
        instance_ks, chain_ks: The K values; each at most ``R``.
        chain_results: ``"all"`` (released code) or ``"known"`` (drop unknown-chain results first; see the module
            docstring).

    Returns:
        ``{"instance@K": ..., "chain@K": ..., "num_queries": Nq, "num_queries_with_chain": |Q_c|}``. Chain values
        are NaN (with a warning) when no query has a known chain.
    """
    qh, qc = _vector(query_hotels, "query_hotels"), _vector(query_chains, "query_chains")
    rh, rc = _matrix(result_hotels, "result_hotels"), _matrix(result_chains, "result_chains")
    if not (len(qh) == len(qc) == len(rh) == len(rc)) or rh.shape != rc.shape:
        raise ValueError(
            f"Shapes disagree: query_hotels {qh.shape}, query_chains {qc.shape}, result_hotels "
            f"{rh.shape}, result_chains {rc.shape}; pass one row of results per query."
        )
    if chain_results not in CHAIN_RESULTS:
        raise ValueError(f"chain_results must be 'all' (released code) or 'known' (paper); got {chain_results!r}.")
    instance_ks, chain_ks = _ks(instance_ks, rh.shape[1]), _ks(chain_ks, rh.shape[1])
    result: dict[str, float | int] = {}
    first = _first_hit(rh == qh[:, None], np.ones_like(rh, dtype=bool))
    for k in instance_ks:
        result[f"instance@{k}"] = float(np.mean(first <= k)) if len(qh) else math.nan
    known = qc != UNKNOWN_CHAIN
    eligible = rc != UNKNOWN_CHAIN if chain_results == "known" else np.ones_like(rc, dtype=bool)
    first = _first_hit((rc == qc[:, None]) & eligible, eligible)[known]
    if not known.any():
        warnings.warn("No query belongs to a known chain; chain accuracy is NaN.", RuntimeWarning, stacklevel=2)
    for k in chain_ks:
        result[f"chain@{k}"] = float(np.mean(first <= k)) if known.any() else math.nan
    result["num_queries"] = len(qh)
    result["num_queries_with_chain"] = int(known.sum())
    return result


def hotel_retrieval_metrics(
    query_embeddings: Any,
    gallery_embeddings: Any,
    query_hotels: Any,
    gallery_hotels: Any,
    query_chains: Any,
    gallery_chains: Any,
    *,
    metric: str = "cosine",
    top: int = 100,
    instance_ks: Iterable[int] = INSTANCE_KS,
    chain_ks: Iterable[int] = CHAIN_KS,
    chain_results: str = "all",
    chunk_size: int | None = None,
) -> dict[str, float | int]:
    """Hotels-50K accuracy from embeddings: rank the gallery (training images) for every query (test image).

    The ``top`` nearest gallery images of each query (exact, :func:`dml.eval.knn`, ties to the lower gallery
    index) play the role of the released code's top-100 CSV; then :func:`hotel_topk_accuracy`.

    Args:
        query_embeddings, gallery_embeddings: ``(Nq, D)`` and ``(Ng, D)`` arrays or tensors.
        query_hotels, gallery_hotels, query_chains, gallery_chains: Hotel and chain id per image
            (``Hotels50K.labels`` and ``.chain_labels``).
        metric: ``"cosine"`` or ``"euclidean"``.
        top: Length of each result list (at most the gallery size); every K must be at most ``top``.
        instance_ks, chain_ks, chain_results: As in :func:`hotel_topk_accuracy`.
        chunk_size: Queries per block of scores (``None``: from a 256 MB budget).
    """
    from dml.eval.neighbours import knn

    gh, gc = _vector(gallery_hotels, "gallery_hotels"), _vector(gallery_chains, "gallery_chains")
    if len(gh) != len(gc) or len(gh) != len(gallery_embeddings):
        raise ValueError(
            f"{len(gallery_embeddings)} gallery embeddings, {len(gh)} gallery hotels and {len(gc)} "
            "gallery chains; they must match one to one."
        )
    _, indices = knn(
        query_embeddings, gallery_embeddings, k=min(int(top), len(gh)), metric=metric, chunk_size=chunk_size
    )
    indices = indices.cpu().numpy()
    result = hotel_topk_accuracy(
        query_hotels,
        query_chains,
        gh[indices],
        gc[indices],
        instance_ks=instance_ks,
        chain_ks=chain_ks,
        chain_results=chain_results,
    )
    result["log_loss"] = knn_log_loss(query_hotels, gh[indices], num_classes=len(np.unique(gh)))
    return result


def knn_log_loss(
    query_labels: Any,
    result_labels: Any,
    *,
    num_classes: int,
    posterior: str = "frequency",
    eps: float = LOG_LOSS_EPS,
) -> float:
    """Multi-class log loss of the class posteriors that each query's ``K`` ranked results vote for.

    With ``n_q(c)`` the number of the ``K`` results of query ``q`` that belong to class ``c`` (hotel, or chain when
    chain ids are passed), the posterior is

    * ``posterior="frequency"``: ``p_q(c) = n_q(c) / K``, the share of the neighbours (our reading of the paper's
      "k-NN results converted to posterior probabilities, k = 100");
    * ``posterior="released"``: ``p_q(c) = n_q(c) / d_q``, with ``d_q`` the number of distinct classes among the
      results, as ``convert_knn_to_probabilities.py`` divides (GWUvision/Hotels-50K at commit 3614e4a5); values
      above 1 are then clipped, so this is not a probability distribution until the renormalisation below.

    As scikit-learn's ``log_loss`` of 2019 (which ``log_loss.py`` calls with all ``C`` classes), every one of the
    ``C`` probabilities is clipped to ``[eps, 1 - eps]`` and the vector renormalised to sum to one, then

        L = (1/|Q|) Σ_q -log p̂_q(c(q)),

    so a query whose class is absent from its results costs about ``-log eps`` (34.5 for ``eps = 1e-15``).

    Args:
        query_labels: ``(Nq,)`` class of each query.
        result_labels: ``(Nq, K)`` class of each ranked result.
        num_classes: ``C``, the number of classes of the posterior (the training hotels); at least the number of
            distinct classes among the results.
        posterior: ``"frequency"`` or ``"released"`` (above).
        eps: The clipping bound (``1e-15``: scikit-learn before 1.3; ``np.finfo(float).eps`` today).
    """
    qh, rh = _vector(query_labels, "query_labels"), _matrix(result_labels, "result_labels")
    if len(qh) != len(rh) or not len(qh):
        raise ValueError(
            f"{len(qh)} query labels for {len(rh)} rows of results; pass one row per query (and at least one)."
        )
    if posterior not in POSTERIORS:
        raise ValueError(f"posterior must be 'frequency' or 'released' (see knn_log_loss); got {posterior!r}.")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5); got {eps}.")
    ordered = np.sort(rh, axis=1)
    starts = np.ones_like(ordered, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    distinct = starts.sum(axis=1)
    if num_classes < distinct.max():
        raise ValueError(
            f"num_classes={num_classes}, but a row of results holds {distinct.max()} distinct classes; "
            "pass the number of training classes."
        )
    row = np.repeat(np.arange(len(qh)), distinct)  # one entry per (query, distinct result class)
    counts = np.diff(np.append(np.flatnonzero(starts.ravel()), starts.size))
    value = counts / (rh.shape[1] if posterior == "frequency" else distinct[row])
    value = np.clip(value, eps, 1 - eps)
    total = np.bincount(row, weights=value, minlength=len(qh)) + (num_classes - distinct) * eps
    own = np.full(len(qh), eps)
    mine = ordered.ravel()[starts.ravel()] == qh[row]
    own[row[mine]] = value[mine]
    return float(np.mean(-np.log(own / total)))


def read_result_csv(path: str | os.PathLike, *, results: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Read the released evaluation's input: rows ``query_image_id, result_image_id × results``.

    Returns:
        ``(query_ids (N,), result_ids (N, results))`` as ``int64``.

    Raises:
        ValueError: a row with the wrong number of fields or a non-integer id (the message names the line).
    """
    queries, rows = [], []
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != results + 1:
                raise ValueError(
                    f"{path}, line {number}: expected a query image id and {results} result ids "
                    f"({results + 1} fields), got {len(row)}."
                )
            try:
                ids = [int(field) for field in row]
            except ValueError:
                raise ValueError(f"{path}, line {number}: image ids must be integers; got {row[:3]}...") from None
            queries.append(ids[0])
            rows.append(ids[1:])
    return np.array(queries, dtype=np.int64), np.array(rows, dtype=np.int64).reshape(-1, results)


def hotel_metrics_from_ids(
    query_ids: Any,
    result_ids: Any,
    *,
    test_hotel_of: Mapping[int, int],
    train_hotel_of: Mapping[int, int],
    chain_of: Mapping[int, int],
    instance_ks: Iterable[int] = INSTANCE_KS,
    chain_ks: Iterable[int] = CHAIN_KS,
    chain_results: str = "all",
) -> dict[str, float | int]:
    """:func:`hotel_topk_accuracy` from image ids, as the released script computes it from its CSV.

    Args:
        query_ids: ``(N,)`` test image ids. result_ids: ``(N, R)`` ranked training image ids.
        test_hotel_of, train_hotel_of: image id -> hotel id (``test_set.csv``, ``train_set.csv``).
        chain_of: hotel id -> chain id (``hotel_info.csv``).

    Raises:
        KeyError: an unknown query or result image id, or a hotel missing from ``chain_of`` (the message says
            which); the released script stops at the first such row too.
    """
    query_ids, result_ids = _vector(query_ids, "query_ids"), _matrix(result_ids, "result_ids")
    qh = _lookup(test_hotel_of, query_ids, "query image id", "test_set.csv")
    rh = _lookup(train_hotel_of, result_ids.ravel(), "result image id", "train_set.csv").reshape(result_ids.shape)
    qc = _lookup(chain_of, qh, "hotel id", "hotel_info.csv")
    rc = _lookup(chain_of, rh.ravel(), "hotel id", "hotel_info.csv").reshape(rh.shape)
    return hotel_topk_accuracy(qh, qc, rh, rc, instance_ks=instance_ks, chain_ks=chain_ks, chain_results=chain_results)


def read_hotels_metadata(metadata_dir: str | os.PathLike) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """``(test_hotel_of, train_hotel_of, chain_of)`` from ``test_set.csv``, ``train_set.csv``, ``hotel_info.csv``
    in ``metadata_dir`` (``<Hotels-50K>/input/dataset``)."""
    metadata_dir = Path(metadata_dir)

    def column_map(filename: str, key: str, value: str) -> dict[int, int]:
        path = metadata_dir / filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; extract input/dataset.tar.gz of GWUvision/Hotels-50K into {metadata_dir.parent}."
            )
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            return {int(row[key]): int(row[value]) for row in reader}

    return (
        column_map("test_set.csv", "image_id", "hotel_id"),
        column_map("train_set.csv", "image_id", "hotel_id"),
        column_map("hotel_info.csv", "hotel_id", "chain_id"),
    )


def evaluate_result_csv(path: str | os.PathLike, metadata_dir: str | os.PathLike, **kw: Any) -> dict[str, float | int]:
    """The released ``evaluate/retrieval.py`` in one call: read the top-100 CSV and the metadata, score it."""
    query_ids, result_ids = read_result_csv(path)
    test_hotel_of, train_hotel_of, chain_of = read_hotels_metadata(metadata_dir)
    return hotel_metrics_from_ids(
        query_ids, result_ids, test_hotel_of=test_hotel_of, train_hotel_of=train_hotel_of, chain_of=chain_of, **kw
    )


def _first_hit(hits: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """1-based rank, among the eligible results, of the first hit per row (``inf`` when there is none)."""
    ranks = np.cumsum(eligible, axis=1)
    return np.where(hits, ranks, np.iinfo(np.int64).max).min(axis=1, initial=np.iinfo(np.int64).max).astype(float)


def _vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array; got shape {array.shape} and dtype {array.dtype}.")
    return array.astype(np.int64, copy=False)


def _matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 2-D integer array (one row of ranked results per query); got shape "
            f"{array.shape} and dtype {array.dtype}."
        )
    return array.astype(np.int64, copy=False)


def _ks(ks: Iterable[int], available: int) -> tuple[int, ...]:
    ks = tuple(ks)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available]
    if bad or not ks:
        raise ValueError(
            f"Every K must be an integer between 1 and the number of results per query ({available}); "
            f"got {list(ks)}. Rank more results (top=) or use smaller K."
        )
    return ks


def _lookup(table: Mapping[int, int], keys: np.ndarray, what: str, source: str) -> np.ndarray:
    try:
        return np.array([table[int(key)] for key in keys], dtype=np.int64)
    except KeyError as error:
        raise KeyError(
            f"Unknown {what} {error.args[0]} (not in {source}); the results do not belong to this "
            "version of Hotels-50K."
        ) from None
