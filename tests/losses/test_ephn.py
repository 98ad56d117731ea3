"""EPHN ``reduction="sum"``: the 2019 code's loss, summed over the valid anchors.

The reference is my reading of ``EPHNLoss.forward`` in ``_code/Loss.py`` of the initial commit (436c344, Sep 2019) of
github.com/littleredxh/EasyPositiveHardNegative, run with the temperature 0.1 its ``run.py`` passes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dml import losses


def ephn_2019(fvec: torch.Tensor, labels: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    n = len(labels)
    f = F.normalize(fvec, p=2, dim=1)
    sim = f @ f.T
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool), -1.0)  # the self-similarity is set to -1
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(n, dtype=torch.bool)
    diff = labels[:, None] != labels[None, :]
    pos_search = sim.detach().clone()
    pos_search[diff] = -1
    pos_search[pos_search > 0.9999] = -1
    v_pos, i_pos = pos_search.max(1)
    neg_search = sim.detach().clone()
    neg_search[same] = -1
    v_neg, i_neg = neg_search.max(1)
    rows = torch.arange(n)
    triplets = torch.stack([sim[rows, i_pos], sim[rows, i_neg]], 1)
    valid = (v_pos > -1) & (v_neg > -1)
    return (-F.log_softmax(triplets / sigma, dim=1)[:, 0])[valid].sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sum_reduction_is_the_2019_loss_in_value_and_gradient(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 8, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4] * 2)
    y[-1] = 9  # classes 4 and 9 become singletons: no positive, not valid anchors
    ours_x, ref_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = losses.build("ephn", validity="2019", reduction="sum")(ours_x, y)
    reference = ephn_2019(ref_x, y)
    ours.backward()
    reference.backward()
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    mean = losses.build("ephn", validity="2019")(x, y)
    torch.testing.assert_close(ours, mean * 22)  # 22 valid anchors: the sum is the mean times their number


def test_sum_of_no_valid_anchor_is_zero_with_a_gradient_path() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    loss = losses.build("ephn", reduction="sum")(x, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0 and loss.requires_grad


def test_unknown_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match="reduction.*'mean'.*'sum'"):
        losses.build("ephn", reduction="none")
