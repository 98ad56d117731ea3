"""Confidence intervals against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dml.protocol import bootstrap_interval, t_interval


def test_t_interval_of_three_seeds_by_hand() -> None:
    # mean 2, sample sd 1, t_{0.975, 2} = 4.30265 (tables), half-width t * 1 / sqrt(3)
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.30265 / math.sqrt(3), rel=1e-5)
    # two seeds: t_{0.975, 1} = 12.7062, sd = |a - b| / sqrt(2)
    mean, half = t_interval([0.4, 0.5])
    assert half == pytest.approx(12.7062 * (0.1 / math.sqrt(2)) / math.sqrt(2), rel=1e-5)


def test_bootstrap_interval_of_two_queries_by_hand() -> None:
    # resampled means of [0, 1] are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % and 97.5 % quantiles
    # of many resamples are 0 and 1
    mean, low, high = bootstrap_interval([0.0, 1.0], resamples=4000, seed=1)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    # a 40 % interval of the same distribution is the middle value only
    assert bootstrap_interval([0.0, 1.0], confidence=0.4, resamples=4000, seed=1)[1:] == (0.5, 0.5)
    assert bootstrap_interval([0.3] * 7)[1:] == (0.3, 0.3)  # no spread, no interval


def test_bootstrap_matches_a_loop_with_the_same_draws() -> None:
    values = np.random.default_rng(3).uniform(size=25)
    rng = np.random.default_rng(7)
    draws = rng.integers(0, 25, size=(300, 25))
    means = sorted(values[row].mean() for row in draws)
    _, low, high = bootstrap_interval(values, resamples=300, seed=7)
    assert low == pytest.approx(np.quantile(means, 0.025)) and high == pytest.approx(np.quantile(means, 0.975))


@pytest.mark.parametrize("bad", [[1.0], [1.0, float("nan")]])
def test_a_t_interval_needs_two_finite_values(bad) -> None:
    with pytest.raises(ValueError, match="two or more finite values"):
        t_interval(bad)
