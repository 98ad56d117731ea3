r"""Runs over methods and seeds: train (or reuse, or resume) each, then summarise the seeds.

:func:`run_methods` trains every (method, seed) pair in its own folder and, like the released code of Xuan et al.,
reports the **last** epoch. A finished run whose saved ``config.yaml`` matches is reused and an interrupted one is
resumed from its checkpoint. :func:`summarize` gives mean ± std over seeds, with NumPy's population standard
deviation, :math:`\sigma = \sqrt{\tfrac{1}{n}\sum_i (x_i - \bar x)^2}` (``ddof=0``).
:func:`save_full_run` records a full run (commit, date, GPU, seeds, resolved configs) as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dml.reproduce.experiment import Experiment, check_device
from dml.train.callbacks import Callback
from dml.train.config import Config, ConfigError, from_dict, to_dict
from dml.utils import atomic_save_json, run_info

EpochCallback = Callable[[int, Any], "dict[str, Any] | None"]


@dataclass(frozen=True)
class RunResult:
    """One trained (method, seed): its resolved config, per-epoch ``history`` and ``final`` record (the last
    epoch, as in ``metrics.json``), and the folder holding its checkpoint."""

    method: str
    seed: int
    config: dict[str, Any]
    history: list[dict[str, Any]]
    final: dict[str, Any]
    output_dir: Path
    reused: bool = False


def run_methods(
    experiment: Experiment,
    methods: Sequence[str],
    *,
    dataset: str,
    profile: str,
    seeds: Sequence[int],
    output_dir: str | Path,
    overrides: Sequence[str] = (),
    callback: Callable[[Config], EpochCallback | Callback | None] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, list[RunResult]]:
    """Train every method with every seed, each in ``output_dir/<method>/seed<seed>``; return the runs by method.

    ``callback(config)`` may return an ``on_epoch_end`` hook for that run (e.g.
    :func:`dml.diagnostics.diagnostics_callback`) or a :class:`dml.train.Callback` (e.g.
    :class:`~dml.reproduce.MarginBetaLog`); its numbers land in the run's history. A folder whose
    ``metrics.json`` is final and whose ``config.yaml`` equals the resolved config is reused without training (the
    hook is not re-run); one with a matching ``checkpoint.pt`` but no final record is resumed.
    """
    from dml.train import train

    if not seeds:
        raise ValueError("seeds is empty; give at least one seed.")
    runs: dict[str, list[RunResult]] = {}
    for method in methods:
        runs[method] = []
        for seed in seeds:
            folder = Path(output_dir) / _slug(method) / f"seed{seed}"
            config = experiment.config(
                method, dataset=dataset, profile=profile, seed=seed, output_dir=folder, overrides=overrides
            )
            check_device(config, profile=profile)
            resolved = to_dict(config)
            previous = _previous_run(folder, resolved)
            if previous == "finished":
                record = _read_json(folder / "metrics.json")
                runs[method].append(
                    RunResult(method, int(seed), resolved, record["epochs"], record["final"], folder, reused=True)
                )
                if log:
                    log(f"{method} seed {seed}: reusing the finished run in {folder}")
                continue
            if log:
                log(f"{method} seed {seed}: training ({config.train.epochs} epochs) in {folder}")
            hook = callback(config) if callback is not None else None
            hooks = {"callbacks": [hook]} if isinstance(hook, Callback) else {"on_epoch_end": hook}
            final = train(config, resume=previous == "resumable", **hooks)
            record = _read_json(folder / "metrics.json")
            runs[method].append(RunResult(method, int(seed), resolved, record["epochs"], final, folder))
    return runs


def summarize(
    runs: Mapping[str, Sequence[RunResult]], metrics: Sequence[str], *, epoch: int | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {metric: {"mean", "std", "values", "seeds"}}}`` at ``epoch`` (``None``: each run's last).

    ``std`` is NumPy's population standard deviation (``ddof=0``); one seed gives 0. A metric missing from a run
    (or ``None`` there) is an error naming it, not a silently shorter mean.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method, results in runs.items():
        out[method] = {}
        for metric in metrics:
            values = []
            for result in results:
                record = result.final if epoch is None else _epoch_record(result, epoch)
                value = record.get(metric)
                if value is None:
                    raise KeyError(
                        f"{method} seed {result.seed} has no {metric!r} at epoch "
                        f"{record.get('epoch', epoch)}; available: {sorted(record)}."
                    )
                values.append(float(value))
            out[method][metric] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "values": values,
                "seeds": [r.seed for r in results],
            }
    return out


def epoch_curve(results: Sequence[RunResult], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std)`` of ``key`` over the seeds of one method, epoch by epoch (``None`` becomes NaN)."""
    if not results:
        raise ValueError("no runs given")
    epochs = [r["epoch"] for r in results[0].history if key in r]
    if not epochs:
        raise KeyError(f"{key!r} is not in the history; recorded keys: {sorted(results[0].history[0])}.")
    table = np.array([[_number(_epoch_record(r, e).get(key)) for e in epochs] for r in results], dtype=float)
    with np.errstate(invalid="ignore"):
        return np.array(epochs), np.nanmean(table, axis=0), np.nanstd(table, axis=0)


def save_full_run(
    experiment: Experiment,
    dataset: str,
    runs: Mapping[str, Sequence[RunResult]],
    *,
    metrics: Sequence[str],
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Record a finished full-profile run in ``results/<paper>/<dataset>.json`` (atomically) and return it.

    The record holds the last-epoch summary (:func:`summarize`), each seed's value, the resolved config of every
    method (seed aside, the same for all its seeds), the seeds, and :func:`dml.utils.run_info` (commit, date,
    hardware with the GPU names, library versions).
    """
    seeds = sorted({r.seed for results in runs.values() for r in results})
    record = {
        "paper": experiment.paper,
        "dataset": dataset,
        "profile": "full",
        "metrics": list(metrics),
        "summary": summarize(runs, metrics),
        "epochs": {m: [r.final.get("epoch") for r in results] for m, results in runs.items()},
        "configs": {m: _without_seed(results[0].config) for m, results in runs.items() if results},
        "run_info": run_info(seeds=seeds),
    }
    atomic_save_json(record, path if path is not None else experiment.results_path(dataset))
    return record


def load_recorded(experiment: Experiment, dataset: str, root: str | Path | None = None) -> dict[str, Any] | None:
    """The recorded full run of ``dataset`` (:func:`save_full_run`), or ``None`` when there is none."""
    path = experiment.results_path(dataset, root)
    return _read_json(path) if path.is_file() else None


def _previous_run(folder: Path, resolved: dict[str, Any]) -> str | None:
    saved = folder / "config.yaml"
    if not saved.is_file():
        return None
    try:
        same = to_dict(from_dict(yaml.safe_load(saved.read_text()))) == resolved
    except (ConfigError, yaml.YAMLError):
        same = False
    if not same:
        return None
    metrics = folder / "metrics.json"
    if metrics.is_file() and _read_json(metrics).get("final"):
        return "finished"
    return "resumable" if (folder / "checkpoint.pt").is_file() else None


def _epoch_record(result: RunResult, epoch: int) -> dict[str, Any]:
    for record in result.history:
        if record.get("epoch") == epoch:
            return record
    raise KeyError(f"{result.method} seed {result.seed} has no epoch {epoch} (it ran {len(result.history)} epochs).")


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _without_seed(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("seed", "output_dir")}


def _slug(method: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in method)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    with open(path) as handle:
        return json.load(handle)
