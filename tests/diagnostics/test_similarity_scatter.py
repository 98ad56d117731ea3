"""dml.diagnostics.similarity_scatter: nearest same-class vs nearest other-class similarity, against a loop."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dml.diagnostics import plot_similarity_scatter, similarity_scatter
from dml.eval import retrieval_metrics


def test_matches_a_loop_and_failure_rate_is_one_minus_recall_at_1() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), [4, 5, 3, 6, 2, 1])
    x = rng.normal(size=(len(labels), 5)) + np.eye(5)[labels % 5]
    scatter = similarity_scatter(x, labels, chunk=7)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(len(x)):
        same = [unit[i] @ unit[j] for j in range(len(x)) if j != i and labels[j] == labels[i]]
        other = [unit[i] @ unit[j] for j in range(len(x)) if labels[j] != labels[i]]
        if not same:
            assert not scatter.valid[i] and np.isnan(scatter.positive[i])
            continue
        assert scatter.positive[i] == pytest.approx(max(same)) and scatter.negative[i] == pytest.approx(max(other))
    keep = scatter.valid
    assert scatter.failure_rate == pytest.approx(np.mean(scatter.negative[keep] > scatter.positive[keep]))
    paired = labels != 5  # without the single-image class every image is a query with a positive
    r1 = retrieval_metrics(x[paired], labels[paired], ks=(1,), include=("recall",))["recall@1"]
    assert similarity_scatter(x[paired], labels[paired]).failure_rate == pytest.approx(1.0 - r1)


def test_bad_input_and_plot() -> None:
    x = np.random.default_rng(0).normal(size=(8, 3))
    with pytest.raises(ValueError, match="same-class"):
        similarity_scatter(x, np.arange(8))
    with pytest.raises(ValueError, match="all-zero"):
        similarity_scatter(np.r_[x[:7], np.zeros((1, 3))], np.arange(8) % 2)
    scatter = similarity_scatter(x, np.arange(8) % 2)
    axes = plot_similarity_scatter({"train": scatter, "test": scatter})
    assert axes[0].get_xlim() == (0.3, 1.0) and "above the diagonal" in axes[1].get_title()
    axes = plot_similarity_scatter(scatter, limits="auto")
    assert axes[0].get_xlim()[0] < 0.3
    with pytest.raises(ValueError, match="limits"):
        plot_similarity_scatter(scatter, limits="fixed")
