"""People-shaped occlusions: procedural silhouettes pasted onto images, at test time and as a training augmentation.

Hotels-50K (Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset", AAAI 2019, arXiv:1901.11397) tests
hotel recognition on photos in which a person hides part of the room, as in the photographs of trafficking victims:
its test set comes in four versions, unoccluded and with low, medium and high occlusions, each occluded image
pre-masked with a person-shaped mask cut from MS-COCO (masks in ``images/test/<level>_occlusions/.../masks/``).
Its released baseline trains with the same kind of occlusion: ``BatchAllSet.getImageAsMask`` of
``baseline_implementation/classfile.py`` (GitHub GWUvision/Hotels-50K, commit 3614e4a5) resizes a people crop to
``scale × crop`` on each side, ``scale`` drawn from ``{0.30, 0.31, …, 0.69}``, and places it uniformly at random
entirely inside the crop (the released training script that applies the mask is not public).

Nothing here needs MS-COCO: :func:`person_mask` draws a **silhouette** made of a head disc and convex polygons
(torso, two arms, two legs) in a random pose, rasterised on the pixel grid. Its size is set either by

* ``scale``: the silhouette's height is ``scale`` times the image side and it lies entirely inside (the released
  augmentation's measure, which squashed the crop to a square; ours keeps the person's proportions), or
* ``coverage``: the share of the image's pixels it hides (bisection on its height; it may then reach past the image
  border).

:data:`OCCLUSION_LEVELS` are the coverage ranges of our synthetic low / medium / high test sets. They are *our*
choice: the release gives the masks per image but states no range, and its 3 GB test archive is not read here;
:func:`mask_coverage` measures the released masks (``images/test/*/masks/*.png``, person = black) for comparison.
:func:`paste_people` pastes silhouettes in flat clothing colours (test sets, seeded); :class:`Occlude` is the
training augmentation (``data.augment.occlusion`` of a ``dml train`` config), in every pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Share of the image's pixels hidden by the person, per occlusion level of the synthetic test sets (our choice).
OCCLUSION_LEVELS: dict[str, tuple[float, float]] = {"low": (0.10, 0.20), "medium": (0.20, 0.35), "high": (0.35, 0.50)}
#: The released augmentation's range of the person's size (``np.random.randint(30, 70) / 100``).
RELEASED_SCALE = (0.30, 0.70)
FILLS = ("mean", "random")
_WIDTH = 0.56  # the silhouette's width over its height, for the frame below


def _parts(rng: np.random.Generator) -> tuple[tuple[float, float, float], list[np.ndarray]]:
    """A random pose in the person's frame (height 1, ``v`` down from the top of the head, ``u`` from the middle):
    the head ``(u, v, r)`` and the convex polygons (counter-clockwise vertices) of torso, arms and legs."""
    r = rng.uniform(0.075, 0.095)
    head = (rng.uniform(-0.02, 0.02), r, r)
    neck, shoulder, hip = 2 * r + 0.01, rng.uniform(0.15, 0.19), rng.uniform(0.10, 0.13)
    waist = rng.uniform(0.50, 0.56)
    torso = np.array([[-shoulder, neck], [-hip, waist], [hip, waist], [shoulder, neck]])
    polygons = [torso]
    for side in (-1, 1):
        reach = rng.uniform(0.02, 0.10)  # how far the hand hangs away from the hip
        top, hand = side * shoulder, side * (shoulder + reach)
        arm = np.array([[top - side * 0.06, neck + 0.02], [hand - side * 0.045, waist + 0.02],
                        [hand + side * 0.015, waist], [top + side * 0.01, neck]])
        spread = rng.uniform(0.0, 0.12)  # the foot's distance from the hip joint
        leg = np.array([[side * 0.005, waist - 0.02], [side * (0.01 + spread), 1.0],
                        [side * (0.095 + spread), 1.0], [side * hip, waist - 0.02]])
        polygons += [arm[::side], leg[::-side]]
    return head, polygons


def _inside(u: np.ndarray, v: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Points inside a convex polygon, whatever its orientation (all edge cross products of one sign)."""
    x, y = polygon[:, 0], polygon[:, 1]
    dx, dy = np.roll(x, -1) - x, np.roll(y, -1) - y
    cross = dx[:, None, None] * (v - y[:, None, None]) - dy[:, None, None] * (u - x[:, None, None])
    return (cross >= 0).all(axis=0) | (cross <= 0).all(axis=0)


def _raster(size: int, head: tuple[float, float, float], polygons: list[np.ndarray], *, height: float,
            left: float, top: float) -> np.ndarray:
    """The silhouette of ``height`` (image sides) with its frame's top-left at ``(left, top)``, as a bool mask."""
    grid = (np.arange(size) + 0.5) / size
    u = (grid[None, :] - left) / height - _WIDTH / 2
    v = (grid[:, None] - top) / height
    mask = np.hypot(u - head[0], v - head[1]) <= head[2]
    for polygon in polygons:
        mask |= _inside(u, v, polygon)
    return mask


def person_mask(size: int, *, rng: np.random.Generator, scale: float | None = None,
                coverage: float | None = None) -> np.ndarray:
    """A ``size × size`` bool mask of one person in a random pose, sized by ``scale`` or by ``coverage``.

    Args:
        size: Image side in pixels.
        rng: The random source (pose and position).
        scale: The person's height over the image side, placed entirely inside (the released augmentation).
        coverage: The share of the pixels to hide, in (0, 1); the height is found by bisection with the centre of
            the person's frame drawn uniformly in the middle 60 % of the image, so the result is within about one
            pixel's share of the target (check with :func:`mask_coverage`).
    """
    if (scale is None) == (coverage is None):
        raise ValueError("Pass exactly one of scale= (the person's height over the image side) or coverage= "
                         "(the share of the pixels to hide).")
    head, polygons = _parts(rng)
    if scale is not None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1] so that the person fits in the image; got {scale}.")
        left, top = rng.uniform(0, 1 - scale * _WIDTH), rng.uniform(0, 1 - scale)
        return _raster(size, head, polygons, height=scale, left=left, top=top)
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1); got {coverage}.")
    cx, cy = rng.uniform(0.2, 0.8, 2)
    low, high = 0.0, 3.0

    def at(height: float) -> np.ndarray:  # scaled about the frame's centre, a point inside the torso
        return _raster(size, head, polygons, height=height, left=cx - height * _WIDTH / 2, top=cy - height / 2)

    for _ in range(14):
        middle = (low + high) / 2
        low, high = (middle, high) if at(middle).mean() < coverage else (low, middle)
    return at(high)


def mask_coverage(masks: Any) -> np.ndarray:
    """Share of the pixels each mask hides: ``(N,)`` for ``(N, H, W)`` masks (bool, or images where the person is
    dark: values below half the maximum, as the released masks' black people on white)."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.dtype != bool:
        masks = masks < masks.max(axis=(1, 2), keepdims=True) / 2
    return masks.reshape(len(masks), -1).mean(axis=1)


def occlusion_masks(n: int, size: int, *, level: str | None = None, coverage: tuple[float, float] | None = None,
                    seed: int = 0) -> np.ndarray:
    """``(n, size, size)`` bool masks, each hiding a share of the image drawn uniformly from ``coverage`` (or the
    range of ``level`` in :data:`OCCLUSION_LEVELS`), redrawn until inside it; the same seed gives the same masks."""
    if (level is None) == (coverage is None):
        raise ValueError(f"Pass exactly one of level= (one of {list(OCCLUSION_LEVELS)}) or coverage=(low, high).")
    if level is not None:
        if level not in OCCLUSION_LEVELS:
            raise ValueError(f"Unknown occlusion level {level!r}; use one of {list(OCCLUSION_LEVELS)}.")
        coverage = OCCLUSION_LEVELS[level]
    lo, hi = coverage
    if not 0 < lo < hi < 1:
        raise ValueError(f"coverage must be a range 0 < low < high < 1; got {coverage}.")
    if (hi - lo) * size * size < 4:
        raise ValueError(f"The coverage range {coverage} is narrower than a few pixels of a {size}×{size} image; "
                         "widen it or use larger images.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        for _ in range(20):
            masks[i] = person_mask(size, rng=rng, coverage=rng.uniform(lo, hi))
            if lo <= masks[i].mean() <= hi:
                break
        else:
            raise RuntimeError(f"Could not draw a person covering {coverage} of a {size}×{size} image.")
    return masks


def paste_people(images: np.ndarray, masks: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``uint8`` ``(N, H, W, 3)`` images with each mask filled by a person in flat colours: clothing in a random
    colour with a vertical shading, the head (pixels of the top 22 % of the mask's rows) in a skin tone."""
    images, masks = np.asarray(images), np.asarray(masks, dtype=bool)
    if images.ndim != 4 or images.shape[:3] != masks.shape or images.shape[-1] != 3:
        raise ValueError(f"images (N, H, W, 3) and masks (N, H, W) must match; got {images.shape} and {masks.shape}.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 18]))
    clothes = rng.uniform(0.05, 0.95, (len(images), 3))
    skins = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.65, 0.45, 0.33], [0.42, 0.28, 0.20]])
    skin = skins[rng.integers(0, len(skins), len(images))]
    out = images.astype(np.float32) / 255.0
    rows = np.arange(images.shape[1])[:, None]
    for i, mask in enumerate(masks):
        filled = np.flatnonzero(mask.any(axis=1))
        if not len(filled):
            continue
        top, bottom = filled[0], filled[-1] + 1
        shade = 1.0 - 0.3 * (rows - top) / max(bottom - top, 1)
        colour = np.where((rows < top + 0.22 * (bottom - top))[..., None], skin[i], clothes[i] * shade[..., None])
        out[i][mask] = np.broadcast_to(colour, out[i].shape)[mask]
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


class Occlude:
    """Training augmentation: with probability ``p`` per image, hide a person-shaped region.

    Args:
        p: Probability that an image is occluded.
        scale: ``measure="side"``: range of the person's height over the crop side (the released ``(0.30, 0.70)``,
            drawn uniformly; the release drew whole percentages); ``measure="area"``: range of the share of the
            pixels hidden.
        measure: ``"side"`` (released) or ``"area"``.
        fill: ``"mean"``: each channel's mean over the image (what zeroing a mean-subtracted image gives, and
            invariant to normalisation); ``"random"``: a random colour between each channel's minimum and maximum.

    Call with one ``C × H × W`` image (the ``tensor`` and ``jpeg`` pipelines; torch's global generator, seeded by
    the trainer) or a ``B × C × H × W`` batch with ``generator=`` (the ``cached`` pipeline). The output is a new
    tensor of the input's dtype.
    """

    def __init__(self, *, p: float = 1.0, scale: Sequence[float] = RELEASED_SCALE, measure: str = "side",
                 fill: str = "mean") -> None:
        lo, hi = (float(s) for s in scale)
        if not 0 <= p <= 1:
            raise ValueError(f"occlusion p is a probability in [0, 1]; got {p}.")
        if measure not in ("side", "area"):
            raise ValueError(f"occlusion measure must be 'side' (the released one) or 'area'; got {measure!r}.")
        if not 0 < lo <= hi < (1.0 if measure == "area" else 1.0 + 1e-12):
            raise ValueError(f"occlusion scale must be a range 0 < low <= high (< 1 for area, <= 1 for side); got "
                             f"{tuple(scale)}.")
        if fill not in FILLS:
            raise ValueError(f"occlusion fill must be one of {list(FILLS)}; got {fill!r}.")
        self.p, self.scale, self.measure, self.fill = float(p), (lo, hi), measure, fill

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        single = images.ndim == 3
        batch = images[None] if single else images
        draws = torch.rand(len(batch), 3, generator=generator, dtype=torch.float64)
        seeds = torch.randint(0, 2**31 - 1, (len(batch),), generator=generator)
        out = batch.clone()
        for j in torch.nonzero(draws[:, 0] < self.p).flatten().tolist():
            rng = np.random.default_rng(int(seeds[j]))
            amount = self.scale[0] + float(draws[j, 1]) * (self.scale[1] - self.scale[0])
            side = batch.shape[-1]
            key = {"scale": amount} if self.measure == "side" else {"coverage": amount}
            mask = torch.from_numpy(person_mask(side, rng=rng, **key)).to(batch.device)
            if batch.shape[-2] != side:
                raise ValueError(f"Occlude expects square images; got {tuple(batch.shape[-2:])}.")
            image = batch[j].float()
            if self.fill == "mean":
                colour = image.mean(dim=(1, 2))
            else:
                low, high = image.amin(dim=(1, 2)), image.amax(dim=(1, 2))
                colour = low + torch.from_numpy(rng.random(len(low))).float().to(low.device) * (high - low)
            out[j] = torch.where(mask, colour[:, None, None].to(batch.dtype), batch[j])
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"Occlude(p={self.p}, scale={self.scale}, measure={self.measure!r}, fill={self.fill!r})"


class OccludedBatchAugment:
    """A batch augmentation (such as :class:`dml.data.augment.BatchAugment`) followed by :class:`Occlude`, with
    the same generator: the ``cached`` pipeline's training transform when ``data.augment.occlusion`` is on."""

    def __init__(self, augment: Any, occlude: Occlude) -> None:
        self.augment, self.occlude, self.size = augment, occlude, augment.size

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None, **kw: Any) -> torch.Tensor:
        out = self.augment(images, generator=generator, **kw)
        return self.occlude(out, generator=generator)

    def __repr__(self) -> str:
        return f"{self.augment!r} -> {self.occlude!r}"
