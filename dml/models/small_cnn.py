"""A small conv-norm-ReLU network for CPU smoke runs on 16-64 px images."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dml.models.batch_norm import FixedBatchNorm2d
from dml.models.registry import register_backbone
from dml.utils.checks import check_choice

_NORMS = ("batch", "batch-eval", "batch-frozen", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind in ("batch-eval", "batch-frozen"):
        return FixedBatchNorm2d(channels, train_affine=kind == "batch-eval")
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class SmallCNN(nn.Module):
    """``len(widths)`` blocks of conv3x3 -> norm -> ReLU, with 2x2 max pooling between blocks.

    A 32 px image gives a ``32 / 2**(len(widths) - 1)`` px feature map with ``widths[-1]`` channels.
    ``norm``: ``"batch"`` (batch norm in training mode: each channel standardised over the batch),
    ``"batch-eval"`` / ``"batch-frozen"`` (batch norm with statistics fixed after the first training batch, its
    affine parameters trained / fixed: :class:`dml.models.batch_norm.FixedBatchNorm2d`), ``"group"`` or
    ``"none"`` (a convolution bias instead). Only ``"batch"`` uses the statistics of every batch, so with the
    others multi-process (DDP) training on CPU, where SyncBatchNorm is unavailable, matches single-process
    training exactly.
    """

    def __init__(self, *, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128), norm: str = "batch") -> None:
        super().__init__()
        check_choice(norm, _NORMS, name="norm")
        if not widths:
            raise ValueError("small_cnn needs at least one block; pass e.g. widths=(32, 64, 128).")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=norm == "none"),
                _norm(norm, width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


@register_backbone("small_cnn")
def small_cnn(
    *, pretrained: bool = False, widths: Sequence[int] = (32, 64, 128), norm: str = "batch", in_channels: int = 3
) -> SmallCNN:
    if pretrained:
        raise ValueError(
            "small_cnn has no pretrained weights; pass pretrained=False "
            "(or use backbone 'resnet18'/'resnet50' for ImageNet weights)."
        )
    return SmallCNN(in_channels=in_channels, widths=tuple(widths), norm=norm)
