"""Embedding models: shapes, normalisation, pooling limits, registry errors, the offline pretrained-weights error."""

from __future__ import annotations

import os
from urllib.error import URLError

import pytest
import torch
import torchvision

import dml.models as models
from dml.models import GeM


@pytest.mark.parametrize("pooling", ["avg", "max", "gem"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_small_cnn_model_shapes_and_unit_norm(pooling: str, size: int) -> None:
    model = models.build("small_cnn", embedding_dim=24, pooling=pooling, backbone_kwargs={"widths": [8, 16]})
    out = model(torch.rand(5, 3, size, size))
    assert out.shape == (5, 24)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_normalize_false_keeps_raw_projection() -> None:
    torch.manual_seed(0)
    model = models.build("small_cnn", embedding_dim=8, normalize=False, backbone_kwargs={"widths": [8]})
    out = model(torch.rand(4, 3, 16, 16))
    assert not torch.allclose(out.norm(dim=1), torch.ones(4))


def test_backbone_feature_map_and_out_channels() -> None:
    net = models.build_backbone("small_cnn", widths=(8, 16, 32))
    assert net.out_channels == 32
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 32, 8, 8)
    resnet = models.build_backbone("resnet18")
    assert resnet.out_channels == 512
    assert resnet(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    assert models.build_backbone("resnet50").out_channels == 2048


def test_resnet_backbone_matches_torchvision_features() -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    backbone = models.ResNetBackbone(net).eval()
    captured = {}
    net.avgpool.register_forward_hook(lambda module, args, out: captured.setdefault("pooled", out.flatten(1)))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        net(x)
        torch.testing.assert_close(backbone(x).mean(dim=(2, 3)), captured["pooled"])


def test_gem_with_p_one_is_average_pooling() -> None:
    x = torch.rand(3, 5, 4, 4) + 0.01
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(2, 3)))


def test_gem_tends_to_max_pooling_for_large_p() -> None:
    x = torch.rand(3, 5, 4, 4) + 0.01
    out = GeM(p=200.0)(x.double())
    torch.testing.assert_close(out, x.double().amax(dim=(2, 3)), rtol=0.02, atol=0.0)
    assert torch.all(out <= x.double().amax(dim=(2, 3)) + 1e-9)


def test_gem_p_is_learnable_and_gets_a_gradient() -> None:
    gem = GeM()
    assert isinstance(gem.p, torch.nn.Parameter) and gem.p.item() == 3.0
    gem(torch.rand(2, 3, 4, 4)).sum().backward()
    assert gem.p.grad is not None and torch.isfinite(gem.p.grad)


def test_channels_last_gives_the_same_embeddings() -> None:
    torch.manual_seed(0)
    model = models.build("small_cnn", backbone_kwargs={"widths": [8, 16]}).eval()
    torch.manual_seed(0)
    model_cl = models.build("small_cnn", backbone_kwargs={"widths": [8, 16]}, channels_last=True).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model_cl(x), rtol=1e-5, atol=1e-6)


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'resnet50'.*small_cnn"):
        models.build_backbone("resnet05")
    with pytest.raises(ValueError, match=r"Unknown pooling 'mean'.*'avg', 'gem', 'max'"):
        models.build(pooling="mean")
    with pytest.raises(ValueError, match=r"unexpected keyword argument\(s\) 'width'.*widths"):
        models.build_backbone("small_cnn", width=3)
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.build_backbone("small_cnn", pretrained=True)
    with pytest.raises(ValueError, match="4-D|\\(B, C, H, W\\)"):
        models.build()(torch.rand(3, 16, 16))


def test_pretrained_offline_error_names_file_and_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # empty cache: the download is attempted

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as info:
        models.build("resnet50", pretrained=True)
    message = str(info.value)
    expected_file = os.path.basename(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url)
    assert expected_file == "resnet50-0676ba61.pth"
    assert expected_file in message
    assert os.path.join(str(tmp_path), "checkpoints") in message
    assert "pretrained=False" in message
    assert isinstance(info.value.__cause__, URLError)


def test_pretrained_weights_load_from_the_cache_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A file placed where the error message says is used, and the network is never touched."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be used when the file is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    filename = os.path.basename(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / filename)
    backbone = models.build_backbone("resnet18", pretrained=True)
    torch.testing.assert_close(backbone.stem[0].weight, reference.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(backbone.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var, rtol=0, atol=0)
    assert not torch.equal(models.build_backbone("resnet18").stem[0].weight, reference.conv1.weight)
