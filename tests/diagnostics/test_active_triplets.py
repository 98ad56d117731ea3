"""dml.diagnostics.active_triplets: triplets that carry gradient, against explicit loops, without touching the RNG."""

from __future__ import annotations

import itertools

import pytest
import torch

import dml.losses
from dml.diagnostics import active_triplets


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(3)
    return torch.randn(12, 6, generator=generator) + 0.5 * torch.eye(6)[labels], labels


def _triplets(labels: torch.Tensor) -> list[tuple[int, int, int]]:
    n = range(len(labels))
    return [(a, p, q) for a, p, q in itertools.product(n, n, n) if a != p and labels[a] == labels[p] != labels[q]]


def test_batch_all_and_semihard_counts_match_a_loop() -> None:
    x, labels = _batch()
    f = torch.nn.functional.normalize(x, dim=1)
    s = f @ f.T
    triplets = _triplets(labels)
    margin = 0.2
    active = sum(float(s[a, q] - s[a, p] + margin) > 0 for a, p, q in triplets)
    semihard = sum(0 < float(s[a, p] - s[a, q]) < margin for a, p, q in triplets)
    counted = active_triplets(dml.losses.build("triplet", margin=margin), x, labels)
    assert len(triplets) == 12 * 2 * 9
    assert (counted.active, counted.selected, counted.valid) == (active, len(triplets), len(triplets))
    semi = active_triplets(dml.losses.build("triplet", margin=margin, triplets="semihard"), x, labels)
    assert semi.active == semi.selected == semihard
    assert semi.fraction == pytest.approx(semihard / 216)


def test_mined_losses_count_their_selection() -> None:
    x, labels = _batch(1)
    hardest = active_triplets(dml.losses.build("triplet", margin=0.1, triplets="hardest"), x, labels)
    assert hardest.selected == 12 and hardest.active <= 12
    for loss in (dml.losses.build("ephn"), dml.losses.build("sct"), dml.losses.build("sct", mode="hn")):
        counted = active_triplets(loss, x, labels)
        assert counted.active == counted.selected and 0 < counted.selected <= 12


def test_distance_weighted_counts_are_the_losses_triplets_and_leave_the_rng_alone() -> None:
    x, labels = _batch(2)
    loss = dml.losses.build("margin", miner={"name": "distance_weighted", "seed": 5})
    first = active_triplets(loss, x, labels)
    assert first == active_triplets(loss, x, labels)  # the miner's generator was restored
    torch.manual_seed(0)
    unseeded = dml.losses.build("margin", miner="distance_weighted")
    active_triplets(unseeded, x, labels)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))  # the global generator was restored
    assert first.selected == 24 and 0 < first.active <= first.selected  # every (a, p) pair, one negative each


def test_unsupported_losses_fail_with_a_clear_message() -> None:
    x, labels = _batch()
    with pytest.raises(TypeError, match="supports"):
        active_triplets(dml.losses.build("contrastive"), x, labels)
    with pytest.raises(ValueError, match="pairs, not triplets"):
        active_triplets(dml.losses.build("margin"), x, labels)
