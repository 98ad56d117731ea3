"""Meta-class bagging (DREML): for each of L learners, a seeded, balanced random map of the C classes onto D groups.

Xuan, Souvenir & Pless, "Deep Randomized Ensembles for Metric Learning", ECCV 2018 (arXiv:1808.04469). Learner
:math:`l` is trained to classify the *meta-class* :math:`m_l(y) \\in \\{0, \\dots, D-1\\}` of an image of class
:math:`y`, where each :math:`m_l` is a random map that puts :math:`\\lfloor C/D \\rfloor` or
:math:`\\lceil C/D \\rceil` classes into every meta-class. The released code (github.com/littleredxh/DREML at
24f008b, ``_code/Utils.py::createID``) builds it by concatenating shuffled copies of ``0..D-1``, cutting the list
to ``C`` entries and shuffling it; :func:`meta_class_maps` draws the same distribution with a seeded NumPy
generator, so a map is reproducible from ``(C, L, D, seed)``.

Two distinct classes :math:`i \\ne j` share a meta-class in one learner with probability
:math:`p = \\sum_m n_m (n_m - 1) / (C (C - 1))` (:func:`pair_collision_probability`, about :math:`1/D`), and, the
learners being drawn independently, in all :math:`L` learners with probability :math:`p^L \\approx (1/D)^L`: only
then does the concatenated embedding have no learner that was trained to separate them.
"""

from __future__ import annotations

import numpy as np
import torch


def _check(num_classes: int, learners: int, meta_classes: int) -> None:
    for name, value, low in (
        ("num_classes", num_classes, 2),
        ("learners", learners, 1),
        ("meta_classes", meta_classes, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    if meta_classes > num_classes:
        raise ValueError(
            f"meta_classes={meta_classes} is more than the {num_classes} classes, so some meta-classes would be "
            "empty; choose meta_classes <= num_classes (meta_classes == num_classes relabels the true classes)."
        )


def meta_class_maps(num_classes: int, *, learners: int, meta_classes: int, seed: int = 0) -> torch.Tensor:
    """``(learners, num_classes)`` int64: row ``l`` maps class index ``c`` to its meta-class in learner ``l``.

    Each row is balanced: every meta-class holds ``num_classes // meta_classes`` classes, and the
    ``num_classes % meta_classes`` meta-classes chosen at random in that row hold one more. Same arguments, same map.
    """
    _check(num_classes, learners, meta_classes)
    rng = np.random.default_rng(seed)
    copies = -(-num_classes // meta_classes)
    rows = []
    for _ in range(learners):
        tiled = np.concatenate([rng.permutation(meta_classes) for _ in range(copies)])[:num_classes]
        rows.append(rng.permutation(tiled))
    return torch.as_tensor(np.stack(rows), dtype=torch.int64)


def pair_collision_probability(num_classes: int, meta_classes: int) -> float:
    """Probability that two given distinct classes share a meta-class in one balanced random map.

    With ``n_m`` classes in meta-class ``m``: ``sum_m n_m (n_m - 1) / (C (C - 1))``; for ``D | C`` this is
    ``(C/D - 1) / (C - 1)``, a little below ``1/D``.
    """
    _check(num_classes, 1, meta_classes)
    small, extra = divmod(num_classes, meta_classes)
    sizes = np.array([small + 1] * extra + [small] * (meta_classes - extra), dtype=float)
    return float((sizes * (sizes - 1)).sum() / (num_classes * (num_classes - 1)))


def indistinguishable_pairs(maps: torch.Tensor) -> torch.Tensor:
    """``(C, C)`` bool: ``[i, j]`` is true when classes ``i != j`` share a meta-class in *every* learner."""
    if maps.dim() != 2:
        raise ValueError(f"maps must be (learners, num_classes); got shape {tuple(maps.shape)}.")
    same = (maps[:, :, None] == maps[:, None, :]).all(dim=0)
    return same & ~torch.eye(maps.shape[1], dtype=torch.bool, device=maps.device)


def collision_fraction(maps: torch.Tensor) -> float:
    """The share of the ``C (C - 1) / 2`` class pairs that share a meta-class in every learner."""
    c = maps.shape[1]
    return float(indistinguishable_pairs(maps).sum()) / (c * (c - 1))
