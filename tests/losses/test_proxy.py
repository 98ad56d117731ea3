"""Proxy-NCA, Proxy-Anchor and normalized softmax against slow loops and pytorch-metric-learning.

Each loss is checked in float64 against a loop over samples and proxies (value and gradients with respect to the
embeddings *and* the proxies), and against pytorch-metric-learning (PML) 2.9 with PML's proxies copied into ours:

* ``proxy_nca``: PML's ``ProxyNCALoss(softmax_scale=k)`` (squared L2 distance between normalised embeddings and
  normalised proxies, positive proxy in the denominator) equals ours with ``temperature=1/k``; our default
  ``1/9`` is the ProxyNCA++ code's. ``include_positive=False`` (original ProxyNCA) has no PML counterpart and is
  checked against the loop only.
* ``proxy_anchor``: same equation, defaults, proxy layout ``(C, D)`` and initialiser as PML's ``ProxyAnchorLoss``.
* ``normalized_softmax``: PML stores the class weights as ``W (D, C)``; ours are ``(C, D)``, so ``W.T`` is copied.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses

import dml.losses as losses
from dml.losses.proxy import ProxyLoss


def _batch(seed: int = 0, n: int = 12, classes: int = 5, dim: int = 8, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return torch.randn(n, dim, generator=generator, dtype=dtype), labels


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def proxy_nca_loop(x, y, proxies, temperature, include_positive=True):
    values = []
    for i in range(len(y)):
        logits = [-((_unit(x[i]) - _unit(p)) ** 2).sum() / temperature for p in proxies]
        denominator = [torch.exp(v) for c, v in enumerate(logits) if include_positive or c != y[i]]
        values.append(-torch.log(torch.exp(logits[y[i]]) / torch.stack(denominator).sum()))
    return torch.stack(values).mean()


def proxy_anchor_loop(x, y, proxies, alpha=32.0, margin=0.1):
    pos_total, neg_total, with_positive = 0.0, 0.0, 0
    for c, p in enumerate(proxies):
        sims = [_unit(x[i]) @ _unit(p) for i in range(len(y))]
        pos = [torch.exp(-alpha * (s - margin)) for i, s in enumerate(sims) if y[i] == c]
        neg = [torch.exp(alpha * (s + margin)) for i, s in enumerate(sims) if y[i] != c]
        if pos:
            pos_total = pos_total + torch.log(1 + torch.stack(pos).sum())
            with_positive += 1
        if neg:
            neg_total = neg_total + torch.log(1 + torch.stack(neg).sum())
    return pos_total / with_positive + neg_total / len(proxies)


def normalized_softmax_loop(x, y, weights, temperature=0.05):
    values = []
    for i in range(len(y)):
        logits = torch.stack([_unit(x[i]) @ _unit(w) / temperature for w in weights])
        values.append(-(logits[y[i]] - torch.log(torch.exp(logits).sum())))
    return torch.stack(values).mean()


CASES = {
    "proxy_nca": (proxy_nca_loop, {"temperature": 1 / 9}),
    "proxy_nca-classic": (proxy_nca_loop, {"temperature": 0.5, "include_positive": False}),
    "proxy_anchor": (proxy_anchor_loop, {"alpha": 16.0, "margin": 0.2}),
    "normalized_softmax": (normalized_softmax_loop, {"temperature": 0.1}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_proxy_losses_match_loop_in_value_and_both_gradients(case: str, seed: int) -> None:
    loop, params = CASES[case]
    x, y = _batch(seed)
    loss_fn = losses.build(case.split("-")[0], num_classes=5, embedding_dim=8, **params).double()
    proxies = loss_fn.proxies.detach().clone().requires_grad_(True)
    x_loop, x_vec = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected, got = loop(x_loop, y, proxies, **params), loss_fn(x_vec, y)
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    torch.testing.assert_close(x_vec.grad, x_loop.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(loss_fn.proxies.grad, proxies.grad, rtol=1e-6, atol=1e-9)


def _compare_with_pml(ours, theirs, their_proxies, x, y) -> None:
    with torch.no_grad():
        ours.proxies.copy_(their_proxies)
    x_ours, x_pml = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    value_ours, value_pml = ours(x_ours, y), theirs(x_pml, y)
    torch.testing.assert_close(value_ours, value_pml)
    value_ours.backward()
    value_pml.backward()
    torch.testing.assert_close(x_ours.grad, x_pml.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_proxy_nca_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n=20, classes=6, dim=16, dtype=torch.float32)
    theirs = pml_losses.ProxyNCALoss(num_classes=6, embedding_size=16, softmax_scale=9)
    ours = losses.build("proxy_nca", num_classes=6, embedding_dim=16)
    _compare_with_pml(ours, theirs, theirs.proxies, x, y)
    torch.testing.assert_close(ours.proxies.grad, theirs.proxies.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_proxy_anchor_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n=20, classes=6, dim=16, dtype=torch.float32)
    theirs = pml_losses.ProxyAnchorLoss(num_classes=6, embedding_size=16, margin=0.1, alpha=32)
    ours = losses.build("proxy_anchor", num_classes=6, embedding_dim=16)
    _compare_with_pml(ours, theirs, theirs.proxies, x, y)
    torch.testing.assert_close(ours.proxies.grad, theirs.proxies.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_normalized_softmax_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n=20, classes=6, dim=16, dtype=torch.float32)
    theirs = pml_losses.NormalizedSoftmaxLoss(num_classes=6, embedding_size=16, temperature=0.05)
    ours = losses.build("normalized_softmax", num_classes=6, embedding_dim=16)
    _compare_with_pml(ours, theirs, theirs.W.t(), x, y)
    torch.testing.assert_close(ours.proxies.grad, theirs.W.grad.t(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["proxy_nca", "proxy_anchor", "normalized_softmax"])
def test_proxies_are_parameters_that_an_optimiser_moves_towards_lower_loss(name: str) -> None:
    torch.manual_seed(0)
    loss_fn = losses.build(name, num_classes=4, embedding_dim=6)
    assert isinstance(loss_fn, ProxyLoss)
    assert [n for n, _ in loss_fn.named_parameters()] == ["proxies"] and loss_fn.proxies.shape == (4, 6)
    x, y = _batch(1, n=16, classes=4, dim=6, dtype=torch.float32)
    optimiser = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    before = loss_fn(x, y)
    for _ in range(5):
        optimiser.zero_grad()
        loss_fn(x, y).backward()
        optimiser.step()
    assert loss_fn(x, y) < before
    assert "proxies" in loss_fn.state_dict()


@pytest.mark.parametrize("name", ["proxy_nca", "proxy_anchor", "normalized_softmax"])
def test_proxy_loss_is_a_function_of_the_embedding_proxy_similarities(name: str) -> None:
    loss_fn = losses.build(name, num_classes=5, embedding_dim=8).double()
    x, y = _batch(2)
    sim = F.normalize(x, dim=1) @ F.normalize(loss_fn.proxies, dim=1).t()
    torch.testing.assert_close(loss_fn.from_similarity(sim, y), loss_fn(x, y))
    torch.testing.assert_close(loss_fn.similarity_to_proxies(x), sim)


def test_proxy_anchor_counts_only_proxies_with_positives_in_the_positive_term() -> None:
    loss_fn = losses.build("proxy_anchor", num_classes=10, embedding_dim=8).double()
    x, y = _batch(4, n=6, classes=3)  # classes 3..9 have no sample: they enter only the negative term
    expected = proxy_anchor_loop(x, y, loss_fn.proxies.detach())
    torch.testing.assert_close(loss_fn(x, y), expected)


@pytest.mark.parametrize("name", ["proxy_nca", "proxy_anchor", "normalized_softmax"])
def test_proxy_losses_explain_missing_sizes_bad_labels_and_wrong_dimension(name: str) -> None:
    with pytest.raises(ValueError, match=r"needs num_classes= .* and embedding_dim="):
        losses.build(name)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        losses.build(name, num_classes=0, embedding_dim=4)
    loss_fn = losses.build(name, num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2 .*got labels in \[1, 3\].*torch.unique"):
        loss_fn(torch.randn(4, 4), torch.tensor([1, 2, 3, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in 0..2 .*got labels in \[-1, 1\]"):
        loss_fn(torch.randn(3, 4), torch.tensor([-1, 0, 1]))
    with pytest.raises(ValueError, match="embedding_dim=4 but the embeddings have 5 columns"):
        loss_fn(torch.randn(4, 5), torch.tensor([0, 1, 2, 2]))


def test_original_proxy_nca_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="needs num_classes >= 2"):
        losses.build("proxy_nca", num_classes=1, embedding_dim=4, include_positive=False)
