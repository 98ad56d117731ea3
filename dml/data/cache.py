"""Decode a dataset once into a memory-mapped ``uint8`` array, so training epochs decode no JPEGs.

On a two-core Colab machine, decoding and resizing JPEGs is the bottleneck of DML training: PIL decodes a
500×375 CUB image in a few milliseconds, so two workers deliver a few hundred images per second while a GPU
could consume thousands. This module moves that work out of the training loop. :func:`build_cache` decodes
every image of a split once and stores it, resized, in ``images.npy``, a ``uint8`` array of shape
``(N, S, S, 3)`` that :class:`CachedDataset` memory-maps; an epoch then reads pixels straight from the page cache,
and :mod:`dml.data.augment` crops, flips and normalises whole batches at once.

Geometry (:func:`resize_center_square`). Each image is resized so that its **shorter side is S** (bilinear,
the longer side ``int(S * long / short)`` as in ``torchvision.transforms.Resize(S)``), then the **central
S×S square** is kept (``CenterCrop(S)``). The released recipe of Xuan et al. (ECCV 2020, arXiv:2007.12749: train
``Resize(281) → RandomCrop(256) → flip``, test ``Resize(256) → CenterCrop(256)``) stays reachable:

* with ``S = 281`` the cache *is* the ``Resize(281)`` step, and ``RandomCrop(256)`` runs on the cached square;
  the only difference is that crop offsets along the longer side are limited to the central square (on a 4:3
  CUB image, horizontal offsets span 25 instead of 119 pixels); vertical offsets and flips are unchanged;
* with any ``S ≥ 281``, resizing the square to 281 first gives the same region as ``Resize(281)`` followed by
  ``CenterCrop(281)``;
* the test transform ``Resize(256) → CenterCrop(256)`` keeps exactly the central square, so it is reproduced
  from any ``S ≥ 256`` up to a second bilinear resampling.

The default ``S = 288`` leaves room for both recipes and for ``RandomResizedCrop(224)``. Letterboxing (padding
to a square) would keep the whole long side but waste pixels on borders and change what a random crop sees;
it is not offered. JPEGs are decoded with PIL's ``draft()``, which lets libjpeg scale by 1/2, 1/4 or 1/8 during
decoding while keeping both sides ≥ S, so images larger than 2S decode several times faster; pixels then
differ slightly from a full decode followed by a resize. Other formats (PNG, in-memory arrays) are resized
exactly like torchvision's PIL path. EXIF orientation is ignored, as in the released code.

Files in a cache folder::

    images.npy       uint8 (N, S, S, 3), NumPy's .npy format (memory-mappable)
    labels.npy       int64 (N,)
    extras.npz       other per-image arrays of the source, when it has any (In-Shop ``is_query``, ...)
    manifest.json    source, split, size, count, fingerprint, per-channel mean/std, dml version, format

Atomicity and resumption. A build writes into ``<folder>.partial/`` and records which images are done in
``done.npy`` after their pixels are flushed; the manifest is written last and the folder is renamed into place
in one :func:`os.replace`. A cache folder therefore either holds a complete manifest or does not exist; an
interrupted build leaves only ``.partial``, which the next build with the same inputs resumes (and a build with
different inputs deletes).

Staleness. The manifest stores a fingerprint of the source: for file-backed datasets the relative paths, file
sizes and labels; for in-memory datasets a hash of the pixels and labels. :func:`open_cache` recomputes it from
the current dataset and raises :class:`StaleCacheError` naming the command that rebuilds the cache.

Disk space: ``N × S² × 3`` bytes, e.g. CUB-200-2011 (11,788 images) 2.9 GB at S = 288, Stanford Online Products
(120,053 images) 29.9 GB at S = 288 or 19.8 GB at S = 234.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dml import __version__
from dml.data.base import DMLDataset, Transform, check_split
from dml.data.files import pixel_box
from dml.data.images import FIX, CorruptImageError, MissingImageError, bad_image_message
from dml.data.registry import build, register
from dml.data.root import data_root
from dml.utils import atomic_save_json, atomic_write

CACHE_FORMAT = 1
DEFAULT_SIZE = 288
GEOMETRY = "shorter side to S (bilinear), then central S×S square"
_PARTIAL = ".partial"
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR  # Pillow < 9.1 has no Resampling enum
_DONE_EVERY = 8  # chunks between saves of the done mask during a build


class CacheMissingError(FileNotFoundError):
    """No complete cache exists at the expected folder."""


class StaleCacheError(RuntimeError):
    """A cache exists but was built from different source files (or a different format or size)."""


def cache_dir(name: str, *, split: str = "train", size: int = DEFAULT_SIZE,
              root: str | os.PathLike | None = None, source_kwargs: dict[str, Any] | None = None,
              cache_root: str | os.PathLike | None = None, dataset: Any = None) -> Path:
    """Where :func:`build_cache` puts the cache of dataset ``name``: ``<data root>/cache/<name>-<split>-<size>``.

    Dataset keyword arguments (e.g. ``num_classes`` for ``synthetic``) add a short hash to the folder name, so
    differently configured datasets never share a cache. A user's own images (``imagefolder``, ``imagelist``, whose
    ``root`` is their folder or list) are cached under the dml data folder's ``cache/`` (:func:`dml.data.data_root`
    without ``root``), never inside their folder, in ``<name>-<split>-<size>-<fingerprint>`` named by the
    :func:`fingerprint` of the split's list (``dataset``, built here when not given). ``cache_root`` replaces
    ``<data root>/cache``; a ``cache_root`` inside the user's data folder is refused (``ValueError``).
    """
    from dml.data.userdata import USER_DATASETS

    check_split(split)
    folder = f"{name}-{split}-{int(size)}"
    if name not in USER_DATASETS:
        if source_kwargs:
            folder += "-" + hashlib.sha256(json.dumps(source_kwargs, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return (Path(cache_root) if cache_root is not None else data_root(root) / "cache") / folder
    if dataset is None:
        dataset = build(name, split=split, root=root, **(source_kwargs or {}))
    base = (Path(cache_root) if cache_root is not None else data_root() / "cache").expanduser().resolve()
    data = Path(dataset.root).resolve()
    if base.is_relative_to(data):
        raise ValueError(f"The cache folder {base} would be inside the data folder {data}, where it would be read as "
                         "images; choose a cache folder outside it (data.cache_dir / --cache-dir).")
    return base / f"{folder}-{fingerprint(dataset).split(':')[-1][:12]}"


def rebuild_command(name: str, split: str, size: int, source_kwargs: dict[str, Any] | None = None) -> str:
    """The shell and Python commands that (re)build a cache, for error messages."""
    kwargs = "".join(f", {k}={v!r}" for k, v in sorted((source_kwargs or {}).items()))
    return (f"`dml data cache {name} --split {split} --size {size} --force` or, in Python, "
            f"`dml.data.build_cache({name!r}, split={split!r}, size={size}{kwargs}, force=True)`")


def fingerprint(dataset: Any) -> str:
    """A SHA-256 hex digest that changes when the dataset's images or labels change.

    File-backed datasets (with ``paths``): the paths relative to their common folder, each file's size, the
    labels and any crop ``boxes`` (so moving the data folder keeps the cache valid, but a truncated or replaced
    file does not). In-memory datasets (with ``images``): the pixel bytes and the labels. Anything else: every image as
    returned by ``load`` (slow; meant for small datasets).
    """
    h = hashlib.sha256()
    labels = np.asarray(dataset.labels, dtype=np.int64)
    h.update(labels.tobytes())
    boxes = getattr(dataset, "boxes", None)
    if boxes is not None:
        h.update(np.ascontiguousarray(boxes, dtype=np.float64).tobytes())
    paths = getattr(dataset, "paths", None)
    if paths is not None:
        paths = [Path(p) for p in paths]
        base = Path(os.path.commonpath([str(p) for p in paths])) if len(paths) > 1 else paths[0].parent
        if base in paths:  # a single file or identical paths
            base = base.parent
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError as error:
                raise MissingImageError(f"{bad_image_message(path)} {FIX}") from error
            h.update(f"{path.relative_to(base).as_posix()}\0{size}\n".encode())
        return "files:" + h.hexdigest()
    images = getattr(dataset, "images", None)
    if images is not None:
        h.update(np.ascontiguousarray(images).tobytes())
        return "pixels:" + h.hexdigest()
    for i in range(len(dataset)):
        h.update(dataset.load(i).numpy().tobytes())
    return "loaded:" + h.hexdigest()


def resize_center_square(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bilinear) and keep the central ``size``×``size`` square, as ``uint8``.

    Equivalent to ``torchvision.transforms.Resize(size)`` followed by ``CenterCrop(size)`` on a PIL image.
    """
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), _BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_resized(path: str | os.PathLike, size: int, *, draft: bool = True,
                   box: Sequence[float] | None = None) -> np.ndarray:
    """Decode the image file at ``path``, crop it to ``box`` if given, and return :func:`resize_center_square`.

    ``box`` is ``(left, top, right, bottom)`` in pixels of the full image, clipped to the image and rounded
    outwards, an empty box meaning the whole image: the convention of
    :class:`dml.data.ImageFileDataset` (e.g. ``cub200`` with ``bbox_crop=True``). ``draft=True`` lets libjpeg
    downscale by a power of two while decoding, keeping both sides of the (cropped) image ≥ ``size``.

    Raises:
        MissingImageError: the file does not exist (a ``FileNotFoundError``).
        CorruptImageError: the file cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingImageError(f"{bad_image_message(path)} {FIX}")
    try:
        with Image.open(path) as image:
            full = image.size
            if draft and image.format == "JPEG":
                bw, bh = full if box is None else (max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0))
                # PIL keeps the decoded size ≥ the requested one; ask for what leaves the box ≥ size.
                image.draft("RGB", (math.ceil(size * full[0] / bw), math.ceil(size * full[1] / bh)))
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"{bad_image_message(path, error)} {FIX}") from error
    if box is not None:
        sx, sy = image.size[0] / full[0], image.size[1] / full[1]
        image = image.crop(pixel_box((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), image.size))
    return resize_center_square(image, size)


def _decode_chunk(args: tuple[str, np.ndarray, list[str], np.ndarray | None, int, bool]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Worker: decode ``paths`` into rows ``indices`` of the memory-mapped array; return per-image statistics."""
    array_path, indices, paths, boxes, size, draft = args
    images = np.load(array_path, mmap_mode="r+")
    stats = np.empty((len(indices), 6), dtype=np.float64)
    for row, (index, path) in enumerate(zip(indices, paths)):
        pixels = decode_resized(path, size, draft=draft, box=None if boxes is None else boxes[row])
        images[index] = pixels
        stats[row] = _pixel_stats(pixels)
    images.flush()
    del images
    return indices, stats


def _pixel_stats(pixels: np.ndarray) -> np.ndarray:
    """Per-channel mean and mean square of one ``uint8`` H×W×3 image, on the [0, 1] scale."""
    channels = pixels.reshape(-1, 3).T.copy()
    histograms = np.stack([np.bincount(c, minlength=256) for c in channels]).astype(np.float64)
    levels = np.arange(256) / 255.0
    n = channels.shape[1]
    return np.concatenate([histograms @ levels / n, histograms @ levels ** 2 / n])


def write_cache(dataset: Any, directory: str | os.PathLike, *, size: int = DEFAULT_SIZE, workers: int = 2,
                source: str | None = None, source_kwargs: dict[str, Any] | None = None, chunk_size: int = 32,
                draft: bool = True, progress: bool = False) -> Path:
    """Decode every image of ``dataset`` once and write a cache folder at ``directory`` (see the module docstring).

    Args:
        dataset: A dataset with ``labels`` and either ``paths`` (image files, decoded in ``workers`` processes),
            ``images`` (a ``uint8`` N×H×W×3 array) or only ``load(i)``.
        directory: The cache folder to create. An existing complete cache there is replaced, atomically.
        size: Side S of the stored squares.
        workers: Decoding processes for file-backed datasets (``0``: decode in this process).
        source, source_kwargs: Registry name and keyword arguments of the dataset, recorded in the manifest so
            error messages can name the rebuild command.
        chunk_size: Images per task handed to a worker; also the granularity of resumption.
        draft: Use PIL's JPEG draft mode (see the module docstring).
        progress: Show a tqdm progress bar.

    Returns:
        ``directory`` as a :class:`~pathlib.Path`.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}.")
    directory = Path(directory)
    partial = directory.with_name(directory.name + _PARTIAL)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    count = int(labels.size)
    if count == 0:
        raise ValueError("The dataset is empty; there is nothing to cache.")
    split = getattr(dataset, "split", "all")
    plan = {"format": CACHE_FORMAT, "source": source or type(dataset).__name__, "split": split, "size": int(size),
            "count": count, "fingerprint": fingerprint(dataset), "geometry": GEOMETRY, "draft": bool(draft),
            "source_kwargs": source_kwargs or {}}

    array_path, done_path, stats_path = partial / "images.npy", partial / "done.npy", partial / "stats.npy"
    done = stats = None
    if partial.is_dir():
        with contextlib.suppress(OSError, ValueError):
            if json.loads((partial / "plan.json").read_text()) == plan:
                if np.load(array_path, mmap_mode="r").shape == (count, size, size, 3):
                    done, stats = np.load(done_path), np.load(stats_path)
        if done is None or done.shape != (count,) or stats.shape != (count, 6):
            shutil.rmtree(partial)
            done = None
    if done is None:
        partial.mkdir(parents=True)
        # Creates the (sparse) file with its .npy header; workers open it with mmap_mode="r+".
        np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8, shape=(count, size, size, 3)).flush()
        done, stats = np.zeros(count, dtype=bool), np.zeros((count, 6))
        _save_npy(done_path, done)
        _save_npy(stats_path, stats)
        atomic_save_json(plan, partial / "plan.json")

    todo = np.flatnonzero(~done)
    chunks = [todo[i:i + chunk_size] for i in range(0, todo.size, chunk_size)]
    bar = _progress(progress, total=count, initial=count - todo.size, desc=f"caching {plan['source']} ({split})")
    paths = getattr(dataset, "paths", None)
    results = _run_chunks(dataset, paths, chunks, str(array_path), size, draft, workers)
    try:
        for finished, (indices, chunk_stats) in enumerate(results, 1):
            done[indices] = True
            stats[indices] = chunk_stats
            bar.update(len(indices))
            if finished % _DONE_EVERY == 0:
                _save_npy(stats_path, stats)
                _save_npy(done_path, done)
    finally:  # also on an error or Ctrl-C: the chunks returned so far are flushed, so a rerun skips them
        results.close()  # stops the worker pool without decoding the remaining chunks
        bar.close()
        _save_npy(stats_path, stats)
        _save_npy(done_path, done)
    if not done.all():
        raise RuntimeError(f"Cache build of {plan['source']} finished with {int((~done).sum())} images missing; "
                           "run the build again to resume it.")

    mean = stats[:, :3].mean(0)
    std = np.sqrt(np.maximum(stats[:, 3:].mean(0) - mean ** 2, 0.0))
    _save_npy(partial / "labels.npy", labels)
    extras = per_image_arrays(dataset)
    if extras:
        with atomic_write(partial / "extras.npz") as handle:
            np.savez(handle, **extras)
    for leftover in (done_path, stats_path, partial / "plan.json"):
        leftover.unlink()
    manifest = {**plan, "dml_version": __version__, "mean": mean.round(6).tolist(), "std": std.round(6).tolist(),
                "files": {"images": "images.npy", "labels": "labels.npy",
                          **({"extras": "extras.npz"} if extras else {})},
                "extras": sorted(extras)}
    atomic_save_json(manifest, partial / "manifest.json")
    _replace_dir(partial, directory)
    return directory


def per_image_arrays(dataset: Any) -> dict[str, np.ndarray]:
    """The dataset's other per-image attributes (e.g. In-Shop's ``is_query``, Hotels-50K's ``chain_labels``,
    SOP's ``super_labels``): NumPy arrays of length N with numbers, booleans or strings, kept by the cache."""
    n = len(dataset.labels)
    found = {}
    for name, value in vars(dataset).items():
        if name.startswith("_") or name in ("labels", "boxes", "images", "paths") or not isinstance(value, np.ndarray):
            continue
        if value.ndim == 0 or value.shape[0] != n:
            continue
        if value.dtype.kind == "O":
            if not all(isinstance(v, str) for v in value.ravel()):
                continue
            value = value.astype(str)
        if value.dtype.kind in "biufU":
            found[name] = value
    return found


def _run_chunks(dataset: Any, paths: Sequence[Any] | None, chunks: list[np.ndarray], array_path: str, size: int,
                draft: bool, workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if paths is not None:
        boxes = getattr(dataset, "boxes", None)
        tasks = [(array_path, c, [str(paths[i]) for i in c], None if boxes is None else np.asarray(boxes)[c],
                  size, draft) for c in chunks]
        if workers > 0 and len(tasks) > 1:
            pool = ProcessPoolExecutor(max_workers=workers)
            try:
                yield from pool.map(_decode_chunk, tasks)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            yield from map(_decode_chunk, tasks)
        return
    images = np.load(array_path, mmap_mode="r+")
    source = getattr(dataset, "images", None)
    for chunk in chunks:
        stats = np.empty((len(chunk), 6))
        for row, index in enumerate(chunk):
            if source is not None:
                pixels = np.asarray(source[index], dtype=np.uint8)
            else:
                tensor = dataset.load(int(index)).clamp(0, 1).mul(255).round().to(torch.uint8)
                pixels = tensor.permute(1, 2, 0).numpy()
            if pixels.shape[:2] != (size, size):
                pixels = resize_center_square(Image.fromarray(pixels), size)
            images[index] = pixels
            stats[row] = _pixel_stats(pixels)
        images.flush()
        yield chunk, stats
    del images


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as handle:
        np.save(handle, array)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst``; an older ``dst`` is moved aside first, then deleted."""
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old)


def _progress(enabled: bool, **kwargs: Any) -> Any:
    from dml.utils.progress import tqdm

    return tqdm(disable=not enabled, leave=False, **kwargs)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the cache at ``directory``; :class:`CacheMissingError` if there is no complete cache."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        partial = directory.with_name(directory.name + _PARTIAL)
        hint = (f" An interrupted build left {partial}; building again resumes it." if partial.is_dir() else "")
        raise CacheMissingError(f"No dataset cache at {directory}.{hint} Build it with "
                                "`dml.data.build_cache(NAME, split=..., size=...)` (or `dml data cache NAME`).")
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError(f"a {type(manifest).__name__}, not a mapping")
    except (ValueError, UnicodeDecodeError) as error:
        raise StaleCacheError(f"The cache at {directory} is damaged: its manifest.json is not a valid manifest "
                              f"({error}). Delete the folder and build the cache again (`dml data cache NAME "
                              "--split SPLIT --size SIZE --force`).") from None
    if manifest.get("format") != CACHE_FORMAT:
        raise StaleCacheError(f"The cache at {directory} has format {manifest.get('format')} but this version of "
                              f"dml reads format {CACHE_FORMAT}. Rebuild it: "
                              + rebuild_command(manifest.get("source", "NAME"), manifest.get("split", "train"),
                                                manifest.get("size", DEFAULT_SIZE), manifest.get("source_kwargs")))
    return manifest


class CachedDataset(DMLDataset):
    """A cache folder written by :func:`write_cache`, read through a memory map.

    ``load(i)`` returns a ``float32`` 3×S×S tensor in [0, 1] (the :class:`~dml.data.DMLDataset` contract), so the
    cache is a drop-in replacement in a ``DataLoader``. The fast path is :meth:`batch`: one fancy index returns a
    whole ``uint8`` batch for :mod:`dml.data.augment`. ``images`` exposes the ``uint8`` (N, S, S, 3) memory map,
    which :func:`dml.viz.plot_image_grid` uses directly. The source's other per-image arrays
    (:func:`per_image_arrays`, e.g. In-Shop's ``is_query``) are restored as attributes named in ``extras``.

    Args:
        directory: The cache folder.
        transform: Applied by ``__getitem__`` to each ``float32`` image.
        expected_fingerprint: When given, a cache built from other sources raises :class:`StaleCacheError`.
    """

    def __init__(self, directory: str | os.PathLike, *, transform: Transform | None = None,
                 expected_fingerprint: str | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        m = self.manifest
        if expected_fingerprint is not None and expected_fingerprint != m["fingerprint"]:
            raise StaleCacheError(f"The cache at {self.directory} is stale: the files of {m['source']} "
                                  f"({m['split']}) changed since it was built (fingerprint differs). Rebuild it: "
                                  + rebuild_command(m["source"], m["split"], m["size"], m.get("source_kwargs")))
        try:
            labels = np.load(self.directory / m["files"]["labels"])
            super().__init__(split=m["split"], labels=labels, transform=transform)
            # Copy-on-write mapping: writable for torch.from_numpy, yet nothing is ever written back to the file.
            self.images = np.load(self.directory / m["files"]["images"], mmap_mode="c")
            self.extras = sorted(m.get("extras", []))
            if self.extras:
                with np.load(self.directory / m["files"]["extras"]) as arrays:
                    for name in self.extras:
                        setattr(self, name, arrays[name])
        except (OSError, ValueError, KeyError, EOFError) as error:  # missing, truncated or foreign array files
            raise StaleCacheError(f"The cache at {self.directory} is damaged ({type(error).__name__}: {error}). "
                                  "Delete the folder and rebuild it: "
                                  + rebuild_command(m["source"], m["split"], m["size"], m.get("source_kwargs"))
                                  ) from None
        if self.images.shape != (m["count"], m["size"], m["size"], 3) or len(labels) != m["count"]:
            raise StaleCacheError(f"The cache at {self.directory} is damaged: its arrays do not match its manifest. "
                                  "Delete the folder and rebuild it: "
                                  + rebuild_command(m["source"], m["split"], m["size"], m.get("source_kwargs")))

    @property
    def size(self) -> int:
        """Side length S of the cached squares."""
        return int(self.manifest["size"])

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel pixel mean of this split on the [0, 1] scale, measured while building the cache."""
        return tuple(self.manifest["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel pixel standard deviation of this split on the [0, 1] scale."""
        return tuple(self.manifest["std"])

    def tensor(self) -> torch.Tensor:
        """The whole cache as a ``uint8`` tensor view of shape (N, 3, S, S) (channels-last memory), no copy."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2)

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images ``indices`` as one ``uint8`` tensor (B, 3, S, S), channels-last in memory; one fancy index."""
        index = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self.images[index]).permute(0, 3, 1, 2)

    def load(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1).float().div_(255.0)

    def __repr__(self) -> str:
        m = self.manifest
        return (f"CachedDataset(source={m['source']!r}, split={self.split!r}, images={len(self)}, "
                f"classes={self.num_classes}, size={self.size})")


def build_cache(name: str, *, split: str = "train", size: int = DEFAULT_SIZE, root: str | os.PathLike | None = None,
                directory: str | os.PathLike | None = None, workers: int = 2, force: bool = False,
                draft: bool = True, progress: bool = True, cache_root: str | os.PathLike | None = None,
                **source_kwargs: Any) -> Path:
    """Build (or reuse) the cache of registered dataset ``name``; return its folder.

    An existing cache built from the same files is kept unless ``force=True``; a stale or damaged one is rebuilt; an
    interrupted build is resumed. ``source_kwargs`` are passed to ``dml.data.build`` (e.g. ``num_classes`` for
    ``synthetic``). ``directory`` defaults to :func:`cache_dir` (under ``cache_root`` when given).
    """
    dataset = build(name, split=split, root=root, **source_kwargs)
    directory = Path(directory) if directory is not None else cache_dir(
        name, split=split, size=size, root=root, source_kwargs=source_kwargs, cache_root=cache_root, dataset=dataset)
    if not force:
        with contextlib.suppress(CacheMissingError, StaleCacheError, KeyError, ValueError, OSError):
            m = read_manifest(directory)
            if m["fingerprint"] == fingerprint(dataset) and m["size"] == size and m["draft"] == draft:
                CachedDataset(directory)  # its arrays open (a damaged cache is rebuilt)
                return directory
    return write_cache(dataset, directory, size=size, workers=workers, source=name, source_kwargs=source_kwargs,
                       draft=draft, progress=progress)


def open_cache(name: str, *, split: str = "train", size: int = DEFAULT_SIZE, root: str | os.PathLike | None = None,
               directory: str | os.PathLike | None = None, transform: Transform | None = None, verify: bool = True,
               cache_root: str | os.PathLike | None = None, **source_kwargs: Any) -> CachedDataset:
    """Open the cache of registered dataset ``name`` built by :func:`build_cache`.

    With ``verify=True`` the source dataset is constructed (its file list only; no image is decoded) and its
    fingerprint compared with the manifest's, so a cache of changed files raises :class:`StaleCacheError`. If the
    source files are gone (deleted after caching to save disk), the cache is used with a warning.

    Raises:
        CacheMissingError: no complete cache exists; the message names the command that builds it.
        StaleCacheError: the cache was built from other files.
    """
    directory = Path(directory) if directory is not None else cache_dir(
        name, split=split, size=size, root=root, source_kwargs=source_kwargs, cache_root=cache_root)
    try:
        read_manifest(directory)
    except CacheMissingError as error:
        partial = directory.with_name(directory.name + _PARTIAL)
        state = (f"only an interrupted build is at {partial}, which building again resumes" if partial.is_dir()
                 else f"nothing at {directory}")
        command = rebuild_command(name, split, size, source_kwargs).replace(" --force", "").replace(", force=True", "")
        raise CacheMissingError(f"The cache of {name!r} ({split} split, size {size}) is missing ({state}). "
                                f"Build it with {command}.") from error
    expected = None
    if verify:
        try:
            expected = fingerprint(build(name, split=split, root=root, **source_kwargs))
        except FileNotFoundError as error:
            warnings.warn(f"Cannot check the cache at {directory} against its source ({error}); using it as is.",
                          stacklevel=2)
    return CachedDataset(directory, transform=transform, expected_fingerprint=expected)


@register("cached")
def _cached(*, split: str = "train", root: str | os.PathLike | None = None, transform: Transform | None = None,
            source: str = "", size: int = DEFAULT_SIZE, verify: bool = True,
            source_kwargs: dict[str, Any] | None = None) -> CachedDataset:
    """Registry entry: ``build("cached", split=..., source="cub200", size=288)`` opens that dataset's cache."""
    if not source:
        raise ValueError("The 'cached' dataset needs source=NAME, the registered dataset whose cache to open, "
                         "e.g. build('cached', split='train', source='cub200', size=288).")
    return open_cache(source, split=split, size=size, root=root, transform=transform, verify=verify,
                      **(source_kwargs or {}))

