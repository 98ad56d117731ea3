"""How an image file becomes the model's input, recorded with an index so that gallery and queries match.

The preprocessing of a run is its **evaluation** transform (:mod:`dml.data.loaders`), applied to image files:

* ``jpeg``: full decode, ``Resize(test_resize) → CenterCrop(size) → Normalize(mean, std)``
  (``torchvision.transforms.v2``), exactly the evaluation of the ``jpeg`` pipeline;
* ``cached``: the cache's decode (shorter side to ``cache_size``, central square, JPEG draft mode;
  :func:`dml.data.cache.decode_resized`) then :class:`~dml.data.augment.CenterCropTransform` (``Resize(test_resize)
  → CenterCrop(size) →`` normalise), exactly the evaluation of the ``cached`` pipeline;
* ``tensor`` (built-in fixed-size data): shorter side to the training images' side ``size``, central square,
  values in [0, 1], no normalisation.

:meth:`Preprocessing.differences` names the keys in which two records differ; a search refuses a query whose
preprocessing differs from the index's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml.data import loaders
from dml.data.cache import decode_resized, resize_center_square
from dml.data.images import load_image
from dml.data.registry import build as build_dataset
from dml.train.config import Config


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation transform of a run on image files (module docstring)."""

    pipeline: str
    size: int
    test_resize: int | None = None
    cache_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, config: Config) -> Preprocessing:
        """The preprocessing of the run ``config`` (for ``normalize: cache``, the training cache's statistics)."""
        d, a = config.data, config.data.augment
        if d.pipeline == "tensor":
            image, _ = build_dataset(d.name, split=d.eval_split, root=d.root, **d.kwargs)[0]
            return cls(pipeline="tensor", size=int(image.shape[-1]))
        cache = loaders._split_cache(d, "train") if a.normalize == "cache" else None
        mean, std = loaders.normalization(a, cache)
        return cls(
            pipeline=d.pipeline,
            size=a.size,
            test_resize=a.test_resize,
            cache_size=d.cache_size if d.pipeline == "cached" else None,
            mean=tuple(round(float(m), 6) for m in mean),
            std=tuple(round(float(s), 6) for s in std),
        )

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Preprocessing:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in fields}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def differences(self, other: Preprocessing) -> list[str]:
        """``"key: mine vs theirs"`` for every key that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]} vs {theirs[k]}" for k in mine if mine[k] != theirs[k]]

    def load(self, path: str | Path) -> torch.Tensor:
        """Image file ``path`` decoded for this preprocessing: ``uint8`` 3×S×S for ``cached``, ``float32`` 3×H×W in
        [0, 1] otherwise (CorruptImageError / MissingImageError naming the file)."""
        if self.pipeline == "cached":
            return torch.from_numpy(decode_resized(path, int(self.cache_size))).permute(2, 0, 1)
        image = load_image(path)
        if self.pipeline == "tensor":
            return torch.from_numpy(resize_center_square(image, self.size)).permute(2, 0, 1).float().div_(255.0)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)

    def batch_transform(self) -> Any:
        """The transform of a batch of :meth:`load` outputs (a list of tensors) into one model input."""
        from dml.data.augment import CenterCropTransform

        if self.pipeline == "tensor":
            return torch.stack
        if self.pipeline == "cached":
            crop = CenterCropTransform(resize=int(self.test_resize), size=self.size, mean=self.mean, std=self.std)
            return lambda images: crop(torch.stack(images))
        from dml.data.settings import AugmentConfig

        _, test = loaders.image_transforms(
            AugmentConfig(size=self.size, test_resize=int(self.test_resize)), self.mean, self.std
        )
        return lambda images: torch.stack([test(image) for image in images])
