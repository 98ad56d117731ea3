"""Augmentation of whole batches of ``uint8`` images, on the GPU when there is one.

A ``torchvision`` transform pipeline augments one image at a time inside ``DataLoader`` workers. With the images
already decoded and resized in a :class:`~dml.data.cache.CachedDataset`, a batch is one tensor, so the same
augmentations can run as a handful of tensor operations per batch:

* :class:`BatchAugment`, training: ``RandomResizedCrop`` (crop parameters drawn exactly as
  ``torchvision.transforms.RandomResizedCrop.get_params`` draws them: up to ten tries of an area fraction in
  ``scale`` and a log-uniform aspect ratio in ``ratio``, then a centre-crop fallback) or the released recipe's
  ``Resize → RandomCrop``, then a horizontal flip with probability ``flip``, then per-channel normalisation;
* :class:`CenterCropTransform`, testing: deterministic ``Resize(resize)`` (shorter side) ``→ CenterCrop(size)``
  and normalisation, numerically identical to ``torchvision.transforms.v2`` on ``uint8`` tensors;
* :class:`CachedBatchLoader`: pairs a batch sampler (e.g. :class:`~dml.data.PKSampler`) with a cache, so each
  training step is one fancy index of the memory map plus one augmentation call, and no per-image Python work
  beyond a crop-and-resize call.

All randomness comes from a ``torch.Generator`` on the CPU (crop boxes and flip decisions are drawn there and are
therefore identical on every device), so a seed fixes the augmentation. On the CPU each crop is resized in
``uint8`` with torch's vectorised antialiased bilinear kernel (the one behind torchvision's tensor ``Resize``),
then converted to ``float32`` and normalised at once, while it is still in the processor cache; the images of a
batch are spread over two threads. On CUDA the ``uint8`` batch is transferred (four times fewer bytes than
``float32``), converted once to ``float32`` and resized there; the two devices differ by the rounding of the
CPU's ``uint8`` intermediate, about one grey level.

Normalisation statistics. ``IMAGENET_MEAN``/``IMAGENET_STD`` are the usual values for ImageNet-pretrained
backbones. :data:`DATASET_STATS` holds the per-dataset values of the released code of Xuan et al. (GitHub
littleredxh/HardNegative, ``_code/color_lib.py``), used by its recipe (ECCV 2020, arXiv:2007.12749). Its Hotels-50K
standard deviations (0.63, 0.61, 0.44) cannot be pixel standard deviations on the [0, 1] scale, which are at
most 0.5; a cache records the measured mean and std of its own split (``CachedDataset.mean``/``.std``), which is
the safer choice.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DATASET_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cub200": ((0.4707, 0.4601, 0.4549), (0.2767, 0.2760, 0.2850)),
    "cars196": ((0.4853, 0.4965, 0.4295), (0.2237, 0.2193, 0.2568)),
    "sop": ((0.5807, 0.5396, 0.5044), (0.2901, 0.2974, 0.3095)),
    "inshop": ((0.8324, 0.8109, 0.8041), (0.2206, 0.2378, 0.2444)),
    "hotels50k": ((0.5838, 0.5146, 0.4470), (0.6298, 0.6112, 0.4445)),
}

_POOL: ThreadPoolExecutor | None = None


def dataset_stats(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(mean, std)`` on the [0, 1] scale for ``name`` in :data:`DATASET_STATS`."""
    if name not in DATASET_STATS:
        raise KeyError(f"No normalisation statistics for {name!r}; known: {sorted(DATASET_STATS)}. Pass mean= and "
                       "std= explicitly, e.g. the measured CachedDataset.mean and .std.")
    return DATASET_STATS[name]


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], *,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a (B, 3, H, W) batch, as ``float32``.

    ``uint8`` input is read as ``x / 255``; floating input is taken to be on the [0, 1] scale already. ``out``
    (``float32``, same shape) receives the result instead of a new tensor.
    """
    if images.ndim != 4 or images.shape[1] != len(mean) or len(mean) != len(std):
        raise ValueError(f"normalize expects a (B, C, H, W) batch with C = len(mean) = len(std); got shape "
                         f"{tuple(images.shape)}, {len(mean)} means, {len(std)} stds.")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive; got {tuple(std)}.")
    scale, shift = _affine(images.dtype, mean, std, images.device)
    if out is None:
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device,
                          memory_format=_memory_format(images))
    out.copy_(images)
    _affine_(out, scale, shift)
    return out


def _affine_(target: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """``target ← target · scale + shift`` per channel, in place, for a (..., C, H, W) ``float32`` tensor.

    In channels-last memory a per-channel constant broadcast over an innermost axis of length 3 is about ten
    times slower than a contiguous one, so the constants are tiled along whole rows (W · C values) instead.
    """
    hwc = target.movedim(-3, -1)
    if hwc.is_contiguous():
        width = hwc.shape[-2]
        rows = hwc.view(-1, width * hwc.shape[-1])
        torch.addcmul(shift.view(-1).repeat(width), rows, scale.view(-1).repeat(width), out=rows)
    else:
        torch.addcmul(shift.view(-1, 1, 1), target, scale.view(-1, 1, 1), out=target)


def _affine(dtype: torch.dtype, mean: Sequence[float], std: Sequence[float], device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale``, ``shift`` of shape (1, C, 1, 1) with ``normalised = x · scale + shift`` for ``x`` of ``dtype``."""
    unit = 255.0 if dtype == torch.uint8 else 1.0
    mean_t = torch.tensor(mean, dtype=torch.float64)
    std_t = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (unit * std_t)).to(device=device, dtype=torch.float32).view(1, -1, 1, 1)
    shift = (-mean_t / std_t).to(device=device, dtype=torch.float32).view(1, -1, 1, 1)
    return scale, shift


def random_resized_crop_params(n: int, height: int, width: int, *, scale: tuple[float, float] = (0.08, 1.0),
                               ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                               attempts: int = 10) -> tuple[torch.Tensor, ...]:
    """Crop boxes ``(top, left, h, w)`` (``int64``, shape (n,)) drawn as torchvision's ``RandomResizedCrop``.

    For each image: up to ``attempts`` candidates with area ``U(scale) · H · W`` and aspect ratio ``w / h`` drawn
    log-uniformly from ``ratio``; the first that fits is placed uniformly at random. If none fits, the largest
    centred box whose ratio is clamped to ``ratio`` is used.
    """
    if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]; got scale={scale}, "
                         f"ratio={ratio}.")
    area = torch.empty(n, attempts, dtype=torch.float64).uniform_(*scale, generator=generator) * (height * width)
    log_ratio = torch.empty(n, attempts, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                                       generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(1)
    rows = torch.arange(n)
    w, h, found = w[rows, first], h[rows, first], fits.any(1)

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, fw)
    h = torch.where(found, h, fh)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)).long(), int(round((height - fh) / 2.0)))
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)).long(), int(round((width - fw) / 2.0)))
    return top, left, h, w


def random_crop_params(n: int, height: int, width: int, size: int, *,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Boxes ``(top, left, h, w)`` of a ``size``×``size`` crop placed uniformly at random (``RandomCrop``)."""
    if size > height or size > width:
        raise ValueError(f"A {size}×{size} crop does not fit in {height}×{width} images; resize them first "
                         "(BatchAugment(resize=...)) or cache them at a larger size.")
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.floor(u[:, 0] * (height - size + 1)).long()
    left = torch.floor(u[:, 1] * (width - size + 1)).long()
    full = torch.full((n,), size, dtype=torch.long)
    return top, left, full, full.clone()


def resized_crops(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                  size: int, *, flip: torch.Tensor | None = None, index: torch.Tensor | None = None,
                  resize: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  out: torch.Tensor | None = None, antialias: bool = True, threads: int | None = None) -> torch.Tensor:
    """Crop box ``j`` out of image ``j`` (or ``images[index[j]]``), resize it to ``size``×``size`` (bilinear),
    flip it horizontally where ``flip[j]``; return the batch, channels-last in memory.

    ``resize`` first resizes each (square) source image to ``resize``×``resize``, so boxes refer to that grid
    (the released recipe's ``Resize(281) → RandomCrop(256)`` on a cache of another size). ``index`` reads the
    sources straight from a larger tensor, such as the whole memory-mapped cache, without gathering them first.
    Without ``mean``/``std`` the result has the input's dtype; with them it is :func:`normalize`'d ``float32``,
    computed image by image while each crop is still in the processor cache (written into ``out`` if given).
    """
    n = int(top.numel())
    rows = index.tolist() if index is not None else list(range(n))
    if len(rows) != n:
        raise ValueError(f"{n} crop boxes but {len(rows)} source indices.")
    fused = mean is not None and std is not None
    dtype = torch.float32 if fused else images.dtype
    if out is None:
        out = torch.empty((n, images.shape[1], size, size), dtype=dtype, device=images.device,
                          memory_format=torch.channels_last)
    elif out.shape != (n, images.shape[1], size, size) or out.dtype != dtype:
        raise ValueError(f"out must be a {dtype} tensor of shape {(n, images.shape[1], size, size)}; got "
                         f"{out.dtype} {tuple(out.shape)}.")
    if fused:
        scale, shift = _affine(images.dtype, mean, std, images.device)
    boxes = torch.stack([top, left, h, w], 1).tolist()
    flips = flip.tolist() if flip is not None else [False] * n

    def work(js: range) -> None:
        for j in js:
            source = images[rows[j]:rows[j] + 1]
            if resize is not None and tuple(source.shape[-2:]) != (resize, resize):
                source = _resize(source, (resize, resize), antialias)
            t, l, hh, ww = boxes[j]
            crop = source[..., t:t + hh, l:l + ww]
            if (hh, ww) != (size, size):
                crop = _resize(crop, (size, size), antialias)
            crop = crop[0].flip(-1) if flips[j] else crop[0]
            if fused:
                out[j].copy_(crop)
                _affine_(out[j], scale, shift)
            else:
                out[j].copy_(crop)

    _parallel(work, n, threads if threads is not None else (_cpu_threads() if images.device.type == "cpu" else 1))
    return out


def resize_center_crop(images: torch.Tensor, *, resize: int, size: int, antialias: bool = True) -> torch.Tensor:
    """``Resize(resize)`` (shorter side, longer side ``int(resize · long / short)``) then ``CenterCrop(size)``.

    The whole batch shares one shape, so this is one interpolation call; it matches
    ``torchvision.transforms.v2.functional.resize`` + ``center_crop`` on the same tensor exactly.
    """
    height, width = images.shape[-2:]
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = resize, int(resize * long / short)
    new_h, new_w = (new_short, new_long) if height <= width else (new_long, new_short)
    if (new_h, new_w) != (height, width):
        images = _resize(images, (new_h, new_w), antialias)
    if size > new_h or size > new_w:
        raise ValueError(f"CenterCrop({size}) is larger than the resized {new_h}×{new_w} images; choose "
                         f"size <= resize.")
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return images[..., top:top + size, left:left + size]


class BatchAugment:
    """Training augmentation of a batch: random crop → flip → normalise, returning ``float32`` (B, 3, s, s).

    Args:
        size: Output side ``s``.
        crop: ``"random-resized"`` (``RandomResizedCrop(size, scale, ratio)``) or ``"random"`` (the released
            recipe's ``RandomCrop(size)``, after ``resize`` if given).
        resize: Resize the square source images to ``resize``×``resize`` before cropping (the released recipe:
            ``resize=281, crop="random", size=256``); ``None`` crops the sources as they are.
        scale, ratio: ``RandomResizedCrop`` area-fraction and aspect-ratio ranges.
        flip: Probability of a horizontal flip.
        mean, std: Normalisation statistics on the [0, 1] scale (see :data:`DATASET_STATS`).
        antialias: Antialiased bilinear resizing, as torchvision's default.

    Call with a ``uint8`` (or [0, 1] floating) batch (B, 3, H, W), or with the whole cache and ``index=``; pass
    a seeded ``torch.Generator`` for reproducible augmentation.
    """

    def __init__(self, *, size: int = 224, crop: str = "random-resized", resize: int | None = None,
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: float = 0.5, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 antialias: bool = True) -> None:
        if crop not in ("random-resized", "random"):
            raise ValueError(f"crop={crop!r}: choose 'random-resized' (RandomResizedCrop) or 'random' "
                             "(RandomCrop, the released recipe).")
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip is a probability; got {flip}.")
        self.size, self.crop, self.resize, self.scale, self.ratio = size, crop, resize, scale, ratio
        self.flip, self.mean, self.std, self.antialias = flip, tuple(mean), tuple(std), antialias

    def params(self, n: int, height: int, width: int, generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
        """The random choices for ``n`` images of ``height``×``width``: crop boxes and flip flags (CPU tensors)."""
        if self.resize is not None:
            height = width = self.resize
        if self.crop == "random":
            top, left, h, w = random_crop_params(n, height, width, self.size, generator=generator)
        else:
            top, left, h, w = random_resized_crop_params(n, height, width, scale=self.scale, ratio=self.ratio,
                                                         generator=generator)
        flip = torch.rand(n, generator=generator) < self.flip
        return {"top": top, "left": left, "h": h, "w": w, "flip": flip}

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 index: torch.Tensor | Sequence[int] | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Augment ``images`` (or ``images[index]``); ``out``: optional ``float32`` (B, 3, s, s) result buffer."""
        _check_batch(images)
        if index is not None:
            index = torch.as_tensor(index, dtype=torch.long)
        n = int(index.numel()) if index is not None else images.shape[0]
        p = self.params(n, images.shape[-2], images.shape[-1], generator)
        box = (p["top"], p["left"], p["h"], p["w"])
        if images.device.type == "cpu":  # one pass per image, crop to normalised float while it is in cache
            return resized_crops(images, *box, self.size, flip=p["flip"], index=index, resize=self.resize,
                                 mean=self.mean, std=self.std, out=out, antialias=self.antialias)
        if images.dtype == torch.uint8:  # CUDA resizes floating tensors only: convert the batch once
            images = (images if index is None else images[index]).float().div_(255.0)
            index = None
        crops = resized_crops(images, *box, self.size, flip=p["flip"], index=index, resize=self.resize,
                              antialias=self.antialias)
        return normalize(crops, self.mean, self.std, out=out)

    def __repr__(self) -> str:
        crop = (f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={tuple(round(r, 4) for r in self.ratio)})"
                if self.crop == "random-resized" else f"RandomCrop({self.size})")
        resize = f"Resize({self.resize}) → " if self.resize else ""
        return f"BatchAugment({resize}{crop} → HFlip(p={self.flip}) → Normalize(mean={self.mean}, std={self.std}))"


class CenterCropTransform:
    """Test-time transform of a batch: ``Resize(resize) → CenterCrop(size) → normalise``; deterministic."""

    def __init__(self, *, resize: int = 256, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, antialias: bool = True) -> None:
        if size > resize:
            raise ValueError(f"size={size} > resize={resize}: the centre crop must fit in the resized image.")
        self.resize, self.size, self.mean, self.std, self.antialias = resize, size, tuple(mean), tuple(std), antialias

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        if images.device.type != "cpu" and images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        crops = resize_center_crop(images, resize=self.resize, size=self.size, antialias=self.antialias)
        return normalize(crops, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"CenterCropTransform(Resize({self.resize}) → CenterCrop({self.size}) → "
                f"Normalize(mean={self.mean}, std={self.std}))")


def released_recipe(mean: Sequence[float], std: Sequence[float], *, cache_size: int = 281
                    ) -> tuple[BatchAugment, CenterCropTransform]:
    """Train and test transforms of Xuan et al.'s released code (GitHub littleredxh/HardNegative) for a cache of side
    ``cache_size``: train ``Resize(281) → RandomCrop(256) → flip → normalise`` (no resize when the cache is 281
    already), test ``Resize(256) → CenterCrop(256) → normalise``."""
    train = BatchAugment(size=256, crop="random", resize=None if cache_size == 281 else 281, mean=mean, std=std)
    return train, CenterCropTransform(resize=256, size=256, mean=mean, std=std)


class CachedBatchLoader:
    """Training batches from a cache: ``(float32 images (B, 3, s, s), int64 labels)`` on ``device``.

    Each step takes one list of indices from ``batch_sampler`` (e.g. a :class:`~dml.data.PKSampler`), reads
    those images from the memory map (on the CPU directly, on CUDA with one fancy index, pinned and copied as
    ``uint8``) and applies ``augment`` once to the whole batch. The augmentation generator is seeded from
    ``(seed, epoch)``, so :meth:`set_epoch` (which also forwards to the sampler) makes every epoch reproducible.

    Args:
        dataset: A :class:`~dml.data.cache.CachedDataset` (anything with ``labels`` and a ``uint8`` (N, S, S, 3)
            ``images`` array works).
        batch_sampler: Iterable of index lists.
        augment: A callable such as :class:`BatchAugment`, called as ``augment(images, generator=, index=)``.
        device: Where the batches are produced.
        seed: Base seed of the augmentation.
        reuse_buffers: Write the batches into two preallocated buffers used in turn, instead of a new tensor per
            batch. On the CPU this saves the page faults of a fresh 77 MB allocation per 128×224² batch (about a
            third of the augmentation time on a 2-core machine), but **a batch is overwritten two steps later**:
            ``clone()`` any batch you keep beyond the next step. Off by default.
    """

    def __init__(self, dataset: Any, batch_sampler: Iterable[Sequence[int]], augment: BatchAugment, *,
                 device: str | torch.device = "cpu", seed: int = 0, reuse_buffers: bool = False) -> None:
        self.dataset, self.batch_sampler, self.augment = dataset, batch_sampler, augment
        self.device, self.seed, self.epoch = torch.device(device), seed, 0
        self.reuse_buffers = reuse_buffers
        self._buffers: list[torch.Tensor] = []
        self.labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
        self._source = torch.from_numpy(dataset.images).permute(0, 3, 1, 2)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches and augmentations the next iteration produces."""
        self.epoch = epoch
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch])
                                                      .generate_state(1)[0]))
        for step, indices in enumerate(self.batch_sampler):
            index = torch.as_tensor(indices, dtype=torch.long)
            labels = self.labels[index]
            out = self._buffer(step, len(index)) if self.reuse_buffers else None
            if self.device.type == "cpu":
                images = self.augment(self._source, generator=generator, index=index, out=out)
            else:
                batch = torch.from_numpy(self.dataset.images[index.numpy()]).pin_memory()
                batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
                images = self.augment(batch, generator=generator, out=out)
                labels = labels.to(self.device, non_blocking=True)
            yield images, labels

    def _buffer(self, step: int, n: int) -> torch.Tensor:
        shape = (n, 3, self.augment.size, self.augment.size)
        slot = step % 2
        if len(self._buffers) <= slot or self._buffers[slot].shape != shape:
            buffer = torch.empty(shape, device=self.device, memory_format=torch.channels_last)
            self._buffers[slot:slot + 1] = [buffer]
        return self._buffers[slot]


def _resize(images: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"Expected a (B, 3, H, W) tensor; got {shape}. A cache's images are (N, S, S, 3): use "
                         "CachedDataset.batch(indices) or .tensor(), which permute them.")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"Expected uint8 or floating images; got {images.dtype}.")


def _memory_format(images: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _cpu_threads() -> int:
    return max(1, min(2, torch.get_num_threads(), os.cpu_count() or 1))


def _parallel(work: Any, n: int, threads: int) -> None:
    """Run ``work(range)`` over ``range(n)`` split into ``threads`` interleaved parts (torch releases the GIL)."""
    global _POOL
    if threads <= 1 or n < 8:
        work(range(n))
        return
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dml-augment")
    for future in [_POOL.submit(work, range(k, n, threads)) for k in range(threads)]:
        future.result()
