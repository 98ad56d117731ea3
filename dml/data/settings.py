"""The data settings of a run (the ``data:`` section of a config): dataset, sampler, pipeline, augmentation.

:mod:`dml.train.config` nests them in its :class:`~dml.train.config.Config`; :mod:`dml.data.loaders` turns them into
training and evaluation batches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dml.data.occlusion import Occlude

PIPELINES = ("tensor", "jpeg", "cached")
CROPS = ("random-resized", "random")


class ConfigError(ValueError):
    """A problem in a config file or override; the message names the key and the fix."""


@dataclass
class SamplerConfig:
    """The P×K batch sampler (:class:`dml.data.PKSampler`): ``p`` classes × ``k`` images, its ``variant``,
    ``repeat`` and ``batching`` (``"per-round"``, or ``"released"`` for the epoch of the papers' released code)."""

    variant: str = "filled"
    p: int = 8
    k: int = 4
    repeat: int = 1
    batching: str = "per-round"


@dataclass
class OcclusionConfig:
    """People-shaped occlusion as a training augmentation (:class:`dml.data.occlusion.Occlude`), in every pipeline:
    with probability ``p`` per training image (0: off), a silhouette whose height (``measure: side``, the released
    Hotels-50K baseline) or share of the pixels (``measure: area``) is drawn from ``scale``, filled with the
    image's mean colour (``fill: mean``) or a random one (``fill: random``)."""

    p: float = 0.0
    scale: list[float] = field(default_factory=lambda: [0.3, 0.7])
    measure: str = "side"
    fill: str = "mean"

    def __post_init__(self) -> None:
        try:
            self.build()
        except ValueError as error:
            raise ConfigError(f"Config key 'data.augment.occlusion': {error}") from None

    def build(self) -> Occlude | None:
        """The :class:`~dml.data.occlusion.Occlude` transform, or ``None`` when ``p`` is 0."""
        if len(self.scale) != 2:
            raise ValueError(f"scale is a range [low, high]; got {self.scale}.")
        occlude = Occlude(p=self.p, scale=self.scale, measure=self.measure, fill=self.fill)
        return occlude if self.p > 0 else None


@dataclass
class AugmentConfig:
    """Image transforms of the ``jpeg`` and ``cached`` pipelines (see :mod:`dml.data.loaders`).

    Train: ``RandomResizedCrop(size)`` (``crop: random-resized``) or ``RandomCrop(size)`` (``crop: random``),
    after ``Resize(resize)`` when ``resize`` is set, then a horizontal flip with probability ``flip``; test:
    ``Resize(test_resize) → CenterCrop(size)``; both normalised with ``normalize``: ``"imagenet"``, a key of
    ``dml.data.augment.DATASET_STATS`` (e.g. ``cub200``) or ``"cache"`` (the training cache's measured statistics).
    """

    size: int = 224
    crop: str = "random-resized"
    resize: int | None = None
    flip: float = 0.5
    test_resize: int = 256
    normalize: str = "imagenet"
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)


@dataclass
class DataConfig:
    """``pipeline``: ``"tensor"`` (items are fixed-size tensors, used as they are), ``"jpeg"`` (per-image
    ``augment`` transforms in the ``DataLoader`` workers) or ``"cached"`` (each split decoded once into a
    ``cache_size`` cache with ``cache_workers`` processes, batches augmented whole). ``cache_dir``: where the caches
    go (default the data folder's ``cache/``; never inside a user's image folder, :func:`dml.data.cache.cache_dir`)."""

    name: str = "synthetic"
    root: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    num_workers: int = 0
    eval_split: str = "test"
    pipeline: str = "tensor"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache_size: int = 288
    cache_workers: int = 2
    cache_dir: str | None = None
