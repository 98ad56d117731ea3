"""dml.eval.rerank: K = 0 is the global ranking exactly; re-ranking moves only the top K; both R conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dml.models
from dml.eval import embed_local, knn, ranked_metrics, rerank, rerank_metrics, retrieval_metrics
from dml.structural import structural_similarity


def _embeddings(seed: int = 0, classes: int = 12, per_class: int = 5, parts: int = 4, dim: int = 6):
    g = torch.Generator().manual_seed(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = torch.randn(classes, dim, generator=g)[labels]
    local = F.normalize(centres[:, None] + 1.5 * torch.randn(len(labels), parts, dim, generator=g), dim=2)
    global_ = F.normalize(centres + 1.5 * torch.randn(len(labels), dim, generator=g), dim=1)
    return global_, local, labels


def test_k0_reproduces_the_global_ranking_and_its_metrics() -> None:
    g, z, y = _embeddings()
    assert torch.equal(rerank(g, z, k=0, length=20), knn(g, k=20)[1])
    ours = rerank_metrics(g, z, y, ks_rerank=(0,), ks=(1, 2, 4))[0]
    reference = retrieval_metrics(g, y, ks=(1, 2, 4), include=("recall", "map@r"))
    for key in ("recall@1", "recall@2", "recall@4", "map@r"):
        assert ours[key] == pytest.approx(reference[key], abs=1e-12)


def test_the_top_k_is_resorted_by_struct_plus_global_and_the_rest_kept() -> None:
    g, z, y = _embeddings(1)
    k, length = 7, 15
    scores, order = knn(g, k=length)
    out = rerank(g, z, k=k, length=length)
    assert torch.equal(out[:, k:], order[:, k:])
    for q in (0, 13, 42):
        candidates = order[q, :k]
        struct = structural_similarity(z[[q] * k], g[[q] * k], z[candidates], g[candidates])
        expected = candidates[torch.argsort(struct + scores[q, :k], descending=True, stable=True)]
        assert torch.equal(out[q, :k], expected)
        assert set(out[q, :k].tolist()) == set(candidates.tolist())


def test_released_r_counts_the_query_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    # query 0 ranks 3, 1, 4, 2, 5 (relevant: 0 1 0 1 0); the others rank the remaining items by index
    neighbours = torch.tensor([[3, 1, 4, 2, 5]] + [[j for j in range(6) if j != q] for q in range(1, 6)])
    # MLRC, R = 2: query 0 (1/2)/2; queries 1, 2 (1 + 1)/2; queries 3-5 have no hit in their first 2
    mlrc = [0.25, 1.0, 1.0, 0.0, 0.0, 0.0]
    # released, R + 1 = 3 (the query counted, ranked last): query 0 (1/2)/3; queries 1, 2 (1 + 1)/3
    released = [(1 / 2) / 3, 2 / 3, 2 / 3, 0.0, 0.0, 0.0]
    assert ranked_metrics(neighbours, labels, r_counts="mlrc")["map@r"] == pytest.approx(np.mean(mlrc))
    assert ranked_metrics(neighbours, labels, r_counts="released")["map@r"] == pytest.approx(np.mean(released))
    assert ranked_metrics(neighbours, labels)["recall@1"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="one row per query"):
        ranked_metrics(neighbours[:1], labels)


def test_short_lists_and_bad_k_fail_helpfully() -> None:
    g, z, y = _embeddings(2)
    with pytest.raises(ValueError, match="longer length"):
        ranked_metrics(rerank(g, z, k=0, length=2), y)
    with pytest.raises(ValueError, match="k must be"):
        rerank(g, z, k=len(y), length=5)


def test_embed_local_gives_the_models_embedding_and_unit_grid_cells() -> None:
    torch.manual_seed(0)
    model = dml.models.build("small_cnn", embedding_dim=8, backbone_kwargs={"widths": [4, 8]}).eval()
    images = torch.randn(10, 3, 16, 16)
    data = torch.utils.data.TensorDataset(images, torch.arange(10))
    g, z, y = embed_local(model, data, grid=4, batch_size=4)
    with torch.no_grad():
        torch.testing.assert_close(g, model(images))
    assert z.shape == (10, 16, 8) and torch.allclose(z.norm(dim=2), torch.ones(10, 16))
    assert y.tolist() == list(range(10))


def test_both_r_conventions_from_one_reranking() -> None:
    g, z, y = _embeddings(3)
    both = rerank_metrics(g, z, y, ks_rerank=(0, 5), r_counts=("mlrc", "released"))
    for k in (0, 5):
        one = rerank_metrics(g, z, y, ks_rerank=(k,), r_counts="released")[k]
        assert both[k]["map@r_released"] == one["map@r_released"] and both[k]["recall@1"] == one["recall@1"]
        assert both[k]["map@r_released"] < both[k]["map@r"]
    with pytest.raises(ValueError, match="r_counts"):
        rerank_metrics(g, z, y, r_counts=("mlrc", "query"))
