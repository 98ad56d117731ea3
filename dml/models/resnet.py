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


NORMS = ("batch", "batch-eval", "batch-frozen")


def _resnet(name: str, pretrained: bool, *, layer3_stride: int = 2, norm: str = "batch") -> ResNetBackbone:
    import torchvision

    check_choice(norm, NORMS, name="norm")
    if layer3_stride not in (1, 2):
        raise ValueError(f"layer3_stride must be 1 or 2; got {layer3_stride!r}.")
    builder: Callable[..., torchvision.models.ResNet] = getattr(torchvision.models, name)
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    net = builder(weights=None)
    if pretrained:
        net.load_state_dict(load_pretrained_state_dict(weights))
    if layer3_stride == 1:
        set_stage_stride(net.layer3, 1)
    if norm != "batch":
        fix_batch_norm(net, train_affine=norm == "batch-eval", calibrated=pretrained)
    return ResNetBackbone(net)


def set_stage_stride(stage: nn.Sequential, stride: int) -> None:
    """Set the down-sampling stride of a ResNet stage (its first block's strided conv and shortcut).

    CGD's re-implementation (github.com/leftthomas/CGD, ``model.py``) sets layer3's stride to 1: the last map is
    then 14 x 14 instead of 7 x 7 at 224 px (output stride 16)."""
    for module in stage[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (stride, stride)


def fix_batch_norm(net: nn.Module, *, train_affine: bool, calibrated: bool) -> None:
    """Replace every ``BatchNorm2d`` by a :class:`FixedBatchNorm2d` with its weights and running statistics.

    ``calibrated=True`` (a pretrained network) keeps the ImageNet statistics fixed from the start; otherwise they
    are measured on the first training batch. ``train_affine=False`` also fixes gamma and beta ("frozen BN")."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            fixed = FixedBatchNorm2d(child.num_features, train_affine=train_affine, eps=child.eps)
            with torch.no_grad():
                fixed.weight.copy_(child.weight)
                fixed.bias.copy_(child.bias)
                fixed.running_mean.copy_(child.running_mean)
                fixed.running_var.copy_(child.running_var)
                fixed.calibrated.fill_(calibrated)
            setattr(net, name, fixed)
        else:
            fix_batch_norm(child, train_affine=train_affine, calibrated=calibrated)


@register_backbone("resnet18")
def resnet18(*, pretrained: bool = False, layer3_stride: int = 2, norm: str = "batch") -> ResNetBackbone:
    """ResNet-18; ``pretrained`` loads ``ResNet18_Weights.IMAGENET1K_V1``. ``layer3_stride=1`` removes layer3's
    down-sampling (:func:`set_stage_stride`); ``norm`` ``"batch-eval"`` / ``"batch-frozen"`` fixes the batch-norm
    statistics (and gamma, beta) (:func:`fix_batch_norm`, :mod:`dml.models.batch_norm`)."""
    return _resnet("resnet18", pretrained, layer3_stride=layer3_stride, norm=norm)


@register_backbone("resnet50")
def resnet50(*, pretrained: bool = False, layer3_stride: int = 2, norm: str = "batch") -> ResNetBackbone:
    """ResNet-50; ``pretrained`` loads ``ResNet50_Weights.IMAGENET1K_V1``; options as :func:`resnet18`."""
    return _resnet("resnet50", pretrained, layer3_stride=layer3_stride, norm=norm)
