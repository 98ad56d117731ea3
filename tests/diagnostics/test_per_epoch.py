"""dml.diagnostics.per_epoch: the every= / last= schedule of diagnostics_callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.diagnostics import diagnostics_callback


class _Pairs(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 5, generator=generator)
        self.y = np.repeat(np.arange(4), 3)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        return self.x[index], int(self.y[index])


def test_every_diagnoses_the_multiples_and_the_last_epoch() -> None:
    hook = diagnostics_callback({"train": _Pairs()}, batch_size=4, every=3, last=7, spectrum_ks=(), density=False)
    model = torch.nn.Identity()
    done = [epoch for epoch in range(1, 8) if hook(epoch, model)]
    assert done == [3, 6, 7]
    assert "train_hard_ratio" in hook(3, model) and hook(4, model) == {}


def test_every_one_diagnoses_every_epoch_and_a_bad_every_is_refused() -> None:
    hook = diagnostics_callback({"train": _Pairs()}, batch_size=4, every=1, spectrum_ks=(), density=False)
    assert all(hook(epoch, torch.nn.Identity()) for epoch in (1, 2, 3))
    with pytest.raises(TypeError, match="every"):
        diagnostics_callback({"train": _Pairs()}, every=2.5)
