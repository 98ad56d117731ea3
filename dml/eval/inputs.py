"""Argument checking and conversion shared by the evaluation functions."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from dml.utils.checks import as_embedding_tensor, as_label_array, check_choice, check_positive_int, encode_labels  # noqa: F401 (re-exported)

METRICS = ("cosine", "euclidean")


def check_metric(metric: str) -> str:
    return check_choice(metric, METRICS, name="metric")


def check_ks(ks: Iterable[int] | int) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (int(ks),)
    if isinstance(ks, (bool, float, str)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks must be an integer >= 1 or a sequence of them, e.g. ks=(1, 2, 4, 8); got ks={ks!r}.")
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks is empty; pass at least one k for Recall@k, e.g. ks=(1, 2, 4, 8).")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"Every k in ks must be an integer >= 1 (Recall@k looks at the k nearest neighbours); got ks={ks!r}."
            )
    return tuple(dict.fromkeys(int(k) for k in ks))


def check_include(include: Iterable[str] | str, valid: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(include, str):
        include = (include,)
    include = tuple(include)
    unknown = [name for name in include if name not in valid]
    if unknown:
        raise ValueError(
            f"Unknown metric name(s) in include: {', '.join(map(repr, unknown))}. "
            f"Valid names are {', '.join(map(repr, valid))} ('recall' gives recall@k for every k)."
        )
    return include


def check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    return check_positive_int(chunk_size, "chunk_size")


def score_operands(
    query: torch.Tensor, gallery: torch.Tensor | None, metric: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Return ``(A, B, offsets)`` with ``A[i] @ B[j] - offsets[j]`` ranking the gallery for query ``i``.

    ``gallery=None`` means self-retrieval; ``B`` is then ``A`` itself (one copy).

    * cosine: both L2-normalised (a zero vector stays zero), no offsets; the score is the cosine similarity.
    * euclidean: the raw vectors and ``offsets = ||g||²/2``; ``q·g - ||g||²/2 = (||q||² - ||q - g||²)/2``, so for
      a fixed query the order is that of the squared L2 distance.
    """
    if metric == "cosine":
        a = torch.nn.functional.normalize(query, dim=1)
        b = a if gallery is None else torch.nn.functional.normalize(gallery, dim=1)
        return a, b, None
    b = query if gallery is None else gallery
    return query, b, 0.5 * (b * b).sum(dim=1)
