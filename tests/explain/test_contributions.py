"""dml.explain.contributions: each pooled embedding is the sum of its cells' contributions (average, max, GeM)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dml.explain import cell_contributions, head_contributions
from dml.models import EmbeddingHead, GeM


def _features(seed: int = 0, shape=(3, 6, 4, 5)) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _linear(channels: int = 6, dim: int = 4, *, bias: bool = True) -> nn.Linear:
    torch.manual_seed(1)
    layer = nn.Linear(channels, dim, bias=bias).double()
    if bias:
        nn.init.normal_(layer.bias, std=1.0)  # a bias as large as the rest, so dropping it shows
    return layer


@pytest.mark.parametrize("pooling", ["avg", "max", "gem"])
@pytest.mark.parametrize("with_head", [False, True])
def test_cells_sum_to_the_pooled_embedding(pooling: str, with_head: bool) -> None:
    x = _features()
    pooled = {"avg": x.mean(dim=(2, 3)), "max": x.amax(dim=(2, 3)), "gem": GeM(p=3.0).double()(x).detach()}[pooling]
    linear = _linear() if with_head else None
    expected = linear(pooled).detach() if with_head else pooled
    out = cell_contributions(x, pooling=pooling, linear=linear)
    assert out.cells.shape == (3, 20, expected.shape[1]) and out.grid == (4, 5) and out.exact
    torch.testing.assert_close(out.embedding, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.cells.sum(dim=1), expected, rtol=0, atol=1e-12)


def test_average_cells_are_the_head_at_every_cell_over_n() -> None:
    x = _features()
    head = EmbeddingHead(6, embedding_dim=4, pooling="avg").double()
    out = head_contributions(head, x)
    torch.testing.assert_close(out.cells, head.local(x).detach() / 20, rtol=0, atol=1e-12)


def test_max_credits_each_channel_to_its_argmax_cell() -> None:
    x = _features()
    out = cell_contributions(x, pooling="max")
    flat = x.flatten(2)  # (B, C, n)
    for b in range(flat.shape[0]):
        for k in range(flat.shape[1]):
            winner = int(flat[b, k].argmax())
            column = out.cells[b, :, k]
            assert column[winner] == flat[b, k, winner]
            assert torch.count_nonzero(column) == 1


def test_gem_cells_are_gradient_times_input() -> None:
    """GeM is homogeneous of degree 1, so Euler's theorem makes gradient x input an exact decomposition."""
    x = _features().requires_grad_(True)
    pooled = GeM(p=2.5, learnable=False).double()(x)
    rows = []
    for k in range(pooled.shape[1]):
        (grad,) = torch.autograd.grad(pooled[:, k].sum(), x, retain_graph=True)
        rows.append((grad * x)[:, k].flatten(1))
    expected = torch.stack(rows, dim=2)  # (B, n, C)
    out = cell_contributions(x.detach(), pooling="gem", p=2.5)
    torch.testing.assert_close(out.cells, expected, rtol=1e-10, atol=1e-12)


def test_gem_between_average_and_max() -> None:
    x = _features()
    torch.testing.assert_close(
        cell_contributions(x, pooling="gem", p=1.0).cells, cell_contributions(x, pooling="avg").cells
    )
    peaked = 0.5 * x  # every channel's maximum well apart from the rest: one cell per channel at 1
    peaked.flatten(2).scatter_(2, torch.randint(0, 20, (3, 6, 1), generator=torch.Generator().manual_seed(2)), 1.0)
    near_max = cell_contributions(peaked, pooling="gem", p=100.0).cells
    torch.testing.assert_close(near_max, cell_contributions(peaked, pooling="max").cells, rtol=0, atol=0.05)


def test_the_head_reads_its_own_gem_exponent() -> None:
    head = EmbeddingHead(6, embedding_dim=4, pooling="gem").double()
    with torch.no_grad():
        head.pool.p.fill_(4.0)
    x = _features()
    torch.testing.assert_close(head_contributions(head, x).cells.sum(dim=1), head.fc(head.pool(x)).detach())


def test_dropping_the_bias_leaves_it_out() -> None:
    x, linear = _features(), _linear()
    out = cell_contributions(x, pooling="avg", linear=linear, bias="drop")
    assert not out.exact
    torch.testing.assert_close(out.cells.sum(dim=1), out.embedding - linear.bias.detach())
    assert cell_contributions(x, linear=_linear(bias=False), bias="drop").exact


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "mean"}, "Unknown pooling 'mean'"),
        ({"bias": "spreads"}, "Unknown bias"),
        ({"linear": nn.Linear(5, 3)}, "expects 5 input channels but the feature maps have 6"),
        ({"pooling": "gem", "p": 0.0}, "GeM needs p > 0"),
    ],
)
def test_bad_arguments_fail_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        cell_contributions(_features(), **kwargs)
    assert "\n" not in str(info.value)


def test_features_must_be_a_feature_map() -> None:
    with pytest.raises(ValueError, match=r"features must be \(B, C, h, w\)"):
        cell_contributions(torch.rand(4, 5))


def test_a_head_without_a_linear_layer_is_refused() -> None:
    head = EmbeddingHead(6, embedding_dim=4)
    head.fc = nn.Identity()
    with pytest.raises(ValueError, match="no linear layer"):
        head_contributions(head, _features())
