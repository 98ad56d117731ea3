"""dml.eval.protocol: Evaluation.of reads the protocol's arrays; evaluate() is the trainer's evaluation, Config-free."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dml.eval
from dml.eval import Evaluation, evaluate, resolve_protocol
from dml.eval.protocol import AUTO_PROTOCOL


class _Set(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, classes: int = 6, is_query=None, chain_labels=None) -> None:
        g = torch.Generator().manual_seed(0)
        self.labels = np.arange(n) % classes
        self.x = (
            torch.randn(n, 5, generator=g)
            + torch.nn.functional.one_hot(torch.as_tensor(self.labels), 5 + 1)[:, :5].float() * 3
        )
        self.is_query, self.chain_labels = is_query, chain_labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.x[i], int(self.labels[i])


def test_a_users_model_is_evaluated_in_three_lines() -> None:
    model = torch.nn.Linear(5, 4)
    metrics = evaluate(model, Evaluation.of(_Set()))
    assert {"recall@1", "recall@8", "map@r", "r_precision", "nmi"} <= set(metrics)
    assert all(isinstance(v, (float, int)) for v in metrics.values())


def test_of_reads_the_arrays_and_fails_loudly_without_them() -> None:
    mask = np.arange(24) < 12
    e = Evaluation.of(_Set(is_query=mask), protocol="query-gallery")
    assert e.protocol == "query-gallery" and e.is_query.dtype == bool and e.is_query.sum() == 12
    with pytest.raises(ValueError, match="needs the per-image array 'is_query'"):
        Evaluation.of(_Set(), protocol="query-gallery")
    with pytest.raises(ValueError, match="needs gallery="):
        Evaluation.of(_Set(chain_labels=np.zeros(24)), protocol="hotels")
    with pytest.raises(ValueError, match="Unknown evaluation protocol"):
        Evaluation.of(_Set(), protocol="selfie")
    chains = np.arange(24) % 3
    h = Evaluation.of(_Set(chain_labels=chains), protocol="hotels", gallery=_Set(chain_labels=chains))
    assert h.chain_labels.dtype == np.int64 and h.gallery_chain_labels is not None


def test_embed_fn_owns_the_test_time_embedding() -> None:
    model = torch.nn.Linear(5, 4)
    seen = []

    def embed_fn(model, data, *, batch_size, device):
        seen.append(batch_size)
        return dml.eval.embed(model, data, batch_size=batch_size, device=device)

    assert evaluate(model, Evaluation.of(_Set()), batch_size=7, embed_fn=embed_fn) == evaluate(
        model, Evaluation.of(_Set())
    )
    assert seen == [7]


def test_resolve_protocol() -> None:
    assert resolve_protocol("inshop") == "query-gallery" == AUTO_PROTOCOL["inshop"]
    assert resolve_protocol("hotels50k") == "hotels" and resolve_protocol("cub200") == "self"
    assert resolve_protocol("inshop", "self") == "self"
