"""dml.eval retrieval metrics against a brute-force reference written out in full below.

The reference builds the whole N×N score matrix in float64 (row by row, so identical vectors get bit-identical
scores), ranks every query with ``np.lexsort`` by (−score, index) and loops over the queries: slow and obviously
correct. Exact ties are produced with data whose arithmetic is exact in float32 (±1 entries, small integers), so
the implementation and the reference see the same ties.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch

import dml.eval.ranking as ranking
import dml.eval.retrieval as retrieval
from dml.eval import query_gallery_metrics, rank_statistics, retrieval_metrics, topk_lex

RANKING = ("recall", "map@r", "r_precision")


# ----------------------------------------------------------------------------------------------------------------
# Reference
# ----------------------------------------------------------------------------------------------------------------


def reference_metrics(query, query_labels, gallery=None, gallery_labels=None, *, ks=(1, 2, 4, 8), metric="cosine"):
    """Brute force. ``gallery=None``: self-retrieval (the query excluded by index)."""
    self_retrieval = gallery is None
    q = np.asarray(query, dtype=np.float64)
    yq = np.asarray(query_labels)
    g = q if self_retrieval else np.asarray(gallery, dtype=np.float64)
    yg = yq if self_retrieval else np.asarray(gallery_labels)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = q if self_retrieval else g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        scores = np.stack([(g * row).sum(axis=1) for row in q])
    else:
        scores = np.stack([-((g - row) ** 2).sum(axis=1) for row in q])

    per_query = {f"recall@{k}": [] for k in ks}
    per_query.update({"map@r": [], "r_precision": []})
    without = 0
    for i in range(len(q)):
        candidates = np.arange(len(g))
        if self_retrieval:
            candidates = candidates[candidates != i]
        s = scores[i, candidates]
        ranked = candidates[np.lexsort((candidates, -s))]  # primary key -score, then index
        relevant = yg[ranked] == yq[i]
        r = int(relevant.sum())
        if r == 0:
            without += 1
            continue
        for k in ks:
            per_query[f"recall@{k}"].append(float(relevant[:k].any()))
        top = relevant[:r]
        per_query["r_precision"].append(top.sum() / r)
        precision_at_i = np.cumsum(top) / np.arange(1, r + 1)
        per_query["map@r"].append(float((precision_at_i * top).sum() / r))
    out = {name: (float(np.mean(v)) if v else math.nan) for name, v in per_query.items()}
    out["num_queries"] = len(q)
    out["num_queries_without_positives"] = without
    return out


def assert_same(got, want, tol=1e-9):
    for key, value in want.items():
        assert key in got, key
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), (key, got[key])
        else:
            assert got[key] == pytest.approx(value, abs=tol), (key, got[key], value)


# Routes of the implementation: the tiles route (self-retrieval default), the rows route, the rows route with
# tiny blocks so that the "count over the full row" and "beyond k_max" branches run, and the dense reference.
ROUTES = {
    "auto": {},
    "tiles": {"method": "tiles"},
    "rows": {"method": "rows"},
    "rows-tiny-blocks": {"method": "rows", "block": 2, "count_blocks": 1},
    "rows-odd-blocks": {"method": "rows", "block": 3, "count_blocks": 2},
    "dense": {"method": "dense"},
}


@pytest.fixture(params=list(ROUTES))
def route(request, monkeypatch):
    routed = functools.partial(ranking.rank_statistics, **ROUTES[request.param])
    monkeypatch.setattr(retrieval, "rank_statistics", routed)
    return request.param


def pm_one(rng, n, d=4):
    """±1 vectors in 4-D: dot products and norms are exact, and only a few distinct scores exist (many ties)."""
    return rng.choice([-1.0, 1.0], size=(n, d)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,d,classes,chunk", [(60, 8, 12, None), (150, 5, 40, 7), (257, 16, 30, 64), (120, 3, 110, 13)]
)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_random_data_matches_reference(route, n, d, classes, chunk, metric):
    rng = np.random.default_rng(n + d)
    x = rng.standard_normal((n, d))  # float64: no ties, and the same arithmetic as the reference
    y = rng.integers(0, classes, n)
    ks = (1, 2, 3, 8, 1000)
    got = retrieval_metrics(x, y, ks=ks, metric=metric, include=RANKING, chunk_size=chunk)
    assert_same(got, reference_metrics(x, y, ks=ks, metric=metric))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ties_follow_index_order(route, seed, metric):
    rng = np.random.default_rng(seed)
    n = 90 + 7 * seed
    x = pm_one(rng, n)  # 16 distinct vectors for n items: heavy ties and duplicates
    y = rng.integers(0, 9, n)
    ks = (1, 2, 5, 10)
    for chunk in (None, 11):
        got = retrieval_metrics(x, y, ks=ks, metric=metric, include=RANKING, chunk_size=chunk)
        assert_same(got, reference_metrics(x, y, ks=ks, metric=metric))


def test_integer_vectors_euclidean_ties(route):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, size=(140, 3)).astype(np.float32)
    y = rng.integers(0, 15, 140)
    got = retrieval_metrics(x, y, ks=(1, 3, 9), metric="euclidean", include=RANKING, chunk_size=17)
    assert_same(got, reference_metrics(x, y, ks=(1, 3, 9), metric="euclidean"))


def test_duplicated_vectors(route):
    rng = np.random.default_rng(3)
    base = pm_one(rng, 30, d=4)
    x = np.concatenate([base, base, base[:10]])  # every vector at least twice, in different classes
    y = rng.integers(0, 6, len(x))
    got = retrieval_metrics(x, y, ks=(1, 2, 4), include=RANKING, chunk_size=9)
    assert_same(got, reference_metrics(x, y, ks=(1, 2, 4)))


def test_constant_embedding_ranks_by_index(route):
    # Every score ties, so each query ranks the others by index. Queries 0 and 1 find each other first; queries 2
    # and 3 find their partner only at rank 3 (after items 0 and 1). A tie rule that favoured positives would
    # report a perfect score here.
    x = np.ones((4, 3), dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    got = retrieval_metrics(x, y, ks=(1, 2, 3), include=RANKING)
    assert got["recall@1"] == got["recall@2"] == 0.5
    assert got["recall@3"] == 1.0
    assert got["map@r"] == got["r_precision"] == 0.5
    assert_same(got, reference_metrics(x, y, ks=(1, 2, 3)))


def test_constant_embedding_matches_reference(route):
    rng = np.random.default_rng(11)
    x = np.full((50, 4), 0.5, dtype=np.float32)  # normalises to exactly 0.5: every score is exactly 1
    y = rng.integers(0, 7, 50)
    assert_same(
        retrieval_metrics(x, y, ks=(1, 5, 20), include=RANKING, chunk_size=8), reference_metrics(x, y, ks=(1, 5, 20))
    )


@pytest.mark.parametrize("chunk", [None, 8, 20])
def test_inexact_duplicates_tie_exactly_by_default(chunk):
    # 0.3/||x|| is not exact in float32, and matmuls of different shapes may round it differently; the default
    # route keeps every query's scores in one matmul when rows are duplicated, so the ties stay exact.
    rng = np.random.default_rng(12)
    x = np.full((60, 6), 0.3, dtype=np.float32)
    x[::3] = rng.standard_normal((20, 6))
    y = rng.integers(0, 7, 60)
    for metric in ("cosine", "euclidean"):
        assert_same(
            retrieval_metrics(x, y, ks=(1, 5, 20), metric=metric, include=RANKING, chunk_size=chunk),
            reference_metrics(x, y, ks=(1, 5, 20), metric=metric),
        )


def test_perfect_embedding_scores_one(route):
    rng = np.random.default_rng(0)
    centres = 10 * rng.standard_normal((20, 16))
    y = rng.integers(0, 20, 200)
    y[:40] = np.repeat(np.arange(20), 2)  # every class has at least two members
    x = centres[y] + 1e-3 * rng.standard_normal((200, 16))
    for metric in ("cosine", "euclidean"):
        got = retrieval_metrics(x, y, ks=(1, 2, 4, 8), metric=metric, include=RANKING, chunk_size=32)
        assert all(got[k] == 1.0 for k in ("recall@1", "recall@8", "map@r", "r_precision")), got


def test_classes_of_size_one_are_excluded_and_counted(route):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    y = np.concatenate([np.repeat(np.arange(10), 3), 100 + np.arange(10)])  # ten singletons
    got = retrieval_metrics(x, y, ks=(1, 2), include=RANKING)
    assert got["num_queries"] == 40
    assert got["num_queries_without_positives"] == 10
    assert_same(got, reference_metrics(x, y, ks=(1, 2)))
    # The singletons still act as (negative) gallery items: removing them changes the scores.
    without = retrieval_metrics(x[:30], y[:30], ks=(1, 2), include=RANKING)
    assert_same(without, reference_metrics(x[:30], y[:30], ks=(1, 2)))


def test_all_singletons_give_nan_with_warning(route):
    x = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.warns(RuntimeWarning, match="No query has a relevant"):
        got = retrieval_metrics(x, np.arange(5), include=RANKING)
    assert math.isnan(got["recall@1"]) and math.isnan(got["map@r"]) and math.isnan(got["r_precision"])
    assert got["num_queries_without_positives"] == 5


def test_single_item():
    with pytest.warns(RuntimeWarning):
        got = retrieval_metrics(np.ones((1, 4)), [3], include=RANKING)
    assert got["num_queries"] == 1 and got["num_queries_without_positives"] == 1


def test_k_larger_than_gallery(route):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    got = retrieval_metrics(x, y, ks=(1, 11, 50), include=RANKING)
    assert got["recall@11"] == got["recall@50"] == 1.0
    assert_same(got, reference_metrics(x, y, ks=(1, 11, 50)))


def test_euclidean_and_cosine_differ_and_agree_on_normalised_data():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((80, 5)) * rng.uniform(0.1, 10, size=(80, 1))  # very different norms
    y = rng.integers(0, 8, 80)
    cos = retrieval_metrics(x, y, metric="cosine", include=RANKING)
    euc = retrieval_metrics(x, y, metric="euclidean", include=RANKING)
    assert cos != euc
    assert_same(cos, reference_metrics(x, y, metric="cosine"))
    assert_same(euc, reference_metrics(x, y, metric="euclidean"))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert_same(retrieval_metrics(unit, y, metric="euclidean", include=RANKING), cos)


def test_routes_agree_with_each_other():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    y = rng.integers(0, 50, 300)
    codes = torch.from_numpy(np.unique(y, return_inverse=True)[1].reshape(-1).astype(np.int64))
    xt = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    results = [
        rank_statistics(
            xt, xt, codes, codes, exclude_self=True, k_max=100, need_top_relevance=True, chunk_size=chunk, method=method
        )
        for method, chunk in (("rows", None), ("rows", 37), ("tiles", None), ("tiles", 40))
    ]
    for other in results[1:]:
        assert torch.equal(other.first_rank, results[0].first_rank)
        assert torch.equal(other.top_relevance, results[0].top_relevance)
        assert torch.equal(other.num_positives, results[0].num_positives)


def test_string_labels_and_torch_inputs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = rng.integers(0, 5, 30)
    names = np.array(["cat", "dog", "emu", "gnu", "yak"])[y]
    want = retrieval_metrics(x, y, include=RANKING)
    assert retrieval_metrics(x, names, include=RANKING) == want
    assert retrieval_metrics(x, list(names), include=RANKING) == want
    tensor = torch.from_numpy(x).requires_grad_()
    assert retrieval_metrics(tensor, torch.from_numpy(y), include=RANKING) == want
    half = retrieval_metrics(torch.from_numpy(x).half(), y, include=RANKING)
    assert set(half) == set(want)


def test_default_keys_and_nmi_included():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)), rng.integers(0, 4, 40)
    got = retrieval_metrics(x, y)
    assert set(got) == {
        "recall@1",
        "recall@2",
        "recall@4",
        "recall@8",
        "map@r",
        "r_precision",
        "nmi",
        "num_queries",
        "num_queries_without_positives",
    }
    assert set(retrieval_metrics(x, y, include=("nmi",))) == {"nmi", "num_queries", "num_queries_without_positives"}
    only_recall = retrieval_metrics(x, y, ks=(3,), include=("recall",))
    assert set(only_recall) == {"recall@3", "num_queries", "num_queries_without_positives"}


def test_small_memory_budget_same_result():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((200, 8)), rng.integers(0, 20, 200)
    full = retrieval_metrics(x, y, include=RANKING)
    tiny = retrieval_metrics(x, y, include=RANKING, max_bytes=4096)
    assert_same(tiny, full, tol=0)


# ----------------------------------------------------------------------------------------------------------------
# Query / gallery
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nq,ng,classes,chunk", [(40, 90, 10, None), (75, 33, 12, 8), (10, 200, 30, 3)])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_query_gallery_matches_reference(route, nq, ng, classes, chunk, metric):
    if route == "tiles":
        pytest.skip("the tiles route is for self-retrieval")
    rng = np.random.default_rng(nq * ng)
    q, g = rng.standard_normal((nq, 6)), rng.standard_normal((ng, 6))
    yq, yg = rng.integers(0, classes, nq), rng.integers(0, classes, ng)
    ks = (1, 5, 10, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = query_gallery_metrics(q, yq, g, yg, ks=ks, metric=metric, chunk_size=chunk)
    assert_same(got, reference_metrics(q, yq, g, yg, ks=ks, metric=metric))


def test_query_gallery_ties_and_missing_labels(route):
    if route == "tiles":
        pytest.skip("the tiles route is for self-retrieval")
    rng = np.random.default_rng(8)
    q, g = pm_one(rng, 50), pm_one(rng, 120)
    yq, yg = rng.integers(0, 12, 50), rng.integers(0, 10, 120)  # labels 10 and 11 never occur in the gallery
    got = query_gallery_metrics(q, yq, g, yg, ks=(1, 3, 10), chunk_size=7)
    want = reference_metrics(q, yq, g, yg, ks=(1, 3, 10))
    assert_same(got, want)
    assert got["num_queries_without_positives"] == int(np.isin(yq, [10, 11]).sum()) > 0


def test_query_identical_to_a_gallery_item_is_not_excluded():
    # In query/gallery retrieval nothing is excluded: a query that also sits in the gallery finds itself.
    x = np.eye(4)
    got = query_gallery_metrics(x, [0, 1, 2, 3], x, [0, 1, 2, 3], ks=(1,))
    assert got["recall@1"] == got["map@r"] == 1.0


def test_query_gallery_moves_gallery_to_query_device_and_dtype():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((10, 3)), rng.standard_normal((20, 3)).astype(np.float32)
    yq, yg = rng.integers(0, 3, 10), rng.integers(0, 3, 20)
    got = query_gallery_metrics(torch.from_numpy(q), yq, g, yg)
    assert_same(got, reference_metrics(q, yq, g.astype(np.float64), yg, ks=(1, 10, 20, 30, 40, 50)), tol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# topk_lex
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 7, 20, 25])
def test_topk_lex_matches_lexsort(k):
    rng = np.random.default_rng(k)
    values = rng.integers(0, 4, size=(30, 20)).astype(np.float32)  # many ties, also across the cut
    ids = np.stack([rng.permutation(100)[:20] for _ in range(30)])
    got_v, got_i = topk_lex(torch.from_numpy(values), k, torch.from_numpy(ids))
    for row in range(30):
        order = np.lexsort((ids[row], -values[row]))[:k]
        assert got_i[row].tolist() == ids[row][order].tolist()
        assert got_v[row].tolist() == values[row][order].tolist()
    v1, i1 = topk_lex(torch.from_numpy(values), k)  # default ids: the column number
    for row in range(30):
        assert i1[row].tolist() == np.lexsort((np.arange(20), -values[row]))[:k].tolist()


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_errors():
    x = np.zeros((5, 3))
    y = np.arange(5)
    with pytest.raises(ValueError, match="different lengths"):
        retrieval_metrics(x, y[:4])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(bad, y)
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(5), y)
    with pytest.raises(ValueError, match="empty"):
        retrieval_metrics(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="Unknown metric 'manhattan'"):
        retrieval_metrics(x, y, metric="manhattan")
    for ks in [(0,), (1, -2), (1.5,), (True,), ()]:
        with pytest.raises(ValueError, match="k"):
            retrieval_metrics(x, y, ks=ks)
    with pytest.raises(ValueError, match="'precision_at_1'"):
        retrieval_metrics(x, y, include=("recall", "precision_at_1"))
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_metrics(x, y, chunk_size=0)
    with pytest.raises(ValueError, match="dimension"):
        query_gallery_metrics(x, y, np.zeros((4, 2)), np.arange(4))
    with pytest.raises(ValueError, match="gallery_embeddings and labels"):
        query_gallery_metrics(x, y, np.zeros((4, 3)), np.arange(3))
    with pytest.raises(ValueError, match="method"):
        rank_statistics(
            torch.zeros(2, 2),
            torch.zeros(2, 2),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            exclude_self=False,
            k_max=1,
            need_top_relevance=False,
            method="tiles",
        )


def test_query_gallery_without_any_positive_gives_nan_with_the_count(route):
    """No query label occurs in the gallery: NaN ranking metrics and the count, as in self-retrieval."""
    if route == "tiles":
        pytest.skip("the tiles route is for self-retrieval")
    rng = np.random.default_rng(3)
    q, g = rng.standard_normal((5, 4)), rng.standard_normal((6, 4))
    for include in (RANKING, ("recall",), ("map@r",)):
        with pytest.warns(RuntimeWarning, match="No query has a relevant"):
            got = query_gallery_metrics(q, [1, 2, 3, 4, 5], g, [7, 7, 8, 8, 9, 9], ks=(1, 2), include=include)
        ranked = [key for key in got if key.startswith(("recall@", "map@r", "r_precision"))]
        assert ranked and all(math.isnan(got[key]) for key in ranked), got
        assert got["num_queries"] == got["num_queries_without_positives"] == 5


@pytest.mark.parametrize("where", ["query", "gallery", "self"])
def test_zero_norm_embedding_is_refused_under_cosine(where):
    """A zero vector has no direction: cosine retrieval refuses it (as NaN rows are refused); euclidean does not."""
    rng = np.random.default_rng(4)
    q, g = rng.standard_normal((6, 3)), rng.standard_normal((8, 3))
    yq, yg = np.arange(6) % 3, np.arange(8) % 3
    (g if where == "gallery" else q)[2] = 0.0
    name = "gallery_embeddings" if where == "gallery" else ("embeddings" if where == "self" else "query_embeddings")
    for include in (RANKING, ("nmi",)):
        with pytest.raises(ValueError, match=rf"{name} have 1 row.* zero norm \(first at index 2\).*euclidean"):
            if where == "self":
                retrieval_metrics(q, yq, include=include)
            else:
                query_gallery_metrics(q, yq, g, yg, ks=(1,), include=include)
    if where == "self":
        assert retrieval_metrics(q, yq, ks=(1,), metric="euclidean", include=RANKING)["num_queries"] == 6
    else:
        assert query_gallery_metrics(q, yq, g, yg, ks=(1,), metric="euclidean")["num_queries"] == 6


def test_missing_labels_empty_dimensions_and_malformed_ks_are_refused():
    """Each used to end in an unrelated message: sklearn's "Input contains NaN", numpy's "'<' not supported", a
    ZeroDivisionError, "'bool' object is not iterable"."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    with pytest.raises(ValueError, match=r"labels contain 3 missing value\(s\) \(None or NaN, first at index 0\)"):
        retrieval_metrics(x, [np.nan] * 3 + [1.0] * 3, ks=(1,))
    with pytest.raises(ValueError, match=r"gallery_labels contain 1 missing value\(s\).*index 2"):
        query_gallery_metrics(x, [1, 1, 2, 2, 3, 3], x, np.array([1, 1, None, 2, 3, 3], dtype=object), ks=(1,))
    with pytest.raises(ValueError, match=r"embeddings have 0 dimensions \(shape \(6, 0\)\)"):
        retrieval_metrics(np.zeros((6, 0)), [1, 1, 2, 2, 3, 3], ks=(1,), metric="euclidean")
    for ks in (True, 1.0, "1", None):
        with pytest.raises(ValueError, match=r"ks must be an integer >= 1 or a sequence of them"):
            retrieval_metrics(x, [1, 1, 2, 2, 3, 3], ks=ks)


def test_ks_larger_than_the_gallery_warn_once_are_capped_and_recorded(route):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = retrieval_metrics(x, y, ks=(1, 11, 50, 100), include=RANKING)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "[50, 100]" in messages[0] and "11 gallery items" in messages[0], messages
    assert got["ks_capped_to"] == 11 and got["recall@50"] == got["recall@100"] == got["recall@11"] == 1.0
    assert_same(got, reference_metrics(x, y, ks=(1, 11, 50, 100)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        within = retrieval_metrics(x, y, ks=(1, 11), include=RANKING)
    assert "ks_capped_to" not in within
    if route != "tiles":
        q, g = rng.standard_normal((7, 3)), rng.standard_normal((9, 3))
        yq, yg = rng.integers(0, 3, 7), np.arange(9) % 3
        with pytest.warns(RuntimeWarning, match=r"\[10, 20\] exceed the 9 gallery items"):
            qg = query_gallery_metrics(q, yq, g, yg, ks=(1, 9, 10, 20))
        assert qg["ks_capped_to"] == 9
        assert_same(qg, reference_metrics(q, yq, g, yg, ks=(1, 9, 10, 20)))


def test_ks_int_and_duplicates_accepted():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 4, 20)
    assert set(retrieval_metrics(x, y, ks=5, include=("recall",))) >= {"recall@5"}
    got = retrieval_metrics(x, y, ks=(2, 1, 2), include=("recall",))
    assert [k for k in got if k.startswith("recall")] == ["recall@2", "recall@1"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    y = rng.integers(0, 60, 500)
    cpu = retrieval_metrics(x, y, include=RANKING, ks=(1, 5, 100))
    gpu = retrieval_metrics(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), include=RANKING, ks=(1, 5, 100))
    assert_same(gpu, cpu, tol=1e-6)
    ties, labels = pm_one(rng, 200), rng.integers(0, 20, 200)
    for method in ("tiles", "rows"):
        codes = torch.from_numpy(np.unique(labels, return_inverse=True)[1].reshape(-1)).cuda()
        xt = torch.nn.functional.normalize(torch.from_numpy(ties).cuda(), dim=1)
        stats = rank_statistics(
            xt, xt, codes, codes, exclude_self=True, k_max=10, need_top_relevance=True, chunk_size=30, method=method
        )
        assert stats.first_rank.is_cuda
    assert_same(
        retrieval_metrics(torch.from_numpy(ties).cuda(), labels, include=RANKING, chunk_size=30),
        reference_metrics(ties, labels),
    )


def test_tiles_are_runs_of_whole_classes():
    assert ranking._greedy_tiles([3, 4, 2, 5, 1], 6) == [(0, 3), (3, 9), (9, 15)]
    assert ranking._greedy_tiles([10, 2], 4) == [(0, 10), (10, 12)]  # a class larger than a tile gets its own
    assert ranking._greedy_tiles([1] * 5, 100) == [(0, 5)]


def test_map_at_r_per_query_averages_to_map_at_r_and_matches_a_hand_case() -> None:
    from dml.eval import map_at_r_per_query

    # 1-D directions on a circle: query 0 (class 0, R = 2) ranks 1 (class 0), 2 (class 1), 3 (class 0)
    angles = torch.tensor([0.0, 0.1, 0.25, 0.4, 3.0, 3.1])
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    y = np.array([0, 0, 1, 0, 1, 2])
    per_query = map_at_r_per_query(x, y)
    assert len(per_query) == 5  # the lone class-2 item is no query
    assert per_query[0] == pytest.approx((1 / 1 + 0) / 2)  # P(1)=1 at the positive of rank 1, rank 2 is wrong
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(60, 8, generator=generator)
    labels = np.repeat(np.arange(12), 5)
    assert np.mean(map_at_r_per_query(z, labels)) == pytest.approx(
        retrieval_metrics(z, labels, include=["map@r"])["map@r"], abs=1e-12
    )
