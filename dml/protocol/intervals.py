r"""Confidence intervals of a protocol's test numbers: a t-interval over seeds and a bootstrap over queries.

* :func:`t_interval`: the retrained runs are :math:`n` independent draws of the training randomness; with mean
  :math:`\bar x` and sample standard deviation :math:`s` (``ddof=1``), the :math:`1 - \alpha` interval is
  :math:`\bar x \pm t_{1 - \alpha/2,\, n - 1}\, s / \sqrt n` (Student's t with :math:`n - 1` degrees of freedom).
  It needs two seeds or more and says how much the number moves with another training run.
* :func:`bootstrap_interval`: the test queries are a sample of the images the classes could have had; resampling
  the per-query values (for MAP@R, :func:`dml.eval.map_at_r_per_query`) :math:`B` times with replacement and
  taking the :math:`\alpha/2` and :math:`1 - \alpha/2` quantiles of the resampled means gives the percentile
  bootstrap interval (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993). It exists with one seed and
  says how much the number moves with another test set of the same classes. Queries of one class are not
  independent, so it is optimistic where classes are few.

Musgrave et al. (ECCV 2020) report confidence intervals over their repeated runs; the seed interval is that kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def t_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of the Student-t interval of the mean of ``values`` (two or more)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(
            f"t_interval needs two or more finite values (one per seed); got {x.tolist()}. With a single seed use "
            "bootstrap_interval over the test queries."
        )
    _check_confidence(confidence)
    t = stats.t.ppf(0.5 + confidence / 2, df=len(x) - 1)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def bootstrap_interval(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the percentile bootstrap interval of the mean of ``values`` (one per query), from
    ``resamples`` seeded resamples with replacement."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"bootstrap_interval needs a non-empty 1-D array of finite per-query values; got {x.shape}.")
    _check_confidence(confidence)
    if isinstance(resamples, bool) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer; got {resamples!r}.")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95); got {confidence}.")
