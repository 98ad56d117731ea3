"""The k nearest neighbours themselves, for looking at retrieval results (the metrics never need the lists)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dml.eval.inputs import as_embedding_tensor, check_chunk_size, check_metric, score_operands
from dml.eval.ranking import DEFAULT_MAX_BYTES, auto_chunk_size, topk_lex


def knn(
    query: Any, gallery: Any = None, *, k: int, metric: str = "cosine", chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of every query, in the ranking order of :mod:`dml.eval.ranking`.

    Args:
        query: ``(Nq, D)`` embeddings (NumPy or torch, CPU or CUDA).
        gallery: ``(Ng, D)`` embeddings, or ``None`` for self-retrieval: the gallery is ``query`` and every query
            is excluded from its own list by index.
        k: Neighbours per query (at most the gallery size, minus one in self-retrieval).
        metric: ``"cosine"`` or ``"euclidean"``, as in :func:`dml.eval.retrieval_metrics`.
        chunk_size: Queries per chunk; ``None`` picks it from a 256 MB budget for the chunk's score matrix.

    Returns:
        ``(scores, indices)``, both ``(Nq, k)`` on the query's device, sorted by (−score, gallery index). For
        ``"euclidean"`` the score is ``q·g − ‖g‖²/2``, which orders the gallery like the squared distance.
    """
    check_metric(metric)
    chunk_size = check_chunk_size(chunk_size)
    q = as_embedding_tensor(query, np.zeros(len(query)), name="query")
    g = None if gallery is None else as_embedding_tensor(gallery, np.zeros(len(gallery)), name="gallery").to(q)
    a, b, offsets = score_operands(q, g, metric)
    available = b.shape[0] - (1 if gallery is None else 0)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= available:
        raise ValueError(
            f"k must be an integer between 1 and {available} (the gallery size"
            f"{' minus the query itself' if gallery is None else ''}); got k={k!r}."
        )
    rows = chunk_size or auto_chunk_size(
        b.shape[0], bytes_per_row=b.shape[0] * a.element_size(), max_bytes=DEFAULT_MAX_BYTES
    )
    scores, indices = [], []
    for start in range(0, a.shape[0], rows):
        block = a[start : start + rows] @ b.T
        if offsets is not None:
            block -= offsets
        if gallery is None:
            own = torch.arange(start, start + block.shape[0], device=block.device)
            block[torch.arange(block.shape[0], device=block.device), own] = -torch.inf
        top_scores, top_indices = topk_lex(block, int(k))
        scores.append(top_scores)
        indices.append(top_indices)
    return torch.cat(scores), torch.cat(indices)
