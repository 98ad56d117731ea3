"""Embedding-space density: mean intra-class and inter-class cosine distances, and their ratio.

Roth, Milbich, Sinha, Gupta, Ommer & Cohen, "Revisiting Training Strategies and Generalization Performance in Deep
Metric Learning", ICML 2020, arXiv:2002.08473, relate how densely each class is packed, relative to how far apart
the classes are, to generalisation. The variant computed here is their released ``metrics/dists.py``
(github.com/Confusezius/Revisiting_Deep_Metric_Learning_PyTorch, metrics ``dists@intra``, ``dists@inter`` and
``dists@intra_over_inter``), with the cosine distance ``d(a, b) = 1 - a.b / (||a|| ||b||)``:

* ``π_intra = (1/C) Σ_c π_c`` with ``π_c = 1/(n_c (n_c - 1)) Σ_{i ≠ j in c} d(φ_i, φ_j)``: the mean distance
  between two different images of class ``c``, **averaged over classes** (each class counts once, whatever its
  size), not over all same-class pairs;
* ``π_inter = 1/(C (C - 1)) Σ_{c ≠ c'} d(μ̂_c, μ̂_c')`` with ``μ̂_c`` the L2-normalised mean of class ``c``'s
  embeddings (the mean of the embeddings as given; their default ``*_normalize`` architectures, like the course's
  models, output unit vectors);
* ``π_ratio = π_intra / max(π_inter, 1e-8)``.

Classes with a single image have no pair: their ``π_c`` is 0/0. The released code then replaces every NaN or
infinite ``π_c`` by "the maximum" before averaging (``singletons="max"`` here: the largest ``π_c`` of the classes
with at least two images, so a lone image counts as a maximally spread class). Strictly, it indexes with
``1 - np.isnan(intra)``, an integer array of zeros and ones, so the value it actually substitutes is the
NaN-propagating ``np.max`` of ``π_0`` (the first class in sorted label order) and, when some class has a pair,
``π_1``: ``max(π_0, π_1)``, NaN if either of those two classes is a singleton. ``singletons="released"`` computes
exactly that, so ``π_intra`` can be compared with numbers the released code printed; ``"max"`` is the evident
intent. (The release gets the NaN only when SciPy's cosine distance of the lone image to itself is exactly 0; a
rounding residue of ±1e-16 makes that class's ``π_c`` ±inf, which its index does not mark, and the substitute then
also depends on that residue. ``"released"`` takes the exact distance, 0.) ``singletons="drop"`` averages over the
classes with at least two images only. The three agree when no class is a singleton.

Cost: both sums are computed in closed form, ``Σ_{i≠j} u_i.u_j = ||Σ_i u_i||² - Σ_i ||u_i||²`` on unit vectors
``u``, so the whole computation is O(N D) with no pairwise matrix and no Python loop over classes (the released code
builds one ``n_c x n_c`` matrix per class, O(Σ_c n_c² D)). Everything is computed in ``float64``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, as_label_array, unit_rows
from dml.utils.checks import check_choice

__all__ = ["SINGLETON_POLICIES", "EmbeddingDensity", "embedding_density", "plot_density"]

SINGLETON_POLICIES = ("max", "drop", "released")


@dataclass(frozen=True)
class EmbeddingDensity:
    """Intra- and inter-class cosine distances of a labelled set of embeddings.

    Attributes:
        pi_intra: mean over classes of the mean pairwise distance within the class (``dists@intra``).
        pi_inter: mean pairwise distance between the normalised class means (``dists@inter``).
        pi_ratio: ``pi_intra / max(pi_inter, 1e-8)`` (``dists@intra_over_inter``).
        classes: the distinct labels, sorted.
        counts: images per class.
        class_intra: ``π_c`` of each class, NaN for single-image classes (before the ``singletons`` policy).
        singletons: how single-image classes entered ``pi_intra`` (``"max"``, ``"drop"`` or ``"released"``).
    """

    pi_intra: float
    pi_inter: float
    pi_ratio: float
    classes: np.ndarray
    counts: np.ndarray
    class_intra: np.ndarray
    singletons: str


def embedding_density(embeddings: Any, labels: Any, *, singletons: str = "max") -> EmbeddingDensity:
    """``π_intra``, ``π_inter`` and ``π_ratio`` of (N, D) embeddings with N labels (see the module docstring).

    Args:
        embeddings: (N, D) array or tensor; rows must be non-zero (a zero vector has no cosine distance).
        labels: N class ids; at least two classes, at least one of them with two or more images.
        singletons: ``"max"`` (the released code's intent), ``"drop"`` or ``"released"`` (what the released code
            computes: ``max(π_0, π_1)``); see the module docstring.
    """
    check_choice(singletons, SINGLETON_POLICIES, name="singletons policy")
    x = as_float64_matrix(embeddings, labels, min_rows=2)
    label_array = as_label_array(labels).reshape(-1)
    classes, codes, counts = np.unique(label_array, return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    if len(classes) < 2:
        raise ValueError(
            f"All {len(x)} embeddings have the same label {classes[0]!r}; pi_inter needs at least two classes."
        )
    if counts.max() < 2:
        raise ValueError(
            "Every class has a single image, so no class has a same-class pair and pi_intra is "
            "undefined; use a set with at least two images for some class."
        )
    unit = unit_rows(x)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    unit_sums = np.add.reduceat(unit[order], starts, axis=0)
    square_norm_sums = np.add.reduceat(np.einsum("nd,nd->n", unit, unit)[order], starts)

    pairs = counts * (counts - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_intra = 1.0 - (np.einsum("cd,cd->c", unit_sums, unit_sums) - square_norm_sums) / pairs
    has_pair = counts >= 2
    class_intra = np.where(has_pair, class_intra, np.nan)
    if singletons == "max":
        pi_intra = float(np.mean(np.where(has_pair, class_intra, np.max(class_intra[has_pair]))))
    elif singletons == "released":
        substitute = np.max(class_intra[np.unique(has_pair.astype(int))])  # indices 0 and/or 1, NaN propagates
        pi_intra = float(np.mean(np.where(has_pair, class_intra, substitute)))
    else:
        pi_intra = float(np.mean(class_intra[has_pair]))

    means = np.add.reduceat(x[order], starts, axis=0) / counts[:, None]
    mean_norms = np.linalg.norm(means, axis=1)
    if np.any(mean_norms == 0):
        bad = classes[np.flatnonzero(mean_norms == 0)]
        raise ValueError(
            f"The mean embedding of class(es) {bad.tolist()[:5]} is the zero vector, so its direction "
            "(and pi_inter) is undefined; this happens when a class's embeddings cancel out exactly."
        )
    unit_means = means / mean_norms[:, None]
    total = unit_means.sum(axis=0)
    num_classes = len(classes)
    pi_inter = float(
        1.0 - (total @ total - np.einsum("cd,cd->", unit_means, unit_means)) / (num_classes * (num_classes - 1.0))
    )
    return EmbeddingDensity(
        pi_intra=pi_intra,
        pi_inter=pi_inter,
        pi_ratio=pi_intra / max(pi_inter, 1e-8),
        classes=classes,
        counts=counts,
        class_intra=class_intra,
        singletons=singletons,
    )


def plot_density(densities: EmbeddingDensity | dict[str, EmbeddingDensity], *, ax: Any = None, bins: int = 30) -> Any:
    """Histogram of the per-class intra-class distances ``π_c``, with ``π_intra`` (solid) and ``π_inter`` (dashed).

    One histogram per entry of a dict (e.g. train vs test, or epochs); the legend gives ``π_ratio``. Single-image
    classes (NaN ``π_c``) are not drawn. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if isinstance(densities, EmbeddingDensity):
        densities = {"": densities}
    if not densities:
        raise ValueError("densities is empty; pass an EmbeddingDensity or a dict of them.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.4))
    edges = np.linspace(0.0, 2.0, bins + 1)
    for name, density in densities.items():
        values = density.class_intra[~np.isnan(density.class_intra)]
        label = f"{name + ': ' if name else ''}$\\pi_{{ratio}}$ = {density.pi_ratio:.3f}"
        _, _, patches = ax.hist(values, bins=edges, alpha=0.45, label=label)
        colour = patches[0].get_facecolor()[:3] if len(patches) else None
        ax.axvline(density.pi_intra, color=colour, lw=1.5)
        ax.axvline(density.pi_inter, color=colour, lw=1.5, ls="--")
    high = max(max(d.pi_inter, np.nanmax(d.class_intra)) for d in densities.values())
    ax.set(xlim=(0.0, min(2.0, high * 1.15 + 0.02)), xlabel="cosine distance $1 - \\cos$", ylabel="classes")
    ax.text(
        0.98,
        0.96,
        "solid: $\\pi_{intra}$, dashed: $\\pi_{inter}$",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
    )
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return ax
