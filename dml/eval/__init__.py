"""Evaluation: exact, memory-bounded retrieval metrics (Recall@k, MAP@R, R-precision), NMI, and embedding.

* :func:`retrieval_metrics`: self-retrieval (CUB, Cars196, SOP).
* :func:`query_gallery_metrics`: separate query and gallery sets (In-Shop).
* :func:`hotel_retrieval_metrics`: Hotels-50K instance and chain top-K (:mod:`dml.eval.hotels`).
* :func:`evaluate` with an :class:`Evaluation`: a model's metrics under a benchmark's protocol
  (:mod:`dml.eval.protocol`: ``self``, ``query-gallery``, ``hotels``).
* :func:`rerank_metrics`: DIML's structural re-ranking of the top K (:mod:`dml.eval.rerank`).
* :func:`knn`: the neighbour lists themselves. :func:`nmi`: k-means NMI. :func:`embed`: run a model over a dataset.

Ranking convention: (−score, gallery index), the query excluded by index; see :mod:`dml.eval.ranking`.
"""

from dml.eval.clustering import kmeans_assign, nmi
from dml.eval.embed import embed
from dml.eval.hotels import (
    evaluate_result_csv,
    hotel_metrics_from_ids,
    hotel_retrieval_metrics,
    hotel_topk_accuracy,
    knn_log_loss,
)
from dml.eval.neighbours import knn
from dml.eval.protocol import AUTO_PROTOCOL, PROTOCOL_ARRAY, PROTOCOLS, Evaluation, evaluate, resolve_protocol
from dml.eval.ranking import RankStatistics, rank_statistics, topk_lex
from dml.eval.rerank import embed_local, ranked_metrics, rerank, rerank_metrics
from dml.eval.retrieval import METRIC_NAMES, map_at_r_per_query, query_gallery_metrics, retrieval_metrics

__all__ = [
    "AUTO_PROTOCOL",
    "METRIC_NAMES",
    "PROTOCOLS",
    "PROTOCOL_ARRAY",
    "Evaluation",
    "RankStatistics",
    "embed",
    "embed_local",
    "evaluate",
    "evaluate_result_csv",
    "hotel_metrics_from_ids",
    "hotel_retrieval_metrics",
    "hotel_topk_accuracy",
    "kmeans_assign",
    "knn",
    "knn_log_loss",
    "map_at_r_per_query",
    "nmi",
    "query_gallery_metrics",
    "rank_statistics",
    "ranked_metrics",
    "rerank",
    "rerank_metrics",
    "resolve_protocol",
    "retrieval_metrics",
    "topk_lex",
]
