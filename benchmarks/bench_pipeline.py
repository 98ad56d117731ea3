"""Benchmark: images per second of the JPEG input pipeline against the cached one, at 224×224, on this machine.

Writes ``--images`` JPEG files (default 2,000 at 500×375, quality 90: the size of a typical CUB-200-2011 photo)
into a temporary folder, with 100 classes of 20 images, then measures, in one run, with the same P×K batches
(``PKSampler``, 32 classes × 4 images = 128) and the same augmentation (``RandomResizedCrop(224)`` →
horizontal flip → ImageNet normalisation):

* **JPEG, PIL**: ``PIL.Image.open`` + ``torchvision.transforms`` in a ``DataLoader`` with 2 workers, the way
  most DML code reads CUB;
* **JPEG, torchvision.io**: ``torchvision.io.decode_jpeg`` + ``transforms.v2`` on ``uint8`` tensors, 2 workers;
* **cache build**: the one-off cost of ``dml.data.cache.write_cache`` (2 processes, PIL draft mode);
* **cached**: ``CachedBatchLoader`` over the memory-mapped cache with ``BatchAugment`` in the main process, with
  a new tensor per batch (the default) and with ``reuse_buffers=True``;
* **cached, uint8 only**: one fancy index per batch, the CPU's whole share of the work when a GPU augments.

Throughput counts the images delivered as normalised ``float32`` batches per second of one epoch, after one
warm-up batch per pipeline (worker start-up excluded). The pipelines take turns, epoch by epoch, ``--repeats``
times, so a busy spell on a shared machine hits all of them; the best epoch estimates the quiet-machine rate and
the median shows the spread. Usage::

    python benchmarks/bench_pipeline.py                 # about two minutes on 2 cores
    python benchmarks/bench_pipeline.py --images 500 --repeats 1 --json out.json

Not a timed test: the numbers depend on the machine and on what else runs on it (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dml.data import PKSampler
from dml.data.augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, CachedBatchLoader
from dml.data.cache import CachedDataset, write_cache

SIZE = 224
P, K = 32, 4


class JpegFolder(Dataset):
    """Image files and labels; ``mode`` picks the decoder: ``"pil"`` or ``"torchvision"``."""

    def __init__(self, paths: list[Path], labels: np.ndarray, mode: str) -> None:
        import torchvision.transforms as T
        import torchvision.transforms.v2 as T2

        self.paths, self.labels, self.mode = paths, labels, mode
        if mode == "pil":
            self.transform = T.Compose(
                [
                    T.RandomResizedCrop(SIZE),
                    T.RandomHorizontalFlip(),
                    T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                ]
            )
        else:
            self.transform = T2.Compose(
                [
                    T2.RandomResizedCrop(SIZE, antialias=True),
                    T2.RandomHorizontalFlip(),
                    T2.ToDtype(torch.float32, scale=True),
                    T2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                ]
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.mode == "pil":
            with Image.open(self.paths[index]) as image:
                image = image.convert("RGB")
        else:
            import torchvision.io as io

            image = io.decode_jpeg(io.read_file(str(self.paths[index])), mode=io.ImageReadMode.RGB)
        return self.transform(image), int(self.labels[index])


def write_jpegs(folder: Path, n: int, classes: int, seed: int) -> tuple[list[Path], np.ndarray]:
    """``n`` 500×375 JPEGs of smooth colour fields with texture and noise (compress like photos, not like noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32) / 375.0
    paths, labels = [], np.repeat(np.arange(classes), -(-n // classes))[:n]
    for i in range(n):
        freq, phase = rng.uniform(1, 8, (3, 2)), rng.uniform(0, 2 * np.pi, 3)
        image = np.stack(
            [0.5 + 0.35 * np.sin(freq[c, 0] * 2 * np.pi * xx + freq[c, 1] * 3 * yy + phase[c]) for c in range(3)], -1
        )
        image += rng.normal(0, 0.04, image.shape).astype(np.float32)
        path = folder / f"{labels[i]:03d}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.uint8(np.clip(image, 0, 1) * 255)).save(path, quality=90)
        paths.append(path)
    return paths, labels


def epoch_rate(batches) -> float:
    """Images per second of one pass over ``batches``."""
    count, start = 0, time.perf_counter()
    for images, _ in batches:
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per pipeline, interleaved")
    parser.add_argument("--cache-size", type=int, default=288, help="side S of the cached squares")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers and cache-build processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "load_average_before": os.getloadavg()[0],
        "images": args.images,
        "size": SIZE,
        "batch": P * K,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths, labels = write_jpegs(tmp / "jpeg", args.images, args.classes, args.seed)
        results["mean_jpeg_kib"] = round(float(np.mean([p.stat().st_size for p in paths])) / 1024, 1)

        class Files:  # the cache builder needs paths and labels only
            split = "train"

        Files.paths, Files.labels = paths, labels
        start = time.perf_counter()
        cache = CachedDataset(
            write_cache(Files, tmp / "cache", size=args.cache_size, workers=args.workers, source="bench-jpegs")
        )
        results["cache_build_s"] = time.perf_counter() - start

        def gathered(sampler):  # the CPU's share when a GPU augments: one fancy index per batch, uint8
            for indices in sampler:
                yield cache.batch(indices), None

        pipelines = {}  # name -> (sampler, a function returning one epoch's batches)
        for mode in ("pil", "torchvision"):
            sampler = PKSampler(labels, p=P, k=K, seed=args.seed)
            loader = DataLoader(
                JpegFolder(paths, labels, mode),
                batch_sampler=sampler,
                num_workers=args.workers,
                persistent_workers=True,
            )
            pipelines[f"jpeg_{mode}"] = (sampler, lambda loader=loader: loader)
        for name, reuse in (("cached", False), ("cached_reuse", True)):
            sampler = PKSampler(labels, p=P, k=K, seed=args.seed)
            loader = CachedBatchLoader(cache, sampler, BatchAugment(size=SIZE), seed=args.seed, reuse_buffers=reuse)
            pipelines[name] = (sampler, lambda loader=loader: loader)
        sampler = PKSampler(labels, p=P, k=K, seed=args.seed)
        pipelines["cached_uint8_gather"] = (sampler, lambda sampler=sampler: gathered(sampler))

        for sampler, batches in pipelines.values():  # warm-up: worker start-up, first allocations
            sampler.set_epoch(0)
            next(iter(batches()))
        rates: dict[str, list[float]] = {name: [] for name in pipelines}
        for repeat in range(1, args.repeats + 1):  # interleaved, so a busy spell hits every pipeline alike
            for name, (sampler, batches) in pipelines.items():
                sampler.set_epoch(repeat)
                if hasattr(batches(), "set_epoch"):
                    batches().set_epoch(repeat)
                rates[name].append(epoch_rate(batches()))
    results["load_average_after"] = os.getloadavg()[0]
    for name, values in rates.items():
        results[f"{name}_images_per_s"] = {
            "best": max(values),
            "median": float(np.median(values)),
            "all": [round(v, 1) for v in values],
        }
    best = {name: results[f"{name}_images_per_s"]["best"] for name in rates}
    results["cached_over_best_jpeg"] = best["cached"] / max(best["jpeg_pil"], best["jpeg_torchvision"])

    print(
        f"machine: {results['machine']}; load average {results['load_average_before']:.2f} before, "
        f"{results['load_average_after']:.2f} after"
    )
    print(
        f"{args.images} JPEGs of 500×375 (mean {results['mean_jpeg_kib']} KiB), batches of {P * K}, "
        f"RandomResizedCrop({SIZE}) + flip + normalise; best and median of {args.repeats} epochs"
    )
    labels_text = {
        "jpeg_pil": f"JPEG, PIL + torchvision.transforms, {args.workers} workers",
        "jpeg_torchvision": f"JPEG, torchvision.io + transforms.v2, {args.workers} workers",
        "cached": "cached + BatchAugment, main process",
        "cached_reuse": "same, reuse_buffers=True",
        "cached_uint8_gather": "cached uint8 batches only (GPU augments)",
    }
    for name, text in labels_text.items():
        r = results[f"{name}_images_per_s"]
        print(f"  {text:48s} {r['best']:7.0f} best {r['median']:7.0f} median images/s")
    print(
        f"  cache build (S={args.cache_size}, {args.workers} processes, once): {results['cache_build_s']:.1f} s "
        f"({args.images / results['cache_build_s']:.0f} images/s)"
    )
    print(f"  cached / best JPEG pipeline (best epochs): {results['cached_over_best_jpeg']:.1f}×")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
