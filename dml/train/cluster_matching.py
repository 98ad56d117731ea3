"""Matching a new clustering to the previous one (Hungarian algorithm), so that learner k keeps its data region.

Divide and conquer (Sanakoyeu et al., CVPR 2019; released code github.com/CompVis/metric-learning-divide-and-conquer,
commit 1766c2c, ``lib/data/loader/reassignment.py``) re-clusters the training data every few epochs. K-means
numbers its clusters arbitrarily, so new cluster i is given the label of the previous cluster :math:`\\sigma(i)`
that minimises the total disagreement

.. math::  \\sigma^* = \\arg\\min_{\\sigma \\in S_K} \\sum_i c_{i\\sigma(i)}, \\qquad
   c_{ij} = \\lvert A_i \\,\\triangle\\, B_j \\rvert = \\lVert \\mathbb 1_{A_i} - \\mathbb 1_{B_j} \\rVert_1 ,

with :math:`A_i` the images of new cluster i and :math:`B_j` those of previous cluster j (the L1 distance between
membership indicators, as released), solved by ``scipy.optimize.linear_sum_assignment``. Since
:math:`c_{ij} = |A_i| + |B_j| - 2 |A_i \\cap B_j|` and the sizes sum to N whatever the matching, this is the
matching that keeps the most images with their learner.

``relabel="released"``: the release's loop writes ``C[C_curr == col] = row`` for the pairs ``(row, col)`` that
``linear_sum_assignment`` returns (rows are new clusters, columns previous ones), so new cluster ``sigma(i)`` gets
label i: it applies :math:`\\sigma^{-1}` instead of :math:`\\sigma`. The two agree when :math:`\\sigma` is its own
inverse (the identity, or swaps of pairs); for a 3-cycle or longer, learners trade regions at that re-clustering.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from dml.utils.checks import check_choice

RELABELS = ("hungarian", "released")


def disagreement(current: np.ndarray, previous: np.ndarray, num_clusters: int) -> np.ndarray:
    """``(K, K)`` costs ``c_ij = |A_i △ B_j|`` between current cluster i and previous cluster j (ids ``-1``, unused
    items, belong to no cluster)."""
    current, previous = _check(current, previous, num_clusters)
    a = np.stack([current == i for i in range(num_clusters)]).astype(np.int64)
    b = np.stack([previous == j for j in range(num_clusters)]).astype(np.int64)
    overlap = a @ b.T
    return a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * overlap


def match_clusters(
    current: np.ndarray, previous: np.ndarray, *, num_clusters: int, relabel: str = "hungarian"
) -> np.ndarray:
    """``current`` relabelled so that its clusters carry the labels of the previous clusters they match best
    (module docstring); ``relabel="released"`` applies the release's inverse permutation. ``-1`` stays ``-1``."""
    check_choice(relabel, RELABELS, name="relabel")
    rows, cols = linear_sum_assignment(disagreement(current, previous, num_clusters))
    mapping = np.empty(num_clusters, dtype=np.int64)
    if relabel == "hungarian":
        mapping[rows] = cols
    else:
        mapping[cols] = rows
    current = np.asarray(current)
    return np.where(current >= 0, mapping[np.clip(current, 0, None)], -1)


def matched_overlap(current: np.ndarray, previous: np.ndarray) -> float:
    """The share of items in the same cluster under both labellings, ``sum_k |A_k ∩ B_k| / N`` over the items
    that both use (1: every image keeps its learner; about 1/K for unrelated clusterings)."""
    current, previous = np.asarray(current), np.asarray(previous)
    if current.shape != previous.shape:
        raise ValueError(f"Two clusterings of one set must have one shape; got {current.shape} and {previous.shape}.")
    used = (current >= 0) & (previous >= 0)
    if not used.any():
        raise ValueError("The two clusterings share no item with a cluster id >= 0.")
    return float(np.mean(current[used] == previous[used]))


def _check(current: np.ndarray, previous: np.ndarray, num_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    current, previous = np.asarray(current), np.asarray(previous)
    if current.shape != previous.shape or current.ndim != 1:
        raise ValueError(
            f"Two clusterings of one set must be 1-D arrays of one length; got {current.shape} and {previous.shape}."
        )
    for name, ids in (("current", current), ("previous", previous)):
        if ids.size and (ids.max() >= num_clusters or ids.min() < -1):
            raise ValueError(f"{name} cluster ids must lie in -1..{num_clusters - 1}; got {ids.min()}..{ids.max()}.")
    return current, previous
