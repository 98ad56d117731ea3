"""dml.mining.uniform: negatives drawn uniformly from the other classes, seeded, in both triplet layouts."""

from __future__ import annotations

import pytest
import torch

import dml.mining


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(3).repeat_interleave(4)
    return torch.randn(12, 5, generator=torch.Generator().manual_seed(0)), labels


def test_weights_are_uniform_over_negatives_and_draws_are_negatives() -> None:
    x, labels = _batch()
    miner = dml.mining.build("uniform", seed=1)
    sim = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
    weights = miner.weights(sim, labels)
    assert torch.allclose(weights, (labels[:, None] != labels[None, :]).double() / 8)
    triplets = miner(x, labels)
    assert len(triplets.anchor) == 12 * 3  # every anchor with each of its 3 positives
    assert bool((labels[triplets.anchor] == labels[triplets.positive]).all())
    assert bool((labels[triplets.anchor] != labels[triplets.negative]).all())
    one = dml.mining.build("uniform", positives="random", seed=1)(x, labels)
    assert len(one.anchor) == 12


def test_draws_cover_the_negatives_evenly_and_repeat_with_the_seed() -> None:
    x, labels = _batch()
    miner = dml.mining.build("uniform", seed=3)
    counts = torch.zeros(12)
    for _ in range(300):
        triplets = miner(x, labels)
        counts += torch.bincount(triplets.negative[triplets.anchor == 0], minlength=12)
    assert counts[:4].sum() == 0 and counts[4:].min() > 0.7 * counts[4:].mean()
    first = dml.mining.build("uniform", seed=3)(x, labels)
    assert torch.equal(first.negative, dml.mining.build("uniform", seed=3)(x, labels).negative)


def test_bad_options_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="positives"):
        dml.mining.build("uniform", positives="hardest")
