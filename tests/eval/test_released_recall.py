"""``lone_queries="miss"``: recall@k as the released code of Xuan et al. computes it (hits over all N queries).

The reference below is my reading of ``recall`` and ``recall2`` in ``_code/Utils.py`` of
github.com/littleredxh/HardNegative (commit f5f392377fd0; the same functions are in
github.com/littleredxh/EasyPositiveHardNegative, commit 22c3d58d56b9): score by dot product, set the self-similarity
to -1 (self-retrieval), take the top ``k`` and count a query as a hit if any of them shares its label, divided by the
number of queries ``N``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.eval import query_gallery_metrics, retrieval_metrics

KS = (1, 2, 4)


def released_recall(query, query_labels, gallery=None, gallery_labels=None, ks=KS):
    self_retrieval = gallery is None
    if self_retrieval:
        gallery, gallery_labels = query, query_labels
    scores = query @ gallery.T
    if self_retrieval:
        scores[torch.eye(len(query), dtype=torch.bool)] = -1
    top = scores.topk(max(ks), dim=1).indices
    hits = gallery_labels[top] == query_labels[:, None]
    return {k: float(hits[:, :k].any(dim=1).sum()) / len(query) for k in ks}


def unit(n, d, seed):
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_self_retrieval_miss_counts_singleton_queries_as_misses():
    x = unit(60, 5, 0)
    y = torch.tensor([*range(8)] * 6 + [100 + i for i in range(12)])  # 8 classes of 6, then 12 singletons
    miss = retrieval_metrics(x, y.numpy(), ks=KS, include=("recall",), lone_queries="miss")
    exclude = retrieval_metrics(x, y.numpy(), ks=KS, include=("recall",))
    reference = released_recall(x, y)
    assert miss["num_queries_without_positives"] == 12
    for k in KS:
        assert miss[f"recall@{k}"] == pytest.approx(reference[k], abs=1e-12)
        assert miss[f"recall@{k}"] == pytest.approx(exclude[f"recall@{k}"] * 48 / 60, abs=1e-12)
    assert miss["recall@4"] < exclude["recall@4"]


def test_query_gallery_miss_counts_queries_absent_from_the_gallery():
    q, g = unit(30, 4, 1), unit(50, 4, 2)
    yq = torch.tensor([i % 7 for i in range(30)])  # labels 5 and 6 have no gallery image
    yg = torch.tensor([i % 5 for i in range(50)])
    miss = query_gallery_metrics(q, yq.numpy(), g, yg.numpy(), ks=KS, include=("recall",), lone_queries="miss")
    exclude = query_gallery_metrics(q, yq.numpy(), g, yg.numpy(), ks=KS, include=("recall",))
    reference = released_recall(q, yq, g, yg)
    lone = int((yq >= 5).sum())
    assert miss["num_queries_without_positives"] == lone > 0
    for k in KS:
        assert miss[f"recall@{k}"] == pytest.approx(reference[k], abs=1e-12)
        assert miss[f"recall@{k}"] == pytest.approx(exclude[f"recall@{k}"] * (30 - lone) / 30, abs=1e-12)


def test_both_conventions_agree_when_every_query_has_a_positive():
    x, y = unit(40, 6, 3), np.repeat(np.arange(8), 5)
    miss = retrieval_metrics(x, y, ks=KS, lone_queries="miss")
    exclude = retrieval_metrics(x, y, ks=KS)
    assert miss == exclude


def test_map_at_r_keeps_its_own_average():
    x = unit(20, 4, 4)
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    miss = retrieval_metrics(x, y, include=("recall", "map@r", "r_precision"), lone_queries="miss")
    exclude = retrieval_metrics(x, y, include=("recall", "map@r", "r_precision"))
    assert miss["map@r"] == exclude["map@r"] and miss["r_precision"] == exclude["r_precision"]
    assert miss["recall@8"] == pytest.approx(exclude["recall@8"] * 12 / 20, abs=1e-12) and miss["recall@8"] > 0


def test_unknown_convention_is_refused():
    with pytest.raises(ValueError, match="lone_queries.*'exclude'.*'miss'"):
        retrieval_metrics(unit(6, 3, 5), np.repeat(np.arange(3), 2), lone_queries="all")


def test_the_trainer_evaluates_with_the_configs_convention():
    from torch.utils.data import DataLoader, TensorDataset

    from dml.train import load_config
    from dml.train.trainer import evaluate

    x = unit(30, 4, 6)
    y = torch.tensor([*range(6)] * 4 + [50 + i for i in range(6)])
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    reference = released_recall(x, y, ks=(1, 2))
    for convention in ("exclude", "miss"):
        config = load_config(None, ["eval.ks=[1, 2]", "eval.include=[recall]", f"eval.lone_queries={convention}"])
        got = evaluate(torch.nn.Identity(), loader, config, torch.device("cpu"))
        scale = 1.0 if convention == "miss" else 30 / 24
        assert got["recall@2"] == pytest.approx(reference[2] * scale, abs=1e-6)
