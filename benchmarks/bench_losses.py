"""Benchmark: forward + backward time of dml.losses against pytorch-metric-learning on one CPU batch.

One batch of 512 × 512 ``float32`` embeddings, 128 classes × 4 images (a random centre per class plus noise, so
positive pairs are more similar than negative ones and every loss has active terms). For each loss with a
pytorch-metric-learning (PML) counterpart, both sides run forward + backward on the same inputs (proxy losses with
PML's proxies copied into ours); the script prints the median time over ``--repeats`` runs after one warm-up, the
ratio PML / ours, and the max abs difference of the loss values and of the embedding gradients. Losses without a PML
counterpart are timed on our side only. Usage::

    python benchmarks/bench_losses.py                  # everything; PML's lifted structure alone takes about a minute
    python benchmarks/bench_losses.py --quick          # 2 repeats, and any PML loss slower than 5 s is not run
    python benchmarks/bench_losses.py --only margin lifted_structure --repeats 10
    python benchmarks/bench_losses.py --threads 1 --json results.json

A side whose warm-up alone takes longer than ``--cap`` seconds (default 5) is not repeated: its warm-up time is
reported (marked ``1×``). On a machine whose cores are busy with other jobs, use ``--threads 1``: with more
threads than free cores every parallel operator waits for its slowest thread (milliseconds per operator). Not a
timed test: numbers depend on the machine (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning import losses as pml_losses

import dml.losses
from dml.mining import Miner, Triplets

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AllTriplets(Miner):
    """Every (anchor, positive, negative) triplet, as PML's MarginLoss forms by default (``triplets_per_anchor="all"``).

    Built in O(#triplets) by expanding each positive pair over its anchor's negatives, not from an N^3 mask.
    """

    def mine(self, sim: torch.Tensor, labels: torch.Tensor) -> Triplets:
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchor, positive = pos.nonzero(as_tuple=True)
        negatives = torch.argsort(same.to(torch.uint8), dim=1, stable=True)  # each row: its negatives first
        repeats = (~same).sum(dim=1)[anchor]
        anchor, positive = anchor.repeat_interleave(repeats), positive.repeat_interleave(repeats)
        starts = torch.cumsum(repeats, 0) - repeats
        offsets = torch.arange(len(anchor), device=labels.device) - starts.repeat_interleave(repeats)
        return Triplets(anchor, positive, negatives[anchor, offsets])


@dataclass
class Case:
    """One row: our loss, PML's (or None), and whether their values should agree on this batch."""

    label: str
    ours: Callable[[], torch.nn.Module]
    pml: Callable[[torch.nn.Module], LossFn] | None = None  # gets our module (to copy proxies into it)
    agree: bool = True
    slow_pml: bool = False  # PML builds a pairs × pairs matrix or loops in Python: skipped with --quick


def _pml_with_miner(loss: Any, miner: Any) -> LossFn:
    return lambda x, y: loss(x, y, miner(x, y))


def _copy_proxies(ours: torch.nn.Module, theirs: torch.Tensor) -> None:
    with torch.no_grad():
        ours.proxies.copy_(theirs)


def _proxy_case(
    name: str, pml_cls: Any, weight: Callable[[Any], torch.Tensor], classes: int, dim: int, **pml_kwargs: Any
) -> Case:
    def pml(ours: torch.nn.Module) -> LossFn:
        theirs = pml_cls(num_classes=classes, embedding_size=dim, **pml_kwargs)
        _copy_proxies(ours, weight(theirs))
        return theirs

    return Case(name, lambda: dml.losses.build(name, num_classes=classes, embedding_dim=dim), pml)


def cases(classes: int, dim: int) -> list[Case]:
    cosine = distances.CosineSimilarity
    build = dml.losses.build
    table = [
        Case(
            "contrastive",
            lambda: build("contrastive", pos_margin=1.0, neg_margin=0.5),
            lambda _: pml_losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.5, distance=cosine()),
        ),
        Case(
            "triplet (batch-all)",
            lambda: build("triplet", margin=0.1),
            lambda _: pml_losses.TripletMarginLoss(margin=0.1, distance=cosine()),
        ),
        Case(
            "margin (all triplets)",
            lambda: build("margin", learn_beta=False, miner=AllTriplets()),
            lambda _: pml_losses.MarginLoss(margin=0.2, beta=1.2),
        ),
        Case(
            "margin (default: all pairs)",
            lambda: build("margin"),
            lambda _: pml_losses.MarginLoss(margin=0.2, beta=1.2),
            agree=False,
        ),
        Case(
            "lifted_structure",
            lambda: build("lifted_structure"),
            lambda _: pml_losses.LiftedStructureLoss(neg_margin=1.0, pos_margin=0.0),
            slow_pml=True,
        ),
        Case(
            "lifted_structure (generalized)",
            lambda: build("lifted_structure", variant="generalized"),
            lambda _: pml_losses.GeneralizedLiftedStructureLoss(neg_margin=1.0, pos_margin=0.0),
        ),
        Case(
            "npair (temperature 1)",
            lambda: build("npair", temperature=1.0),
            lambda _: pml_losses.NPairsLoss(distance=cosine()),
        ),
        Case(
            "multi_similarity (+ mining)",
            lambda: build("multi_similarity"),
            lambda _: _pml_with_miner(
                pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), miners.MultiSimilarityMiner(epsilon=0.1)
            ),
        ),
        Case(
            "multi_similarity (no mining)",
            lambda: build("multi_similarity", mining=False),
            lambda _: pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5),
        ),
        _proxy_case("proxy_nca", pml_losses.ProxyNCALoss, lambda m: m.proxies, classes, dim, softmax_scale=9),
        _proxy_case("proxy_anchor", pml_losses.ProxyAnchorLoss, lambda m: m.proxies, classes, dim),
        _proxy_case("normalized_softmax", pml_losses.NormalizedSoftmaxLoss, lambda m: m.W.t(), classes, dim),
    ]
    covered = {
        "contrastive",
        "triplet",
        "margin",
        "lifted_structure",
        "npair",
        "multi_similarity",
        "proxy_nca",
        "proxy_anchor",
        "normalized_softmax",
    }
    for name in dml.losses.available():
        if name not in covered:
            table.append(Case(f"{name} (no PML counterpart)", lambda name=name: build(name)))
    return table


def clustered_batch(
    classes: int, per_class: int, dim: int, seed: int, noise: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, dim, generator=generator)
    x = centres[labels] + noise * torch.randn(len(labels), dim, generator=generator)
    return x, labels


def run_once(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Seconds for one forward + backward, the loss value and the embedding gradient."""
    x = x.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    loss = fn(x, y)
    loss.backward()
    return time.perf_counter() - start, loss.detach(), x.grad


def timed(
    fn: LossFn, x: torch.Tensor, y: torch.Tensor, repeats: int, cap: float
) -> tuple[float, int, torch.Tensor, torch.Tensor]:
    """Median seconds after a warm-up (or the warm-up alone if it exceeds ``cap``), runs, value, gradient."""
    warm, value, grad = run_once(fn, x, y)
    if warm > cap:
        return warm, 1, value, grad
    times = [run_once(fn, x, y)[0] for _ in range(repeats)]
    return statistics.median(times), repeats, value, grad


def _ms(seconds: float | None, runs: int) -> str:
    if seconds is None:
        return "–"
    text = f"{seconds * 1e3:,.1f}" if seconds < 10 else f"{seconds:,.1f} s"
    return text + (" (1×)" if runs == 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cap", type=float, default=5.0, help="seconds; slower warm-ups are not repeated")
    parser.add_argument("--quick", action="store_true", help="2 repeats; skip PML losses known to take minutes")
    parser.add_argument("--only", nargs="*", help="run only rows whose label starts with one of these")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y = clustered_batch(args.classes, args.per_class, args.dim, args.seed)
    print(
        f"batch {len(y)} × {args.dim} float32 ({args.classes} classes × {args.per_class}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.1f}; median of {repeats} after a warm-up\n"
    )
    header = (
        "| loss | ours (ms) | PML (ms) | PML / ours | max abs diff, loss | max abs diff, gradient |\n"
        "|---|---|---|---|---|---|"
    )
    print(header)
    rows = []
    for case in cases(args.classes, args.dim):
        if args.only and not any(case.label.startswith(prefix) for prefix in args.only):
            continue
        torch.manual_seed(args.seed)
        ours = case.ours()
        theirs = case.pml(ours) if case.pml is not None else None
        t_ours, n_ours, v_ours, g_ours = timed(ours, x, y, repeats, args.cap)
        row: dict[str, Any] = {"loss": case.label, "ours_s": t_ours, "ours_runs": n_ours, "ours_value": float(v_ours)}
        t_pml = n_pml = None
        ratio = diff = grad_diff = "–"
        if theirs is not None and case.slow_pml and args.quick:
            ratio = "skipped (--quick)"
        elif theirs is not None:
            t_pml, n_pml, v_pml, g_pml = timed(theirs, x, y, repeats, args.cap)
            ratio = f"{t_pml / t_ours:.1f}"
            row.update(pml_s=t_pml, pml_runs=n_pml, pml_value=float(v_pml))
            if case.agree:
                row.update(value_diff=float((v_ours - v_pml).abs()), grad_diff=float((g_ours - g_pml).abs().max()))
                diff, grad_diff = f"{row['value_diff']:.1e}", f"{row['grad_diff']:.1e}"
            else:
                diff = grad_diff = "different loss"
        rows.append(row)
        print(
            f"| {case.label} | {_ms(t_ours, n_ours)} | {_ms(t_pml, n_pml or 0)} | {ratio} | {diff} | {grad_diff} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"batch": [len(y), args.dim], "classes": args.classes, "repeats": repeats, "rows": rows},
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()
