"""ResNet backbones: batch norm in eval mode (``norm="batch-eval"``), as the divide-and-conquer release trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dml.models import FixedBatchNorm2d, build_backbone


def test_batch_eval_fixes_every_batch_norm_and_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    plain = build_backbone("resnet18")
    for module in plain.modules():  # statistics a pretrained network would bring
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    from dml.models.resnet import fix_batch_norm

    fixed = build_backbone("resnet18")
    fixed.load_state_dict(plain.state_dict())
    fix_batch_norm(fixed, train_affine=True, calibrated=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())
    assert sum(isinstance(m, FixedBatchNorm2d) for m in fixed.modules()) == 20
    x = torch.randn(2, 3, 64, 64)
    plain.eval()
    fixed.train()  # in training mode the fixed statistics are still used: the output of eval-mode batch norm
    assert torch.allclose(fixed(x), plain(x), atol=1e-5)
    assert all(p.requires_grad for m in fixed.modules() if isinstance(m, FixedBatchNorm2d) for p in m.parameters())
    untrained = build_backbone("resnet18", norm="batch-eval")  # no ImageNet statistics: measured on the first batch
    assert not any(bool(m.calibrated) for m in untrained.modules() if isinstance(m, FixedBatchNorm2d))
    with pytest.raises(ValueError, match="norm"):
        build_backbone("resnet18", norm="group")
