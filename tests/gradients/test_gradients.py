"""dml.gradients: the pair-weight decomposition, gradient surgery and the triplet-space simulation.

Every registered :class:`~dml.losses.PairLoss` is picked up automatically: its gradient must be rebuilt from its
pair weights to round-off, and surgery with its own weights must reproduce its SGD step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dml.losses
import dml.mining
from dml.gradients import (
    ExplicitGradientLoss,
    decompose,
    entangle,
    euclidean_triplet_rule,
    loss_weights,
    nca_rule,
    one_step,
    sct_rule,
    surgery_gradient,
    surgery_loss,
    triplet_field,
    triplet_trajectory,
    triplet_vectors,
    weights_from_pull_push,
)
from dml.gradients.simulation import collapse_share
from dml.losses import PairLoss

PAIR_LOSSES = dml.losses.available(kind=PairLoss)
# Variants whose selection rule changes which pairs carry weight; built only where the loss has the option.
# Every loss with a ``miner=`` option is also run with every registered miner.
VARIANTS = {
    "triplet": [{"triplets": t} for t in ("semihard", "hardest")] + [{"reduction": "all"}],
    "nca": [{"triplets": "hardest"}],
    "sct": [{"rule": r} for r in ("eccv2020", "feb2021")] + [{"mode": m} for m in ("hn", "shn")],
    "ephn": [{"negatives": "semihard"}],
    "lifted_structure": [{"variant": "generalized"}],
}


def _cases() -> list:
    cases = []
    for name in PAIR_LOSSES:
        cases.append(pytest.param(name, {}, id=name))
        options = dml.losses.hyperparameters(name)
        variants = VARIANTS.get(name, []) + (
            [{"miner": m} for m in dml.mining.available()] if "miner" in options else []
        )
        for kwargs in variants:
            if set(kwargs) <= set(options):
                label = ",".join(f"{k}={v}" for k, v in kwargs.items())
                cases.append(pytest.param(name, kwargs, id=f"{name}-{label}"))
    return cases


CASES = _cases()


def _build(name: str, kwargs: dict) -> PairLoss:
    try:
        loss = dml.losses.build(name, **kwargs)
    except ValueError as err:  # an option value this version of the loss does not offer
        pytest.skip(f"{name}({kwargs}) cannot be built: {err}")
    return loss.double()


def _batch(seed: int, labels: list[int], dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    x = x * (0.5 + 2.0 * torch.rand(len(labels), 1, generator=g, dtype=torch.float64))  # norms != 1 matter
    return x, torch.tensor(labels)


BATCHES = {
    "four classes": [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3],
    "one-sample class": [0, 0, 0, 1, 1, 2, 2, 2, 3],
}


def test_every_pair_loss_is_found() -> None:
    assert PAIR_LOSSES, "no registered loss is a PairLoss"
    assert "triplet" in dml.losses.available()


@pytest.mark.parametrize("batch", list(BATCHES), ids=list(BATCHES))
@pytest.mark.parametrize("name, kwargs", CASES)
def test_decompose_rebuilds_the_autograd_gradient(name: str, kwargs: dict, batch: str) -> None:
    loss_fn = _build(name, kwargs)
    for seed in range(3):
        x, labels = _batch(seed, BATCHES[batch])
        torch.manual_seed(seed)  # a sampling miner must draw the same pairs in both calls
        d = decompose(loss_fn, x, labels)
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(seed)
        value = loss_fn(leaf, labels)
        expected = torch.autograd.grad(value, leaf, allow_unused=True)[0]
        expected = torch.zeros_like(x) if expected is None else expected
        assert torch.allclose(d.loss, value.detach(), rtol=1e-12, atol=1e-14)
        error = (d.gradient - expected).norm()
        assert error <= 1e-8 * expected.norm() + 1e-14, (name, seed, float(error), float(expected.norm()))
        # the weights live on pairs only: positive + negative + diagonal reassemble dL/dS
        diagonal = torch.diag_embed(torch.diagonal(d.weights))
        assert torch.equal(d.positive_weights + d.negative_weights + diagonal, d.weights)


def test_decompose_fields_for_the_triplet_loss() -> None:
    """On one anchor-positive-negative triplet with an active margin, w_ap = w_an = 1 / (active triplets)."""
    loss_fn = dml.losses.build("triplet", margin=0.2)
    # f_a = e1, f_p at S_ap = 0.6, f_n at S_an = 0.5 opposite to p (so the triplet anchored at p is inactive)
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.5, -np.sqrt(0.75)]], dtype=torch.float64)
    d = decompose(loss_fn, x, [0, 0, 1])
    assert torch.allclose(d.similarity[0, 1:], torch.tensor([0.6, 0.5], dtype=torch.float64))
    assert d.w_ap[0, 1] == pytest.approx(1.0) and d.w_an[0, 2] == pytest.approx(1.0)
    assert d.w_ap[1, 0] == 0 and d.w_an[1, 2] == 0  # S_pn = 0.3 - 0.69 < S_pa - 0.2: inactive
    assert torch.all(d.w_ap[~d.positive_mask] == 0) and torch.all(d.w_an[~d.negative_mask] == 0)
    assert torch.equal(d.symmetric_weights, d.weights + d.weights.t())


@pytest.mark.parametrize("name, kwargs", CASES)
def test_surgery_with_own_weights_reproduces_one_sgd_step(name: str, kwargs: dict) -> None:
    loss_fn = _build(name, kwargs)
    x, labels = _batch(7, BATCHES["one-sample class"])
    surgery = ExplicitGradientLoss(loss_weights(loss_fn))

    # free embeddings
    stepped = []
    for objective in (loss_fn, surgery):
        param = torch.nn.Parameter(x.clone())
        optimizer = torch.optim.SGD([param], lr=0.5)
        torch.manual_seed(0)
        objective(param, labels).backward()
        optimizer.step()
        stepped.append(param.detach())
    assert torch.allclose(stepped[0], stepped[1], rtol=0, atol=1e-13)

    # a small model: the update reaches the weights through the same back-propagation
    inputs = torch.randn(len(labels), 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    models = []
    for objective in (loss_fn, surgery):
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        torch.manual_seed(0)
        objective(model(inputs), labels).backward()
        optimizer.step()
        models.append(torch.cat([p.detach().ravel() for p in model.parameters()]))
    assert torch.allclose(models[0], models[1], rtol=0, atol=1e-13)


def _random_weights(labels: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    return weights_from_pull_push(
        labels, torch.rand(n, n, generator=g, dtype=torch.float64), torch.rand(n, n, generator=g, dtype=torch.float64)
    )


def _hand_reference(x: torch.Tensor, weights: torch.Tensor, direction: str, projection: bool) -> torch.Tensor:
    """The update written pair by pair, straight from the definitions in dml.gradients.surgery."""
    out = torch.zeros_like(x)
    for i in range(len(x)):
        norm = x[i].norm()
        f_i = x[i] / norm
        g = torch.zeros_like(f_i)
        for j in range(len(x)):
            if j == i:
                continue
            f_j = x[j] / x[j].norm()
            w = weights[i, j] + weights[j, i]
            g += w * (f_j if direction == "cosine" else (f_j - f_i) / (f_j - f_i).norm())
        if projection:
            g = g - (g @ f_i) * f_i
        out[i] = g / norm
    return out


@pytest.mark.parametrize("projection", [True, False])
@pytest.mark.parametrize("direction", ["cosine", "euclidean"])
def test_surgery_variants_match_the_hand_derived_reference(direction: str, projection: bool) -> None:
    x, labels = _batch(11, BATCHES["one-sample class"])
    weights = _random_weights(labels, 2)
    expected = _hand_reference(x, weights, direction, projection)
    assert torch.allclose(
        surgery_gradient(x, weights, direction=direction, projection=projection), expected, rtol=1e-12, atol=1e-14
    )
    leaf = x.clone().requires_grad_(True)
    surgery_loss(leaf, weights, direction=direction, projection=projection).backward()
    assert torch.allclose(leaf.grad, expected, rtol=1e-10, atol=1e-13)


def test_euclidean_direction_is_the_gradient_of_a_distance_loss() -> None:
    """A loss of D = ||f_i - f_j|| on free unit vectors: its ambient gradient is the Euclidean direction, W = -dL/dD."""
    x, labels = _batch(5, BATCHES["four classes"])
    unit = torch.nn.functional.normalize(x, dim=1).requires_grad_(True)
    positive, negative = dml.losses.pair_masks(labels)
    dist = (unit[:, None, :] - unit[None, :, :]).pow(2).sum(-1).clamp_min(1e-30).sqrt()
    loss = (dist[positive] ** 2).sum() - (dist[negative]).sum()  # dL/dD = 2D on positives, -1 on negatives
    loss.backward()
    with torch.no_grad():
        weights = -(2 * dist * positive - 1.0 * negative)  # W = -dL/dD
    got = surgery_gradient(unit.detach(), weights, direction="euclidean", projection=False)
    assert torch.allclose(got, unit.grad, rtol=1e-10, atol=1e-12)


def test_projected_euclidean_equals_cosine_with_weights_over_distance() -> None:
    x, labels = _batch(9, BATCHES["four classes"])
    weights = _random_weights(labels, 4)
    sim = dml.losses.cosine_similarity_matrix(x)
    dist = dml.losses.euclidean_from_similarity(sim)
    euclidean = surgery_gradient(x, weights, direction="euclidean", projection=True)
    cosine = surgery_gradient(x, weights / dist, direction="cosine", projection=True)
    assert torch.allclose(euclidean, cosine, rtol=1e-10, atol=1e-13)


def test_dropping_the_projection_adds_only_the_radial_component() -> None:
    x, labels = _batch(12, BATCHES["four classes"])
    weights = _random_weights(labels, 6)
    unit = x / x.norm(dim=1, keepdim=True)
    for direction in ("cosine", "euclidean"):
        kept = surgery_gradient(x, weights, direction=direction, projection=True)
        dropped = surgery_gradient(x, weights, direction=direction, projection=False)
        assert torch.allclose((kept * unit).sum(1), torch.zeros(len(x), dtype=x.dtype), atol=1e-13)
        radial = dropped - kept
        assert torch.allclose(radial, (radial * unit).sum(1, keepdim=True) * unit, atol=1e-13)


def test_a_model_that_normalises_its_output_undoes_dropping_the_projection() -> None:
    x, labels = _batch(13, BATCHES["four classes"])
    weights = _random_weights(labels, 8)
    grads = []
    for projection in (True, False):
        leaf = x.clone().requires_grad_(True)
        normalised = torch.nn.functional.normalize(leaf, dim=1)  # the model's own L2 layer
        surgery_loss(normalised, weights, projection=projection).backward()
        grads.append(leaf.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-13)


def test_simulation_step_is_a_surgery_step_on_three_unit_vectors() -> None:
    s_ap, s_an, lr = 0.4, 0.7, 0.1
    for rule in (nca_rule(0.5), euclidean_triplet_rule()):
        w_ap, w_an = (float(w) for w in rule.weights(np.array(s_ap), np.array(s_an)))
        f = torch.tensor(np.stack([v[()] for v in triplet_vectors(s_ap, s_an, coplanarity=0.3)]))
        weights = torch.zeros(3, 3, dtype=torch.float64)
        weights[0, 1], weights[0, 2] = -w_ap, w_an
        moved = f - lr * surgery_gradient(f, weights, direction=rule.direction, projection=False)
        moved = moved / moved.norm(dim=1, keepdim=True)
        d_ap, d_an = one_step(rule, s_ap, s_an, lr=lr, coplanarity=0.3)
        assert float(d_ap) == pytest.approx(float(moved[0] @ moved[1]) - s_ap, abs=1e-12)
        assert float(d_an) == pytest.approx(float(moved[0] @ moved[2]) - s_an, abs=1e-12)


def test_simulation_reproduces_the_independent_numerical_check() -> None:
    """Xuan et al., ECCV 2020, numerical check: the share of hard cells where the entangled step pulls the negative
    closer (19 x 19 grid)."""
    expected = {"euclidean": (0.03, 0.13), "nca": (0.06, 0.17), "sct": (0.0, 0.0)}
    rules = {"euclidean": euclidean_triplet_rule(), "nca": nca_rule(1.0), "sct": sct_rule(1.0)}
    for key, rule in rules.items():
        for p, share in zip((0.5, 1.0), expected[key]):
            assert round(collapse_share(triplet_field(rule, lr=0.1, p=p)), 2) == share, (key, p)
    examples = {"euclidean": 0.003, "nca": 0.006, "sct": -0.024}
    for key, value in examples.items():
        d_ap, d_an = one_step(rules[key], 0.5, 0.95, lr=0.1)
        assert round(float(entangle(d_ap, d_an, 0.5, 0.95, 0.5)[1]), 3) == value, key


def test_hard_triplets_drift_to_the_collapse_corner_but_not_under_sct() -> None:
    start = (0.5, 0.9)
    for rule in (euclidean_triplet_rule(), nca_rule(1.0)):
        assert np.allclose(triplet_trajectory(rule, start, p=1.0, steps=200)[-1], (1.0, 1.0))
    end = triplet_trajectory(sct_rule(1.0), start, p=1.0, steps=200)[-1]
    assert end[1] < start[1] - 1.0 and end[0] > start[0]


def test_bad_input_is_rejected_with_a_clear_message() -> None:
    x, labels = _batch(0, BATCHES["four classes"])
    with pytest.raises(TypeError, match="PairLoss"):
        decompose(torch.nn.MSELoss(), x, labels)
    proxy = sorted(set(dml.losses.available()) - set(dml.losses.available(kind=PairLoss)))
    if "proxy_anchor" in proxy:
        with pytest.raises(TypeError, match="PairLoss"):
            decompose(dml.losses.build("proxy_anchor", num_classes=4, embedding_dim=6), x, labels)
    pair = dml.losses.build(PAIR_LOSSES[0])
    with pytest.raises(ValueError, match="different lengths"):
        decompose(pair, x, labels[:-1])
    bad = x.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        decompose(pair, bad, labels)
    with pytest.raises(ValueError, match="zero vector"):
        decompose(pair, torch.cat([x[:-1], torch.zeros(1, x.shape[1], dtype=x.dtype)]), labels)
    weights = _random_weights(labels, 0)
    with pytest.raises(ValueError, match="Did you mean 'euclidean'"):
        surgery_gradient(x, weights, direction="euclidian")
    with pytest.raises(ValueError, match="Did you mean 'cosine'"):
        ExplicitGradientLoss(loss_weights(pair), direction="cosin")
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        surgery_loss(x, weights[:-1])
    with pytest.raises(ValueError, match="finite"):
        surgery_gradient(bad, weights)
    with pytest.raises(TypeError, match="PairLoss"):
        loss_weights(torch.nn.MSELoss())
    with pytest.raises(ValueError, match="coplanarity"):
        triplet_vectors(0.5, 0.5, coplanarity=2.0)
    with pytest.raises(ValueError, match="temperature"):
        nca_rule(0.0)
