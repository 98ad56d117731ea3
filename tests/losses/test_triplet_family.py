"""Contrastive, triplet, NCA, EPHN and SCT losses against slow explicit loops and pytorch-metric-learning.

Conventions, and which one the package follows:

* Similarity. Every loss is a function of the cosine similarity ``S`` of L2-normalised embeddings (a ``PairLoss``).
  PML's defaults are Euclidean; the comparisons below pass ``distance=CosineSimilarity()``.
* Reduction. ``contrastive`` and ``triplet`` average over the terms with a positive loss (PML's
  ``AvgNonZeroReducer``; ``reduction="all"`` = PML's ``MeanReducer``); the contrastive loss sums the separately
  averaged positive and negative terms, as PML does. PML's default margins differ (``pos_margin=0, neg_margin=1``,
  triplet ``margin=0.05``).
* Triplet selection. ``triplets="semihard"`` is every FaceNet semi-hard triplet ``S_ap - m < S_an < S_ap`` = PML's
  ``TripletMarginMiner(type_of_triplets="semihard")`` (PML also keeps ``S_an = S_ap - m``, where the loss is 0);
  the TensorFlow Addons convention (one negative per anchor-positive pair, averaged over all pairs) is available
  as ``miner=SemiHardMiner(select="one", fallback="easiest")`` with ``reduction="all"``. ``triplets="hardest"`` is
  batch hard (Hermans et al.) = PML's ``BatchHardMiner``. A contrastive loss given a triplet miner uses the pairs
  ``(a, p)`` and ``(a, n)`` of each triplet with repeats, like PML's ``convert_to_pairs``.
* NCA. Ours is the two-way softmax on a triplet, ``-log e^{S_ap/τ} / (e^{S_ap/τ} + e^{S_an/τ})`` (released code of
  Xuan et al.). PML's ``NCALoss`` is Goldberger et al.'s neighbourhood softmax over all positives against all other
  samples with ``-D²`` logits: a different loss. They coincide when every anchor has exactly one positive and one
  negative, which is the only PML comparison made (a three-sample batch).
* EPHN / EPSHN and SCT have no PML counterpart; they follow the released code (easy positive skipping
  ``S > 0.9999``; τ = 0.1; EPHN validity ``S > 0`` (2020 code) or ``> -1`` (2019); SCT validity ``-1 < S < 1``;
  SCT's hard/easy split by the paper's rule or either code version, and its two reductions), checked here against
  loops that transcribe those rules anchor by anchor.
"""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, miners, reducers
from pytorch_metric_learning import losses as pml_losses

import dml.losses as losses
import dml.mining as mining


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


def _sims(x: torch.Tensor) -> list[list[torch.Tensor]]:
    return [[_cos(x[i], x[j]) for j in range(len(x))] for i in range(len(x))]


def _nca(s_ap: torch.Tensor, s_an: torch.Tensor, tau: float) -> torch.Tensor:
    return -torch.log(torch.exp(s_ap / tau) / (torch.exp(s_ap / tau) + torch.exp(s_an / tau)))


# ------------------------------------------------------------------------------------------------ loop references


def contrastive_loop(x, y, pos_margin, neg_margin, nonzero, pairs=None):
    pos, neg = [], []
    if pairs is None:
        pairs = itertools.permutations(range(len(y)), 2)
    for i, j in pairs:
        s = _cos(x[i], x[j])
        if y[i] == y[j]:
            pos.append(torch.clamp(pos_margin - s, min=0))
        else:
            neg.append(torch.clamp(s - neg_margin, min=0))
    return _mean(pos, nonzero) + _mean(neg, nonzero)


def triplet_list(s, y, rule, margin=0.0):
    """The triplets a rule selects, from a nested list of similarities ``s[i][j]``."""
    out = []
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(y)) if y[n] != y[a]]
        if rule == "hardest":
            if pos and neg:
                out.append((a, min(pos, key=lambda k: s[a][k].item()), max(neg, key=lambda k: s[a][k].item())))
            continue
        for p, n in itertools.product(pos, neg):
            if rule == "semihard" and not s[a][p] - margin < s[a][n] < s[a][p]:
                continue
            out.append((a, p, n))
    return out


def triplet_loop(x, y, margin, rule="all", nonzero=True):
    s = _sims(x)
    values = [torch.clamp(s[a][n] - s[a][p] + margin, min=0) for a, p, n in triplet_list(s, y, rule, margin)]
    return _mean(values, nonzero=nonzero)


def nca_loop(x, y, tau, rule="all"):
    s = _sims(x)
    values = [_nca(s[a][p], s[a][n], tau) for a, p, n in triplet_list(s, y, rule)]
    return _mean(values, nonzero=False)


def easy_positive_triplets(s, y, semihard, low, high, threshold=0.9999):
    """Transcription of the released ``_code/Loss.py`` selection, anchor by anchor."""
    out = []
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a] and s[a][p].item() <= threshold]
        if not pos:
            continue
        p = max(pos, key=lambda k: s[a][k].item())
        neg = [n for n in range(len(y)) if y[n] != y[a] and (not semihard or s[a][n].item() <= s[a][p].item())]
        if not neg:
            continue
        n = max(neg, key=lambda k: s[a][k].item())
        v_pos, v_neg = s[a][p].item(), s[a][n].item()
        if v_pos > low and v_neg > low and (high is None or (v_pos < high and v_neg < high)):
            out.append((a, p, n))
    return out


EPHN_VALIDITY = {"2020": (0.0, None), "2019": (-1.0, None), "sct": (-1.0, 1.0)}


def ephn_loop(x, y, tau, negatives, validity):
    s = _sims(x)
    triplets = easy_positive_triplets(s, y, negatives == "semihard", *EPHN_VALIDITY[validity])
    return _mean([_nca(s[a][p], s[a][n], tau) for a, p, n in triplets], nonzero=False)


def sct_loop(x, y, lam, tau, rule, reduction):
    s = _sims(x)
    hard, easy = [], []
    for a, p, n in easy_positive_triplets(s, y, False, -1.0, 1.0):
        s_ap, s_an = s[a][p], s[a][n]
        if rule == "paper":
            is_hard, is_easy = s_an > s_ap, not s_an > s_ap
        elif rule == "eccv2020":
            is_hard = s_an > s_ap and s_an > 0.5
            is_easy = not is_hard
        else:
            is_hard, is_easy = s_an > s_ap or s_an > 0.8, s_an < s_ap and s_an < 0.8
        if is_hard:
            hard.append(lam * s_an)
        elif is_easy:
            easy.append(_nca(s_ap, s_an, tau))
    if reduction == "separate":
        return _mean(easy, nonzero=False) + _mean(hard, nonzero=False)
    return torch.stack(easy + hard).sum() / len(easy + hard) if easy + hard else torch.zeros((), dtype=torch.float64)


def _check_against_loop(loss_fn, loop, x, y, *, positive=True) -> None:
    x_loop = x.clone().requires_grad_(True)
    x_vec = x.clone().requires_grad_(True)
    expected = loop(x_loop)
    got = loss_fn(x_vec, y)
    if positive:
        assert expected > 0
    torch.testing.assert_close(got, expected)
    got.backward()
    if expected.requires_grad:
        expected.backward()
        torch.testing.assert_close(x_vec.grad, x_loop.grad)
    else:
        assert torch.equal(x_vec.grad, torch.zeros_like(x_vec))


# ------------------------------------------------------------------------------------------------ contrastive


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reduction", ["nonzero", "all"])
@pytest.mark.parametrize("margins", [(1.0, 0.5), (0.8, 0.0), (0.9, -0.2)])
def test_contrastive_matches_loop_in_value_and_gradient(seed: int, reduction: str, margins) -> None:
    x, y = _batch(seed)
    loss_fn = losses.build("contrastive", pos_margin=margins[0], neg_margin=margins[1], reduction=reduction)
    _check_against_loop(loss_fn, lambda e: contrastive_loop(e, y, *margins, nonzero=reduction == "nonzero"), x, y)


@pytest.mark.parametrize("miner", ["semihard", "hardest_negative", "easy_positive"])
def test_contrastive_with_a_triplet_miner_matches_loop(miner: str) -> None:
    x, y = _batch(4, n_classes=3, per_class=4)
    triplets = mining.build(miner)(x, y)
    pairs = [(a, p) for a, p in zip(triplets.anchor.tolist(), triplets.positive.tolist())]
    pairs += [(a, n) for a, n in zip(triplets.anchor.tolist(), triplets.negative.tolist())]
    loss_fn = losses.build("contrastive", neg_margin=0.0, miner=miner)
    _check_against_loop(loss_fn, lambda e: contrastive_loop(e, y, 1.0, 0.0, nonzero=True, pairs=pairs), x, y)


def test_contrastive_with_a_pair_miner_uses_its_pairs() -> None:
    x, y = _batch(5)

    class FirstPairs(mining.Miner):
        def mine(self, sim, labels):
            pos, neg = losses.pair_masks(labels)
            a1, p = pos.nonzero(as_tuple=True)
            a2, n = neg.nonzero(as_tuple=True)
            return mining.Pairs(a1[:5], p[:5], a2[:7], n[:7])

    pairs = FirstPairs().mine(losses.cosine_similarity_matrix(x), y)
    chosen = list(zip(pairs.anchor_pos.tolist(), pairs.positive.tolist()))
    chosen += list(zip(pairs.anchor_neg.tolist(), pairs.negative.tolist()))
    loss_fn = losses.build("contrastive", neg_margin=0.0, reduction="all", miner=FirstPairs())
    _check_against_loop(loss_fn, lambda e: contrastive_loop(e, y, 1.0, 0.0, nonzero=False, pairs=chosen), x, y)


@pytest.mark.parametrize("seed", [0, 3])
def test_contrastive_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16)
    x = x.float()
    cosine = distances.CosineSimilarity()
    ours = losses.build("contrastive", pos_margin=1.0, neg_margin=0.3)(x, y)
    theirs = pml_losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.3, distance=cosine)(x, y)
    torch.testing.assert_close(ours, theirs)
    miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=cosine)
    theirs_mined = pml_losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.3, distance=cosine)(x, y, miner(x, y))
    ours_mined = losses.build("contrastive", pos_margin=1.0, neg_margin=0.3, miner={"name": "semihard", "margin": 0.2})
    torch.testing.assert_close(ours_mined(x, y), theirs_mined)


# ---------------------------------------------------------------------------------------------------- triplet


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("triplets", ["all", "semihard", "hardest"])
@pytest.mark.parametrize("margin", [0.1, 0.5])
@pytest.mark.parametrize("reduction", ["nonzero", "all"])
def test_triplet_matches_loop_in_value_and_gradient(seed: int, triplets: str, margin: float, reduction: str) -> None:
    x, y = _batch(seed)
    loss_fn = losses.build("triplet", margin=margin, triplets=triplets, reduction=reduction)
    _check_against_loop(loss_fn, lambda e: triplet_loop(e, y, margin, triplets, nonzero=reduction == "nonzero"), x, y)


@pytest.mark.parametrize("triplets", ["all", "semihard"])
def test_sorted_batch_all_equals_the_cubic_tensor_on_a_larger_batch(triplets: str) -> None:
    x, y = _batch(7, n_classes=12, per_class=8, dim=16)
    x_ref = x.clone().requires_grad_(True)
    sim = losses.cosine_similarity_matrix(x_ref)
    pos, neg = losses.pair_masks(y)
    s_ap, s_an = sim[:, :, None], sim[:, None, :]
    valid = pos[:, :, None] & neg[:, None, :]
    if triplets == "semihard":
        valid = valid & (s_an < s_ap)
    terms = F.relu(s_an - s_ap + 0.2)[valid]
    expected = terms[terms > 0].mean()
    expected.backward()
    x_got = x.clone().requires_grad_(True)
    got = losses.build("triplet", margin=0.2, triplets=triplets)(x_got, y)
    got.backward()
    assert terms.numel() > 10_000
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(x_got.grad, x_ref.grad)


@pytest.mark.parametrize("seed", [0, 3])
def test_triplet_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=4, dim=16)
    x = x.float()
    cosine = distances.CosineSimilarity()
    pml_triplet = pml_losses.TripletMarginLoss(margin=0.2, distance=cosine)
    torch.testing.assert_close(losses.build("triplet", margin=0.2)(x, y), pml_triplet(x, y))
    pml_mean = pml_losses.TripletMarginLoss(margin=0.2, distance=cosine, reducer=reducers.MeanReducer())
    torch.testing.assert_close(losses.build("triplet", margin=0.2, reduction="all")(x, y), pml_mean(x, y))
    semihard = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=cosine)
    torch.testing.assert_close(
        losses.build("triplet", margin=0.2, triplets="semihard")(x, y), pml_triplet(x, y, semihard(x, y))
    )
    batch_hard = miners.BatchHardMiner(distance=cosine)
    torch.testing.assert_close(
        losses.build("triplet", margin=0.2, triplets="hardest")(x, y), pml_triplet(x, y, batch_hard(x, y))
    )


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("distance_weighted", {"seed": 11}),
        ("semihard", {"select": "one"}),
        ("easy_positive", {"negatives": "semihard"}),
    ],
)
def test_triplet_with_a_miner_matches_pytorch_metric_learning_on_the_same_triplets(name: str, kwargs: dict) -> None:
    x, y = _batch(6, n_classes=6, per_class=4, dim=16)
    x = x.float()
    indices = mining.build(name, **kwargs)(x, y)
    ours = losses.build("triplet", margin=0.3, miner=mining.build(name, **kwargs))(x, y)
    theirs = pml_losses.TripletMarginLoss(margin=0.3, distance=distances.CosineSimilarity())(x, y, tuple(indices))
    assert ours > 0
    torch.testing.assert_close(ours, theirs)


def test_tensorflow_addons_semihard_convention_through_a_miner() -> None:
    # TF Addons: every anchor-positive pair, its semi-hard negative (else the least similar negative), averaged over
    # all pairs. Written here directly on squared distances D² = 2 - 2S with α = 2m.
    x, y = _batch(8, n_classes=4, per_class=4)
    unit = F.normalize(x, dim=1)
    d2 = 2 - 2 * unit @ unit.t()
    values = []
    for a in range(len(y)):
        negatives = [n for n in range(len(y)) if y[n] != y[a]]
        for p in (p for p in range(len(y)) if p != a and y[p] == y[a]):
            outside = [d2[a, n] for n in negatives if d2[a, n] > d2[a, p]]
            chosen = min(outside) if outside else max(d2[a, n] for n in negatives)
            values.append(torch.clamp(d2[a, p] - chosen + 0.2, min=0))
    expected = torch.stack(values).mean() / 2  # the cosine loss is half the squared-distance loss
    miner = {"name": "semihard", "select": "one", "fallback": "easiest"}
    torch.testing.assert_close(losses.build("triplet", margin=0.1, reduction="all", miner=miner)(x, y), expected)


def test_batch_all_triplet_never_forms_the_cubic_tensor() -> None:
    # N = 2048 would need 8.6e9 triplet entries (34 GB in float32); the sorted form needs O(N^2).
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(512).repeat_interleave(4)
    x = torch.randn(len(y), 32, generator=generator, requires_grad=True)
    start = time.perf_counter()
    loss = losses.build("triplet", margin=0.2)(x, y)
    loss.backward()
    assert time.perf_counter() - start < 20.0  # seconds, generous: a single-digit number on 2 CPU cores
    assert loss > 0 and torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------------------------------------- NCA


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("triplets", ["all", "hardest"])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_nca_matches_loop_in_value_and_gradient(seed: int, triplets: str, tau: float) -> None:
    x, y = _batch(seed)
    _check_against_loop(
        losses.build("nca", temperature=tau, triplets=triplets), lambda e: nca_loop(e, y, tau, triplets), x, y
    )


def test_nca_all_in_recomputed_blocks_matches_a_single_block(monkeypatch) -> None:
    from dml.losses import nca

    x, y = _batch(2, n_classes=5, per_class=6)
    x_one = x.clone().requires_grad_(True)
    one = losses.build("nca")(x_one, y)
    one.backward()
    monkeypatch.setattr(nca, "_BLOCK_ELEMENTS", 3 * len(y))  # three positive pairs per block, checkpointed
    x_blocks = x.clone().requires_grad_(True)
    blocks = losses.build("nca")(x_blocks, y)
    blocks.backward()
    torch.testing.assert_close(blocks, one)
    torch.testing.assert_close(x_blocks.grad, x_one.grad)


def test_nca_with_a_miner_matches_loop() -> None:
    x, y = _batch(3)
    miner = mining.build("semihard", margin=0.3)
    selected = set(zip(*(t.tolist() for t in miner(x, y))))

    def loop(e):
        s = _sims(e)
        return _mean([_nca(s[a][p], s[a][n], 0.1) for a, p, n in sorted(selected)], nonzero=False)

    _check_against_loop(losses.build("nca", miner=miner), loop, x, y)


@pytest.mark.parametrize("labels", [[0, 0, 1], [0, 1, 1], [4, 2, 4]])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nca_equals_pytorch_metric_learning_when_each_anchor_has_one_positive_and_one_negative(labels, tau) -> None:
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(sum(labels)))
    y = torch.tensor(labels)
    theirs = pml_losses.NCALoss(softmax_scale=1 / tau, distance=distances.CosineSimilarity())(x, y)
    torch.testing.assert_close(losses.build("nca", temperature=tau)(x, y), theirs)


# ------------------------------------------------------------------------------------------------- EPHN and SCT


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("negatives", ["hardest", "semihard"])
@pytest.mark.parametrize("validity", ["2020", "2019", "sct"])
def test_ephn_matches_loop_in_value_and_gradient(seed: int, negatives: str, validity: str) -> None:
    x, y = _batch(seed, n_classes=3, per_class=4, dim=3)
    loss_fn = losses.build("ephn", negatives=negatives, validity=validity)
    _check_against_loop(loss_fn, lambda e: ephn_loop(e, y, 0.1, negatives, validity), x, y)


def test_ephn_validity_rules_differ_where_the_released_code_versions_do() -> None:
    # Anchor 0's easy positive has S < 0: dropped by the 2020 rule (S > 0), kept by the 2019 rule (S > -1).
    x = torch.tensor([[1.0, 0.0], [-0.6, 0.8], [0.9, 0.1], [-1.0, 0.05]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    s = _sims(x)
    assert s[0][1] < 0
    assert len(easy_positive_triplets(s, y, False, 0.0, None)) < len(easy_positive_triplets(s, y, False, -1.0, None))
    for validity in ("2020", "2019"):
        torch.testing.assert_close(
            losses.build("ephn", validity=validity)(x, y), ephn_loop(x, y, 0.1, "hardest", validity)
        )
    assert losses.build("ephn", validity="2020")(x, y) != losses.build("ephn", validity="2019")(x, y)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("rule", ["paper", "eccv2020", "feb2021"])
@pytest.mark.parametrize("reduction", ["mean", "separate"])
def test_sct_matches_loop_in_value_and_gradient(seed: int, rule: str, reduction: str) -> None:
    x, y = _batch(seed, n_classes=4, per_class=3, dim=3)
    loss_fn = losses.build("sct", lam=0.7, rule=rule, reduction=reduction)
    _check_against_loop(loss_fn, lambda e: sct_loop(e, y, 0.7, 0.1, rule, reduction), x, y, positive=False)


def test_sct_rules_split_triplets_differently() -> None:
    # anchor 0: easy positive at S = 0.6 and hardest negative at S = 0.85 (hard under every rule);
    # anchor 2: positive 0.3, negative 0.45 (hard for paper and feb2021, easy for eccv2020 since S_an < 0.5);
    # anchor 4: positive 0.95, negative 0.85 (easy for paper and eccv2020, hard for feb2021 since S_an > 0.8).
    sim = torch.eye(6, dtype=torch.float64)
    for i, j, v in [(0, 1, 0.6), (0, 4, 0.85), (2, 3, 0.3), (2, 5, 0.45), (4, 5, 0.95)]:  # all others 0
        sim[i, j] = sim[j, i] = v
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    from dml.losses.sct import hard_easy_split

    triplets = mining.build("easy_positive", min_similarity=-1.0, max_similarity=1.0).mine(sim, y)
    s_ap, s_an = sim[triplets.anchor, triplets.positive], sim[triplets.anchor, triplets.negative]
    hard_anchors = {
        rule: set(triplets.anchor[hard_easy_split(s_ap, s_an, rule)[0]].tolist())
        for rule in ("paper", "eccv2020", "feb2021")
    }
    assert {0, 2} <= hard_anchors["paper"] and 4 not in hard_anchors["paper"]
    assert 0 in hard_anchors["eccv2020"] and not {2, 4} & hard_anchors["eccv2020"]
    assert {0, 2, 4} <= hard_anchors["feb2021"]


@pytest.mark.parametrize("mode,negatives", [("hn", "hardest"), ("shn", "semihard")])
def test_sct_baselines_are_ephn_with_the_sct_validity_rule(mode: str, negatives: str) -> None:
    x, y = _batch(5, n_classes=4, per_class=3, dim=3)
    ours = losses.build("sct", mode=mode)(x, y)
    torch.testing.assert_close(ours, losses.build("ephn", negatives=negatives, validity="sct")(x, y))
    torch.testing.assert_close(ours, ephn_loop(x, y, 0.1, negatives, "sct"))


def test_sct_hard_branch_pushes_only_the_negative() -> None:
    # One hard triplet: the gradient of lam * S_an w.r.t. S is lam on (a, n) and nothing on (a, p).
    sim = torch.tensor([[1.0, 0.3, 0.6], [0.3, 1.0, 0.1], [0.6, 0.1, 1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss = losses.build("sct", lam=2.0, rule="paper").from_similarity(sim, y)
    loss.backward()
    # anchor 0 is hard (0.6 > 0.3); anchor 1 easy (0.1 < 0.3); anchor 2 has no positive.
    assert sim.grad[0, 2] == pytest.approx(2.0 / 2) and sim.grad[0, 1] == 0
    assert sim.grad[1, 0] < 0 and sim.grad[1, 2] > 0


# ------------------------------------------------------------------------------------------ shared edge cases

CONFIGS = [
    ("contrastive", {}),
    ("contrastive", {"miner": "semihard"}),
    ("triplet", {}),
    ("triplet", {"triplets": "semihard"}),
    ("triplet", {"triplets": "hardest"}),
    ("triplet", {"miner": {"name": "distance_weighted", "seed": 0}}),
    ("nca", {}),
    ("nca", {"triplets": "hardest"}),
    ("ephn", {}),
    ("ephn", {"negatives": "semihard"}),
    ("sct", {}),
    ("sct", {"rule": "feb2021"}),
    ("sct", {"reduction": "separate"}),
    ("sct", {"mode": "shn"}),
]
CONFIG_IDS = [f"{name}-{'-'.join(str(v) for v in kw.values()) or 'default'}" for name, kw in CONFIGS]


EMPTY_BATCHES = {"single": [7], "no-positive": [0, 1, 2, 3], "no-negative": [5, 5, 5, 5]}
# The unmined contrastive loss keeps the other kind of pair when one kind is missing (tested below).
EMPTY_CASES = [
    pytest.param(name, kwargs, labels, id=f"{config_id}-{case}")
    for (name, kwargs), config_id in zip(CONFIGS, CONFIG_IDS)
    for case, labels in EMPTY_BATCHES.items()
    if not (name == "contrastive" and not kwargs and case != "single")
]


@pytest.mark.parametrize("name,kwargs,labels", EMPTY_CASES)
def test_batch_without_valid_tuples_gives_zero_loss_with_zero_gradient(name: str, kwargs: dict, labels) -> None:
    x = torch.randn(len(labels), 6, requires_grad=True)
    loss = losses.build(name, **kwargs)(x, torch.tensor(labels))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_every_configuration_is_finite_in_every_precision_with_a_singleton_class(name, kwargs, dtype) -> None:
    x, y = _batch(9, n_classes=4, per_class=4)
    y[0] = 77  # a class with one sample
    x = x.to(dtype).requires_grad_(True)
    loss = losses.build(name, **kwargs)(x, y)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and x.grad.dtype == dtype
    assert x.grad.abs().sum() > 0  # the batch has valid tuples, so the loss must move the embeddings
    if dtype == torch.float16:
        torch.testing.assert_close(loss, losses.build(name, **kwargs)(x.detach().float(), y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=CONFIG_IDS)
def test_every_configuration_runs_on_cuda_and_matches_cpu(name: str, kwargs: dict) -> None:
    x, y = _batch(10, n_classes=4, per_class=4)
    cpu = losses.build(name, **kwargs)(x, y)
    gpu = losses.build(name, **kwargs).cuda()(x.cuda(), y.cuda())
    assert gpu.device.type == "cuda"
    if "distance_weighted" not in str(kwargs):
        torch.testing.assert_close(gpu.cpu(), cpu)


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
    for loss_fn in (
        losses.build("contrastive", neg_margin=0.5),
        losses.build("triplet", margin=0.5),
        losses.build("triplet", margin=0.5, triplets="semihard"),
    ):
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


@pytest.mark.parametrize("name", ["contrastive", "triplet", "nca", "ephn", "sct"])
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


@pytest.mark.parametrize(
    "name,kwargs,error,match",
    [
        ("contrastive", {"reduction": "sum"}, ValueError, "Choose one of"),
        ("contrastive", {"pos_margin": 1.5}, ValueError, r"\[-1, 1\]"),
        ("contrastive", {"miner": 3}, TypeError, "registered miner name"),
        ("contrastive", {"miner": "semihrad"}, ValueError, "Did you mean 'semihard'"),
        ("triplet", {"margin": -0.1}, ValueError, ">= 0"),
        ("triplet", {"triplets": "easy"}, ValueError, "Choose one of"),
        ("triplet", {"reduction": "sum"}, ValueError, "Choose one of"),
        ("triplet", {"triplets": "hardest", "miner": "semihard"}, ValueError, "not both"),
        ("nca", {"temperature": 0.0}, ValueError, "> 0"),
        ("nca", {"triplets": "semihard"}, ValueError, "miner="),
        ("ephn", {"temperature": -1.0}, ValueError, "> 0"),
        ("ephn", {"negatives": "all"}, ValueError, r"Unknown negatives 'all'.*Choose one of"),
        ("ephn", {"validity": "2021"}, ValueError, "Choose one of"),
        ("sct", {"lam": -1.0}, ValueError, ">= 0"),
        ("sct", {"rule": "eccv"}, ValueError, "Choose one of"),
        ("sct", {"reduction": "sum"}, ValueError, "Choose one of"),
        ("sct", {"mode": "ephn"}, ValueError, "Choose one of"),
        ("sct", {"mode": "hn", "lam": 0.5}, ValueError, "do not apply"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(name: str, kwargs: dict, error, match: str) -> None:
    with pytest.raises(error, match=match):
        losses.build(name, **kwargs)


def test_a_pair_miner_is_refused_by_the_triplet_losses() -> None:
    class AllPairs(mining.Miner):
        def mine(self, sim, labels):
            pos, neg = losses.pair_masks(labels)
            return mining.Pairs(*pos.nonzero(as_tuple=True), *neg.nonzero(as_tuple=True))

    x, y = _batch(0)
    for name in ("triplet", "nca"):
        with pytest.raises(TypeError, match="needs a triplet miner"):
            losses.build(name, miner=AllPairs())(x, y)


def test_registry_lists_names_and_rejects_unknown_ones() -> None:
    assert {"contrastive", "triplet", "nca", "ephn", "sct"} <= set(losses.available())
    with pytest.raises(ValueError, match=r"Unknown loss 'triplett'.*Did you mean 'triplet'.*contrastive"):
        losses.build("triplett")
    with pytest.raises(
        ValueError, match=r"unexpected keyword argument\(s\) 'margn'\. Closest: 'margn' -> 'margin'.*triplets"
    ):
        losses.build("triplet", margn=0.2)
    assert losses.hyperparameters("contrastive") == {
        "pos_margin": 1.0,
        "neg_margin": 0.5,
        "reduction": "nonzero",
        "miner": None,
    }
    assert losses.hyperparameters("triplet") == {
        "margin": 0.1,
        "triplets": "all",
        "reduction": "nonzero",
        "miner": None,
    }
    assert losses.hyperparameters("nca") == {"temperature": 0.1, "triplets": "all", "miner": None}
    assert losses.hyperparameters("ephn") == {
        "temperature": 0.1,
        "negatives": "hardest",
        "validity": "2020",
        "duplicate_threshold": 0.9999,
        "reduction": "mean",
    }
    assert losses.hyperparameters("sct") == {
        "lam": 1.0,
        "temperature": 0.1,
        "rule": "paper",
        "reduction": "mean",
        "mode": "sct",
        "duplicate_threshold": 0.9999,
    }


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


def test_loss_with_a_distance_weighted_miner_learns_the_dimension_from_the_embeddings() -> None:
    x, y = _batch(11, dim=24)
    loss_fn = losses.build("triplet", miner={"name": "distance_weighted", "seed": 0})
    assert loss_fn(x, y) > 0 and loss_fn.miner._observed_dim == 24
    assert math.isfinite(loss_fn.from_similarity(losses.cosine_similarity_matrix(x), y).item())
