"""Hotels-50K instance / chain top-K: hand-checked cases, the released script's loops, embeddings and CSV input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from dml.eval import (
    evaluate_result_csv,
    hotel_metrics_from_ids,
    hotel_retrieval_metrics,
    hotel_topk_accuracy,
    knn,
    knn_log_loss,
)
from dml.eval.hotels import read_hotels_metadata, read_result_csv
from tests.fixtures.benchmarks import make_hotels


def released_protocol(qh, qc, rh, rc, ks_instance, ks_chain):
    """The loops of GWUvision/Hotels-50K evaluate/retrieval.py, written out independently as a reference."""
    n, r = rh.shape
    inst, chain, known = np.zeros((n, r)), np.zeros((n, r)), []
    for i in range(n):
        hits = np.where(rh[i] == qh[i])[0]
        if len(hits):
            inst[i, hits[0] :] = 1
        if qc[i] > -1:
            known.append(i)
        hits = np.where(rc[i] == qc[i])[0]
        if len(hits):
            chain[i, hits[0] :] = 1
    inst, chain = inst.mean(axis=0), chain[known].mean(axis=0)
    return {**{f"instance@{k}": inst[k - 1] for k in ks_instance}, **{f"chain@{k}": chain[k - 1] for k in ks_chain}}


def test_hand_computed_example():
    qh, qc = np.array([1, 2, 3]), np.array([10, -1, 20])
    rh = np.array([[1, 5, 6], [7, 2, 8], [9, 9, 9]])
    rc = np.array([[10, 10, 10], [-1, -1, 30], [30, -1, 20]])
    result = hotel_topk_accuracy(qh, qc, rh, rc, instance_ks=(1, 2, 3), chain_ks=(1, 2, 3))
    assert [result[f"instance@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    # query 2 has no known chain and is left out; query 3's chain appears at rank 3
    assert [result[f"chain@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 2, 1 / 2, 1.0])
    assert result["num_queries"] == 3 and result["num_queries_with_chain"] == 2
    known = hotel_topk_accuracy(qh, qc, rh, rc, instance_ks=(1,), chain_ks=(1, 2), chain_results="known")
    # dropping query 3's unknown-chain result moves its chain hit from rank 3 to rank 2
    assert [known["chain@1"], known["chain@2"]] == pytest.approx([1 / 2, 1.0])


def test_matches_the_released_script_on_random_lists():
    rng = np.random.default_rng(0)
    n, r = 200, 100
    qh = rng.integers(0, 30, n)
    chain_of = rng.integers(-1, 4, 30)
    rh = rng.integers(0, 30, (n, r))
    ours = hotel_topk_accuracy(qh, chain_of[qh], rh, chain_of[rh])
    reference = released_protocol(qh, chain_of[qh], rh, chain_of[rh], (1, 10, 100), (1, 3, 5))
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert ours["num_queries_with_chain"] == int((chain_of[qh] > -1).sum())


def test_from_embeddings_equals_brute_force_ranking():
    rng = np.random.default_rng(1)
    hotels = rng.integers(0, 12, 150)
    chains = np.where(np.arange(12) % 4 == 3, -1, np.arange(12) % 3)
    gallery, queries = rng.normal(size=(150, 8)), rng.normal(size=(40, 8))
    query_hotels = rng.integers(0, 12, 40)
    result = hotel_retrieval_metrics(
        queries,
        gallery,
        query_hotels,
        hotels,
        chains[query_hotels],
        chains[hotels],
        top=20,
        instance_ks=(1, 5, 20),
        chain_ks=(1, 3, 5),
    )
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :20]
    reference = released_protocol(
        query_hotels, chains[query_hotels], hotels[order], chains[hotels[order]], (1, 5, 20), (1, 3, 5)
    )
    for key, value in reference.items():
        assert result[key] == pytest.approx(value), key


def test_perfect_embedding_and_tensor_inputs():
    hotels = torch.arange(10).repeat_interleave(3)
    chains = torch.tensor([0, 0, 1, 1, 2, 2, -1, -1, 3, 3])[hotels]
    emb = torch.nn.functional.one_hot(hotels, 10).float()
    result = hotel_retrieval_metrics(
        emb[::3], emb, hotels[::3], hotels, chains[::3], chains, top=5, instance_ks=(1, 5), chain_ks=(1,)
    )
    assert result["instance@1"] == result["chain@1"] == 1.0 and result["num_queries_with_chain"] == 8


def test_invalid_inputs():
    qh, rh = np.array([1, 2]), np.array([[1, 2], [2, 1]])
    with pytest.raises(ValueError, match="between 1 and the number of results per query \\(2\\)"):
        hotel_topk_accuracy(qh, qh, rh, rh, instance_ks=(1, 10))
    with pytest.raises(ValueError, match="one row of results per query"):
        hotel_topk_accuracy(qh, qh, rh[:1], rh[:1], instance_ks=(1,), chain_ks=(1,))
    with pytest.raises(ValueError, match="'all' \\(released code\\) or 'known'"):
        hotel_topk_accuracy(qh, qh, rh, rh, instance_ks=(1,), chain_ks=(1,), chain_results="paper")
    with pytest.warns(RuntimeWarning, match="No query belongs to a known chain"):
        result = hotel_topk_accuracy(qh, np.array([-1, -1]), rh, rh, instance_ks=(1,), chain_ks=(1,))
    assert math.isnan(result["chain@1"]) and result["instance@1"] == 1.0


def test_released_csv_format_end_to_end(tmp_path):
    tree = make_hotels(tmp_path / "hotels50k", hotels=4, train_per_hotel=3, test_per_hotel=1, missing_train=0)
    meta = tree.root / "input" / "dataset"
    test_hotel, train_hotel, chain_of = read_hotels_metadata(meta)
    assert chain_of == {1: 1, 2: 0, 3: 1, 4: -1} and len(train_hotel) == 12 and len(test_hotel) == 4
    by_hotel = {h: [i for i, hh in train_hotel.items() if hh == h] for h in set(train_hotel.values())}
    rows = []
    for query, hotel in test_hotel.items():  # the right hotel at rank 2, then other hotels, padded to 100
        others = [i for i in train_hotel if train_hotel[i] != hotel]
        ranked = ([others[0], by_hotel[hotel][0]] + others[1:] + by_hotel[hotel][1:]) * 10
        rows.append([query, *ranked[:100]])
    with open(tmp_path / "results.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = evaluate_result_csv(tmp_path / "results.csv", meta)
    assert result["instance@1"] == 0.0 and result["instance@10"] == result["instance@100"] == 1.0
    assert result["num_queries"] == 4 and result["num_queries_with_chain"] == 3  # hotel 4 has chain -1
    query_ids, result_ids = read_result_csv(tmp_path / "results.csv")
    assert result_ids.shape == (4, 100)
    with pytest.raises(KeyError, match="Unknown result image id 999"):
        hotel_metrics_from_ids(
            query_ids, np.full((4, 100), 999), test_hotel_of=test_hotel, train_hotel_of=train_hotel, chain_of=chain_of
        )
    (tmp_path / "short.csv").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="line 1: expected a query image id and 100 result ids"):
        read_result_csv(tmp_path / "short.csv")


def slow_log_loss(qh, rh, num_classes, *, posterior="frequency", eps=1e-15):
    """The released pipeline written out: a C-vector of votes per query, clipped, renormalised (sklearn 0.20)."""
    classes = np.unique(np.concatenate([np.arange(num_classes), rh.ravel(), qh]))[:num_classes]
    losses = []
    for q, row in zip(qh, rh):
        votes = np.array([np.sum(row == c) for c in classes], dtype=float)
        p = votes / (len(row) if posterior == "frequency" else np.count_nonzero(votes))
        p = np.clip(p, eps, 1 - eps)
        p = p / p.sum()
        losses.append(-np.log(p[classes == q][0]) if q in classes else -np.log(eps))
    return float(np.mean(losses))


def test_log_loss_hand_computed():
    # query 0: 3 of 4 votes for its hotel; query 1: its hotel absent -> -log(eps) up to renormalisation
    qh, rh = np.array([0, 1]), np.array([[0, 0, 2, 0], [2, 2, 3, 3]])
    expected = (-math.log(0.75) - math.log(1e-15)) / 2
    assert knn_log_loss(qh, rh, num_classes=4) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("posterior", ["frequency", "released"])
def test_log_loss_matches_the_slow_reference(posterior):
    rng = np.random.default_rng(3)
    qh = rng.integers(0, 20, 60)
    rh = np.where(rng.random((60, 100)) < 0.3, qh[:, None], rng.integers(0, 20, (60, 100)))
    rh[:5] = qh[:5, None]  # all votes for the right class: 1 clipped to 1 - eps
    ours = knn_log_loss(qh, rh, num_classes=20, posterior=posterior)
    assert ours == pytest.approx(slow_log_loss(qh, rh, 20, posterior=posterior), rel=1e-12)


def test_log_loss_against_scikit_learn():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(4)
    qh, rh = rng.integers(0, 12, 40), rng.integers(0, 12, (40, 100))
    votes = np.stack([np.bincount(row, minlength=12) / 100 for row in rh])
    eps = np.finfo(float).eps  # today's sklearn clips at machine epsilon and does not renormalise
    ours = knn_log_loss(qh, rh, num_classes=12, eps=eps)
    assert ours == pytest.approx(log_loss(qh, votes, labels=np.arange(12)), rel=1e-9)


def test_log_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="posterior"):
        knn_log_loss(np.array([0]), np.array([[0, 1]]), num_classes=2, posterior="softmax")
    with pytest.raises(ValueError, match="num_classes"):
        knn_log_loss(np.array([0]), np.array([[0, 1, 2]]), num_classes=2)
    with pytest.raises(ValueError, match="one row per query"):
        knn_log_loss(np.array([0, 1]), np.array([[0, 1]]), num_classes=2)


def test_retrieval_metrics_report_the_log_loss():
    rng = np.random.default_rng(5)
    gallery_hotels = np.repeat(np.arange(10), 12)
    gallery = rng.normal(size=(120, 6))
    queries, query_hotels = gallery[::12] + 0.01, np.arange(10)
    chains = np.zeros(120, dtype=np.int64)
    result = hotel_retrieval_metrics(
        queries, gallery, query_hotels, gallery_hotels, chains[:10], chains, top=20, instance_ks=(1,), chain_ks=(1,)
    )
    _, order = knn(queries, gallery, k=20)
    expected = knn_log_loss(query_hotels, gallery_hotels[order.numpy()], num_classes=10)
    assert result["log_loss"] == pytest.approx(expected)
