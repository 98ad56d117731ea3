"""Per-epoch diagnostics for the trainer's ``on_epoch_end`` hook, as JSON-safe numbers, and their plots.

One call embeds a dataset and returns, under ``{prefix}<name>`` keys:

* ``hard_ratio``: the hard-triplet ratio ``hn_ratio`` of Xuan, Stylianou, Liu & Pless, "Hard negative examples are
  hard, but useful", ECCV 2020, arXiv:2007.12749 (:func:`dml.diagnostics.hard_triplet_ratio`);
* ``margin``, ``mean_s_ap``, ``mean_s_an``, and ``s_ap_hist``/``s_an_hist`` (lists of ``bins`` counts on fixed
  edges over [-1, 1]): the S_ap/S_an histograms and "Margin" that the code of Xuan, Stylianou & Pless, "Improved
  Embeddings with Easy Positive Triplet Mining", WACV 2020, arXiv:1904.04370, logs
  (:mod:`dml.diagnostics.similarity_histograms`; ``pairs="anchor"`` by default, as theirs);
* ``rho@k`` for each requested ``k``: the spectral decay of Roth et al., "Revisiting Training Strategies and
  Generalization Performance in Deep Metric Learning", ICML 2020, arXiv:2002.08473
  (:mod:`dml.diagnostics.spectrum`);
* ``pi_intra``, ``pi_inter``, ``pi_ratio``: their embedding-space density (:mod:`dml.diagnostics.density`);
* ``beta``, ``beta_std``, ``beta_min``, ``beta_max`` (:func:`margin_beta`, from the loss rather than the embedding):
  the learned boundary β of the margin loss of Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters in Deep
  Embedding Learning", ICCV 2017, arXiv:1706.07567, summarised over its entries (one per class, or one scalar);
  :class:`dml.reproduce.MarginBetaLog` records it through the trainer's ``on_loss_built`` hook;
* ``mean_similarity``: the mean cosine similarity over all pairs of distinct images, the plainest collapse
  indicator (1 when every embedding is the same direction), computed in O(N D) as
  ``(‖Σ_i x̂_i‖² − N) / (N (N − 1))`` with ``x̂_i = x_i / ‖x_i‖``. Unlike the hard ratio it stays defined after a
  collapse, when no anchor has a non-duplicate positive left.

Non-finite numbers (e.g. a NaN hard ratio when no anchor has both a positive and a negative) become ``None`` so that
``metrics.json`` stays strict JSON. Usage with the trainer::

    hook = diagnostics_callback({"train": train_set, "test": test_set})
    dml.train.train(config, on_epoch_end=hook)      # adds train_hard_ratio, test_rho@1, ... to every epoch
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, as_label_array, check_positive_int
from dml.diagnostics.density import embedding_density
from dml.diagnostics.similarity_histograms import (
    anchor_histograms,
    histograms_from_history,
    plot_similarity_histograms,
    similarity_histograms,
)
from dml.diagnostics.spectrum import spectral_decay
from dml.diagnostics.triplet_space import triplet_space

__all__ = [
    "diagnostics_callback",
    "embedding_diagnostics",
    "epoch_diagnostics",
    "margin_beta",
    "mean_pairwise_similarity",
    "plot_epoch_curves",
    "plot_epoch_diagnostics",
]


def embedding_diagnostics(
    embeddings: Any,
    labels: Any,
    *,
    prefix: str = "",
    pairs: str = "anchor",
    bins: int = 40,
    histograms: bool = True,
    spectrum_ks: Sequence[int] = (1,),
    density: bool = True,
    max_points: int | None = None,
    seed: int = 0,
    chunk_size: int = 2048,
) -> dict[str, float | list[int] | None]:
    """The per-epoch numbers of a labelled set of embeddings (see the module docstring for the keys).

    Args:
        embeddings, labels: (N, D) embeddings and N labels.
        prefix: put before every key, e.g. ``"train_"``, so several sets fit in one epoch record.
        pairs, bins: the histogram variant and bin count (:func:`~dml.diagnostics.similarity_histograms`); the
            ``margin`` and means follow ``pairs``, the hard ratio is always per anchor.
        histograms: include the two count lists (``2 x bins`` integers per epoch).
        spectrum_ks: one ``rho@k`` per entry (``()`` for none); each ``k`` must be at most ``min(N, D)``.
        density: include ``pi_intra``, ``pi_inter`` and ``pi_ratio`` (needs two classes and one class with two
            images).
        max_points: use a random subset of this many rows (``numpy.random.default_rng(seed)``, no replacement)
            when the set is larger; ``None`` uses every row. The pairwise parts cost O(N² D).
    """
    x = as_float64_matrix(embeddings, labels, min_rows=2)
    y = np.unique(as_label_array(labels).reshape(-1), return_inverse=True)[1].reshape(-1)  # any label type
    if max_points is not None and len(x) > check_positive_int(max_points, "max_points", minimum=2):
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_points, replace=False))
        x, y = x[keep], y[keep]
    space = triplet_space(x, y, chunk_size=chunk_size)
    if pairs == "anchor":
        hist = anchor_histograms(space, bins=bins)
    else:
        hist = similarity_histograms(x, y, pairs=pairs, bins=bins, chunk_size=chunk_size)
    out: dict[str, Any] = {
        "hard_ratio": space.hard_ratio,
        "margin": hist.margin,
        "mean_s_ap": hist.mean_positive,
        "mean_s_an": hist.mean_negative,
        "mean_similarity": mean_pairwise_similarity(x),
    }
    if histograms:
        out["s_ap_hist"] = hist.positive_counts.tolist()
        out["s_an_hist"] = hist.negative_counts.tolist()
    for k in spectrum_ks:
        out[f"rho@{k}"] = spectral_decay(x, k=k).rho
    if density:
        result = embedding_density(x, y)
        out.update(pi_intra=result.pi_intra, pi_inter=result.pi_inter, pi_ratio=result.pi_ratio)
    return {prefix + key: _json_safe(value) for key, value in out.items()}


def mean_pairwise_similarity(embeddings: Any) -> float:
    """Mean cosine similarity over the ``N (N − 1)`` ordered pairs of distinct rows, in O(N D):
    ``(‖Σ_i x̂_i‖² − N) / (N (N − 1))`` with ``x̂_i = x_i / ‖x_i‖``."""
    x = as_float64_matrix(embeddings, None, min_rows=2)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(
            "an embedding is the zero vector, so its cosine similarity is undefined; check the model "
            "output (a dead ReLU before the embedding layer?)."
        )
    total = (x / norms).sum(axis=0)
    n = len(x)
    return float((total @ total - n) / (n * (n - 1)))


def margin_beta(loss: Any, *, prefix: str = "") -> dict[str, float]:
    """The margin loss's learned boundary β (Wu et al. 2017; :class:`dml.losses.MarginLoss`) as epoch numbers.

    With entries :math:`\\beta_1, \\dots, \\beta_C` (one per training class, or ``C = 1`` for a scalar β):
    ``beta`` = :math:`\\frac{1}{C} \\sum_c \\beta_c`, ``beta_std`` (population, 0 for a scalar), ``beta_min``,
    ``beta_max``, each key after ``prefix``. ``loss`` is any module with a ``beta`` tensor.
    """
    beta = getattr(loss, "beta", None)
    if not hasattr(beta, "detach"):
        raise ValueError(
            f"{type(loss).__name__} has no learned boundary beta to record; margin_beta needs the margin loss "
            "(loss.name: margin)."
        )
    values = beta.detach().double().cpu().numpy().reshape(-1)
    if not len(values):
        raise ValueError("The margin loss's beta is empty; check loss.kwargs.num_classes.")
    out = {"beta": values.mean(), "beta_std": values.std(), "beta_min": values.min(), "beta_max": values.max()}
    return {prefix + key: _json_safe(value) for key, value in out.items()}


def epoch_diagnostics(
    model: Any, dataset: Any, *, batch_size: int = 256, device: Any = None, **kwargs: Any
) -> dict[str, float | list[int] | None]:
    """Embed ``dataset`` with ``model`` (:func:`dml.eval.embed`, eval mode, no gradients) and return
    :func:`embedding_diagnostics` of the result (``kwargs`` go there: ``prefix``, ``pairs``, ``bins``, ...)."""
    from dml.eval import embed

    embeddings, labels = embed(model, dataset, batch_size=batch_size, device=device)
    return embedding_diagnostics(embeddings, labels, **kwargs)


def diagnostics_callback(
    datasets: Mapping[str, Any], *, batch_size: int = 256, every: int = 1, last: int | None = None, **kwargs: Any
) -> Callable[[int, Any], dict[str, Any]]:
    """An ``on_epoch_end(epoch, model)`` hook for :func:`dml.train.train` recording :func:`epoch_diagnostics` of
    every dataset, with keys prefixed ``"{name}_"`` (e.g. ``{"train": ..., "test": ...}`` gives ``train_rho@1``).

    Args:
        datasets: the sets to embed, by name.
        batch_size: the embedding batch size.
        every: diagnose only epochs ``e`` with ``e % every == 0`` (and ``last``); other epochs record nothing.
            ``every <= 1`` diagnoses every epoch.
        last: the run's last epoch, always diagnosed (``None``: no extra epoch).
        kwargs: passed to :func:`embedding_diagnostics` (``pairs``, ``bins``, ``histograms``, ...).
    """
    if not datasets:
        raise ValueError("datasets is empty; pass e.g. {'train': train_set, 'test': test_set}.")
    if "prefix" in kwargs:
        raise ValueError("diagnostics_callback sets the prefix from each dataset's name; do not pass prefix.")
    if not isinstance(every, int) or isinstance(every, bool):
        raise TypeError(f"every must be an int; got {every!r}. Pass e.g. every=10 to diagnose every 10th epoch.")

    def on_epoch_end(epoch: int, model: Any) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if every > 1 and epoch % every != 0 and epoch != last:
            return record
        for name, dataset in datasets.items():
            record.update(epoch_diagnostics(model, dataset, batch_size=batch_size, prefix=f"{name}_", **kwargs))
        return record

    return on_epoch_end


def _json_safe(value: Any) -> Any:
    if isinstance(value, list):
        return [int(v) for v in value]
    value = float(value)
    return value if math.isfinite(value) else None


def plot_epoch_curves(
    history: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str] = ("hard_ratio",),
    prefixes: Sequence[str] = ("",),
    ax: Any = None,
) -> Any:
    """Line plot over epochs of ``{prefix}{key}`` for every prefix and key (``None`` values are gaps).

    ``history`` is the ``"epochs"`` list of a run's ``metrics.json``. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    drawn = 0
    for prefix in prefixes:
        for key in keys:
            name = prefix + key
            rows = [(record["epoch"], record[name]) for record in history if name in record]
            if not rows:
                continue
            epochs = [epoch for epoch, _ in rows]
            values = [np.nan if value is None else float(value) for _, value in rows]
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
            drawn += 1
    if not drawn:
        raise ValueError(
            f"None of {[p + k for p in prefixes for k in keys]} is in the history; check the prefix "
            "given to epoch_diagnostics."
        )
    ax.set(xlabel="epoch")
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_epoch_diagnostics(
    history: Sequence[Mapping[str, Any]],
    *,
    prefix: str = "",
    axes: Any = None,
    style: str = "ridge",
    every: int = 1,
    pairs: str = "anchor",
) -> Any:
    """Two panels for one set over training: the S_ap/S_an histograms of every ``every``-th epoch (ridge or
    overlay, :func:`plot_similarity_histograms`) and the curves of the hard-triplet ratio and the margin.

    ``history`` is the ``"epochs"`` list of ``metrics.json`` from a run with :func:`diagnostics_callback` (or
    :func:`epoch_diagnostics` with ``prefix``). Returns the two matplotlib axes.
    """
    import matplotlib.pyplot as plt

    every = check_positive_int(every, "every")
    hists = histograms_from_history(history, prefix=prefix, pairs=pairs)
    epochs = sorted(hists)
    chosen = epochs[::every] if epochs[-1] in epochs[::every] else epochs[::every] + [epochs[-1]]
    if axes is None:
        _, axes = plt.subplots(
            1, 2, figsize=(10.0, max(3.2, 1.0 + 0.4 * len(chosen))), gridspec_kw={"width_ratios": [1.4, 1.0]}
        )
    plot_similarity_histograms({f"epoch {epoch}": hists[epoch] for epoch in chosen}, ax=axes[0], style=style)
    plot_epoch_curves(history, keys=("hard_ratio", "margin"), prefixes=(prefix,), ax=axes[1])
    return axes
