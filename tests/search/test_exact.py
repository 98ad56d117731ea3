"""Exact top-k of an index against :func:`dml.eval.knn` and a brute-force ranking by (−score, row)."""

from __future__ import annotations

import numpy as np
import torch

from dml.eval import knn
from dml.search.exact import exact_topk


def test_exact_topk_equals_knn_and_a_brute_force_ranking_with_ties() -> None:
    rng = np.random.default_rng(0)
    gallery = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((500, 8), dtype=np.float32)), dim=1)
    gallery[250:260] = gallery[3]  # exact ties, broken by the lower row
    queries = torch.from_numpy(rng.standard_normal((37, 8), dtype=np.float32))
    queries[5] = gallery[3] * 2.0
    scores, rows = exact_topk(queries, gallery, 20, max_bytes=4096)  # many small chunks
    _, expected = knn(queries, gallery, k=20)
    assert torch.equal(rows, expected)
    q = torch.nn.functional.normalize(queries, dim=1)
    full = (q @ gallery.T).numpy()
    for i in range(len(q)):
        order = np.lexsort((np.arange(500), -full[i]))[:20]
        assert np.array_equal(rows[i].numpy(), order)
        assert np.allclose(scores[i].numpy(), full[i][order])
    assert rows[5, :11].tolist() == [3, *range(250, 260)]
