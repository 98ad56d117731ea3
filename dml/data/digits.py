"""``digits``: 1,797 real handwritten digits (scikit-learn's bundled copy of the UCI set), no download needed.

A tiny *real* dataset for lessons and CI. Zero-shot split as in the metric-learning benchmarks: digits 0-4 train,
5-9 test, ``"all"`` both. The 8×8 images (grey levels 0..16) are scaled to ``[0, 1]``, upsampled once at
construction with bilinear interpolation to ``image_size`` and replicated to three channels, so the same CNNs run
on digits, the synthetic set and photographs. Images are kept as ``uint8`` (N, H, W, 3) in ``images``; the
round trip through ``uint8`` changes pixel values by at most 1/510.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from dml.data.base import InMemoryDataset, Transform, check_split
from dml.data.registry import register

TRAIN_DIGITS = (0, 1, 2, 3, 4)
TEST_DIGITS = (5, 6, 7, 8, 9)


@register("digits")
class DigitsDataset(InMemoryDataset):
    """Handwritten digits with a zero-shot split (train 0-4, test 5-9).

    Args:
        split: ``"train"`` (digits 0-4), ``"test"`` (5-9) or ``"all"``.
        root: Accepted for a uniform signature and ignored: the data ships with scikit-learn.
        transform: Applied to each ``float32`` ``3×image_size×image_size`` tensor.
        image_size: Side length after bilinear upsampling of the native 8×8 images; 8 keeps them as they are.
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, image_size: int = 32) -> None:
        from sklearn.datasets import load_digits

        check_split(split)
        if image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels; got {image_size}.")
        bunch = load_digits()
        labels = bunch.target.astype(np.int64)
        keep = {"train": np.isin(labels, TRAIN_DIGITS), "test": np.isin(labels, TEST_DIGITS),
                "all": np.ones(labels.size, dtype=bool)}[split]
        pixels = torch.from_numpy(bunch.images[keep].astype(np.float32) / 16.0)[:, None]
        if image_size != pixels.shape[-1]:
            pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
        images = (pixels.clamp_(0, 1) * 255).round_().to(torch.uint8).expand(-1, 3, -1, -1)
        super().__init__(split=split, images=images.permute(0, 2, 3, 1).contiguous().numpy(),
                         labels=labels[keep], transform=transform)
        self.image_size = image_size
