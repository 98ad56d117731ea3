"""dml.eval against pytorch-metric-learning's AccuracyCalculator on data without ties.

PML conventions used here: ``get_accuracy(x, labels)`` with no reference sets ``ref_includes_query=True`` (the
query is removed from its own neighbours and R = class count − 1); ``k="max_bin_count"`` makes MAP@R and
R-precision exact; its k-NN is faiss ``IndexFlatL2`` on the raw vectors, so cosine is compared on L2-normalised
inputs and euclidean on raw ones. PML has no Recall@k; its ``precision_at_1`` equals our ``recall@1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.eval import query_gallery_metrics, retrieval_metrics

pytest.importorskip("faiss")
accuracy_calculator = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")

PML_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def pml(*args, **kwargs):
    calc = accuracy_calculator.AccuracyCalculator(include=PML_METRICS, k="max_bin_count", device=torch.device("cpu"))
    return calc.get_accuracy(*args, **kwargs)


def assert_matches_pml(ours, theirs, tol=1e-6):
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=tol)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=tol)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=tol)


@pytest.mark.parametrize("n,d,classes", [(300, 16, 40), (500, 8, 20), (400, 32, 150)])
def test_self_retrieval_matches_pml(n, d, classes):
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = (centres[y] + 1.5 * rng.standard_normal((n, d))).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    ours = retrieval_metrics(unit, y, ks=(1,), include=("recall", "map@r", "r_precision"))
    assert_matches_pml(ours, pml(unit, y))
    ours_l2 = retrieval_metrics(x, y, ks=(1,), metric="euclidean", include=("recall", "map@r", "r_precision"))
    assert_matches_pml(ours_l2, pml(x, y))


def test_singletons_excluded_like_pml():
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.integers(0, 30, 200), 1000 + np.arange(25)])  # 25 lone query labels
    x = rng.standard_normal((len(y), 12)).astype(np.float32)
    ours = retrieval_metrics(x, y, ks=(1,), metric="euclidean", include=("recall", "map@r", "r_precision"))
    assert ours["num_queries_without_positives"] >= 25
    assert_matches_pml(ours, pml(x, y))


def test_query_gallery_matches_pml():
    rng = np.random.default_rng(2)
    q, g = rng.standard_normal((150, 10)).astype(np.float32), rng.standard_normal((400, 10)).astype(np.float32)
    yq, yg = rng.integers(0, 35, 150), rng.integers(0, 30, 400)  # some query labels are not in the gallery
    ours = query_gallery_metrics(q, yq, g, yg, ks=(1,), metric="euclidean")
    assert ours["num_queries_without_positives"] > 0
    assert_matches_pml(ours, pml(q, yq, g, yg, ref_includes_query=False))
