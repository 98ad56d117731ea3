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


def test_margin_beta_summarises_the_learned_boundaries() -> None:
    from dml.diagnostics import margin_beta
    from dml.losses import build

    scalar = margin_beta(build("margin", beta=1.1))
    assert scalar == pytest.approx({"beta": 1.1, "beta_std": 0.0, "beta_min": 1.1, "beta_max": 1.1})
    per_class = build("margin", num_classes=4)
    with torch.no_grad():
        per_class.beta.copy_(torch.tensor([0.8, 1.0, 1.2, 1.4]))
    numbers = margin_beta(per_class, prefix="loss_")
    assert numbers == pytest.approx(
        {
            "loss_beta": 1.1,
            "loss_beta_std": float(np.std([0.8, 1.0, 1.2, 1.4])),
            "loss_beta_min": 0.8,
            "loss_beta_max": 1.4,
        }
    )
    assert all(type(v) is float for v in numbers.values())  # JSON-safe Python floats
    with pytest.raises(ValueError, match="loss.name: margin"):
        margin_beta(build("triplet"))
