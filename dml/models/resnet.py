"""torchvision ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) as feature extractors.

The classifier (global pooling + fc) is removed: the backbone returns the last feature map, so the embedding
head chooses the pooling. ImageNet weights come from torchvision's weights API. torchvision is imported when a
ResNet is built, not with :mod:`dml.models` (it takes seconds to import).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from dml.models.batch_norm import FixedBatchNorm2d
from dml.models.registry import register_backbone
from dml.utils.checks import check_choice

if TYPE_CHECKING:
    import torchvision


class ResNetBackbone(nn.Module):
    """ResNet stem and four stages; output stride 32, ``out_channels`` 512 (ResNet-18/34) or 2048 (ResNet-50+)."""

    def __init__(self, net: torchvision.models.ResNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels: int = net.fc.in_features

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def load_pretrained_state_dict(weights: Any) -> dict[str, Tensor]:
    """Download (or read from the torch.hub cache) the state dict of a torchvision ``weights`` enum member.

    Raises ``RuntimeError`` naming the file and the cache folder when the file can neither be found in the cache
    nor downloaded (offline machine, firewall, corrupted download).
    """
    filename = os.path.basename(urlparse(weights.url).path)
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        return torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True)
    except (URLError, OSError, RuntimeError) as err:
        raise RuntimeError(
            f"Could not download the pretrained weights {weights} ({err}). Download {weights.url} on a machine with "
            f"internet access and place the file {filename!r} in the folder {folder!r} (torch.hub.get_dir()/"
            "checkpoints), or pass pretrained=False to train from random initialisation."
        ) from err


_NORMS = ("batch", "batch-eval")


def _fix_batch_norm(module: nn.Module, *, calibrated: bool) -> None:
    """Replace every ``nn.BatchNorm2d`` under ``module`` by a :class:`FixedBatchNorm2d` with its parameters and
    running statistics (fixed from the start when ``calibrated``, i.e. ImageNet statistics; else measured on the
    first training batch)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            fixed = FixedBatchNorm2d(child.num_features, train_affine=True, eps=child.eps)
            fixed.weight.data.copy_(child.weight.data)
            fixed.bias.data.copy_(child.bias.data)
            fixed.running_mean.copy_(child.running_mean)
            fixed.running_var.copy_(child.running_var)
            fixed.calibrated.fill_(calibrated)
            setattr(module, name, fixed)
        else:
            _fix_batch_norm(child, calibrated=calibrated)


def _resnet(name: str, pretrained: bool, norm: str = "batch") -> ResNetBackbone:
    import torchvision

    check_choice(norm, _NORMS, name="norm")

    builder: Callable[..., torchvision.models.ResNet] = getattr(torchvision.models, name)
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    net = builder(weights=None)
    if pretrained:
        net.load_state_dict(load_pretrained_state_dict(weights))
    if norm == "batch-eval":
        _fix_batch_norm(net, calibrated=pretrained)
    return ResNetBackbone(net)


@register_backbone("resnet18")
def resnet18(*, pretrained: bool = False, norm: str = "batch") -> ResNetBackbone:
    """ResNet-18; ``pretrained`` loads ``ResNet18_Weights.IMAGENET1K_V1``. ``norm="batch-eval"``: every batch norm
    in eval mode (statistics fixed, the ImageNet ones when pretrained; affine parameters trained), as the
    divide-and-conquer release does (``lib/model.py``)."""
    return _resnet("resnet18", pretrained, norm)


@register_backbone("resnet50")
def resnet50(*, pretrained: bool = False, norm: str = "batch") -> ResNetBackbone:
    """ResNet-50; ``pretrained`` loads ``ResNet50_Weights.IMAGENET1K_V1``; ``norm`` as for :func:`resnet18`."""
    return _resnet("resnet50", pretrained, norm)
