"""Miners against hand-written loops over anchors, and against pytorch-metric-learning where PML has the same rule.

Conventions (the module docstrings in ``dml/mining/`` give the sources):

* ``semihard``: FaceNet's rule in cosine form, ``S_ap - m < S_an < S_ap``. ``select="all"`` returns every semi-hard
  triplet, as PML's ``TripletMarginMiner(type_of_triplets="semihard")`` (which keeps ``S_an = S_ap - m``, a
  measure-zero difference). ``select="one"`` is TensorFlow Addons' convention: per anchor-positive pair, the most
  similar negative below ``S_ap`` (no margin bound); with ``fallback="easiest"`` a pair without one gets the
  anchor's least similar negative (TF's "negatives_inside"), with ``fallback="drop"`` it is dropped.
* ``hardest_negative``: ``positives="hardest"`` is Hermans et al.'s batch hard = PML's ``BatchHardMiner``;
  ``positives="all"`` pairs every positive with the anchor's hardest negative.
* ``easy_positive``: the released EPHN / SCT code (``_code/Loss.py``): duplicates above 0.9999 skipped, semi-hard
  negatives ``S_an <= S_ap*``; PML's ``BatchEasyHardMiner`` keeps ``<`` and has no duplicate threshold.
* ``distance_weighted``: the released MXNet weights and cutoffs (PML's ``DistanceWeightedMiner`` computes the same
  weights, compared here by capturing them; PML draws its positives at random, we pair every positive, so the
  triplets themselves are compared only through the sampling distribution).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from scipy import stats

import dml.mining as mining
from dml.mining import Pairs, Triplets
from dml.similarity import cosine_similarity_matrix


def _batch(seed: int = 0, n_classes: int = 4, per_class: int = 4, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=generator)]
    return torch.randn(len(labels), dim, generator=generator, dtype=torch.float64), labels


def _as_set(triplets) -> set[tuple[int, ...]]:
    return set(zip(*(t.tolist() for t in triplets)))


def _as_sorted_list(triplets) -> list[tuple[int, ...]]:
    return sorted(zip(*(t.tolist() for t in triplets)))


def _positives(y, a):
    return [p for p in range(len(y)) if p != a and y[p] == y[a]]


def _negatives(y, a):
    return [n for n in range(len(y)) if y[n] != y[a]]


# ----------------------------------------------------------------------------------------------------- semihard


def semihard_loop(sim, y, margin, select, fallback):
    out = []
    for a in range(len(y)):
        for p in _positives(y, a):
            s_ap = sim[a, p].item()
            if select == "all":
                out += [(a, p, n) for n in _negatives(y, a) if s_ap - margin < sim[a, n].item() < s_ap]
                continue
            below = [n for n in _negatives(y, a) if sim[a, n].item() < s_ap]
            if below:
                out.append((a, p, max(below, key=lambda n: sim[a, n].item())))
            elif fallback == "easiest" and _negatives(y, a):
                out.append((a, p, min(_negatives(y, a), key=lambda n: sim[a, n].item())))
    return sorted(out)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("select,fallback", [("all", "drop"), ("one", "drop"), ("one", "easiest")])
@pytest.mark.parametrize("margin", [0.1, 0.4])
def test_semihard_matches_loop(seed: int, select: str, fallback: str, margin: float) -> None:
    x, y = _batch(seed)
    sim = cosine_similarity_matrix(x)
    got = mining.build("semihard", margin=margin, select=select, fallback=fallback)(x, y)
    assert all(t.dtype == torch.long for t in got)
    expected = semihard_loop(sim, y, margin, select, fallback)
    assert expected
    assert _as_sorted_list(got) == expected
    if select == "one" and fallback == "easiest":  # TF Addons: every anchor-positive pair gets a negative
        assert len(expected) == int(sum(len(_positives(y, a)) for a in range(len(y))))


@pytest.mark.parametrize("seed", [0, 3])
def test_semihard_all_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=5, per_class=5, dim=6)
    theirs = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=distances.CosineSimilarity())(
        x, y
    )
    ours = mining.build("semihard", margin=0.2)(x, y)
    assert len(ours[0]) > 0
    assert _as_set(ours) == _as_set(theirs)


def test_semihard_fallback_only_triggers_when_every_negative_is_harder() -> None:
    # anchor 0 (class 0): positive 1 at s = 0.2, negatives 2 and 3 at s = 0.9 and 0.5: no negative below s_ap.
    sim = torch.tensor([[1.0, 0.2, 0.9, 0.5], [0.2, 1.0, 0.1, -0.3], [0.9, 0.1, 1.0, 0.0], [0.5, -0.3, 0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 2])
    dropped = mining.build("semihard", select="one").mine(sim, y)
    assert (0, 1) not in {(a, p) for a, p, _ in _as_set(dropped)}
    kept = mining.build("semihard", select="one", fallback="easiest").mine(sim, y)
    assert (0, 1, 3) in _as_set(kept)  # the least similar negative, not the hardest (2)
    assert (1, 0, 2) in _as_set(kept)  # anchor 1: negatives at 0.1 and -0.3 lie below s_ap = 0.2 -> most similar


# -------------------------------------------------------------------------------------------- hardest negative


def hardest_loop(sim, y, positives):
    out = []
    for a in range(len(y)):
        pos, neg = _positives(y, a), _negatives(y, a)
        if not pos or not neg:
            continue
        n = max(neg, key=lambda k: sim[a, k].item())
        chosen = pos if positives == "all" else [min(pos, key=lambda k: sim[a, k].item())]
        out += [(a, p, n) for p in chosen]
    return sorted(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positives", ["all", "hardest"])
def test_hardest_negative_matches_loop(seed: int, positives: str) -> None:
    x, y = _batch(seed)
    y[0] = 99  # a class with one sample: no positive, so no triplet with anchor 0
    got = mining.build("hardest_negative", positives=positives)(x, y)
    expected = hardest_loop(cosine_similarity_matrix(x), y, positives)
    assert _as_sorted_list(got) == expected and 0 not in got.anchor.tolist()


@pytest.mark.parametrize("seed", [0, 4])
def test_batch_hard_matches_pytorch_metric_learning(seed: int) -> None:
    x, y = _batch(seed, n_classes=6, per_class=3)
    theirs = miners.BatchHardMiner(distance=distances.CosineSimilarity())(x, y)
    ours = mining.build("hardest_negative", positives="hardest")(x, y)
    assert _as_set(ours) == _as_set(theirs) and len(ours.anchor) == len(y)


# ----------------------------------------------------------------------------------------------- easy positive


def easy_positive_loop(sim, y, negatives, threshold=0.9999, low=None, high=None):
    out = []
    for a in range(len(y)):
        pos = [p for p in _positives(y, a) if sim[a, p].item() <= threshold]
        if not pos:
            continue
        p = max(pos, key=lambda k: sim[a, k].item())
        neg = _negatives(y, a)
        if negatives == "semihard":
            neg = [n for n in neg if sim[a, n].item() <= sim[a, p].item()]
        if not neg:
            continue
        n = max(neg, key=lambda k: sim[a, k].item())
        values = (sim[a, p].item(), sim[a, n].item())
        if (low is not None and min(values) <= low) or (high is not None and max(values) >= high):
            continue
        out.append((a, p, n))
    return sorted(out)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("negatives", ["hardest", "semihard"])
@pytest.mark.parametrize("low,high", [(None, None), (0.0, None), (-1.0, 1.0)])
def test_easy_positive_matches_loop(seed: int, negatives: str, low, high) -> None:
    x, y = _batch(seed, dim=4)
    twin = next(k for k in range(len(y)) if k != 1 and y[k] == y[1])
    x[1] = 2.0 * x[twin] + 1e-4 * x[0]  # a near-duplicate positive (S > 0.9999), skipped by the miner
    miner = mining.build("easy_positive", negatives=negatives, min_similarity=low, max_similarity=high)
    expected = easy_positive_loop(cosine_similarity_matrix(x), y, negatives, low=low, high=high)
    assert expected
    assert _as_sorted_list(miner(x, y)) == expected


def test_easy_positive_skips_near_duplicate_positives() -> None:
    base = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.005, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0]]), dim=1)
    y = torch.tensor([0, 0, 0, 1])
    sim = base @ base.t()
    assert sim[0, 1] > 0.9999 > sim[0, 2]
    triplets = mining.build("easy_positive").mine(sim, y)
    assert (0, 2, 3) in _as_set(triplets)  # 1 is a duplicate of 0, so the next most similar positive is used
    keep_all = mining.build("easy_positive", duplicate_threshold=1.0).mine(sim, y)
    assert (0, 1, 3) in _as_set(keep_all)


@pytest.mark.parametrize("neg_strategy,negatives", [("hard", "hardest"), ("semihard", "semihard")])
def test_easy_positive_matches_pytorch_metric_learning(neg_strategy: str, negatives: str) -> None:
    x, y = _batch(5, n_classes=5, per_class=4)
    a, p, _, n = miners.BatchEasyHardMiner(
        pos_strategy="easy", neg_strategy=neg_strategy, distance=distances.CosineSimilarity()
    )(x, y)
    ours = mining.build("easy_positive", negatives=negatives)(x, y)
    assert len(ours.anchor) > 0 and _as_set(ours) == _as_set((a, p, n))


# ------------------------------------------------------------------------------------------- distance weighted


def distance_weight_loop(sim, y, dim, cutoff=0.5, upper=1.4):
    weights = torch.zeros_like(sim, dtype=torch.float64)
    for a in range(len(y)):
        row = {}
        for n in _negatives(y, a):
            d = math.sqrt(max(2.0 - 2.0 * sim[a, n].item(), 0.0))
            if upper is not None and not d < upper:
                continue
            d = max(d, cutoff)
            row[n] = (2 - dim) * math.log(d) - (dim - 3) / 2 * math.log(1 - d * d / 4)
        if row:
            top = max(row.values())
            total = sum(math.exp(v - top) for v in row.values())
            for n, v in row.items():
                weights[a, n] = math.exp(v - top) / total
    return weights


@pytest.mark.parametrize("dim", [3, 8, 64])
@pytest.mark.parametrize("upper", [1.4, None])
def test_distance_weights_match_loop(dim: int, upper) -> None:
    x, y = _batch(1, dim=dim)
    sim = cosine_similarity_matrix(x)
    miner = mining.build("distance_weighted", nonzero_loss_cutoff=upper, dim=dim)
    expected = distance_weight_loop(sim, y, dim, upper=upper)
    torch.testing.assert_close(miner.weights(sim, y), expected, rtol=1e-9, atol=1e-12)


def test_distance_weights_match_pytorch_metric_learning(monkeypatch) -> None:
    x, y = _batch(2, n_classes=4, per_class=4, dim=6)
    x = x.float()
    captured = {}
    original = lmu.get_random_triplet_indices

    def capture(labels, ref_labels=None, t_per_anchor=None, weights=None):
        captured["weights"] = weights
        return original(labels, ref_labels=ref_labels, t_per_anchor=t_per_anchor, weights=weights)

    monkeypatch.setattr(lmu, "get_random_triplet_indices", capture)
    miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)(x, y)
    ours = mining.build("distance_weighted")
    ours(x, y)  # records the dimension
    theirs = captured["weights"].double()
    assert theirs.sum() > 0
    torch.testing.assert_close(
        ours.weights(cosine_similarity_matrix(x), y), torch.nan_to_num(theirs), rtol=1e-4, atol=1e-6
    )


def test_distance_weighted_sampling_frequencies_match_the_weights() -> None:
    x, y = _batch(3, n_classes=3, per_class=4, dim=4)
    miner = mining.build("distance_weighted", seed=0)
    miner.observe(x)
    sim = cosine_similarity_matrix(x)
    weights = miner.weights(sim, y)
    counts = torch.zeros_like(weights)
    for _ in range(800):
        a, p, n = miner.mine(sim, y)
        assert not bool((y[n] == y[a]).any()), "a positive was drawn as a negative"
        counts.index_put_((a, n), torch.ones_like(a, dtype=counts.dtype), accumulate=True)
    assert torch.equal(counts > 0, weights > 0)  # nothing outside the support, and every eligible negative drawn
    statistic, dof = 0.0, 0
    for a in range(len(y)):
        support = weights[a] > 0
        if support.sum() < 2:
            continue
        expected = counts[a].sum() * weights[a][support]
        assert expected.min() >= 5, "too few draws for a chi-square test"
        statistic += float(((counts[a][support] - expected) ** 2 / expected).sum())
        dof += int(support.sum()) - 1
    assert dof > 10
    assert stats.chi2.sf(statistic, dof) > 1e-3, f"chi-square {statistic:.1f} on {dof} degrees of freedom"


def test_distance_weighted_cutoffs_are_respected() -> None:
    # Anchor 0 with negatives at distances ~0.2, ~0.45 (both below the 0.5 cutoff) and ~1.6 (beyond 1.4).
    angles = torch.tensor([0.0, 0.05, 0.1, 0.225, 1.85])
    x = torch.stack([angles.cos(), angles.sin()], dim=1).double()
    y = torch.tensor([0, 0, 1, 2, 3])
    sim = cosine_similarity_matrix(x)
    distance = (2 - 2 * sim[0]).sqrt()
    assert distance[2] < 0.5 and distance[3] < 0.5 and distance[4] > 1.4
    with_cutoff = mining.build("distance_weighted", dim=16).weights(sim, y)
    assert with_cutoff[0, 4] == 0 and with_cutoff[0, :2].sum() == 0
    torch.testing.assert_close(with_cutoff[0, 2], with_cutoff[0, 3])  # both clipped to d = 0.5
    without = mining.build("distance_weighted", dim=16, nonzero_loss_cutoff=None).weights(sim, y)
    assert without[0, 4] > 0
    miner = mining.build("distance_weighted", dim=16, seed=1)
    drawn = torch.cat([miner.mine(sim, y).negative[:1] for _ in range(200)])
    assert set(drawn.tolist()) == {2, 3}


@pytest.mark.parametrize("positives", ["all", "random"])
def test_distance_weighted_triplet_structure_and_seed(positives: str) -> None:
    x, y = _batch(4)
    y[3] = 99  # single-sample class: no positive, never an anchor
    first = mining.build("distance_weighted", positives=positives, seed=7)(x, y)
    again = mining.build("distance_weighted", positives=positives, seed=7)(x, y)
    assert all(torch.equal(u, v) for u, v in zip(first, again))
    assert bool((y[first.anchor] == y[first.positive]).all()) and bool((first.anchor != first.positive).all())
    assert bool((y[first.anchor] != y[first.negative]).all())
    assert 3 not in first.anchor.tolist()
    has_negative = mining.build("distance_weighted", dim=x.shape[1]).weights(cosine_similarity_matrix(x), y).sum(1) > 0
    if positives == "all":  # every anchor-positive pair once (released MXNet code)
        pairs = sorted(zip(first.anchor.tolist(), first.positive.tolist()))
        assert pairs == [(a, p) for a in range(len(y)) if has_negative[a] for p in _positives(y, a)]
    else:  # one random positive per anchor (RevisitDML)
        assert first.anchor.tolist() == sorted(set(first.anchor.tolist()))


def test_distance_weighted_generator_state_survives_state_dict() -> None:
    x, y = _batch(5)
    miner = mining.build("distance_weighted", seed=3)
    miner(x, y)
    state = miner.state_dict()
    expected = miner(x, y)
    resumed = mining.build("distance_weighted", seed=3)
    resumed.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(resumed(x, y), expected))


def test_distance_weighted_with_an_explicit_generator() -> None:
    x, y = _batch(6)
    first = mining.build("distance_weighted", generator=torch.Generator().manual_seed(5))(x, y)
    second = mining.build("distance_weighted", generator=torch.Generator().manual_seed(5))(x, y)
    assert all(torch.equal(u, v) for u, v in zip(first, second))


def test_distance_weighted_needs_the_dimension() -> None:
    x, y = _batch(0)
    with pytest.raises(ValueError, match="embedding dimension.*dim="):
        mining.build("distance_weighted").mine(cosine_similarity_matrix(x), y)


# --------------------------------------------------------------------------------------------------- all miners

ALL_MINERS = [
    ("semihard", {}),
    ("semihard", {"select": "one", "fallback": "easiest"}),
    ("hardest_negative", {}),
    ("hardest_negative", {"positives": "hardest"}),
    ("easy_positive", {}),
    ("easy_positive", {"negatives": "semihard"}),
    ("distance_weighted", {"seed": 0}),
]
IDS = [f"{name}-{'-'.join(map(str, kw.values())) or 'default'}" for name, kw in ALL_MINERS]


@pytest.mark.parametrize("name,kwargs", ALL_MINERS, ids=IDS)
@pytest.mark.parametrize(
    "labels",
    [[7], [0, 1, 2, 3], [5, 5, 5, 5], [0, 1, 1]],
    ids=["single", "no-positive", "no-negative", "one-anchor-class-alone"],
)
def test_batches_without_valid_triplets_give_empty_indices(name: str, kwargs: dict, labels: list[int]) -> None:
    x = torch.randn(len(labels), 5, generator=torch.Generator().manual_seed(0))
    out = mining.build(name, **kwargs)(x, torch.tensor(labels))
    assert isinstance(out, Triplets) and all(t.dtype == torch.long and t.dim() == 1 for t in out)
    assert len({len(t) for t in out}) == 1
    if labels != [0, 1, 1]:
        assert len(out.anchor) == 0
    else:
        assert 0 not in out.anchor.tolist()


@pytest.mark.parametrize("name,kwargs", ALL_MINERS, ids=IDS)
def test_miners_agree_across_precisions_and_never_return_invalid_triplets(name: str, kwargs: dict) -> None:
    x, y = _batch(8)
    reference = mining.build(name, **kwargs)(x, y)
    for dtype in (torch.float32, torch.float16):
        out = mining.build(name, **kwargs)(x.to(dtype), y)
        assert bool((y[out.anchor] == y[out.positive]).all()) and bool((y[out.anchor] != y[out.negative]).all())
        assert bool((out.anchor != out.positive).all())
        if dtype == torch.float32 and name != "distance_weighted":
            assert _as_set(out) == _as_set(reference)
    assert len(reference.anchor) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,kwargs", ALL_MINERS, ids=IDS)
def test_miners_on_cuda_match_cpu(name: str, kwargs: dict) -> None:
    x, y = _batch(9)
    cpu = mining.build(name, **kwargs)(x, y)
    gpu = mining.build(name, **kwargs)(x.cuda(), y.cuda())
    assert all(t.device.type == "cuda" for t in gpu)
    if name != "distance_weighted":
        assert _as_set(gpu) == _as_set(cpu)


def test_miners_detach_the_similarity_matrix() -> None:
    x, y = _batch(0)
    sim = cosine_similarity_matrix(x.requires_grad_(True))
    for name, kwargs in ALL_MINERS:
        out = mining.build(name, **kwargs, **({"dim": 8} if name == "distance_weighted" else {})).mine(sim, y)
        assert not any(t.requires_grad for t in out)


def test_registry_and_resolve() -> None:
    assert {"semihard", "hardest_negative", "easy_positive", "distance_weighted"} <= set(mining.available())
    with pytest.raises(ValueError, match=r"Unknown miner 'semihrd'.*Did you mean 'semihard'"):
        mining.build("semihrd")
    with pytest.raises(ValueError, match=r"unexpected keyword argument\(s\) 'margn'\. Closest: 'margn' -> 'margin'"):
        mining.build("semihard", margn=0.1)
    assert mining.resolve(None) is None
    miner = mining.SemiHardMiner(margin=0.3)
    assert mining.resolve(miner) is miner
    assert isinstance(mining.resolve("hardest_negative"), mining.HardestNegativeMiner)
    built = mining.resolve({"name": "semihard", "margin": 0.25, "select": "one"})
    assert (built.margin, built.select) == (0.25, "one")
    with pytest.raises(ValueError, match="'name' key"):
        mining.resolve({"margin": 0.2})
    with pytest.raises(TypeError, match="registered miner name"):
        mining.resolve(0.2)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("semihard", {"margin": -0.1}, r"\[0, 2\]"),
        ("semihard", {"select": "some"}, "Choose one of"),
        ("semihard", {"fallback": "easiest"}, "only applies to select='one'"),
        ("semihard", {"select": "one", "fallback": "hardest"}, "Choose one of"),
        ("hardest_negative", {"positives": "easiest"}, "Choose one of"),
        ("easy_positive", {"negatives": "all"}, "Choose one of"),
        ("easy_positive", {"duplicate_threshold": 1.5}, r"\(-1, 1\]"),
        ("easy_positive", {"min_similarity": 0.5, "max_similarity": 0.2}, "must be below"),
        ("distance_weighted", {"cutoff": 0.0}, r"\(0, 2\)"),
        ("distance_weighted", {"nonzero_loss_cutoff": 0.3}, r"\(cutoff, 2\]"),
        ("distance_weighted", {"positives": "hardest"}, "Choose one of"),
        ("distance_weighted", {"dim": 1}, ">= 2"),
        ("distance_weighted", {"seed": 0, "generator": torch.Generator()}, "not both"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mining.build(name, **kwargs)


def test_a_custom_pair_miner_can_be_registered() -> None:
    from dml.mining import registry

    @mining.register("test-only-all-pairs")
    class AllPairs(mining.Miner):
        def mine(self, sim, labels):
            same = labels[:, None] == labels[None, :]
            a1, p = (same & ~torch.eye(len(labels), dtype=torch.bool)).nonzero(as_tuple=True)
            a2, n = (~same).nonzero(as_tuple=True)
            return Pairs(a1, p, a2, n)

    try:
        out = mining.build("test-only-all-pairs")(*_batch(0))
        assert isinstance(out, Pairs) and len(out.anchor_pos) == 16 * 3
    finally:
        registry._MINERS.unregister("test-only-all-pairs")


def test_selection_ignores_the_embedding_norm() -> None:
    x, y = _batch(10)
    scaled = x * torch.from_numpy(np.linspace(0.1, 10.0, len(x)))[:, None]
    for name, kwargs in ALL_MINERS[:-1]:
        assert _as_set(mining.build(name, **kwargs)(scaled, y)) == _as_set(mining.build(name, **kwargs)(x, y))
