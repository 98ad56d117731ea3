"""Benchmark: exact top-100 search against faiss approximate search at Hotels-50K scale, on synthetic embeddings.

Hotels-50K (Stylianou et al., AAAI 2019) ranks its 17,954 TraffickCam test photos against 1,027,871 training images;
the released model embeds them in 256 dimensions. This script generates embeddings of that shape with a seed
(50,000 "hotels", each a random centre plus per-image noise, L2-normalised, so neighbours are neither trivial nor
random) and measures, each side in its own child process so the peak memories are separate:

* **exact**: the top 100 of every query by :func:`dml.search.query.exact_topk` (the suite's chunked ranking of
  :mod:`dml.eval.ranking`, exactly what ``dml search`` runs on an exact index: the gallery read into memory, then
  query chunks against it);
* **approximate**: :func:`dml.search.approximate.build_approximate` (what ``dml index`` builds: IVF from a
  million items, HNSW below, ``--kind`` to force one), its build time, then its query time for the same top 100;

and prints one table with both sides and their ratio, plus the recall@100 of the approximate lists against the exact
ones. Usage::

    python benchmarks/bench_search.py                  # full scale (minutes)
    python benchmarks/bench_search.py --scale 0.01     # 1 % of every size, seconds
    python benchmarks/bench_search.py --device cuda    # the exact side on the GPU (faiss stays on the CPU)

Not a timed test: numbers depend on the machine (benchmarks/README.md). The exact side must stay under 4 GiB of
peak memory at full scale; the script reports whether it does.
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

QUERIES, GALLERY, HOTELS, DIM, TOP_K = 17_954, 1_027_871, 50_000, 256, 100
LIMIT = 4 * 2**30  # bytes: the exact search's peak memory must stay under this


def hotel_embeddings(count: int, hotels: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """``count`` L2-normalised float32 rows: a random hotel's centre plus noise of 1.2× the centre's scale."""
    labels = rng.integers(0, hotels, size=count)
    x = centres[labels]
    x += 1.2 * rng.standard_normal((count, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _child(which: str, folder: Path, kind: str, device: str) -> dict:
    """One side, in this fresh process: its times, peak RSS and result rows (saved to ``folder``)."""
    import torch

    queries = np.load(folder / "queries.npy")
    gallery = np.load(folder / "gallery.npy", mmap_mode="r")
    k = min(TOP_K, len(gallery))
    record: dict = {"threads": torch.get_num_threads()}
    if which == "exact":
        from dml.search.query import exact_topk

        del gallery
        start = time.perf_counter()
        g = torch.from_numpy(np.load(folder / "gallery.npy")).to(device)  # as dml.search.query.rank reads an index
        _, rows = exact_topk(torch.from_numpy(queries).to(device), g, k)
        if device != "cpu":
            torch.cuda.synchronize()
            record["gpu_peak"] = torch.cuda.max_memory_allocated()
        record.update(build=0.0, query=time.perf_counter() - start)
        np.save(folder / "exact.npy", rows.cpu().numpy())
    else:
        from dml.search import approximate

        kind = approximate.choose_kind(len(gallery)) if kind == "auto" else kind
        start = time.perf_counter()
        index = approximate.build_approximate(gallery, kind)
        record["build"] = time.perf_counter() - start
        start = time.perf_counter()
        _, rows = approximate.approximate_search(index, queries, k)
        record.update(query=time.perf_counter() - start, kind=kind)
        np.save(folder / "approximate.npy", rows)
    record["peak_rss"] = _peak()
    return record


def _run_child(which: str, folder: Path, kind: str, device: str) -> dict:
    out = folder / f"{which}.json"
    command = [sys.executable, __file__, "--child", which, "--folder", str(folder), "--kind", kind, "--device", device]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def table(exact: dict, approx: dict, recall: float) -> str:
    """The side-by-side table (Markdown) of the two records and the recall."""
    mib = 2**20
    rows = [
        ("index build (s)", exact["build"], approx["build"]),
        ("top-100 of all queries (s)", exact["query"], approx["query"]),
        ("build + queries (s)", exact["build"] + exact["query"], approx["build"] + approx["query"]),
        ("peak RSS (MiB)", exact["peak_rss"] / mib, approx["peak_rss"] / mib),
        ("recall@100 vs exact", 1.0, recall),
    ]
    lines = [f"| | exact (chunked ranking) | faiss {approx['kind']} | exact / faiss |", "|---|---|---|---|"]
    for name, a, b in rows:
        ratio = f"{a / b:.2f}" if a and b else "-"
        fmt = "{:.4f}" if "recall" in name else "{:,.1f}"
        lines.append(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the Hotels-50K sizes (1.0)")
    parser.add_argument("--dim", type=int, default=DIM, help="embedding dimension (256)")
    parser.add_argument("--kind", choices=("auto", "ivf", "hnsw"), default="auto", help="the faiss index (auto)")
    parser.add_argument("--device", default="cpu", help="device of the exact side (cpu, cuda)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", choices=("exact", "approximate"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder = Path(args.folder)
        (folder / f"{args.child}.json").write_text(json.dumps(_child(args.child, folder, args.kind, args.device)))
        return {}
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    q, g, h = (max(2, round(n * args.scale)) for n in (QUERIES, GALLERY, HOTELS))
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((h, args.dim), dtype=np.float32)
    print(f"data: {q:,} queries x {g:,} gallery x {args.dim}-d float32, {h:,} hotels, seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        folder = Path(tmp)
        np.save(folder / "queries.npy", hotel_embeddings(q, h, args.dim, rng, centres))
        gallery = np.lib.format.open_memmap(folder / "gallery.npy", mode="w+", dtype=np.float32, shape=(g, args.dim))
        for start in range(0, g, 131072):  # in chunks: the parent never holds the whole gallery twice
            stop = min(g, start + 131072)
            gallery[start:stop] = hotel_embeddings(stop - start, h, args.dim, rng, centres)
        gallery.flush()
        del gallery
        exact = _run_child("exact", folder, args.kind, args.device)
        approx = _run_child("approximate", folder, args.kind, "cpu")
        from dml.search.approximate import recall_against_exact

        recall = recall_against_exact(np.load(folder / "approximate.npy"), np.load(folder / "exact.npy"))
    print(table(exact, approx, recall))
    under = exact["peak_rss"] < LIMIT
    print(
        f"exact search peak memory {exact['peak_rss'] / 2**30:.2f} GiB: {'under' if under else 'OVER'} the 4 GiB "
        f"limit; torch threads {exact['threads']}, load average {os.getloadavg()[0]:.1f}"
        + (f"; GPU peak {exact['gpu_peak'] / 2**30:.2f} GiB" if "gpu_peak" in exact else "")
    )
    result = {
        "queries": q,
        "gallery": g,
        "dim": args.dim,
        "hotels": h,
        "seed": args.seed,
        "device": args.device,
        "exact": exact,
        "approximate": approx,
        "recall@100": recall,
        "under_limit": under,
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
