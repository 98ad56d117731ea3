"""Batch norm with fixed statistics: calibrated on the first training batch, then a per-image affine map."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dml.models as models
from dml.models.batch_norm import FixedBatchNorm2d


def _batch(seed: int = 0, size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 3.0 + 2.0 * torch.randn(size, 4, 5, 5, generator=generator)


def test_first_training_batch_is_normalised_as_train_mode_batch_norm() -> None:
    x = _batch()
    fixed, reference = FixedBatchNorm2d(4).train(), nn.BatchNorm2d(4).train()
    torch.testing.assert_close(fixed(x), reference(x))
    torch.testing.assert_close(fixed.running_mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(fixed.running_var, x.var(dim=(0, 2, 3), unbiased=False))
    assert bool(fixed.calibrated)


def test_statistics_stay_fixed_and_images_are_normalised_one_by_one() -> None:
    fixed = FixedBatchNorm2d(4).train()
    fixed(_batch(0))
    mean, var = fixed.running_mean.clone(), fixed.running_var.clone()
    x = _batch(1) * 5.0
    out = fixed(x)
    torch.testing.assert_close(fixed.running_mean, mean, rtol=0, atol=0)
    torch.testing.assert_close(fixed.running_var, var, rtol=0, atol=0)
    # each image's output is the same whatever else is in its batch ...
    torch.testing.assert_close(out[:1], fixed(x[:1]))
    # ... unlike train-mode batch norm, which standardises over the batch
    reference = nn.BatchNorm2d(4).train()
    assert not torch.allclose(reference(x)[:1], reference(x[:2])[:1])
    expected = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + fixed.eps)
    torch.testing.assert_close(out, expected)


def test_evaluation_before_the_first_training_batch_does_not_calibrate() -> None:
    fixed = FixedBatchNorm2d(4).eval()
    x = _batch()
    torch.testing.assert_close(fixed(x), nn.BatchNorm2d(4).train()(x))
    assert not bool(fixed.calibrated)
    torch.testing.assert_close(fixed.running_mean, torch.zeros(4), rtol=0, atol=0)


@pytest.mark.parametrize(("norm", "trained"), [("batch-eval", True), ("batch-frozen", False)])
def test_eval_mode_trains_the_affine_parameters_and_frozen_does_not(norm: str, trained: bool) -> None:
    torch.manual_seed(0)
    model = models.build("small_cnn", embedding_dim=8, backbone_kwargs={"widths": [4, 8], "norm": norm}).train()
    layers = [m for m in model.modules() if isinstance(m, FixedBatchNorm2d)]
    assert len(layers) == 2 and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    before = [layer.weight.detach().clone() for layer in layers]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for step in range(2):
        optimizer.zero_grad()
        model(torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(step))).pow(3).sum().backward()
        optimizer.step()
    changed = [not torch.equal(layer.weight, old) for layer, old in zip(layers, before)]
    assert all(changed) if trained else not any(changed)
    assert all(layer.weight.requires_grad == trained and layer.bias.requires_grad == trained for layer in layers)


def test_calibration_survives_a_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "backbone_kwargs": {"widths": [4, 8], "norm": "batch-eval"}}
    model = models.build("small_cnn", **kwargs).train()
    model(torch.rand(6, 3, 16, 16))
    copy = models.build("small_cnn", **kwargs)
    copy.load_state_dict(model.state_dict())
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(x), model.eval()(x))
    assert all(bool(m.calibrated) for m in copy.modules() if isinstance(m, FixedBatchNorm2d))


def test_unknown_norm_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"batch-eval.*batch-frozen"):
        models.build_backbone("small_cnn", norm="frozen")
