"""Re-ranking the top K of a global ranking by DIML's structural similarity, on any trained ``dml`` model.

Zhao, Rao, Wang, Lu & Zhou, "Towards Interpretable Deep Metric Learning with Structural Matching", ICCV 2021
(released code github.com/wl-zhao/DIML, ``evaluation/eval_diml.py``, ``test_diml.py``): rank the gallery by the
global cosine similarity :math:`S_\\text{glob}`, then re-sort only its first ``K`` candidates by
:math:`S_\\text{struct} + S_\\text{glob}` (:mod:`dml.structural`); the candidates after ``K`` keep their global
order. ``K = 0`` is the global ranking itself. Self-retrieval only (CUB, Cars196, SOP), ties of the global ranking
broken by gallery index as in :mod:`dml.eval.ranking`.

MAP@R from a ranked list (``R_q`` the number of other images of the query's class):
``r_counts="mlrc"`` is :func:`dml.eval.retrieval_metrics`'s definition
:math:`\\frac{1}{R_q}\\sum_{i \\le R_q} P_q(i)\\,\\mathrm{rel}_q(i)`; ``r_counts="released"`` is the released DIML
evaluation (``evaluation/metrics.py``), which counts ``R`` *including* the query and pushes the query to the
bottom of its own ranking, i.e. divides by and ranks up to :math:`R_q + 1`: slightly pessimistic (a query's
value falls by the factor :math:`R_q / (R_q + 1)` and gains only :math:`P_q(R_q + 1) / (R_q + 1)` when rank
:math:`R_q + 1` is a hit).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dml.eval.embed import _split_batch
from dml.eval.neighbours import knn
from dml.models.local import local_embeddings
from dml.structural import structural_similarity
from dml.utils.checks import check_choice

R_COUNTS = ("mlrc", "released")


def embed_local(
    model: torch.nn.Module, data: Any, *, grid: int = 4, batch_size: int = 256, device: Any = None
) -> tuple[Tensor, Tensor, np.ndarray]:
    """``(global (N, D), local (N, grid^2, D), labels (N,))`` of a dataset, in order, eval mode, no gradients."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    first = next(model.parameters(), None)
    device = torch.device(device) if device is not None else first.device if first is not None else "cpu"
    was_training = model.training
    model.eval()
    parts: list[tuple[Tensor, Tensor]] = []
    labels: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for batch in loader:
                images, batch_labels = _split_batch(batch)
                g, z = local_embeddings(model, images.to(device), grid=grid)
                parts.append((g.float().cpu(), z.float().cpu()))
                labels.append(np.asarray(torch.as_tensor(batch_labels).cpu()))
    finally:
        model.train(was_training)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), np.concatenate(labels)


def rerank(
    global_: Tensor, local: Tensor, *, k: int, length: int, pairs_per_chunk: int = 16384, **matching: Any
) -> Tensor:
    """Ranked lists ``(N, length)`` of gallery indices: the first ``k`` re-sorted by ``S_struct + S_glob``.

    ``global_`` (N, D) and ``local`` (N, R, D) are unit vectors (:func:`embed_local`); ``matching`` goes to
    :func:`dml.structural.structural_similarity` (``marginals``, ``epsilon``, ``iterations``, ``tol``). The
    Sinkhorn problems are solved in chunks of ``pairs_per_chunk`` on the embeddings' device (a GPU if there).
    Re-sorting is stable: equal scores keep their global order.
    """
    n = global_.shape[0]
    if not 0 <= k <= n - 1 or not 1 <= length <= n - 1:
        raise ValueError(
            f"k must be in 0..{n - 1} and length in 1..{n - 1} (the gallery minus the query); got {k}, {length}."
        )
    scores, order = knn(global_, k=max(length, k), metric="cosine")
    if k == 0:
        return order[:, :length]
    queries = torch.arange(n, device=order.device).repeat_interleave(k)
    candidates = order[:, :k].reshape(-1)
    struct = torch.empty(len(candidates), dtype=global_.dtype, device=global_.device)
    for start in range(0, len(candidates), pairs_per_chunk):
        q, c = queries[start : start + pairs_per_chunk], candidates[start : start + pairs_per_chunk]
        struct[start : start + len(q)] = structural_similarity(local[q], global_[q], local[c], global_[c], **matching)
    combined = struct.view(n, k) + scores[:, :k]
    resorted = torch.sort(combined, dim=1, descending=True, stable=True).indices
    top = torch.gather(order[:, :k], 1, resorted)
    return torch.cat([top, order[:, k:]], dim=1)[:, :length]


def ranked_metrics(
    neighbours: Tensor, labels: Any, *, ks: Iterable[int] = (1,), r_counts: str = "mlrc"
) -> dict[str, float]:
    """``recall@k`` and ``map@r`` of ranked lists ``(N, L)`` (self-retrieval, the query not in its list).

    Averages over the queries whose class has another member. ``L`` must reach every ``R_q`` (``R_q + 1`` with
    ``r_counts="released"``) and every ``k``; see the module docstring for the two ``R`` conventions.
    """
    check_choice(r_counts, R_COUNTS, name="r_counts")
    y = torch.as_tensor(np.asarray(labels)).to(neighbours.device)
    if neighbours.dim() != 2 or neighbours.shape[0] != len(y):
        raise ValueError(
            f"neighbours must be (N, L), one row per query of the {len(y)} labels; got {tuple(neighbours.shape)}."
        )
    _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1
    r_used = r + 1 if r_counts == "released" else r
    ks = tuple(int(k) for k in ks)
    if int(r_used.max()) > neighbours.shape[1] or max(ks) > neighbours.shape[1]:
        raise ValueError(
            f"The ranked lists have {neighbours.shape[1]} entries but the largest R is {int(r_used.max())} and the "
            f"largest k {max(ks)}; pass a longer length to rerank."
        )
    valid = r > 0
    rel = (y[neighbours] == y[:, None]).double()
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64, device=rel.device)
    within = ranks[None, :] <= r_used[:, None]
    precision = rel.cumsum(dim=1) / ranks
    map_r = (precision * rel * within).sum(dim=1) / r_used.clamp_min(1)
    out = {f"recall@{k}": float(rel[:, :k].amax(dim=1)[valid].mean()) for k in ks}
    out["map@r"] = float(map_r[valid].mean())
    return out


def rerank_metrics(
    global_: Tensor,
    local: Tensor,
    labels: Any,
    *,
    ks_rerank: Iterable[int] = (0, 100),
    ks: Iterable[int] = (1,),
    r_counts: str | Iterable[str] = "mlrc",
    **matching: Any,
) -> dict[int, dict[str, float]]:
    """For every ``K`` of ``ks_rerank``: ``recall@k``, MAP@R and ``seconds`` (the re-ranking's time) after
    re-ranking the top ``K`` (``K = 0``: the global ranking, the "before").

    ``r_counts``: ``"mlrc"`` (key ``map@r``), ``"released"`` (key ``map@r_released``) or both, e.g.
    ``("mlrc", "released")``; the re-ranking is computed once for all of them. ``matching`` goes to
    :func:`rerank` (``marginals``, ``epsilon``, ``iterations``, ``tol``, ``pairs_per_chunk``)."""
    conventions = (r_counts,) if isinstance(r_counts, str) else tuple(r_counts)
    for convention in conventions:
        check_choice(convention, R_COUNTS, name="r_counts")
    y = np.asarray(labels)
    _, counts = np.unique(y, return_counts=True)
    extra = 1 if "released" in conventions else 0
    ks, ks_rerank = tuple(ks), tuple(int(k) for k in ks_rerank)
    length = min(len(y) - 1, max(int(counts.max()) - 1 + extra, *ks, *ks_rerank))
    out = {}
    for k in ks_rerank:
        started = time.perf_counter()
        neighbours = rerank(global_, local, k=k, length=length, **matching)
        out[k] = {"seconds": time.perf_counter() - started}
        for convention in conventions:
            values = ranked_metrics(neighbours, y, ks=ks, r_counts=convention)
            out[k].update({key: v for key, v in values.items() if key != "map@r"})
            out[k]["map@r" if convention == "mlrc" else "map@r_released"] = values["map@r"]
    return out
