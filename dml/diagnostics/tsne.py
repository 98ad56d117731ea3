"""A joint t-SNE map of training and test embeddings: do unseen classes land in the space the training classes use?

van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 9:2579-2605, 2008. Training and test embeddings are
mapped **together** (one t-SNE run on their union), so positions are comparable across the two splits: test classes
that fall between or on top of training clusters show where the embedding generalises or collapses.

What is computed (scikit-learn's :class:`sklearn.manifold.TSNE`):

* rows are L2-normalised first (``normalize=True``), so the Euclidean distances t-SNE uses are a monotone function of
  the course's cosine similarity (``||u - v||² = 2 - 2 cos``);
* if the two splits together have more than ``max_points`` rows, each split is subsampled in proportion to its size,
  without replacement, by ``numpy.random.default_rng(seed)``;
* PCA initialisation, ``learning_rate="auto"``, ``random_state=seed``: the same inputs and seed give the same map;
* ``method="auto"`` uses the exact gradient up to ``EXACT_MAX_POINTS`` points and Barnes-Hut above: Barnes-Hut is
  O(M log M) per step but slows down badly when many points nearly coincide, as in a well-trained or collapsed
  embedding (one measurement on a shared 2-core CPU, 1,000 points in 50 very tight classes: about 40 s against 19 s
  for the exact method), so pass ``method="exact"`` if a map of tight clusters is slow;
* the perplexity is clipped to ``(M - 1) / 3`` for ``M`` points: van der Maaten's reference implementation
  (github.com/lvdmaaten/bhtsne) refuses ``M - 1 < 3 * perplexity``, and its descendant Multicore-TSNE clips to this
  value, as done here.

t-SNE preserves neighbourhoods, not distances or cluster sizes: read it for which points are near which, never for
how far apart two clusters are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, as_label_array, check_positive_int, unit_rows
from dml.utils.checks import check_choice

__all__ = ["EXACT_MAX_POINTS", "JointTSNE", "joint_tsne", "plot_joint_panels", "plot_joint_tsne"]

EXACT_MAX_POINTS = 500


@dataclass(frozen=True)
class JointTSNE:
    """A 2-D t-SNE map of the union of two splits (arrays of length M, the number of points mapped).

    Attributes:
        coords: (M, 2) map coordinates.
        split: ``"train"`` or ``"test"`` for each point.
        labels: each point's class label.
        index: each point's row in its own split's embedding matrix (subsampling keeps rows in order).
        perplexity: the perplexity actually used (after clipping).
        kl_divergence: the final KL divergence of the t-SNE objective.
        method: the gradient actually used, ``"exact"`` or ``"barnes_hut"``.
    """

    coords: np.ndarray
    split: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    perplexity: float
    kl_divergence: float
    method: str


def joint_tsne(
    train_embeddings: Any,
    train_labels: Any,
    test_embeddings: Any,
    test_labels: Any,
    *,
    perplexity: float = 30.0,
    max_points: int | None = 2000,
    seed: int = 0,
    normalize: bool = True,
    max_iter: int = 1000,
    method: str = "auto",
) -> JointTSNE:
    """Map training and test embeddings into one 2-D t-SNE picture (see the module docstring).

    Args:
        train_embeddings, test_embeddings: (N_train, D) and (N_test, D) arrays or tensors, same D >= 2.
        train_labels, test_labels: one class id per row.
        perplexity: the requested perplexity; clipped to ``(M - 1) / 3`` for ``M`` mapped points.
        max_points: at most this many points in all (``None``: every point); at least 4.
        seed: seeds both the subsample and t-SNE.
        normalize: L2-normalise the rows first (cosine geometry).
        max_iter: t-SNE optimisation steps, at least 300 (the first 250 are scikit-learn's early-exaggeration
            phase, which alone leaves no final KL divergence).
        method: ``"auto"``, ``"exact"`` or ``"barnes_hut"`` (see the module docstring).
    """
    from sklearn.manifold import TSNE

    train = as_float64_matrix(train_embeddings, train_labels, name="train_embeddings", min_rows=1)
    test = as_float64_matrix(test_embeddings, test_labels, name="test_embeddings", min_rows=1)
    if train.shape[1] != test.shape[1]:
        raise ValueError(
            f"train_embeddings have {train.shape[1]} dimensions but test_embeddings have "
            f"{test.shape[1]}; embed both splits with the same model."
        )
    if train.shape[1] < 2:
        raise ValueError(
            f"The embeddings have {train.shape[1]} dimension; a 2-D t-SNE map with PCA "
            "initialisation needs D >= 2 (a 1-D embedding can be plotted directly)."
        )
    if not isinstance(perplexity, (int, float, np.floating, np.integer)) or not perplexity > 0:
        raise ValueError(f"perplexity must be a positive number; got {perplexity!r}.")
    if max_points is not None:
        max_points = check_positive_int(max_points, "max_points", minimum=4)
    max_iter = check_positive_int(max_iter, "max_iter", minimum=300)
    check_choice(method, ("auto", "exact", "barnes_hut"), name="method")
    train_y = as_label_array(train_labels).reshape(-1)
    test_y = as_label_array(test_labels).reshape(-1)
    total = len(train) + len(test)
    if total < 4:
        raise ValueError(
            f"Only {total} points in both splits together; t-SNE needs at least 4 (perplexity is "
            "clipped to (M - 1) / 3 and must be at least 1)."
        )

    rng = np.random.default_rng(seed)
    keep_train, keep_test = np.arange(len(train)), np.arange(len(test))
    if max_points is not None and total > max_points:
        n_train = min(max(round(max_points * len(train) / total), 1), len(train), max_points - 1)
        n_test = min(len(test), max_points - n_train)
        n_train = min(len(train), max_points - n_test)
        keep_train = np.sort(rng.choice(len(train), size=n_train, replace=False))
        keep_test = np.sort(rng.choice(len(test), size=n_test, replace=False))
    points = np.concatenate([train[keep_train], test[keep_test]])
    if normalize:
        points = unit_rows(points)
    used = float(min(perplexity, (len(points) - 1) / 3))
    if method == "auto":
        method = "exact" if len(points) <= EXACT_MAX_POINTS else "barnes_hut"
    tsne = TSNE(
        n_components=2,
        perplexity=used,
        init="pca",
        learning_rate="auto",
        random_state=seed,
        max_iter=max_iter,
        method=method,
    )
    coords = tsne.fit_transform(points)
    return JointTSNE(
        coords=coords,
        split=np.array(["train"] * len(keep_train) + ["test"] * len(keep_test)),
        labels=np.concatenate([train_y[keep_train], test_y[keep_test]]),
        index=np.concatenate([keep_train, keep_test]),
        perplexity=used,
        kl_divergence=float(tsne.kl_divergence_),
        method=method,
    )


def plot_joint_tsne(
    result: JointTSNE, *, ax: Any = None, color_by: str = "split", size: float = 8.0, alpha: float = 0.7
) -> Any:
    """Scatter a :class:`JointTSNE` map: training points as circles, test points as triangles.

    ``color_by="split"`` colours the two splits (blue train, orange test); ``color_by="class"`` gives every class its
    own colour, training classes from a blue-green palette and test classes from a red-orange one, so the splits
    stay apart even when the class ids overlap. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    check_choice(color_by, ("split", "class"), name="color_by")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 5.0))
    styles = {"train": ("o", "tab:blue", "winter"), "test": ("^", "tab:orange", "autumn")}
    for split, (marker, colour, cmap) in styles.items():
        mask = result.split == split
        if not mask.any():
            continue
        if color_by == "split":
            colours: Any = colour
        else:
            classes, codes = np.unique(result.labels[mask], return_inverse=True)
            colours = plt.get_cmap(cmap)(np.linspace(0.0, 0.85, max(len(classes), 1)))[codes.reshape(-1)]
        ax.scatter(
            result.coords[mask, 0],
            result.coords[mask, 1],
            s=size,
            alpha=alpha,
            marker=marker,
            c=colours,
            edgecolors="none",
            label=f"{split} ({int(mask.sum())} points, {len(np.unique(result.labels[mask]))} classes)",
        )
    ax.set(xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    ax.legend(fontsize=8, frameon=False, loc="best", markerscale=1.5)
    return ax


def plot_joint_panels(result: JointTSNE, *, axes: Any = None, size: float = 8.0) -> Any:
    """The three panels of the released ``Jointsne.py``: training points, both splits, test points.

    Liu et al., "Visualizing How Embeddings Generalize", ICML 2019 workshop (github.com/GWUvision/
    Embedding_visualization at 3bbbf28). The outer panels colour points by class (:func:`plot_joint_tsne` with
    ``color_by="class"``, one split each); the middle one shows both splits, training in blue and test in orange.
    All three share the map's limits. Returns the three axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11.0, 3.8))
    low, high = result.coords.min(axis=0), result.coords.max(axis=0)
    pad = 0.05 * (high - low)
    panels = (("train", "class"), (None, "split"), ("test", "class"))
    for ax, (split, color_by) in zip(axes, panels):
        keep = np.ones(len(result.split), dtype=bool) if split is None else result.split == split
        part = JointTSNE(
            coords=result.coords[keep],
            split=result.split[keep],
            labels=result.labels[keep],
            index=result.index[keep],
            perplexity=result.perplexity,
            kl_divergence=result.kl_divergence,
            method=result.method,
        )
        plot_joint_tsne(part, ax=ax, color_by=color_by, size=size)
        ax.set(xlim=(low[0] - pad[0], high[0] + pad[0]), ylim=(low[1] - pad[1], high[1] + pad[1]))
        ax.set_title({"train": "training classes", None: "both", "test": "test classes"}[split], fontsize=10)
    return axes
