"""Small pieces every reproduction page repeats: where its runs go, a quiet trainer, curves with an epoch 0."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dml.reproduce.experiment import Experiment, find_root
from dml.reproduce.runs import RunResult, epoch_curve


def quiet(enabled: bool = True) -> contextlib.AbstractContextManager:
    """Hide the trainer's per-epoch lines (stdout) when ``enabled``; the page's tables summarise them."""
    return contextlib.redirect_stdout(io.StringIO()) if enabled else contextlib.nullcontext()


def run_folder(
    experiment: Experiment, *, output_dir: str | Path, dataset: str, builtin: bool, root: str | Path | None = None
) -> Path:
    """Where a page trains: a fresh temporary folder for the built-in-data profiles (a book build never writes
    into the repository), else ``output_dir/<dataset>``, a relative ``output_dir`` being taken from ``root``
    (default: :func:`~dml.reproduce.find_root` of the experiment folder, like the printed ``dml train`` lines)."""
    if builtin:
        return Path(tempfile.mkdtemp(prefix=f"dml-{experiment.paper}-")) / output_dir / dataset
    base = Path(output_dir)
    if not base.is_absolute():
        base = (
            Path(root if root is not None else find_root(experiment.folder, argument="output_dir as an absolute path"))
            / base
        )
    return base / dataset


def chance_recall(labels: Sequence[Any]) -> float:
    """R@1 of a random ranking: the probability that a random other image has the query's label,
    :math:`\\sum_c n_c (n_c - 1) / (N (N - 1))`."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    total = int(counts.sum())
    if total < 2:
        raise ValueError(f"chance_recall needs at least two labels; got {total}. Pass a whole split's labels.")
    return float(np.sum(counts * (counts - 1)) / (total * (total - 1)))


def curve_from_epoch_zero(
    results: Sequence[RunResult], key: str, epoch0: Mapping[int, Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~dml.reproduce.epoch_curve` of ``key`` with the epoch-0 records (by seed) prepended: ``(epochs,
    mean, std)`` over the seeds, NaN-aware (an undefined epoch-0 value is skipped)."""
    epochs, mean, std = epoch_curve(results, key)
    start = np.array([np.nan if epoch0[r.seed].get(key) is None else epoch0[r.seed][key] for r in results], dtype=float)
    with np.errstate(invalid="ignore"):
        return np.r_[0, epochs], np.r_[np.nanmean(start), mean], np.r_[np.nanstd(start), std]
