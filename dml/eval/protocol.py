"""Evaluation protocols: who queries whom, and :func:`evaluate`, the retrieval metrics of a model under one.

A model trained anywhere (the trainer, a notebook, a user's own loop) is evaluated in three lines::

    from dml.eval import Evaluation, evaluate
    metrics = evaluate(model, Evaluation.of(test_set))                              # self-retrieval
    metrics = evaluate(model, Evaluation.of(test_set, protocol="query-gallery"))    # In-Shop

Protocols (``protocol``; :func:`resolve_protocol` turns ``"auto"`` into the dataset's own one):

* ``self`` (CUB-200-2011, Cars196, SOP, synthetic data): every image of the evaluation split queries all the others,
  :func:`dml.eval.retrieval_metrics`: ``recall@k`` for ``k`` in ``ks``, ``map@r``, ``r_precision``, ``nmi``;
* ``query-gallery`` (In-Shop; Liu et al., "DeepFashion: Powering Robust Clothes Recognition and Retrieval with Rich
  Annotations", CVPR 2016): the evaluation split is embedded once and the images flagged ``is_query`` are ranked
  against the others only (``split="test"`` of :class:`dml.data.InShop` is queries then gallery),
  :func:`dml.eval.query_gallery_metrics`, with the same keys;
* ``hotels`` (Hotels-50K; Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset", AAAI 2019): the test
  photos (with their ``chain_labels``) are ranked against a ``gallery`` of the *training* images under the
  evaluation transform (same hotel ids), giving :func:`dml.eval.hotel_retrieval_metrics`'s ``instance@K`` (K from
  ``ks``), ``chain@1``, ``chain@3``, ``chain@5`` and ``num_queries_with_chain``, plus the ``include`` metrics of the
  same test-vs-train ranking from :func:`dml.eval.query_gallery_metrics` (``recall@k``, ``map@r``, ...).
  ``recall@K`` is not an alias of ``instance@K``: the released Hotels-50K code averages over *all* queries, so a
  test photo whose hotel has no training image on disk (a rotted URL) counts as a miss, while ``recall@K`` averages
  over the queries with a positive (``num_queries_without_positives`` counts the others), so
  ``instance@K = recall@K · (1 − num_queries_without_positives / num_queries)``; they are equal when every test
  hotel has a training image. Every ``include`` metric costs a ranking of the test photos against the whole
  training set (about a million images for the full release); ``nmi`` clusters both sets into as many clusters as
  hotels, so full-size runs should use ``include=("recall",)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dml.data.protocol import (
    AUTO_PROTOCOL,
    PROTOCOL_ARRAY,
    PROTOCOL_NAMES,
    PROTOCOLS,
    Evaluation,
    resolve_protocol,
)
from dml.eval.embed import embed
from dml.eval.hotels import CHAIN_KS, hotel_retrieval_metrics
from dml.eval.retrieval import query_gallery_metrics, retrieval_metrics

__all__ = [
    "AUTO_PROTOCOL",
    "DEFAULT_INCLUDE",
    "PROTOCOLS",
    "PROTOCOL_ARRAY",
    "PROTOCOL_NAMES",
    "EmbedFn",
    "Evaluation",
    "evaluate",
    "resolve_protocol",
]

#: The metrics :func:`evaluate` computes by default (see :mod:`dml.eval.retrieval`).
DEFAULT_INCLUDE = ("recall", "map@r", "r_precision", "nmi")

#: ``embed_fn(model, data, *, batch_size, device) -> (embeddings, labels)``, the test-time embedding.
EmbedFn = Callable[..., "tuple[torch.Tensor, np.ndarray]"]


def evaluate(
    model: torch.nn.Module,
    evaluation: Evaluation | Any,
    *,
    ks: Sequence[int] = (1, 2, 4, 8),
    include: Sequence[str] = DEFAULT_INCLUDE,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    embed_fn: EmbedFn | None = None,
    lone_queries: str = "exclude",
) -> dict[str, float | int]:
    """Retrieval metrics of ``model`` under ``evaluation.protocol`` (the protocols and their keys: module docstring).

    Args:
        model: Maps a batch of images to ``(B, D)`` embeddings; ranked by cosine similarity.
        evaluation: An :class:`Evaluation`, or a bare evaluation split (evaluated by self-retrieval).
        ks: The ``k`` of ``recall@k`` (and of ``instance@K`` for ``hotels``).
        include: The metrics of :mod:`dml.eval.retrieval` to compute (``recall``, ``map@r``, ``r_precision``,
            ``nmi``).
        batch_size: Images embedded at a time (for a dataset; a ``DataLoader`` is used as given).
        device: Where the model runs.
        seed: The seed of the k-means behind ``nmi``.
        embed_fn: ``embed_fn(model, data, *, batch_size, device) -> (embeddings, labels)``, the test-time embedding
            of a method that owns it (e.g. concatenated learners); default :func:`dml.eval.embed`.
        lone_queries: ``"exclude"`` or ``"miss"``: whether ``recall@k`` leaves out the queries without a positive
            or counts them as misses (:mod:`dml.eval.retrieval`).

    Returns:
        A dict of Python floats (counts stay ints).
    """
    if not isinstance(evaluation, Evaluation):
        evaluation = Evaluation.of(evaluation)
    embed_fn = embed if embed_fn is None else embed_fn
    ks, include = tuple(ks), tuple(include)
    embeddings, labels = embed_fn(model, evaluation.data, batch_size=batch_size, device=device)
    if evaluation.protocol == "self":
        metrics = retrieval_metrics(
            embeddings, labels, ks=ks, metric="cosine", include=include, seed=seed, lone_queries=lone_queries
        )
    elif evaluation.protocol == "query-gallery":
        mask = np.asarray(evaluation.is_query, dtype=bool)
        if len(mask) != len(labels):
            raise ValueError(
                f"is_query has {len(mask)} flags for {len(labels)} evaluation images; pass the mask "
                "of the evaluated split."
            )
        q = torch.from_numpy(mask)
        metrics = query_gallery_metrics(
            embeddings[q],
            labels[mask],
            embeddings[~q],
            labels[~mask],
            ks=ks,
            metric="cosine",
            include=include,
            seed=seed,
            lone_queries=lone_queries,
        )
    elif evaluation.protocol == "hotels":
        gallery, gallery_labels = embed_fn(model, evaluation.gallery, batch_size=batch_size, device=device)
        metrics = _hotel_metrics(
            evaluation,
            embeddings,
            labels,
            gallery,
            gallery_labels,
            ks=ks,
            include=include,
            seed=seed,
            lone_queries=lone_queries,
        )
    else:
        raise ValueError(f"Unknown evaluation protocol {evaluation.protocol!r}; use one of {list(PROTOCOL_NAMES)}.")
    return {key: value if isinstance(value, int) else float(value) for key, value in metrics.items()}


def _hotel_metrics(
    evaluation: Evaluation,
    embeddings: torch.Tensor,
    labels: np.ndarray,
    gallery: torch.Tensor,
    gallery_labels: np.ndarray,
    *,
    ks: tuple[int, ...],
    include: tuple[str, ...],
    seed: int,
    lone_queries: str = "exclude",
) -> dict[str, Any]:
    top = max(ks + CHAIN_KS)
    if top > len(gallery_labels):
        raise ValueError(
            f"Hotels-50K top-K accuracy needs K <= the gallery size ({len(gallery_labels)} training "
            f"images); ks is {list(ks)} and the chain accuracy uses K = {list(CHAIN_KS)}. Lower ks "
            "(eval.ks) or train on more images."
        )
    metrics = query_gallery_metrics(
        embeddings,
        labels,
        gallery,
        gallery_labels,
        ks=ks,
        metric="cosine",
        include=include,
        seed=seed,
        lone_queries=lone_queries,
    )
    metrics.update(
        hotel_retrieval_metrics(
            embeddings,
            gallery,
            labels,
            gallery_labels,
            evaluation.chain_labels,
            evaluation.gallery_chain_labels,
            metric="cosine",
            top=top,
            instance_ks=ks,
            chain_ks=CHAIN_KS,
        )
    )
    return metrics
