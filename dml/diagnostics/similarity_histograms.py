"""Histograms of positive and negative similarities (S_ap, S_an) on fixed bins, and the EPHN code's "Margin".

Xuan, Stylianou & Pless, "Improved Embeddings with Easy Positive Triplet Mining", WACV 2020, arXiv:1904.04370. Their
released code (github.com/littleredxh/EasyPositiveHardNegative, ``_code/Loss.py`` and ``main.py`` since the June
2020 commit d9bf740; the Sept 2019 initial code logged none of this) writes to TensorBoard, at every training
iteration and on the training batch:

* ``Pos_hist``: for each anchor its **easiest positive** ``S_ap = max_{p: y_p = y_a, S_ap <= 0.9999} S_ap``
  (near-duplicates skipped), kept where ``S_ap > 0``;
* ``Neg_hist``: for each anchor its **hardest negative** ``S_an = max_{n: y_n != y_a} S_an``, kept where
  ``S_an > 0`` (both histograms get the values 0 and 1 appended so that TensorBoard's bins span [0, 1]);
* ``Margin = mean_a(S_ap) - mean_a(S_an)``, over all anchors of the batch.

The same (S_ap, S_an) pair per anchor is the triplet space of Xuan, Stylianou, Liu & Pless, "Hard negative examples
are hard, but useful", ECCV 2020, arXiv:2007.12749 (:mod:`dml.diagnostics.triplet_space`).

:func:`similarity_histograms` offers two variants:

* ``pairs="anchor"`` (the one the released code logs): one ``S_ap`` and one ``S_an`` per anchor, from
  :func:`dml.diagnostics.triplet_space` (near-duplicate positives above 0.9999 skipped, as theirs). Each histogram
  holds every anchor that has such a partner (not only the positive values), and ``margin`` is
  ``mean(S_ap) - mean(S_an)``, each mean over the anchors that have the partner. Where every anchor has both (the
  P x K batches of the released code) this is exactly their ``Margin``; they average over all anchors even when an
  anchor has no valid positive (the gathered value is then an arbitrary entry of the row).
* ``pairs="all"``: every unordered pair ``i < j`` once, positives (same label) in ``S_ap``, negatives in ``S_an``
  (no duplicate filter), and ``margin`` = mean over positive pairs minus mean over negative pairs. Computed in row
  blocks, O(chunk_size x N) memory.

Bins are fixed: ``bins`` equal-width bins on [-1, 1] (cosine similarity cannot leave it), so histograms of different
epochs or models are directly comparable. Values are clipped into [-1, 1] against rounding; a value on an inner edge
goes to the bin on its right, and 1.0 into the last bin (as ``numpy.histogram``).

Note the released code computes these on each *training batch* in train mode; applied to a whole set after an epoch
(:func:`dml.diagnostics.epoch_diagnostics`), both maxima run over far more images (``S_ap`` and ``S_an`` can only
grow), so the numbers are not comparable with per-batch logs, only across epochs of the same set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dml.diagnostics._inputs import as_label_array, check_positive_int
from dml.diagnostics.triplet_space import TripletSpace, triplet_space
from dml.utils import check_embeddings_and_labels
from dml.utils.checks import check_choice

__all__ = [
    "PAIR_MODES",
    "SimilarityHistograms",
    "anchor_histograms",
    "histogram_edges",
    "histograms_from_history",
    "plot_similarity_histograms",
    "similarity_histograms",
]

PAIR_MODES = ("anchor", "all")


def histogram_edges(bins: int) -> np.ndarray:
    """The ``bins + 1`` fixed edges on [-1, 1] that every histogram of this module uses."""
    return np.linspace(-1.0, 1.0, check_positive_int(bins, "bins") + 1)


@dataclass(frozen=True)
class SimilarityHistograms:
    """Counts of positive (``S_ap``) and negative (``S_an``) cosine similarities on fixed bins over [-1, 1].

    Attributes:
        edges: the ``bins + 1`` bin edges (:func:`histogram_edges`).
        positive_counts, negative_counts: ``bins`` integer counts each.
        mean_positive, mean_negative: exact means of the values (not from the bins); NaN if there is none.
        pairs: ``"anchor"`` (one easiest positive and hardest negative per anchor) or ``"all"`` (every pair).
    """

    edges: np.ndarray
    positive_counts: np.ndarray
    negative_counts: np.ndarray
    mean_positive: float
    mean_negative: float
    pairs: str

    @property
    def margin(self) -> float:
        """The EPHN code's "Margin": ``mean(S_ap) - mean(S_an)``."""
        return self.mean_positive - self.mean_negative

    @property
    def centres(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    def density(self, which: str) -> np.ndarray:
        """``"positive"`` or ``"negative"`` counts as a probability density over [-1, 1] (zeros if empty)."""
        check_choice(which, ("positive", "negative"), name="which")
        counts = self.positive_counts if which == "positive" else self.negative_counts
        total = counts.sum()
        return counts / (total * np.diff(self.edges)) if total else np.zeros(len(counts))


def similarity_histograms(
    embeddings: Any,
    labels: Any,
    *,
    pairs: str = "anchor",
    bins: int = 40,
    duplicate_threshold: float | None = 0.9999,
    chunk_size: int = 2048,
) -> SimilarityHistograms:
    """Histograms of ``S_ap`` and ``S_an`` of a labelled set (see the module docstring for both variants).

    Args:
        embeddings: (N, D) array or tensor; L2-normalised here (cosine similarity).
        labels: N class ids.
        pairs: ``"anchor"`` (what the EPHN code logs) or ``"all"``.
        bins: number of equal-width bins on [-1, 1].
        duplicate_threshold: ``pairs="anchor"`` only: positives more similar than this are skipped, as in the
            released code (``None`` keeps them).
        chunk_size: rows per block; memory is O(chunk_size x N).
    """
    check_choice(pairs, PAIR_MODES, name="pairs")
    edges = histogram_edges(bins)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if pairs == "anchor":
        label_array = as_label_array(labels)
        if not np.issubdtype(label_array.dtype, np.integer):  # triplet_space needs numbers; any label type works
            label_array = np.unique(label_array, return_inverse=True)[1].reshape(label_array.shape)
        space = triplet_space(embeddings, label_array, duplicate_threshold=duplicate_threshold, chunk_size=chunk_size)
        return anchor_histograms(space, bins=bins)

    emb = embeddings.detach() if isinstance(embeddings, Tensor) else torch.as_tensor(np.asarray(embeddings))
    label_array = as_label_array(labels)
    check_embeddings_and_labels(emb, label_array)
    lab = torch.as_tensor(np.unique(label_array, return_inverse=True)[1].reshape(-1), device=emb.device)
    if not emb.is_floating_point():
        raise ValueError(f"embeddings must be floating point; got {emb.dtype}.")
    unit = F.normalize(emb if emb.dtype == torch.float64 else emb.float(), p=2, dim=1)
    n = len(unit)
    positive = np.zeros(bins, dtype=np.int64)
    negative = np.zeros(bins, dtype=np.int64)
    sums = [0.0, 0.0]
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sim = unit[start:stop] @ unit[start + 1 :].t()  # column j is item start + 1 + j
        rows = torch.arange(start, stop, device=unit.device)[:, None]
        cols = torch.arange(start + 1, n, device=unit.device)[None, :]
        upper = cols > rows
        same = (lab[start:stop, None] == lab[None, start + 1 :]) & upper
        different = ~same & upper
        for slot, (mask, counts) in enumerate(((same, positive), (different, negative))):
            values = sim[mask]
            counts += _counts(values, edges)
            sums[slot] += float(values.double().sum())
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    return SimilarityHistograms(
        edges=edges,
        positive_counts=positive,
        negative_counts=negative,
        mean_positive=sums[0] / n_pos if n_pos else float("nan"),
        mean_negative=sums[1] / n_neg if n_neg else float("nan"),
        pairs=pairs,
    )


def anchor_histograms(space: TripletSpace, *, bins: int = 40) -> SimilarityHistograms:
    """The ``pairs="anchor"`` histograms of an already computed :class:`~dml.diagnostics.TripletSpace`."""
    edges = histogram_edges(bins)
    s_ap, s_an = space.s_ap[~np.isnan(space.s_ap)], space.s_an[~np.isnan(space.s_an)]
    return SimilarityHistograms(
        edges=edges,
        positive_counts=_counts(torch.from_numpy(s_ap), edges),
        negative_counts=_counts(torch.from_numpy(s_an), edges),
        mean_positive=float(np.mean(s_ap, dtype=np.float64)) if len(s_ap) else float("nan"),
        mean_negative=float(np.mean(s_an, dtype=np.float64)) if len(s_an) else float("nan"),
        pairs="anchor",
    )


def _counts(values: Tensor, edges: np.ndarray) -> np.ndarray:
    inner = torch.as_tensor(edges[1:-1], dtype=torch.float64, device=values.device)
    index = torch.bucketize(values.double().clamp(-1.0, 1.0), inner, right=True)
    return torch.bincount(index, minlength=len(edges) - 1).cpu().numpy().astype(np.int64)


def histograms_from_history(
    history: Sequence[Mapping[str, Any]], *, prefix: str = "", pairs: str = "anchor"
) -> dict[int, SimilarityHistograms]:
    """Rebuild per-epoch :class:`SimilarityHistograms` from ``metrics.json`` records of :func:`epoch_diagnostics`.

    ``history`` is the list under ``"epochs"``; records without ``{prefix}s_ap_hist`` are skipped. The means come
    back from ``{prefix}mean_s_ap``/``{prefix}mean_s_an`` (NaN where they were not finite); ``pairs`` names the
    variant the histograms were computed with (the records do not store it).
    """
    out: dict[int, SimilarityHistograms] = {}
    for record in history:
        if f"{prefix}s_ap_hist" not in record:
            continue
        positive = np.asarray(record[f"{prefix}s_ap_hist"], dtype=np.int64)
        negative = np.asarray(record[f"{prefix}s_an_hist"], dtype=np.int64)
        means = [record.get(f"{prefix}mean_s_ap"), record.get(f"{prefix}mean_s_an")]
        means = [float("nan") if value is None else float(value) for value in means]
        out[int(record["epoch"])] = SimilarityHistograms(
            edges=histogram_edges(len(positive)),
            positive_counts=positive,
            negative_counts=negative,
            mean_positive=means[0],
            mean_negative=means[1],
            pairs=pairs,
        )
    if not out:
        raise ValueError(
            f"No record in the history has the key {prefix + 's_ap_hist'!r}; was epoch_diagnostics "
            f"called with prefix={prefix!r} and histograms=True?"
        )
    return out


def plot_similarity_histograms(
    histograms: SimilarityHistograms | Sequence[SimilarityHistograms] | Mapping[Any, SimilarityHistograms],
    *,
    ax: Any = None,
    style: str = "ridge",
    overlap: float = 0.8,
    cmap: str = "viridis",
) -> Any:
    """Draw ``S_ap`` and ``S_an`` histograms (as densities) of one or several sets, e.g. one per epoch.

    Args:
        histograms: one :class:`SimilarityHistograms`, a sequence, or a mapping label -> histograms (such as the
            ``{epoch: ...}`` dict of :func:`histograms_from_history`), drawn in order.
        style: ``"ridge"``: one row per entry, first at the top, positives (blue) and negatives (red) filled, a
            short tick at each mean; ``"overlay"``: all on one axis, coloured along ``cmap`` in order, positives
            solid and negatives dashed.
        overlap: ridge only: how far a row's curve may reach into the row above (in row heights).
    Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    check_choice(style, ("ridge", "overlay"), name="style")
    if isinstance(histograms, SimilarityHistograms):
        histograms = {"": histograms}
    elif not isinstance(histograms, Mapping):
        histograms = dict(enumerate(histograms))
    if not histograms:
        raise ValueError("histograms is empty; pass at least one SimilarityHistograms.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 1.2 + 0.45 * len(histograms) if style == "ridge" else 3.4))
    items = list(histograms.items())
    if style == "overlay":
        colours = plt.get_cmap(cmap)(np.linspace(0.0, 0.9, len(items)))
        for colour, (name, hist) in zip(colours, items):
            ax.plot(hist.centres, hist.density("positive"), color=colour, lw=1.3, label=f"{name}")
            ax.plot(hist.centres, hist.density("negative"), color=colour, lw=1.3, ls="--")
        ax.set(xlim=(-1, 1), xlabel="cosine similarity", ylabel="density")
        ax.text(0.02, 0.96, "solid: $S_{ap}$, dashed: $S_{an}$", transform=ax.transAxes, va="top", fontsize=8)
        if any(str(name) for name, _ in items):
            ax.legend(fontsize=7, frameon=False, ncol=2 if len(items) > 6 else 1)
        return ax
    peak = max(max(h.density("positive").max(), h.density("negative").max()) for _, h in items) or 1.0
    scale = (1.0 + overlap) / peak
    for row, (_name, hist) in enumerate(items):
        base = len(items) - 1 - row
        for which, colour in (("positive", "tab:blue"), ("negative", "tab:red")):
            curve = base + scale * hist.density(which)
            ax.fill_between(hist.centres, base, curve, color=colour, alpha=0.35, lw=0, zorder=2 * row)
            ax.plot(hist.centres, curve, color=colour, lw=0.9, zorder=2 * row + 1)
        for mean, colour in ((hist.mean_positive, "tab:blue"), (hist.mean_negative, "tab:red")):
            if np.isfinite(mean):
                ax.vlines(mean, base, base + 0.35, color=colour, lw=1.5, zorder=2 * row + 1)
    ax.set_yticks(np.arange(len(items))[::-1], [str(name) for name, _ in items])
    ax.set(xlim=(-1, 1), ylim=(-0.1, len(items) + overlap), xlabel="cosine similarity")
    ax.plot([], [], color="tab:blue", label="$S_{ap}$")
    ax.plot([], [], color="tab:red", label="$S_{an}$")
    ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2)
    return ax
