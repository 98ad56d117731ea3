"""The source-balanced sampler of the released Hotels-50K baseline (BatchAllSet.getBatch)."""

from __future__ import annotations

import numpy as np
import pytest

from dml.data.balanced import SourceBalancedSampler


def _data():
    # class 0: 6 traffickcam + 6 travel; class 1: 2 traffickcam + 10 travel; class 2: 12 travel; class 3: 3 images
    labels = np.repeat([0, 1, 2, 3], [12, 12, 12, 3])
    sources = np.array(["traffickcam"] * 6 + ["travel_website"] * 6 + ["traffickcam"] * 2 + ["travel_website"] * 10
                       + ["travel_website"] * 12 + ["traffickcam"] * 3)
    return labels, sources


def test_half_of_each_class_from_the_source_when_it_can():
    labels, sources = _data()
    with pytest.warns(RuntimeWarning, match="fewer than k=10"):
        sampler = SourceBalancedSampler(labels, sources=sources, p=3, k=10, seed=0)
    assert len(sampler) == len(labels) // 30
    for _ in range(3):
        sampler.set_epoch(_)
        for batch in sampler:
            batch = np.array(batch)
            assert len(batch) == 30 and len(set(batch.tolist())) == 30
            for c, expected in ((0, 5), (1, 2), (2, 0)):  # class 1 has only 2, class 2 none
                mine = batch[labels[batch] == c]
                assert len(mine) == 10 and (sources[mine] == "traffickcam").sum() == expected
            assert not (labels[batch] == 3).any()  # fewer than k images: left out


def test_seeded_and_rank_shares():
    labels, sources = _data()
    with pytest.warns(RuntimeWarning):
        a = list(SourceBalancedSampler(labels, sources=sources, p=2, k=4, seed=1))
        b = list(SourceBalancedSampler(labels, sources=sources, p=2, k=4, seed=1))
        r1 = list(SourceBalancedSampler(labels, sources=sources, p=2, k=4, seed=1, rank=1, world_size=2))
    assert a == b and all(x[4:] == y for x, y in zip(a, r1))


def test_bad_sources():
    labels, _ = _data()
    with pytest.raises(ValueError, match="one source per image"):
        SourceBalancedSampler(labels, sources=["traffickcam"], p=2, k=4)
