"""dml.models.cgd: descriptors by hand, branch sizes, normalisation, the training output with the auxiliary."""

from __future__ import annotations

import pytest
import torch

import dml.models
from dml.models.cgd import CGDHead


def _features(seed: int = 0):
    return torch.rand(3, 6, 4, 5, generator=torch.Generator().manual_seed(seed))  # non-negative, as after a ReLU


@pytest.mark.parametrize("descriptors", ["S", "M", "G", "SM", "MG", "SG", "SMG", "GS"])
def test_shapes_and_unit_branches(descriptors: str) -> None:
    head = CGDHead(6, embedding_dim=12 if len(descriptors) != 1 else 5, descriptors=descriptors).eval()
    out = head(_features())
    assert out.shape == (3, head.embedding_dim)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    _, parts = head.branches(_features())
    assert len(parts) == len(descriptors)
    for part in parts:
        torch.testing.assert_close(part.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out, torch.cat(parts, dim=1) / len(descriptors) ** 0.5)


def test_descriptors_by_hand() -> None:
    x = _features(1)
    head = CGDHead(6, embedding_dim=6, descriptors="SMG")
    flat = x.flatten(2)
    expected = {"S": flat.mean(2), "M": flat.amax(2), "G": flat.pow(3).mean(2).pow(1 / 3)}
    for letter, pool in zip("SMG", head.pools):
        torch.testing.assert_close(pool(x), expected[letter], atol=1e-6, rtol=1e-5)
    assert not any(p.requires_grad for p in head.pools.parameters())  # p = 3 fixed
    for fc in head.projections:
        assert fc.bias is None and fc.weight.shape == (2, 6)


def test_auxiliary_output_only_in_training() -> None:
    head = CGDHead(6, embedding_dim=4, descriptors="GS", auxiliary=True)
    x = _features(2)
    head.train()
    packed = head(x)
    assert packed.shape == (3, 4 + 6) and head.auxiliary_dim == 6
    torch.testing.assert_close(packed[:, 4:], x.pow(3).mean((2, 3)).pow(1 / 3), atol=1e-6, rtol=1e-5)
    head.eval()
    torch.testing.assert_close(head(x), packed[:, :4])


def test_bad_options_fail_with_the_fix() -> None:
    with pytest.raises(ValueError, match="distinct letters"):
        CGDHead(6, embedding_dim=6, descriptors="SX")
    with pytest.raises(ValueError, match="multiple"):
        CGDHead(6, embedding_dim=7, descriptors="SMG")
    with pytest.raises(ValueError, match="normalize"):
        CGDHead(6, embedding_dim=6, normalize=False)


def test_built_by_name_from_the_model_factory() -> None:
    model = dml.models.build(
        "small_cnn", embedding_dim=6, head="cgd", head_kwargs={"descriptors": "MG"}, backbone_kwargs={"widths": [4, 8]}
    ).eval()
    assert isinstance(model.head, CGDHead) and model(torch.randn(2, 3, 16, 16)).shape == (2, 6)
    with pytest.raises(ValueError, match="Unknown head"):
        dml.models.build("small_cnn", head="cdg")


def test_resnet_layer3_stride_and_frozen_batch_norm() -> None:
    net = dml.models.build_backbone("resnet18", layer3_stride=1, norm="batch-frozen")
    x = torch.randn(2, 3, 64, 64)
    assert net(x).shape[-2:] == (4, 4)  # output stride 16 instead of 32
    assert dml.models.build_backbone("resnet18")(x).shape[-2:] == (2, 2)
    norms = [m for m in net.modules() if isinstance(m, dml.models.FixedBatchNorm2d)]
    assert norms and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(m.weight.requires_grad for m in norms)
    with pytest.raises(ValueError, match="layer3_stride"):
        dml.models.build_backbone("resnet18", layer3_stride=3)


def test_frozen_batch_norm_keeps_the_given_statistics_when_calibrated() -> None:
    from dml.models.resnet import fix_batch_norm

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    net[1].running_mean.fill_(0.5)
    net[1].running_var.fill_(4.0)
    reference = net.eval()(torch.ones(1, 3, 2, 2)).detach()
    fix_batch_norm(net, train_affine=True, calibrated=True)
    out = net.train()(torch.ones(1, 3, 2, 2))
    torch.testing.assert_close(out, reference)
    assert float(net[1].running_mean[0]) == 0.5
