"""Vectorised selection primitives shared by the miners (and by the batch-all triplet loss).

Every miner works row by row on the similarity matrix: row ``a`` holds anchor ``a``. These helpers replace the
Python loop over anchors of the released research code with masked reductions and a per-row sort.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dml.mining.base import Triplets


def masked_argmax(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise arg-max of ``values`` over the entries where ``mask`` is true.

    Returns ``(index (N,), found (N,))``; ``index`` is meaningless where ``found`` is false (an empty row). Ties go
    to the lowest column index (``torch.max`` returns the first maximal value).
    """
    index = values.masked_fill(~mask, float("-inf")).argmax(dim=1)
    return index, mask.any(dim=1)


def masked_argmin(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise arg-min of ``values`` over the entries where ``mask`` is true; see :func:`masked_argmax`."""
    return masked_argmax(-values, mask)


def empty_triplets(device: torch.device | str) -> Triplets:
    """Three empty int64 index tensors: what a miner returns when the batch holds no valid triplet."""
    empty = torch.empty(0, dtype=torch.long, device=device)
    return Triplets(empty, empty.clone(), empty.clone())


class SortedNegatives(NamedTuple):
    """Each anchor's negative similarities in ascending order.

    ``values[a]`` starts with ``-inf`` for the ``missing[a]`` columns that are not negatives of ``a``, followed by
    the negative similarities in ascending order; ``order[a, k]`` is the column (batch index) of ``values[a, k]``.
    """

    values: Tensor
    order: Tensor
    missing: Tensor


def sort_negatives(sim: Tensor, neg: Tensor) -> SortedNegatives:
    """Sort every row's negative similarities (``sim`` may require grad: the sort is differentiable)."""
    values, order = sim.masked_fill(~neg, float("-inf")).sort(dim=1)
    return SortedNegatives(values, order, (~neg).sum(dim=1))


def count_below(sorted_negatives: SortedNegatives, thresholds: Tensor, *, inclusive: bool) -> Tensor:
    """``k[a, j]`` = number of entries of row ``a`` (``-inf`` padding included) that are ``< thresholds[a, j]``
    (``<=`` with ``inclusive=True``): the sorted position where the entries above the threshold start."""
    return torch.searchsorted(
        sorted_negatives.values.detach().contiguous(), thresholds.detach().contiguous(), right=inclusive
    )


def expand_ranges(anchor: Tensor, positive: Tensor, start: Tensor, count: Tensor, order: Tensor) -> Triplets:
    """Triplets ``(anchor[i], positive[i], order[anchor[i], start[i] + k])`` for ``k < count[i]``, without a loop."""
    total = int(count.sum())
    if total == 0:
        return empty_triplets(anchor.device)
    anchors = anchor.repeat_interleave(count)
    offsets = torch.arange(total, device=anchor.device) - (count.cumsum(0) - count).repeat_interleave(count)
    negatives = order[anchors, start.repeat_interleave(count) + offsets]
    return Triplets(anchors, positive.repeat_interleave(count), negatives)
