"""Properties every registered loss must have, parametrised over ``dml.losses.available()``.

A loss added to the registry is picked up here automatically. Losses that cannot be built from their defaults
(the proxy losses need ``num_classes`` and ``embedding_dim``) take their arguments from ``CONSTRUCTION``.

Checked for each loss: float16 / float32 / float64 embeddings give finite values (float16 is upcast to float32) and
gradients; a class with a single sample in the batch is handled; a batch with no valid pair (a single embedding)
gives an exact 0 with an all-zero gradient — except for proxy losses, for which a single embedding still has its
proxy, so they must give a finite positive loss; the loss is a function of the (N, N) or (N, C) similarities its
``from_similarity`` receives; bad input (unknown name, unknown hyperparameter, length mismatch, NaN / inf, float
labels) fails with an error that names the problem; ``hyperparameters(name)`` round-trips through ``build`` and
its defaults are plain values a config file can hold.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import dml.losses as losses
from dml.losses.proxy import ProxyLoss

NUM_CLASSES, DIM = 4, 8
CONSTRUCTION = {
    "proxy_nca": {"num_classes": NUM_CLASSES, "embedding_dim": DIM},
    "proxy_anchor": {"num_classes": NUM_CLASSES, "embedding_dim": DIM},
    "normalized_softmax": {"num_classes": NUM_CLASSES, "embedding_dim": DIM},
    "meta_class_softmax": {"num_classes": NUM_CLASSES, "embedding_dim": DIM // 2, "learners": 2},
    "vmf": {"num_classes": NUM_CLASSES, "embedding_dim": DIM},
    # the auxiliary classifier reads columns a plain (N, D) batch does not have (tests/losses/test_cgd.py)
    "cgd": {"auxiliary": False},
    "diml": {"grid": 1},  # [f | z_1]: D = 4 global and 4 local columns (tests/losses/test_diml.py)
}
NAMES = losses.available()


def _build(name: str, **overrides):
    torch.manual_seed(0)
    return losses.build(name, **{**CONSTRUCTION.get(name, {}), **overrides})


def _batch(seed: int = 0, per_class: int = 3, dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    return torch.randn(len(labels), DIM, generator=generator).to(dtype), labels


def test_every_loss_of_the_issue_is_registered() -> None:
    expected = {
        "margin",
        "lifted_structure",
        "npair",
        "multi_similarity",
        "proxy_nca",
        "proxy_anchor",
        "normalized_softmax",
        "contrastive",
        "triplet",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_finite_value_and_gradient_in_every_precision(name: str, dtype: torch.dtype) -> None:
    loss_fn = _build(name).to(torch.float64 if dtype == torch.float64 else torch.float32)
    x, y = _batch(1, dtype=dtype)
    x.requires_grad_(True)
    loss = loss_fn(x, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    loss.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0, f"{name}: no gradient reaches the embeddings on a random batch"


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_agrees_with_its_float32_upcast(name: str) -> None:
    x, y = _batch(2, dtype=torch.float16)
    torch.testing.assert_close(_build(name)(x, y), _build(name)(x.float(), y))


@pytest.mark.parametrize("name", NAMES)
def test_class_with_one_sample_is_handled(name: str) -> None:
    y = torch.tensor([0, 2, 1, 0, 3, 1, 2, 0, 1, 2])  # class 3 has a single sample
    x = torch.randn(len(y), DIM, generator=torch.Generator().manual_seed(3), requires_grad=True)
    loss = _build(name)(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_single_embedding_gives_zero_loss_or_a_finite_proxy_loss(name: str) -> None:
    loss_fn = _build(name)
    x = torch.randn(1, DIM, requires_grad=True)
    loss = loss_fn(x, torch.tensor([1]))
    assert loss.requires_grad
    loss.backward()
    assert not torch.isnan(x.grad).any()
    if isinstance(loss_fn, (ProxyLoss, losses.MetaClassSoftmaxLoss)):  # the embedding and its proxy: a valid pair
        assert torch.isfinite(loss) and loss > 0
    else:
        assert loss.item() == 0.0
        assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", NAMES)
def test_loss_sees_embeddings_only_through_from_similarity(name: str) -> None:
    loss_fn = _build(name).double()
    x, y = _batch(4, dtype=torch.float64)
    if not hasattr(loss_fn, "from_similarity"):
        pytest.skip(f"{name} is neither a PairLoss nor a ProxyLoss")
    unit = F.normalize(x, dim=1)
    if isinstance(loss_fn, ProxyLoss):
        sim = unit @ F.normalize(loss_fn.proxies, dim=1).t()
    else:
        assert isinstance(loss_fn, losses.PairLoss)
        sim = unit @ unit.t()
    torch.testing.assert_close(loss_fn.from_similarity(sim, y), loss_fn(x, y))
    # Only directions matter: rescaling the embeddings leaves the loss unchanged.
    torch.testing.assert_close(loss_fn(x * torch.linspace(0.5, 4.0, len(x), dtype=x.dtype)[:, None], y), loss_fn(x, y))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_errors_that_name_the_problem(name: str) -> None:
    loss_fn = _build(name)
    x, y = _batch(5)
    with pytest.raises(ValueError, match="different lengths"):
        loss_fn(x, y[:-1])
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss_fn(bad, y)
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss_fn(bad, y)
    with pytest.raises(ValueError, match="integer class ids"):
        loss_fn(x, y.float())
    with pytest.raises(ValueError, match="2-D"):
        loss_fn(x[0], y[:1])


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_names_the_valid_ones(name: str) -> None:
    valid = losses.hyperparameters(name)
    with pytest.raises(ValueError, match=rf"Loss '{name}' got unexpected keyword argument\(s\) 'bogus_option'") as info:
        losses.build(name, bogus_option=1)
    for key in valid:
        assert key in str(info.value).split("Accepted: ")[1]


def test_unknown_loss_name_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=r"Unknown loss 'multi_similarty'.*Did you mean 'multi_similarity'"):
        losses.build("multi_similarty")
    with pytest.raises(ValueError, match="Unknown loss"):
        losses.hyperparameters("no_such_loss")


@pytest.mark.parametrize("name", NAMES)
def test_build_round_trips_hyperparameters(name: str) -> None:
    defaults = losses.hyperparameters(name)
    json.dumps(defaults)  # plain values that a YAML / JSON config can hold
    x, y = _batch(6)
    from_defaults = _build(name)
    torch.manual_seed(0)
    from_table = losses.build(name, **{**defaults, **CONSTRUCTION.get(name, {})})
    torch.testing.assert_close(from_table(x, y), from_defaults(x, y))
    assert repr(from_table) == repr(from_defaults)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str) -> None:
    x, y = _batch(7)
    expected = _build(name)(x, y)
    x_cuda = x.cuda().requires_grad_(True)
    loss = _build(name).cuda()(x_cuda, y.cuda())
    assert loss.device.type == "cuda"
    torch.testing.assert_close(loss.cpu(), expected, rtol=1e-4, atol=1e-5)
    loss.backward()
    assert torch.isfinite(x_cuda.grad).all()
