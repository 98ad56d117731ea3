"""Yoked t-SNE: a sequence of t-SNE maps (epochs, models) pinned to a reference map so they can be compared.

Liu, Xuan, Zhang, Stylianou & Pless, "Visualizing How Embeddings Generalize", ICML 2019 workshop on Understanding
and Improving Generalization in Deep Learning, arXiv:1909.07464; released code
github.com/GWUvision/Embedding_visualization (``Yoked_Tsne.py``, ``Jointsne.py`` at commit 3bbbf28). Independent
t-SNE maps of two embeddings of the same images are not comparable: t-SNE's objective is invariant to rotations,
reflections and translations, and its non-convex optimisation lands in a different arrangement every time. Yoked
t-SNE adds a pull towards a fixed reference map ``Y``: map ``X`` of embedding ``t`` minimises

.. math::  C(X) = \\mathrm{KL}(P_t \\,\\|\\, Q_X) + \\alpha \\sum_i \\lVert x_i - y_i \\rVert^2 ,
           \\qquad \\frac{\\partial C}{\\partial x_i} = \\frac{\\partial\\,\\mathrm{KL}}{\\partial x_i}
           + 2 \\alpha (x_i - y_i),

with ``P_t`` the t-SNE affinities of embedding ``t`` and ``Q_X`` the Student-t similarities of the map. As in
``Jointsne.py``, map 0 is a plain t-SNE (PCA initialisation) and every later map is yoked to map 0
(``reference="first"``; ``"previous"`` chains each map to the one before). ``alpha = 0`` gives independent maps;
a large ``alpha`` pins every map onto the reference.

Where this follows scikit-learn and where the released code:

* everything but the yoke is scikit-learn's :class:`~sklearn.manifold.TSNE` (affinities, PCA initialisation, the
  momentum-and-gains optimiser, exact or Barnes-Hut gradient); the yoke wraps its KL objective, and the
  early-exaggeration schedule of ``TSNE._tsne`` is repeated around it. This uses private names of scikit-learn
  1.x (``TSNE._tsne``, ``sklearn.manifold._t_sne._gradient_descent``, ``_kl_divergence``); a release that
  renames them fails loudly, and the test that ``alpha = 0`` reproduces ``TSNE`` catches a changed schedule;
* the released code's ``alpha=8`` argument is an exponent, ``alpha = 10**-8``, the default here. It adds
  ``2 alpha (x_i - y_i)`` *before* multiplying the KL gradient by its constant ``2 (dof + 1) / dof = 4``, so its
  yoke gradient is ``8 alpha (x_i - y_i)``, four times that of the objective it reports. We use the gradient of
  the objective as written (``alpha`` here = 4 x the released ``alpha`` gives the released dynamics);
* later maps start from the reference map (``init="reference"``; the released code passes the first map as
  ``init_Y``), or from their own PCA initialisation (``init="pca"``).

The scale of ``alpha``: the KL gradient of a point is of order ``1/M`` (``P`` sums to 1 over ``M`` points) while
map coordinates are tens of units, so ``alpha = 1e-8`` is a very light yoke that mostly removes the rotation and
reflection ambiguity; ``alpha`` near ``1e-3`` already pins small maps (see the tests). The yoke is a stiff
quadratic, so plain gradient descent diverges once ``2 alpha eta > 1`` for the step size ``eta`` (scikit-learn's
``learning_rate="auto"``, at least 50): larger values are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, check_positive_int, unit_rows
from dml.diagnostics.tsne import JointTSNE
from dml.utils.checks import check_choice

__all__ = ["YokedTSNE", "map_displacement", "plot_yoked_tsne", "yoke_objective", "yoked_joint_tsne", "yoked_tsne"]

EXACT_MAX_POINTS = 500


def yoke_objective(kl_objective: Any, target: np.ndarray, alpha: float) -> Any:
    """Wrap a scikit-learn t-SNE objective ``(params, *args, **kw) -> (kl, grad)`` with ``alpha ||X - Y||^2``.

    ``target`` is the reference map ``Y`` (M, 2); the wrapped function returns the yoked cost and its gradient.
    """
    flat = np.ascontiguousarray(target, dtype=np.float64).ravel()

    def objective(params: np.ndarray, *args: Any, **kwargs: Any) -> tuple[float, np.ndarray]:
        kl, grad = kl_objective(params, *args, **kwargs)
        offset = params.astype(np.float64) - flat
        return kl + alpha * float(offset @ offset), grad + (2.0 * alpha * offset).astype(grad.dtype)

    return objective


def _yoked_estimator(target: np.ndarray | None, alpha: float, **tsne_kwargs: Any) -> Any:
    """A scikit-learn ``TSNE`` whose optimiser minimises the yoked objective (plain t-SNE when ``target`` is None).

    ``_tsne`` repeats scikit-learn's schedule (250 early-exaggeration steps at momentum 0.5, then momentum 0.8)
    with the yoked objective; with ``alpha = 0`` it reproduces ``TSNE`` exactly (tested).
    """
    from sklearn.manifold import TSNE, _t_sne

    class _YokedTSNE(TSNE):
        def _tsne(self, P, degrees_of_freedom, n_samples, X_embedded, neighbors=None, skip_num_points=0):
            if target is None:
                return super()._tsne(P, degrees_of_freedom, n_samples, X_embedded, neighbors, skip_num_points)
            kwargs: dict[str, Any] = {"skip_num_points": skip_num_points}
            if self.method == "barnes_hut":
                kl = _t_sne._kl_divergence_bh
                kwargs.update(angle=self.angle, verbose=self.verbose, num_threads=_t_sne._openmp_effective_n_threads())
            else:
                kl = _t_sne._kl_divergence
            options = dict(
                it=0,
                n_iter_check=self._N_ITER_CHECK,
                min_grad_norm=self.min_grad_norm,
                learning_rate=self.learning_rate_,
                verbose=self.verbose,
                kwargs=kwargs,
                args=[P, degrees_of_freedom, n_samples, self.n_components],
                n_iter_without_progress=self._EXPLORATION_MAX_ITER,
                max_iter=self._EXPLORATION_MAX_ITER,
                momentum=0.5,
            )
            objective = yoke_objective(kl, target, alpha)
            P *= self.early_exaggeration
            params, error, it = _t_sne._gradient_descent(objective, X_embedded.ravel(), **options)
            P /= self.early_exaggeration
            if it < self._EXPLORATION_MAX_ITER or self.max_iter > self._EXPLORATION_MAX_ITER:
                options.update(
                    max_iter=self.max_iter,
                    it=it + 1,
                    momentum=0.8,
                    n_iter_without_progress=self.n_iter_without_progress,
                )
                params, error, it = _t_sne._gradient_descent(objective, params, **options)
            self.n_iter_ = it
            self.kl_divergence_ = error
            return params.reshape(n_samples, self.n_components)

    return _YokedTSNE(**tsne_kwargs)


@dataclass(frozen=True)
class YokedTSNE:
    """A sequence of 2-D maps of the same M points.

    Attributes:
        maps: one (M, 2) array per embedding, in the order given.
        alpha: the yoke weight used for maps 1, 2, ...
        reference: ``"first"`` or ``"previous"``.
        kl_divergences: the final KL divergence of each map (without the yoke term).
        perplexity: the perplexity used (clipped to ``(M - 1) / 3``).
        method: ``"exact"`` or ``"barnes_hut"``.
    """

    maps: list[np.ndarray]
    alpha: float
    reference: str
    kl_divergences: list[float]
    perplexity: float
    method: str


def yoked_tsne(
    embeddings: Sequence[Any],
    *,
    alpha: float = 1e-8,
    reference: str = "first",
    init: str = "reference",
    perplexity: float = 30.0,
    seed: int = 0,
    normalize: bool = True,
    max_iter: int = 1000,
    method: str = "auto",
) -> YokedTSNE:
    """Yoked t-SNE maps of several embeddings of the same images (see the module docstring).

    Args:
        embeddings: a sequence of (M, D_t) arrays or tensors, row ``i`` the same image in each; D_t may differ.
        alpha: the yoke weight ``alpha >= 0`` (``0``: independent maps).
        reference: yoke each map to the ``"first"`` map (released code) or to the ``"previous"`` one.
        init: start each later map at its reference (``"reference"``) or at its own PCA projection (``"pca"``).
        perplexity: requested perplexity, clipped to ``(M - 1) / 3``.
        seed: scikit-learn's ``random_state`` for every map.
        normalize: L2-normalise the rows first (cosine geometry).
        max_iter: optimisation steps per map, at least 300 (250 of them early exaggeration).
        method: ``"auto"`` (exact up to 500 points), ``"exact"`` or ``"barnes_hut"``.
    """
    if isinstance(embeddings, (np.ndarray,)) or not isinstance(embeddings, Sequence) or len(embeddings) < 1:
        raise ValueError("embeddings must be a list of (M, D) arrays, one per epoch or model; got none or one array.")
    matrices = [as_float64_matrix(e, name=f"embeddings[{t}]", min_rows=4) for t, e in enumerate(embeddings)]
    sizes = {len(m) for m in matrices}
    if len(sizes) != 1:
        raise ValueError(f"Every embedding must hold the same images (rows); got row counts {sorted(sizes)}.")
    if not isinstance(alpha, (int, float, np.floating, np.integer)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0 (0: independent maps); got {alpha!r}.")
    check_choice(reference, ("first", "previous"), name="reference")
    check_choice(init, ("reference", "pca"), name="init")
    check_choice(method, ("auto", "exact", "barnes_hut"), name="method")
    max_iter = check_positive_int(max_iter, "max_iter", minimum=300)
    count = sizes.pop()
    step = max(count / 12.0 / 4.0, 50.0)  # scikit-learn's learning_rate="auto" (early exaggeration 12)
    if 2.0 * alpha * step > 1.0:
        raise ValueError(
            f"alpha = {alpha:g} is too stiff for t-SNE's step size {step:g} on {count} points: gradient descent "
            f"diverges when 2 * alpha * step > 1; use alpha <= {0.5 / step:.3g}."
        )
    used = float(min(perplexity, (count - 1) / 3))
    if method == "auto":
        method = "exact" if count <= EXACT_MAX_POINTS else "barnes_hut"
    maps: list[np.ndarray] = []
    kls: list[float] = []
    for t, points in enumerate(matrices):
        points = unit_rows(points) if normalize else points
        target = None if t == 0 else (maps[0] if reference == "first" else maps[-1])
        start: Any = "pca" if target is None or init == "pca" else target.astype(np.float32)
        estimator = _yoked_estimator(
            target,
            float(alpha),
            n_components=2,
            perplexity=used,
            init=start,
            learning_rate="auto",
            random_state=seed,
            max_iter=max_iter,
            method=method,
        )
        coords = estimator.fit_transform(points).astype(np.float64)
        maps.append(coords)
        penalty = 0.0 if target is None else float(alpha) * float(np.sum((coords - target) ** 2))
        kls.append(float(estimator.kl_divergence_) - penalty)
    return YokedTSNE(
        maps=maps, alpha=float(alpha), reference=reference, kl_divergences=kls, perplexity=used, method=method
    )


def map_displacement(moving: Any, reference: Any, *, align: bool = True) -> float:
    """Mean distance between corresponding points of two maps, in units of the reference's RMS radius.

    ``align=True`` first moves ``moving`` onto ``reference`` by the best translation, rotation/reflection and scale
    (orthogonal Procrustes), so two maps that differ only by a rigid motion have displacement 0; this is the fair
    comparison for independent t-SNE maps, whose orientation is arbitrary.
    """
    from scipy.linalg import orthogonal_procrustes

    x = np.asarray(moving, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"The two maps must have the same (M, 2) shape; got {x.shape} and {y.shape}.")
    y_centred = y - y.mean(axis=0)
    radius = float(np.sqrt(np.mean(np.sum(y_centred**2, axis=1))))
    if radius == 0:
        raise ValueError("The reference map has all its points at one place; its displacement scale is undefined.")
    if align:
        x_centred = x - x.mean(axis=0)
        rotation, singular_sum = orthogonal_procrustes(x_centred, y_centred)
        norm = float(np.sum(x_centred**2))
        scale = singular_sum / norm if norm > 0 else 0.0
        x = x_centred @ rotation * scale + y.mean(axis=0)
    return float(np.mean(np.linalg.norm(x - y, axis=1)) / radius)


def plot_yoked_tsne(
    result: YokedTSNE, labels: Any, *, titles: Sequence[str] | None = None, axes: Any = None, size: float = 8.0
) -> Any:
    """One panel per map, points coloured by class (the same colour in every panel). Returns the axes."""
    import matplotlib.pyplot as plt

    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(result.maps[0]):
        raise ValueError(f"{len(labels)} labels for maps of {len(result.maps[0])} points; pass one label per point.")
    titles = list(titles) if titles is not None else [f"map {t}" for t in range(len(result.maps))]
    if len(titles) != len(result.maps):
        raise ValueError(f"{len(titles)} titles for {len(result.maps)} maps.")
    if axes is None:
        _, axes = plt.subplots(1, len(result.maps), figsize=(3.2 * len(result.maps), 3.3), squeeze=False)
        axes = axes[0]
    _, codes = np.unique(labels, return_inverse=True)
    colours = plt.get_cmap("tab20")(codes.reshape(-1) % 20)
    everything = np.concatenate(result.maps)
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.05 * (high - low)
    for ax, coords, title in zip(axes, result.maps, titles):
        ax.scatter(coords[:, 0], coords[:, 1], c=colours, s=size, edgecolors="none")
        ax.set(xticks=[], yticks=[], title=title, xlim=(low[0] - pad[0], high[0] + pad[0]))
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    return axes


def yoked_joint_tsne(
    train_embeddings: Sequence[Any],
    train_labels: Any,
    test_embeddings: Sequence[Any],
    test_labels: Any,
    **options: Any,
) -> list[Any]:
    """Joint t-SNE maps of train ∪ test for several embeddings (epochs, models), yoked as in ``Jointsne.py``.

    Map 0 is a plain joint t-SNE of the first training and test embeddings; every later pair is yoked to it
    (:func:`yoked_tsne` with ``options``). Returns one :class:`~dml.diagnostics.JointTSNE` per pair, for
    :func:`~dml.diagnostics.plot_joint_tsne` or :func:`~dml.diagnostics.plot_joint_panels`. Row ``i`` is the same
    image in every pair; no subsampling (pass the rows to map).
    """

    if len(train_embeddings) != len(test_embeddings):
        raise ValueError(
            f"{len(train_embeddings)} training and {len(test_embeddings)} test embeddings; pass one of each per map."
        )
    train_y = np.asarray(train_labels).reshape(-1)
    test_y = np.asarray(test_labels).reshape(-1)
    stacked = []
    for train, test in zip(train_embeddings, test_embeddings):
        train = as_float64_matrix(train, train_y, name="train_embeddings")
        test = as_float64_matrix(test, test_y, name="test_embeddings")
        if train.shape[1] != test.shape[1]:
            raise ValueError(f"train and test embeddings have {train.shape[1]} and {test.shape[1]} dimensions.")
        stacked.append(np.concatenate([train, test]))
    result = yoked_tsne(stacked, **options)
    split = np.array(["train"] * len(train_y) + ["test"] * len(test_y))
    index = np.concatenate([np.arange(len(train_y)), np.arange(len(test_y))])
    labels = np.concatenate([train_y, test_y])
    return [
        JointTSNE(
            coords=c,
            split=split,
            labels=labels,
            index=index,
            perplexity=result.perplexity,
            kl_divergence=kl,
            method=result.method,
        )
        for c, kl in zip(result.maps, result.kl_divergences)
    ]
