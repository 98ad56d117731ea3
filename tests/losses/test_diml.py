"""dml.losses.diml: S = (S_struct + S_glob) / 2 with T detached; the base loss sees it; trained from a config."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

import dml.losses
from dml.structural import structural_similarity
from dml.train import load_config, train
from tests.train.test_resume import TINY


def _packed(seed: int = 0, n: int = 8, grid: int = 2, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    z = F.normalize(torch.randn(n, grid * grid, d, generator=g, dtype=torch.float64), dim=2)
    return f, z, torch.arange(n // 2).repeat_interleave(2)


def test_similarity_by_pairs_and_detached_plan() -> None:
    f, z, _ = _packed()
    loss_fn = dml.losses.build("diml", grid=2, tol=0)  # every problem runs 100 iterations, batched or not
    packed = torch.cat([f, z.flatten(1)], dim=1).requires_grad_()
    sim = loss_fn.similarity(packed)
    for a, b in [(0, 1), (2, 5), (7, 7)]:
        struct = structural_similarity(z[[a]], f[[a]], z[[b]], f[[b]], tol=0)
        assert float(sim[a, b].detach()) == pytest.approx(0.5 * (float(struct) + float(f[a] @ f[b])), abs=1e-9)
    # the gradient is that of sum_ij T_ij s_ij with T a constant
    (grad,) = torch.autograd.grad(sim[2, 5], packed)
    _, plan, _ = structural_similarity(z[[2]], f[[2]], z[[5]], f[[5]], return_plan=True, tol=0)
    zz = z.clone().requires_grad_()
    ff = f.clone().requires_grad_()
    reference = 0.5 * ((plan[0] * (zz[2] @ zz[5].T)).sum() + ff[2] @ ff[5])
    reference.backward()
    torch.testing.assert_close(grad, torch.cat([ff.grad, zz.grad.flatten(1)], dim=1))


@pytest.mark.parametrize("base", ["multi_similarity", "margin"])
def test_the_base_loss_sees_the_structural_matrix(base: str) -> None:
    f, z, y = _packed(1)
    packed = torch.cat([f, z.flatten(1)], dim=1)
    loss_fn = dml.losses.build("diml", base=base, grid=2).double()
    expected = dml.losses.build(base).double().from_similarity(loss_fn.similarity(packed), y)
    torch.testing.assert_close(loss_fn(packed, y), expected)


def test_a_distance_weighted_miner_sees_the_embedding_dimension() -> None:
    f, z, y = _packed(3, n=12)
    packed = torch.cat([f, z.flatten(1)], dim=1)
    loss_fn = dml.losses.build(
        "diml", base="margin", grid=2, base_kwargs={"miner": {"name": "distance_weighted", "seed": 0}}
    ).double()
    value = loss_fn(packed, y)
    assert torch.isfinite(value) and loss_fn.base.miner._dimension() == 5


def test_wrong_width_and_non_pair_base_fail() -> None:
    f, z, y = _packed(2)
    with pytest.raises(ValueError, match="model.head: diml"):
        dml.losses.build("diml", grid=2)(f[:, :4], y)  # 4 columns: not [f | 4 cells]
    with pytest.raises(ValueError, match="pair loss"):
        dml.losses.build("diml", base="proxy_nca", base_kwargs={"num_classes": 3, "embedding_dim": 4})


def test_trained_from_a_config(tmp_path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    overrides = [
        f"data.root={tmp_path}",
        "model.head=diml",
        "model.pooling=avg",
        "loss.name=diml",
        "loss.kwargs={base: margin, grid: 2}",
        "model.head_kwargs={grid: 2}",
        "train.epochs=1",
        f"output_dir={tmp_path / 'run'}",
    ]
    final = train(load_config(path, overrides))
    assert 0.0 <= final["recall@1"] <= 1.0 and math.isfinite(final["loss"])
