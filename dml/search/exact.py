"""Exact top-k search of an index: the suite's chunked ranking on a gallery stored L2-normalised."""

from __future__ import annotations

import torch

from dml.eval.ranking import DEFAULT_MAX_BYTES, auto_chunk_size, topk_lex


def exact_topk(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact top ``k`` of every query against the **unit-normalised** ``gallery`` by cosine similarity, in the
    ranking order of :mod:`dml.eval.ranking` (−score, then the lower gallery row): chunks of queries against the whole
    gallery, each block's score matrix bounded by ``max_bytes`` and reduced by :func:`dml.eval.ranking.topk_lex`.

    This is :func:`dml.eval.knn` for a gallery stored normalised (an index's), without the normalised copy of the
    gallery that knn makes: at Hotels-50K scale that copy alone is 1 GB (``benchmarks/bench_search.py``).
    """
    q = torch.nn.functional.normalize(queries.to(gallery), dim=1)
    chunk = auto_chunk_size(
        gallery.shape[0], bytes_per_row=gallery.shape[0] * gallery.element_size(), max_bytes=max_bytes
    )
    scores, rows = [], []
    for start in range(0, q.shape[0], chunk):
        top_scores, top_rows = topk_lex(q[start : start + chunk] @ gallery.T, int(k))
        scores.append(top_scores)
        rows.append(top_rows)
    return torch.cat(scores), torch.cat(rows)
