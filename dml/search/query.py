"""``dml search``: the top-k gallery items of each query image, exact by default.

Exact search ranks the whole gallery with :func:`~dml.search.exact.exact_topk`, the chunked ranking of
:mod:`dml.eval.ranking` (what :func:`dml.eval.knn` computes, on the index's already normalised embeddings):
cosine similarity, ties broken by the lower gallery row, so the lists are those the evaluation's metrics are
computed from. An index built with an approximate (faiss) index is searched with it (``exact=False``), its
recall against exact search having been measured when it was built.

Before anything is embedded, the run used for the queries is checked against the index: the same model weights
(fingerprint) and the same preprocessing, else :class:`~dml.search.index.IndexMismatchError` names the
difference. Unreadable query images are skipped with a warning and listed in the result.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml.search import approximate
from dml.search.embedding import embed_files
from dml.search.exact import exact_topk
from dml.search.explain import region_vector
from dml.search.images import Items, query_items
from dml.search.index import Index, IndexMismatchError, open_index
from dml.search.preprocess import Preprocessing
from dml.search.run import SavedRun, open_run
from dml.train.build import resolve_device


@dataclass
class SearchResult:
    """The ranked gallery ``rows`` and their ``scores`` (both ``(Q, k)``) of the readable ``queries``, the query
    ``embeddings``, the ``index`` searched, the ``run`` that embedded them, and the ``skipped`` query files."""

    index: Index
    run: SavedRun
    queries: Items
    embeddings: np.ndarray
    scores: np.ndarray
    rows: np.ndarray
    exact: bool
    skipped: list[dict[str, str]] = field(default_factory=list)
    region: tuple[float, ...] | None = None

    @property
    def top_k(self) -> int:
        return int(self.rows.shape[1])


def check_match(index: Index, run: SavedRun) -> None:
    """:class:`IndexMismatchError` unless ``run`` has the index's model weights and preprocessing."""
    recorded = index.manifest["model"]
    if run.fingerprint != recorded["fingerprint"]:
        raise IndexMismatchError(
            f"The model of {run.folder} (weights {run.fingerprint[:19]}…, epoch {run.epoch}) is not the one that built "
            f"the index {index.folder} (weights {recorded['fingerprint'][:19]}…, run {recorded['run']}, epoch "
            f"{recorded['epoch']}); search with that run (--run), or rebuild the index with this one."
        )
    differences = Preprocessing.of(run.config).differences(index.preprocessing)
    if differences:
        raise IndexMismatchError(
            f"The preprocessing of {run.folder} differs from the index {index.folder}'s ({'; '.join(differences)}; "
            "this run vs the index); its embeddings would not be comparable. Search with the run that built the index."
        )


def search(
    index_folder: str | Path,
    queries: list[str | Path],
    *,
    top_k: int = 100,
    run: str | Path | None = None,
    exact: bool | None = None,
    batch_size: int = 64,
    device: str = "auto",
    region: Sequence[float] | None = None,
) -> SearchResult:
    """Search the index ``index_folder`` with the query images ``queries`` (files or folders).

    ``run`` defaults to the run recorded in the index; ``exact`` to the index's own search (exact unless it was
    built approximate); ``top_k`` is clipped to the gallery size. ``region`` ``(x0, y0, x1, y1)``, pixels of each
    query file: rank by the similarity that region carries, :math:`s_R` (:mod:`dml.search.explain`).
    """
    index = open_index(index_folder)
    target = resolve_device(device)
    model = open_run(run if run is not None else index.manifest["model"]["checkpoint"], device=target)
    check_match(index, model)
    items = query_items(queries)
    with tempfile.TemporaryDirectory(prefix="dml-search-") as work:
        store, failed = embed_files(
            model.model,
            index.preprocessing,
            items.paths,
            work=Path(work),
            plan={"count": len(items)},
            batch_size=batch_size,
            device=target,
        )
        keep = np.ones(len(items), dtype=bool)
        keep[list(failed)] = False
        embeddings = np.array(store[keep])
    skipped = [{"path": str(items.paths[row]), "reason": reason} for row, reason in sorted(failed.items())]
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable query image(s): "
            + "; ".join(s["reason"] for s in skipped[:3])
            + (" ..." if len(skipped) > 3 else "")
            + "; they are listed in results.json.",
            RuntimeWarning,
            stacklevel=2,
        )
    k = min(int(top_k), len(index.items))
    kept = items.subset(keep)
    if region is None:
        scores, rows = rank(index, embeddings, k, exact=exact)
    else:  # rank by q_R / |q_R|, then scale the cosines to s_R = q_R . e_b
        vectors = torch.stack([region_vector(model.model, index.preprocessing, p, region) for p in kept.paths])
        norms = vectors.norm(dim=1, keepdim=True)
        scores, rows = rank(index, (vectors / norms).float().numpy(), k, exact=exact)
        scores = scores * norms.numpy()
    use_exact = exact if exact is not None else index.manifest["search"] == "exact"
    box = None if region is None else tuple(float(v) for v in region)
    return SearchResult(index, model, kept, embeddings, scores, rows, use_exact, skipped, box)


def rank(index: Index, queries: np.ndarray, k: int, *, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, gallery rows)`` of the top ``k`` for each query embedding: exact
    (:func:`~dml.search.exact.exact_topk`) unless the index is approximate and ``exact`` is not ``True``."""
    faiss_index = None if exact else index.approximate_index()
    if faiss_index is not None:
        scores, rows = approximate.approximate_search(faiss_index, queries, k)
        return scores, rows
    scores, rows = exact_topk(torch.from_numpy(np.asarray(queries, dtype=np.float32)), index.gallery(), k)
    return scores.numpy(), rows.numpy()


def describe(result: SearchResult, row: int) -> dict[str, Any]:
    """Gallery row ``row`` as a dict: ``row``, ``id``, ``path``, ``label`` and its extra columns (e.g. ``chain``)."""
    items = result.index.items
    record = {"row": int(row), "id": int(items.ids[row]), "path": str(items.paths[row]), "label": items.labels[row]}
    record.update({k: v[row] for k, v in items.extra.items()})
    return record
