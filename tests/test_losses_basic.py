"""Contrastive and triplet losses against slow explicit loops and pytorch-metric-learning; registry and input checks.

Conventions compared with pytorch-metric-learning (PML): both libraries compute cosine similarity on L2-normalised
embeddings and average over the pairs/triplets with a strictly positive loss (PML's ``AvgNonZeroReducer``), and
PML's contrastive loss sums the separately averaged positive and negative terms, as ours does. So
``contrastive`` equals ``ContrastiveLoss(pos_margin, neg_margin, distance=CosineSimilarity())`` and ``triplet``
equals ``TripletMarginLoss(margin, distance=CosineSimilarity())`` (with a semi-hard ``TripletMarginMiner`` for
``triplets="semihard"``). Differences: PML's defaults are Euclidean distance with ``pos_margin=0, neg_margin=1`` and
``margin=0.05``, and ``reduction="all"`` of our contrastive loss has no PML default reducer (it would be
``MeanReducer``), so it is checked against the loop only.
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning import losses as pml_losses

import dml.losses as losses


def _batch(seed: int = 0, n_classes: int = 4, per_class: int = 3, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    embeddings = torch.randn(len(labels), dim, generator=generator, dtype=torch.float64)
    return embeddings, labels


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / a.norm()) @ (b / b.norm())


def _mean(values: list[torch.Tensor], nonzero: bool) -> torch.Tensor:
    if nonzero:
        values = [v for v in values if v > 0]
    return torch.stack(values).mean() if values else torch.zeros((), dtype=torch.float64)


def contrastive_loop(x: torch.Tensor, y: torch.Tensor, pos_margin: float, neg_margin: float,
                     nonzero: bool) -> torch.Tensor:
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(y)), 2):
        s = _cos(x[i], x[j])
        if y[i] == y[j]:
            pos.append(torch.clamp(pos_margin - s, min=0))
        else:
            neg.append(torch.clamp(s - neg_margin, min=0))
    return _mean(pos, nonzero) + _mean(neg, nonzero)


def triplet_loop(x: torch.Tensor, y: torch.Tensor, margin: float, semihard: bool) -> torch.Tensor:
    values = []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a == p or y[a] != y[p] or y[a] == y[n]:
            continue
        s_ap, s_an = _cos(x[a], x[p]), _cos(x[a], x[n])
        if semihard and not s_an < s_ap:
            continue
        values.append(torch.clamp(s_an - s_ap + margin, min=0))
    return _mean(values, nonzero=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reduction", ["nonzero", "all"])
@pytest.mark.parametrize("margins", [(1.0, 0.5), (0.8, 0.0), (0.9, -0.2)])
def test_contrastive_matches_loop_in_value_and_gradient(seed: int, reduction: str, margins) -> None:
    x, y = _batch(seed)
    x_loop = x.clone().requires_grad_(True)
    x_vec = x.clone().requires_grad_(True)
    expected = contrastive_loop(x_loop, y, *margins, nonzero=reduction == "nonzero")
    got = losses.build("contrastive", pos_margin=margins[0], neg_margin=margins[1], reduction=reduction)(x_vec, y)
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    torch.testing.assert_close(x_vec.grad, x_loop.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("triplets", ["all", "semihard"])
@pytest.mark.parametrize("margin", [0.1, 0.5])
def test_triplet_matches_loop_in_value_and_gradient(seed: int, triplets: str, margin: float) -> None:
    x, y = _batch(seed)
    x_loop = x.clone().requires_grad_(True)
    x_vec = x.clone().requires_grad_(True)
    expected = triplet_loop(x_loop, y, margin, semihard=triplets == "semihard")
    got = losses.build("triplet", margin=margin, triplets=triplets)(x_vec, y)
    assert got > 0
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    torch.testing.assert_close(x_vec.grad, x_loop.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_contrastive_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16)
    x = x.float()
    ours = losses.build("contrastive", pos_margin=1.0, neg_margin=0.3)(x, y)
    theirs = pml_losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.3, distance=distances.CosineSimilarity())(x, y)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("seed", [0, 3])
def test_triplet_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16)
    x = x.float()
    cosine = distances.CosineSimilarity()
    theirs_all = pml_losses.TripletMarginLoss(margin=0.2, distance=cosine)(x, y)
    torch.testing.assert_close(losses.build("triplet", margin=0.2)(x, y), theirs_all)
    miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=cosine)
    theirs_semihard = pml_losses.TripletMarginLoss(margin=0.2, distance=cosine)(x, y, miner(x, y))
    torch.testing.assert_close(losses.build("triplet", margin=0.2, triplets="semihard")(x, y), theirs_semihard)


@pytest.mark.parametrize("name,labels", [("contrastive", [7]), ("triplet", [7]), ("triplet", [0, 1, 2, 3]),
                                         ("triplet", [5, 5, 5, 5])],
                         ids=["contrastive-single", "triplet-single", "triplet-no-positive", "triplet-no-negative"])
def test_batch_without_valid_pairs_gives_zero_loss_with_zero_gradient(name: str, labels: list[int]) -> None:
    x = torch.randn(len(labels), 6, requires_grad=True)
    loss = losses.build(name)(x, torch.tensor(labels))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [5, 5, 5, 5]], ids=["no-positive", "no-negative"])
def test_contrastive_with_one_kind_of_pair_keeps_the_other_term(labels: list[int]) -> None:
    x, y = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), torch.tensor(labels)
    got = losses.build("contrastive", neg_margin=0.0)(x, y)
    expected = contrastive_loop(x, y, 1.0, 0.0, nonzero=True)
    assert expected > 0
    torch.testing.assert_close(got, expected)


def test_satisfied_margins_give_zero_loss_not_nan() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    for loss_fn in (losses.build("contrastive", neg_margin=0.5), losses.build("triplet", margin=0.5)):
        loss = loss_fn(x, y)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("labels,direction", [([0, 0], +1), ([0, 1], -1)], ids=["positive", "negative"])
def test_gradient_step_pulls_positives_and_pushes_negatives(labels: list[int], direction: int) -> None:
    x = F.normalize(torch.tensor([[1.0, 0.2, 0.1], [0.6, 0.8, -0.3]]), dim=1).requires_grad_(True)
    losses.build("contrastive", pos_margin=1.0, neg_margin=0.0)(x, torch.tensor(labels)).backward()
    before = x[0].detach() @ x[1].detach()
    x_next = F.normalize(x.detach() - 0.1 * x.grad, dim=1)
    assert direction * (x_next[0] @ x_next[1] - before) > 1e-3


def test_half_precision_embeddings_are_upcast() -> None:
    x, y = _batch(0)
    loss = losses.build("triplet")(x.half(), y)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, losses.build("triplet")(x.half().float(), y))


@pytest.mark.parametrize("name", ["contrastive", "triplet"])
def test_invalid_inputs_raise_value_error(name: str) -> None:
    loss_fn = losses.build(name)
    with pytest.raises(ValueError, match="different lengths"):
        loss_fn(torch.randn(4, 3), torch.tensor([0, 0, 1]))
    bad = torch.randn(4, 3)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss_fn(bad, torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="2-D"):
        loss_fn(torch.randn(4), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="integer class ids"):
        loss_fn(torch.randn(4, 3), torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_registry_lists_names_and_rejects_unknown_ones() -> None:
    assert {"contrastive", "triplet"} <= set(losses.available())
    with pytest.raises(ValueError, match=r"Unknown loss 'triplett'.*Did you mean 'triplet'.*contrastive"):
        losses.build("triplett")
    with pytest.raises(ValueError, match=r"Unknown hyperparameter 'margn'.*Did you mean 'margin'.*triplets"):
        losses.build("triplet", margn=0.2)
    assert losses.hyperparameters("contrastive") == {"pos_margin": 1.0, "neg_margin": 0.5, "reduction": "nonzero"}
    with pytest.raises(ValueError, match="choose one of"):
        losses.build("triplet", triplets="hardest")


def test_register_adds_a_loss_and_refuses_duplicates() -> None:
    @losses.register("test-only-mean-norm")
    class MeanNorm(losses.MetricLoss):
        def __init__(self, *, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

        def compute(self, embeddings, labels):
            return self.scale * embeddings.norm(dim=1).mean()

    try:
        loss = losses.build("test-only-mean-norm", scale=2.0)(torch.ones(2, 4), [0, 1])
        assert loss.item() == pytest.approx(4.0)
        with pytest.raises(ValueError, match="already registered"):
            losses.register("test-only-mean-norm")(type("Other", (losses.MetricLoss,), {}))
    finally:
        from dml.losses import registry

        registry._LOSSES.unregister("test-only-mean-norm")
