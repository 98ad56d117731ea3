"""The fast routes of dml.eval.ranking against its dense reference (``method="dense"``), exactly.

:func:`dml.eval.ranking.dense_rank_statistics` is the specification: it builds the full score matrix and ranks each
row with one stable sort. Every fast route (rows with several block layouts, tiles with many or few tiles, tiny
memory budgets) must return the same integers. Ties come from data whose arithmetic is exact (±1 entries, small
integers, constant vectors), so every route sees the same scores; random float64 data has no near-ties.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.eval import rank_statistics
from dml.eval.inputs import score_operands
from dml.eval.ranking import dense_rank_statistics

SELF_ROUTES = {
    "auto": {},
    "rows": {"method": "rows"},
    "rows-tiny-blocks": {"method": "rows", "block": 2, "count_blocks": 1},
    "rows-odd-blocks": {"method": "rows", "block": 3, "count_blocks": 2},
    "rows-small-chunks": {"method": "rows", "chunk_size": 5},
    "rows-tiny-budget": {"method": "rows", "max_bytes": 2048},
    "tiles": {"method": "tiles"},
    "tiles-many": {"method": "tiles", "chunk_size": 1},
    "tiles-some": {"method": "tiles", "chunk_size": 4},
    "tiles-tiny-budget": {"method": "tiles", "max_bytes": 512},
}
QUERY_GALLERY_ROUTES = {name: kw for name, kw in SELF_ROUTES.items() if not name.startswith("tiles")}


def operands(query, gallery, metric, dtype):
    q = torch.as_tensor(np.asarray(query), dtype=dtype)
    g = None if gallery is None else torch.as_tensor(np.asarray(gallery), dtype=dtype)
    return score_operands(q, g, metric)


def as_codes(*labels):
    codes = np.unique(np.concatenate(labels), return_inverse=True)[1].reshape(-1)
    parts = np.split(codes, np.cumsum([len(y) for y in labels])[:-1])
    return [torch.from_numpy(part.astype(np.int64)) for part in parts]


def assert_routes_match_dense(
    x, y, routes, *, metric="cosine", dtype=torch.float64, gallery=None, gallery_y=None, k_maxes=(1, 1000)
):
    a, b, offsets = operands(x, gallery, metric, dtype)
    exclude_self = gallery is None
    qc, gc = as_codes(y) * 2 if exclude_self else as_codes(y, gallery_y)
    for k_max in k_maxes:
        want = dense_rank_statistics(
            a, b, qc, gc, offsets, exclude_self=exclude_self, k_max=k_max, need_top_relevance=True
        )
        for name, kw in routes.items():
            got = rank_statistics(
                a, b, qc, gc, offsets=offsets, exclude_self=exclude_self, k_max=k_max, need_top_relevance=True, **kw
            )
            assert torch.equal(got.num_positives, want.num_positives), name
            assert torch.equal(got.first_rank, want.first_rank), (name, k_max)
            assert torch.equal(got.top_relevance, want.top_relevance), (name, k_max)


def pm_one(rng, n, d=4):
    return rng.choice([-1.0, 1.0], size=(n, d))


# ----------------------------------------------------------------------------------------------------------------
# The reference itself
# ----------------------------------------------------------------------------------------------------------------


def test_dense_constant_embedding_by_hand():
    x = torch.ones(4, 3)
    codes = torch.tensor([0, 0, 1, 1])
    stats = rank_statistics(x, x, codes, codes, exclude_self=True, k_max=10, need_top_relevance=True, method="dense")
    # Every score ties: query 2 ranks (0, 1, 3), query 3 ranks (0, 1, 2); their positive comes third.
    assert stats.first_rank.tolist() == [0, 0, 2, 2]
    assert stats.top_relevance.tolist() == [[True], [True], [False], [False]]
    assert stats.num_positives.tolist() == [1, 1, 1, 1]


def test_dense_query_gallery_by_hand():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.0]])
    qc, gc = torch.tensor([1, 2]), torch.tensor([0, 1, 0, 1])
    stats = rank_statistics(
        query, gallery, qc, gc, exclude_self=False, k_max=3, need_top_relevance=True, method="dense"
    )
    # Query 0 ranks (0, 3, 1, 2): items 0 and 3 tie, index 0 first; its first positive (3) comes second.
    assert stats.first_rank.tolist() == [1, 3]  # query 1 has no positive: k_max
    assert stats.num_positives.tolist() == [2, 0]
    assert stats.top_relevance.tolist() == [[False, True], [False, False]]


def test_dense_skips_what_is_not_asked_and_caps_at_k_max():
    x = torch.eye(5, dtype=torch.float64)
    codes = torch.tensor([0, 1, 2, 0, 0])
    stats = dense_rank_statistics(x, x, codes, codes, exclude_self=True, k_max=None, need_top_relevance=False)
    assert stats.first_rank is None and stats.top_relevance is None
    capped = dense_rank_statistics(x, x, codes, codes, exclude_self=True, k_max=1, need_top_relevance=False)
    assert capped.first_rank.tolist() == [1, 1, 1, 0, 0]  # query 0 ranks (1, 2, 3, 4) -> 2, capped at 1


def test_dense_refuses_large_inputs():
    x = torch.zeros(100, 2)
    codes = torch.zeros(100, dtype=torch.int64)
    with pytest.raises(ValueError, match="method='dense'.*max_bytes"):
        rank_statistics(
            x, x, codes, codes, exclude_self=True, k_max=1, need_top_relevance=False, method="dense", max_bytes=10_000
        )


# ----------------------------------------------------------------------------------------------------------------
# Fast routes against the reference, self-retrieval
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("n,d,classes", [(70, 6, 12), (130, 3, 60), (97, 16, 5)])
def test_random_float64(metric, n, d, classes):
    rng = np.random.default_rng(n + d)
    assert_routes_match_dense(rng.standard_normal((n, d)), rng.integers(0, classes, n), SELF_ROUTES, metric=metric)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_random_float32(metric):
    rng = np.random.default_rng(1)
    assert_routes_match_dense(
        rng.standard_normal((120, 8)), rng.integers(0, 20, 120), SELF_ROUTES, metric=metric, dtype=torch.float32
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ties_and_duplicates(seed, metric):
    rng = np.random.default_rng(seed)
    n = 80 + 9 * seed
    assert_routes_match_dense(pm_one(rng, n), rng.integers(0, 8, n), SELF_ROUTES, metric=metric, dtype=torch.float32)


def test_small_integer_vectors_euclidean():
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, size=(110, 3))
    assert_routes_match_dense(x, rng.integers(0, 15, 110), SELF_ROUTES, metric="euclidean", dtype=torch.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_constant_embedding(metric):
    rng = np.random.default_rng(11)
    assert_routes_match_dense(
        np.full((45, 4), 0.5), rng.integers(0, 6, 45), SELF_ROUTES, metric=metric, dtype=torch.float32
    )


def test_one_item_classes_and_queries_without_positives():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((60, 5))
    y = np.concatenate([np.repeat(np.arange(10), 4), 100 + np.arange(20)])  # twenty singletons
    assert_routes_match_dense(x, y, SELF_ROUTES)
    assert_routes_match_dense(x[40:], y[40:], SELF_ROUTES)  # no query has a positive


def test_one_large_class_among_small_ones():
    # A class larger than a tile gets a tile of its own; with chunk_size=1 every other tile is small.
    rng = np.random.default_rng(6)
    y = np.concatenate([np.zeros(40, dtype=int), rng.integers(1, 30, 60)])
    x = pm_one(rng, 100)  # d=4: the norms (2) are exact, so every route computes the same scores
    assert_routes_match_dense(x, rng.permutation(y), SELF_ROUTES, dtype=torch.float32)


def test_near_perfect_embedding():
    # Best positives are found in the diagonal tiles; off-diagonal tiles rarely reach them.
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(25), 4))
    x = 10 * rng.standard_normal((25, 8))[y] + 0.5 * rng.standard_normal((100, 8))
    assert_routes_match_dense(x, y, SELF_ROUTES, k_maxes=(1, 3, 100))


# ----------------------------------------------------------------------------------------------------------------
# Fast routes against the reference, query/gallery
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("nq,ng", [(30, 90), (64, 20)])
def test_query_gallery_random(metric, nq, ng):
    rng = np.random.default_rng(nq * ng)
    assert_routes_match_dense(
        rng.standard_normal((nq, 6)),
        rng.integers(0, 12, nq),
        QUERY_GALLERY_ROUTES,
        metric=metric,
        gallery=rng.standard_normal((ng, 6)),
        gallery_y=rng.integers(0, 10, ng),
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_query_gallery_ties_and_missing_labels(metric):
    rng = np.random.default_rng(8)
    gallery = np.concatenate([pm_one(rng, 50), np.ones((10, 4))])  # duplicates and a block of constant vectors
    assert_routes_match_dense(
        pm_one(rng, 40),
        rng.integers(0, 12, 40),
        QUERY_GALLERY_ROUTES,
        metric=metric,
        dtype=torch.float32,
        gallery=gallery,
        gallery_y=rng.integers(0, 10, 60),
    )
