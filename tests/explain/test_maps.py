"""dml.explain.maps: the heat maps of a pair sum to the cosine similarity, against the paper's formulas in loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dml.explain import cell_contributions, maps_from_contributions, pair_maps, similarity_maps
from dml.models import build


def _maps(fa: torch.Tensor, fb: torch.Tensor, **kwargs):
    a, b = cell_contributions(fa, **kwargs), cell_contributions(fb, **kwargs)
    return pair_maps(a, b, pooling=kwargs.get("pooling", "avg"))


def _pair(seed: int = 0, channels: int = 5, grid=(3, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, channels, *grid, generator=g, dtype=torch.float64) for _ in range(2))


def _average_reference(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """M_ij = z_i . z'_j / (n^2 ||z_bar|| ||z_bar'||), cell by cell (Stylianou et al., WACV 2019)."""
    n, m = len(za), len(zb)
    norm = np.linalg.norm(za.mean(axis=0)) * np.linalg.norm(zb.mean(axis=0))
    return np.array([[float(za[i] @ zb[j]) / (n * m * norm) for j in range(m)] for i in range(n)])


@pytest.mark.parametrize("bias", [False, True])
def test_average_pooling_matches_the_paper_and_sums_to_the_cosine(bias: bool) -> None:
    fa, fb = _pair()
    torch.manual_seed(3)
    linear = nn.Linear(5, 7, bias=bias).double()
    if bias:
        nn.init.normal_(linear.bias)
    maps = _maps(fa, fb, pooling="avg", linear=linear)
    za, zb = (linear(f.flatten(2)[0].T).detach().numpy() for f in (fa, fb))  # the head at every cell
    reference = _average_reference(za, zb)
    np.testing.assert_allclose(maps.matrix, reference, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(maps.map_a.ravel(), reference.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(maps.map_b.ravel(), reference.sum(axis=0), rtol=1e-12)
    ea, eb = za.mean(axis=0), zb.mean(axis=0)
    cosine = float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb)))
    assert maps.exact and maps.similarity == pytest.approx(cosine, abs=1e-14)
    for total in (maps.map_a.sum(), maps.map_b.sum(), maps.matrix.sum()):
        assert total == pytest.approx(cosine, abs=1e-12)


def test_without_a_head_it_is_the_released_decomposition_of_the_pooled_feature() -> None:
    fa, fb = _pair(channels=8, grid=(4, 4))
    maps = _maps(fa, fb)
    reference = _average_reference(fa.flatten(2)[0].T.numpy(), fb.flatten(2)[0].T.numpy())
    np.testing.assert_allclose(maps.matrix, reference, rtol=1e-12)
    assert maps.map_a.shape == (4, 4) and maps.map_a.sum() == pytest.approx(maps.similarity, abs=1e-12)


def test_max_pooling_credits_channels_to_their_argmax_cells() -> None:
    """H_A(i) = sum over channels k with arg-max cell i of A_ik f^B_k / (||f^A|| ||f^B||)."""
    fa, fb = _pair(channels=9)
    a, b = fa.flatten(2)[0].numpy(), fb.flatten(2)[0].numpy()  # (C, n)
    f_a, f_b = a.max(axis=1), b.max(axis=1)
    scale = np.linalg.norm(f_a) * np.linalg.norm(f_b)
    expected = np.zeros(a.shape[1])
    for k in range(a.shape[0]):
        expected[a[k].argmax()] += a[k].max() * f_b[k] / scale
    maps = _maps(fa, fb, pooling="max")
    np.testing.assert_allclose(maps.map_a.ravel(), expected, rtol=1e-12)
    assert maps.map_a.sum() == pytest.approx(float(f_a @ f_b) / scale, abs=1e-12)


@pytest.mark.parametrize("pooling", ["avg", "max", "gem"])
@pytest.mark.parametrize("zero_bias", [False, True])
def test_a_model_pair_sums_to_its_embeddings_cosine(pooling: str, zero_bias: bool) -> None:
    torch.manual_seed(0)
    model = build("small_cnn", embedding_dim=16, pooling=pooling, backbone_kwargs={"widths": (8, 16)})
    if zero_bias:
        nn.init.zeros_(model.head.fc.bias)
    model.train()
    a, b = torch.rand(3, 16, 16), torch.rand(3, 24, 16)  # different sizes give different grids
    maps = similarity_maps(model, a, b)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        cosine = float(model(a[None])[0] @ model(b[None])[0])
    assert maps.pooling == pooling and maps.exact
    assert maps.map_a.shape == (8, 8) and maps.map_b.shape == (12, 8) and maps.matrix.shape == (64, 96)
    assert maps.similarity == pytest.approx(cosine, abs=1e-5)  # the model runs in float32
    assert abs(maps.map_a.sum() - maps.similarity) < 1e-10 and abs(maps.map_b.sum() - maps.similarity) < 1e-10
    dropped = similarity_maps(model, a, b, bias="drop")
    assert dropped.exact == zero_bias
    assert (abs(dropped.residual) < 1e-10) == zero_bias


def test_batched_pairs_equal_one_pair_at_a_time() -> None:
    g = torch.Generator().manual_seed(4)
    fa, fb = torch.rand(5, 6, 3, 3, generator=g), torch.rand(5, 6, 3, 3, generator=g)
    map_a, map_b, sims = maps_from_contributions(cell_contributions(fa), cell_contributions(fb))
    for k in range(5):
        one = _maps(fa[k : k + 1], fb[k : k + 1])
        np.testing.assert_allclose(map_a[k].numpy(), one.map_a, rtol=1e-12)
        np.testing.assert_allclose(map_b[k].numpy(), one.map_b, rtol=1e-12)
        assert float(sims[k]) == pytest.approx(one.similarity, abs=1e-14)


def test_mismatched_inputs_fail_in_one_line() -> None:
    model = build("small_cnn", embedding_dim=8, backbone_kwargs={"widths": (4,)})
    cases = [
        (lambda: similarity_maps(model, torch.rand(2, 3, 8, 8), torch.rand(3, 8, 8)), "image_a must be one image"),
        (lambda: similarity_maps(nn.Linear(3, 3), torch.rand(3, 8, 8), torch.rand(3, 8, 8)), "no `backbone`"),
        (
            lambda: maps_from_contributions(
                cell_contributions(torch.rand(2, 4, 3, 3)), cell_contributions(torch.rand(2, 5, 3, 3))
            ),
            "embeddings of one size",
        ),
        (
            lambda: maps_from_contributions(
                cell_contributions(torch.rand(2, 4, 3, 3)), cell_contributions(torch.rand(3, 4, 3, 3))
            ),
            "as many maps on each side",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
