"""Benchmark: dml.eval.retrieval_metrics against pytorch-metric-learning's AccuracyCalculator at SOP scale.

Generates Stanford-Online-Products-like test embeddings (60,502 × 512 float32, 11,316 classes of 2-12 images,
mean ≈ 5.35; clustered so the metrics are far from 0 and 1), then evaluates them twice, each time in a fresh child
process so the peak memories are separate and fair:

* ours: ``retrieval_metrics(x, y, ks=(1, 10, 100, 1000), include=("recall", "map@r", "r_precision"))``
* PML: ``AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
  k="max_bin_count").get_accuracy(x, y)`` (faiss, exact ``IndexFlatL2``; the embeddings are L2-normalised, so
  its L2 ranking is our cosine ranking)

and prints time, peak RSS (absolute, and the increase over the child's RSS after imports and data loading), the
PML/ours ratios and both sets of metric values. Usage::

    python benchmarks/bench_retrieval.py            # SOP scale (about a minute)
    python benchmarks/bench_retrieval.py --quick    # 5,000 embeddings, a few seconds
    python benchmarks/bench_retrieval.py --n 20000 --dim 128 --json out.json
    python benchmarks/bench_retrieval.py --skip-pml --method rows   # the other exact route only

Not a timed test: numbers depend on the machine (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOP_TEST_IMAGES = 60_502
SOP_TEST_CLASSES = 11_316


def sop_like_labels(n: int, seed: int, min_size: int = 2, max_size: int = 12) -> np.ndarray:
    """Class ids for ``n`` items with SOP's test class-size profile: sizes 2-12, mean ≈ 5.35, more small classes."""
    rng = np.random.default_rng(seed)
    num_classes = max(1, round(n * SOP_TEST_CLASSES / SOP_TEST_IMAGES))
    sizes_range = np.arange(min_size, max_size + 1)
    probs = np.exp(-0.2 * sizes_range)
    probs /= probs.sum()  # mean ≈ 5.35 for the 2..12 range
    sizes = rng.choice(sizes_range, size=num_classes, p=probs)
    # Nudge random classes up or down (within the 2..12 bounds) until the sizes add up to n exactly.
    while sizes.sum() != n:
        i = rng.integers(num_classes)
        if sizes.sum() < n and sizes[i] < max_size:
            sizes[i] += 1
        elif sizes.sum() > n and sizes[i] > min_size:
            sizes[i] -= 1
    labels = np.repeat(np.arange(num_classes), sizes)
    return labels[rng.permutation(n)]


def clustered_embeddings(labels: np.ndarray, dim: int, seed: int, noise: float = 1.6) -> np.ndarray:
    """L2-normalised ``float32`` embeddings: a random centre per class plus per-item noise (``noise`` × centre scale,
    varying by class so some classes are tight and some diffuse)."""
    rng = np.random.default_rng(seed + 1)
    num_classes = int(labels.max()) + 1
    centres = rng.standard_normal((num_classes, dim), dtype=np.float32)
    spread = noise * rng.uniform(0.5, 1.5, size=num_classes).astype(np.float32)
    x = centres[labels]
    x += spread[labels, None] * rng.standard_normal((labels.size, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(which: str, data: str, out: str, method: str = "auto") -> None:
    """Run one evaluation in this (fresh) process and write timing, memory and metrics to ``out``."""
    import torch

    if which == "ours":
        import functools

        import dml.eval.ranking
        import dml.eval.retrieval
        from dml.eval import retrieval_metrics

        if method != "auto":  # internal switch between the two exact routes of dml.eval.ranking
            dml.eval.retrieval.rank_statistics = functools.partial(dml.eval.ranking.rank_statistics, method=method)
    else:
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    loaded = np.load(data)
    x, y = loaded["x"], loaded["y"]
    baseline = _rss_bytes()
    start = time.perf_counter()
    if which == "ours":
        res = retrieval_metrics(x, y, ks=(1, 10, 100, 1000), include=("recall", "map@r", "r_precision"))
        metrics = {
            "R@1 / P@1": res["recall@1"],
            "R@10": res["recall@10"],
            "R@100": res["recall@100"],
            "R@1000": res["recall@1000"],
            "MAP@R": res["map@r"],
            "R-precision": res["r_precision"],
        }
    else:
        calc = AccuracyCalculator(
            include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
            k="max_bin_count",
            device=torch.device("cpu"),
        )
        res = calc.get_accuracy(x, y)
        metrics = {
            "R@1 / P@1": res["precision_at_1"],
            "MAP@R": res["mean_average_precision_at_r"],
            "R-precision": res["r_precision"],
        }
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    Path(out).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss": peak,
                "baseline_rss": baseline,
                "metrics": {k: float(v) for k, v in metrics.items()},
                "threads": torch.get_num_threads(),
            }
        )
    )


def _run_child(which: str, data: str, method: str = "auto") -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        subprocess.run(
            [sys.executable, __file__, "--child", which, "--data", data, "--out", out, "--method", method], check=True
        )
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=SOP_TEST_IMAGES, help="number of embeddings (default: SOP test)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension")
    parser.add_argument("--quick", action="store_true", help="small run (n=5000) to check that everything works")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pml", action="store_true", help="time only dml.eval")
    parser.add_argument(
        "--method",
        choices=("auto", "rows", "tiles"),
        default="auto",
        help="route of dml.eval.ranking (auto: tiles for self-retrieval without duplicated vectors)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", choices=("ours", "pml"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.data, args.out, args.method)
        return {}
    n = 5_000 if args.quick else args.n

    labels = sop_like_labels(n, args.seed)
    x = clustered_embeddings(labels, args.dim, args.seed)
    sizes = np.bincount(labels)
    print(
        f"data: {n} x {args.dim} float32, {sizes.size} classes of {sizes.min()}-{sizes.max()} "
        f"(mean {sizes.mean():.2f}), seed {args.seed}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, y=labels)
        del x
        results = {"ours": _run_child("ours", data, args.method)}
        if not args.skip_pml:
            results["pml"] = _run_child("pml", data)

    mib = 2**20
    ours, pml = results["ours"], results.get("pml")
    rows = [
        ("time (s)", ours["seconds"], pml and pml["seconds"]),
        ("peak RSS (MiB)", ours["peak_rss"] / mib, pml and pml["peak_rss"] / mib),
        (
            "peak - baseline (MiB)",
            (ours["peak_rss"] - ours["baseline_rss"]) / mib,
            pml and (pml["peak_rss"] - pml["baseline_rss"]) / mib,
        ),
    ]
    print(f"\n{'':24s}{'dml.eval':>14s}{'PML':>14s}{'PML / ours':>12s}")
    for name, a, b in rows:
        print(f"{name:24s}{a:14.2f}" + (f"{b:14.2f}{b / a:12.2f}" if b is not None else ""))
    print(f"\n{'metric':24s}{'dml.eval':>14s}{'PML':>14s}{'difference':>12s}")
    for name, a in ours["metrics"].items():
        b = pml["metrics"].get(name) if pml else None
        print(f"{name:24s}{a:14.6f}" + (f"{b:14.6f}{a - b:12.2e}" if b is not None else ""))
    print(f"\n(torch threads: {ours['threads']}; CPU count: {os.cpu_count()})")
    if args.json:
        from dml.utils import atomic_save_json, run_info

        atomic_save_json(
            {
                "n": n,
                "dim": args.dim,
                "seed": args.seed,
                "method": args.method,
                "results": results,
                "provenance": run_info(seeds=args.seed),
            },
            args.json,
        )
    return results


if __name__ == "__main__":
    main()
