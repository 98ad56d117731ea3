"""build_optimizer: RMSprop, the Reality-Check protocol's optimiser, with its momentum and weight decay."""

from __future__ import annotations

import torch

from dml.train import build_optimizer
from dml.train.config import OptimConfig


def test_rmsprop_is_torchs_with_the_configs_settings() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer([weight], OptimConfig(name="rmsprop", lr=1e-6, momentum=0.9, weight_decay=1e-4))
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-6, 0.9, 1e-4)
