"""Margin, lifted structure, N-pair and multi-similarity losses against slow loops and pytorch-metric-learning.

Every loss is checked in float64 against a hand-written loop over explicit pairs / triplets (value and gradient),
and against pytorch-metric-learning (PML) 2.9 on the same inputs where the two conventions coincide:

* ``margin``: our default uses every ordered pair once; PML's ``MarginLoss`` forms all triplets
  (``triplets_per_anchor="all"``), counting a positive pair once per negative. Given the same triplets (a test miner
  that returns all of them) they agree, including the learned per-class β and its gradient with ν > 0. For a scalar
  β PML adds ν·β undivided, so the scalar case is compared with ν = 0. PML's default distance (L2 on normalised
  embeddings) is our D = sqrt(2 − 2S).
* ``lifted_structure``: PML's ``LiftedStructureLoss(neg_margin=α, pos_margin=0)`` equals the original variant.
  ``variant="generalized"`` averages over anchors with a positive and a negative, PML's
  ``GeneralizedLiftedStructureLoss`` over all anchors (missing term = 0): compared on P×K batches (K ≥ 2), where
  every anchor has both.
* ``npair``: both take the first two samples of each class as its pair. PML's ``NPairsLoss`` uses the unnormalised
  dot product; ``distance=CosineSimilarity()`` equals our ``temperature=1``, and the dot product of embeddings
  normalised and scaled by 1/√τ equals our ``temperature=τ``.
* ``multi_similarity``: ours follows the released code and skips an anchor whose mined positives or negatives are
  empty; PML keeps its other term. Compared with PML's ``MultiSimilarityLoss`` + ``MultiSimilarityMiner`` on batches
  where every anchor keeps both (asserted in the test), and with ``mining=False`` against PML without a miner.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning import losses as pml_losses

import dml.losses as losses
from dml.losses.npair import first_pair_per_class
from dml.mining import Miner, Pairs, Triplets


def _batch(
    seed: int = 0, n_classes: int = 4, per_class: int = 3, dim: int = 8, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    return torch.randn(len(labels), dim, generator=generator, dtype=dtype), labels


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / a.norm()) @ (b / b.norm())


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / a.norm() - b / b.norm()).norm()


def _check_value_and_gradient(loop_fn, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x_loop, x_vec = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected, got = loop_fn(x_loop, y), loss_fn(x_vec, y)
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    torch.testing.assert_close(x_vec.grad, x_loop.grad, rtol=1e-6, atol=1e-9)
    return got


class AllTriplets(Miner):
    """Test miner: every (anchor, positive, negative) triplet, as PML's ``triplets_per_anchor="all"``."""

    def mine(self, sim, labels):
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool)
        return Triplets(*torch.where(pos[:, :, None] & ~same[:, None, :]))


class HardestPairs(Miner):
    """Test miner returning Pairs: each anchor's least similar positive and most similar negative."""

    def mine(self, sim, labels):
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool)
        anchors = torch.arange(len(labels))
        ok = pos.any(1) & (~same).any(1)
        positive = sim.masked_fill(~pos, 2.0).argmin(1)
        negative = sim.masked_fill(same, -2.0).argmax(1)
        return Pairs(anchors[ok], positive[ok], anchors[ok], negative[ok])


# ----------------------------------------------------------------------------------------------------- margin loss


def margin_loop(x, y, *, margin=0.2, beta=1.2, nu=0.0, per_class_beta=None, tuples="pairs", miner=None):
    def b(i):
        return per_class_beta[y[i]] if per_class_beta is not None else torch.tensor(beta, dtype=x.dtype)

    terms, reg = [], []
    if tuples == "pairs":
        for i, j in itertools.permutations(range(len(y)), 2):
            if y[i] == y[j]:
                terms.append(torch.clamp(_dist(x[i], x[j]) - b(i) + margin, min=0))
            else:
                terms.append(torch.clamp(b(i) - _dist(x[i], x[j]) + margin, min=0))
            reg.append(b(i))
    else:
        for a, p, n in zip(*miner):
            terms.append(torch.clamp(_dist(x[a], x[p]) - b(a) + margin, min=0))
            terms.append(torch.clamp(b(a) - _dist(x[a], x[n]) + margin, min=0))
            reg.append(b(a))
    count = sum(int(t > 0) for t in terms)
    if count == 0:
        return x.sum() * 0
    return (torch.stack(terms).sum() + nu * torch.stack(reg).sum()) / count


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("margin,beta", [(0.2, 1.2), (0.1, 1.0), (0.3, 1.4)])
def test_margin_all_pairs_matches_loop(seed: int, margin: float, beta: float) -> None:
    x, y = _batch(seed)
    loss_fn = losses.build("margin", margin=margin, beta=beta)
    got = _check_value_and_gradient(lambda a, b: margin_loop(a, b, margin=margin, beta=beta), loss_fn, x, y)
    assert got > 0


def test_margin_per_class_beta_and_regulariser_match_loop_including_beta_gradient() -> None:
    x, y = _batch(2)
    loss_fn = losses.build("margin", num_classes=4, nu=0.05)
    with torch.no_grad():
        loss_fn.beta.copy_(torch.tensor([1.0, 1.1, 1.2, 1.3]))
    betas = loss_fn.beta.detach().double().clone().requires_grad_(True)
    expected = margin_loop(x, y, nu=0.05, per_class_beta=betas)
    got = loss_fn(x, y)
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    torch.testing.assert_close(loss_fn.beta.grad.double(), betas.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("miner_cls", [AllTriplets, HardestPairs])
def test_margin_with_a_miner_uses_its_tuples(miner_cls) -> None:
    x, y = _batch(3)
    miner = miner_cls()
    mined = miner(x, y)
    if isinstance(mined, Pairs):
        pairs = list(zip(mined.anchor_pos.tolist(), mined.positive.tolist(), mined.negative.tolist()))
        assert all(mined.anchor_pos[k] == mined.anchor_neg[k] for k in range(len(pairs)))
        triplets = [torch.tensor(v) for v in zip(*pairs)]
    else:
        triplets = list(mined)
    loss_fn = losses.build("margin", miner=miner, nu=0.0)
    # Pairs from HardestPairs line up one positive with one negative per anchor, so they read as triplets here.
    _check_value_and_gradient(lambda a, b: margin_loop(a, b, tuples="triplets", miner=triplets), loss_fn, x, y)


@pytest.mark.parametrize("seed", [0, 4])
def test_margin_matches_pml_on_all_triplets(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16)
    ours = losses.build("margin", margin=0.2, beta=1.1, learn_beta=False, miner=AllTriplets())(x, y)
    theirs = pml_losses.MarginLoss(margin=0.2, beta=1.1)(x, y)
    torch.testing.assert_close(ours, theirs)


def test_margin_per_class_learned_beta_matches_pml_value_and_gradients() -> None:
    x, y = _batch(5, n_classes=5, per_class=4, dim=16, dtype=torch.float32)
    ours = losses.build("margin", num_classes=5, nu=0.1, miner=AllTriplets())
    pml = pml_losses.MarginLoss(margin=0.2, nu=0.1, beta=1.2, learn_beta=True, num_classes=5)
    with torch.no_grad():
        start = torch.linspace(1.0, 1.4, 5)
        ours.beta.copy_(start)
        pml.beta.copy_(start)
    x_ours, x_pml = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    value_ours, value_pml = ours(x_ours, y), pml(x_pml, y)
    torch.testing.assert_close(value_ours, value_pml)
    value_ours.backward()
    value_pml.backward()
    torch.testing.assert_close(x_ours.grad, x_pml.grad)
    torch.testing.assert_close(ours.beta.grad, pml.beta.grad)


def test_margin_beta_is_a_parameter_unless_fixed() -> None:
    assert [name for name, _ in losses.build("margin").named_parameters()] == ["beta"]
    fixed = losses.build("margin", learn_beta=False, num_classes=3)
    assert list(fixed.parameters()) == [] and fixed.beta.shape == (3,)
    assert "beta" in fixed.state_dict()


def test_margin_rejects_bad_miner_and_labels() -> None:
    with pytest.raises(ValueError, match="Unknown miner 'no-such-miner'"):
        losses.build("margin", miner="no-such-miner")
    with pytest.raises(TypeError, match="miner must be None"):
        losses.build("margin", miner=3)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2 .*got labels in \[0, 7\].*torch.unique"):
        losses.build("margin", num_classes=3)(torch.randn(4, 5), torch.tensor([0, 0, 7, 7]))


def test_margin_with_distance_weighted_sampling_trains_and_matches_its_tuples() -> None:
    x, y = _batch(6, n_classes=8, per_class=4, dim=32, dtype=torch.float32)
    loss_fn = losses.build("margin", miner={"name": "distance_weighted", "seed": 0})
    mined = losses.build("margin", miner={"name": "distance_weighted", "seed": 0}).miner(x, y)
    assert isinstance(mined, Triplets) and len(mined.anchor) > 0
    x_vec = x.clone().requires_grad_(True)
    value = loss_fn(x_vec, y)  # the loss hands the embedding dimension to the miner (observe) itself
    expected = margin_loop(x.double(), y, tuples="triplets", miner=list(mined))
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    value.backward()
    assert torch.isfinite(x_vec.grad).all() and x_vec.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------- lifted structure


def lifted_loop(x, y, margin=1.0):
    n = len(y)
    terms = []
    for i, j in itertools.combinations(range(n), 2):
        if y[i] != y[j]:
            continue
        exps = [torch.exp(margin - _dist(x[i], x[k])) for k in range(n) if y[k] != y[i]]
        exps += [torch.exp(margin - _dist(x[j], x[k])) for k in range(n) if y[k] != y[j]]
        if not exps:
            continue
        terms.append(torch.clamp(torch.log(torch.stack(exps).sum()) + _dist(x[i], x[j]), min=0) ** 2)
    return torch.stack(terms).sum() / (2 * len(terms)) if terms else x.sum() * 0


def generalized_lifted_loop(x, y, margin=1.0):
    values = []
    for a in range(len(y)):
        pos = [torch.exp(_dist(x[a], x[p])) for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [torch.exp(margin - _dist(x[a], x[k])) for k in range(len(y)) if y[k] != y[a]]
        if pos and neg:
            values.append(torch.clamp(torch.log(torch.stack(pos).sum()) + torch.log(torch.stack(neg).sum()), min=0))
    return torch.stack(values).mean()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_lifted_matches_loop(seed: int, margin: float) -> None:
    x, y = _batch(seed)
    got = _check_value_and_gradient(
        lambda a, b: lifted_loop(a, b, margin), losses.build("lifted_structure", margin=margin), x, y
    )
    assert got > 0


def test_lifted_with_singleton_classes_matches_loop() -> None:
    x, y = _batch(7, n_classes=3, per_class=2)
    x, y = torch.cat([x, torch.randn(2, x.shape[1], dtype=x.dtype)]), torch.cat([y, torch.tensor([8, 9])])
    _check_value_and_gradient(lifted_loop, losses.build("lifted_structure"), x, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_generalized_lifted_matches_loop(seed: int) -> None:
    x, y = _batch(seed)
    y = torch.cat([y, torch.tensor([11])])  # a one-sample class: an anchor without positives is skipped
    x = torch.cat([x, torch.randn(1, x.shape[1], dtype=x.dtype)])
    _check_value_and_gradient(generalized_lifted_loop, losses.build("lifted_structure", variant="generalized"), x, y)


@pytest.mark.parametrize("seed", [0, 3])
def test_lifted_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16, dtype=torch.float32)
    ours = losses.build("lifted_structure", margin=1.0)(x, y)
    theirs = pml_losses.LiftedStructureLoss(neg_margin=1.0, pos_margin=0.0)(x, y)
    torch.testing.assert_close(ours, theirs)
    ours_g = losses.build("lifted_structure", margin=0.8, variant="generalized")(x, y)
    theirs_g = pml_losses.GeneralizedLiftedStructureLoss(neg_margin=0.8, pos_margin=0.0)(x, y)
    torch.testing.assert_close(ours_g, theirs_g)


# ------------------------------------------------------------------------------------------------------------ N-pair


def npair_loop(x, y, temperature):
    seen: dict[int, list[int]] = {}
    for i, label in enumerate(y.tolist()):
        seen.setdefault(label, []).append(i)
    pairs = [(idx[0], idx[1]) for _, idx in sorted(seen.items()) if len(idx) >= 2]
    values = []
    for a, p in pairs:
        others = [torch.exp((_cos(x[a], x[q]) - _cos(x[a], x[p])) / temperature) for _, q in pairs if q != p]
        values.append(torch.log(1 + torch.stack(others).sum()))
    return torch.stack(values).mean()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_npair_matches_loop(seed: int, temperature: float) -> None:
    x, y = _batch(seed, n_classes=5, per_class=3)
    y = torch.cat([y, torch.tensor([9])])  # a one-sample class has no pair and is skipped
    x = torch.cat([x, torch.randn(1, x.shape[1], dtype=x.dtype)])
    _check_value_and_gradient(
        lambda a, b: npair_loop(a, b, temperature), losses.build("npair", temperature=temperature), x, y
    )


def test_first_pair_per_class_takes_first_and_second_occurrence() -> None:
    anchor, positive = first_pair_per_class(torch.tensor([5, 3, 5, 9, 3, 5, 3]))
    assert anchor.tolist() == [1, 0] and positive.tolist() == [4, 2]


@pytest.mark.parametrize("seed", [0, 3])
def test_npair_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n_classes=6, per_class=3, dim=16, dtype=torch.float32)
    ours = losses.build("npair", temperature=1.0)(x, y)
    theirs = pml_losses.NPairsLoss(distance=distances.CosineSimilarity())(x, y)
    torch.testing.assert_close(ours, theirs)
    scaled = F.normalize(x, dim=1) / math.sqrt(0.1)
    theirs_t = pml_losses.NPairsLoss(distance=distances.DotProductSimilarity(normalize_embeddings=False))(scaled, y)
    torch.testing.assert_close(losses.build("npair", temperature=0.1)(x, y), theirs_t)


# ------------------------------------------------------------------------------------------------ multi-similarity


def ms_loop(x, y, alpha=2.0, beta=50.0, threshold=0.5, epsilon=0.1, mining=True):
    n = len(y)
    total = x.sum() * 0
    for i in range(n):
        pos = [_cos(x[i], x[k]) for k in range(n) if k != i and y[k] == y[i]]
        neg = [_cos(x[i], x[k]) for k in range(n) if y[k] != y[i]]
        if not pos or not neg:
            continue
        if mining:
            hardest_pos, hardest_neg = min(s.item() for s in pos), max(s.item() for s in neg)
            pos, neg = (
                [s for s in pos if s.item() - epsilon < hardest_neg],
                [s for s in neg if s.item() + epsilon > hardest_pos],
            )
        if not pos or not neg:
            continue
        pos_term = torch.log(1 + sum(torch.exp(-alpha * (s - threshold)) for s in pos)) / alpha
        neg_term = torch.log(1 + sum(torch.exp(beta * (s - threshold)) for s in neg)) / beta
        total = total + pos_term + neg_term
    return total / n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mining", [True, False])
@pytest.mark.parametrize("params", [{}, {"alpha": 1.0, "beta": 20.0, "threshold": 0.2, "epsilon": 0.3}])
def test_multi_similarity_matches_loop(seed: int, mining: bool, params: dict) -> None:
    x, y = _batch(seed)
    y = torch.cat([y, torch.tensor([9])])
    x = torch.cat([x, torch.randn(1, x.shape[1], dtype=x.dtype)])
    _check_value_and_gradient(
        lambda a, b: ms_loop(a, b, mining=mining, **params),
        losses.build("multi_similarity", mining=mining, **params),
        x,
        y,
    )


def test_multi_similarity_mining_drops_easy_pairs() -> None:
    x, y = _batch(4, n_classes=4, per_class=4)
    loss_fn = losses.build("multi_similarity", epsilon=0.0)
    sim = F.normalize(x, dim=1) @ F.normalize(x, dim=1).t()
    keep_pos, keep_neg = loss_fn.mine(sim, y)
    all_pos, all_neg = losses.pair_masks(y)
    assert (keep_pos & ~all_pos).sum() == 0 and (keep_neg & ~all_neg).sum() == 0
    assert keep_pos.sum() < all_pos.sum() or keep_neg.sum() < all_neg.sum()


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_multi_similarity_matches_pml(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=6, dtype=torch.float32)
    ours_fn = losses.build("multi_similarity", alpha=2.0, beta=40.0, threshold=0.5, epsilon=0.1)
    keep_pos, keep_neg = ours_fn.mine(F.normalize(x, dim=1) @ F.normalize(x, dim=1).t(), y)
    assert bool((keep_pos.any(1) & keep_neg.any(1)).all()), "every anchor must keep pairs for PML to agree"
    pml = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=40.0, base=0.5)
    theirs = pml(x, y, miners.MultiSimilarityMiner(epsilon=0.1)(x, y))
    torch.testing.assert_close(ours_fn(x, y), theirs)
    no_mining = losses.build("multi_similarity", beta=40.0, mining=False)(x, y)
    torch.testing.assert_close(no_mining, pml(x, y))


# ---------------------------------------------------------------------------------------------------- shared checks


@pytest.mark.parametrize("name", ["margin", "lifted_structure", "npair", "multi_similarity"])
def test_pair_losses_see_embeddings_only_through_similarity(name: str) -> None:
    """``from_similarity`` of the cosine matrix is the whole loss, as dml.gradients.decompose requires."""
    x, y = _batch(8, n_classes=4, per_class=2)
    loss_fn = losses.build(name)
    assert isinstance(loss_fn, losses.PairLoss)
    sim = F.normalize(x, dim=1) @ F.normalize(x, dim=1).t()
    torch.testing.assert_close(loss_fn.from_similarity(sim, y), loss_fn(x, y))
    # Rescaling an embedding changes nothing: the loss depends on directions only.
    torch.testing.assert_close(loss_fn(x * torch.rand(len(x), 1, dtype=x.dtype) * 5, y), loss_fn(x, y))


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("margin", {}),
        ("margin", {"num_classes": 4, "nu": 0.1}),
        ("lifted_structure", {}),
        ("lifted_structure", {"variant": "generalized"}),
        ("npair", {}),
        ("multi_similarity", {}),
        ("multi_similarity", {"mining": False}),
    ],
)
def test_gradient_decomposition_rebuilds_autograd(name: str, kwargs: dict) -> None:
    gradients = pytest.importorskip("dml.gradients")
    x, y = _batch(9, n_classes=4, per_class=3)
    loss_fn = losses.build(name, **kwargs).double()
    x_auto = x.clone().requires_grad_(True)
    loss_fn(x_auto, y).backward()
    rebuilt = gradients.decompose(loss_fn, x, y).gradient
    assert x_auto.grad.abs().max() > 0
    torch.testing.assert_close(rebuilt, x_auto.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("add_one", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_masked_logsumexp_matches_explicit_subsets_and_has_zero_gradient_on_empty_rows(add_one: bool, dim: int) -> None:
    from dml.losses.base import masked_logsumexp

    generator = torch.Generator().manual_seed(0)
    x = (30 * torch.randn(6, 5, generator=generator, dtype=torch.float64)).requires_grad_(True)
    mask = torch.rand(6, 5, generator=generator) < 0.5
    mask.select(1 - dim, 2).fill_(False)  # one empty slice along the reduced dimension
    got = masked_logsumexp(x, mask, dim, add_one=add_one)
    for k in range(x.shape[1 - dim]):
        values = x.select(1 - dim, k)[mask.select(1 - dim, k)]
        if add_one:
            values = torch.cat([values, torch.zeros(1, dtype=x.dtype)])
        if len(values):
            torch.testing.assert_close(got[k], torch.logsumexp(values, 0), rtol=1e-14, atol=1e-14)
        else:
            assert not add_one  # with add_one the slice holds the appended zero
    keep = torch.ones(len(got), dtype=torch.bool)
    keep[2] = add_one  # without add_one the value of an empty slice is arbitrary and must be masked out
    got[keep].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[~mask], torch.zeros_like(x.grad[~mask]))
    if add_one:
        assert got[2].item() == 0.0
