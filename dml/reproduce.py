"""Reproduction experiments: a paper's recipes as YAML files next to its notebook, run over methods and seeds.

A reproduction lives in a folder next to its notebook (``notebooks/<paper>/``):

* ``experiment.yaml``: the paper's short name and title, the **methods** compared (each a list of
  ``key.sub=value`` config overrides; ``{seed}`` in an override becomes the run's seed, e.g. to draw the synthetic
  data with it), per-dataset method overrides (the released per-method learning rates), and
  the **profiles** (``smoke``, ``medium``: CPU, built-in data; ``full``: GPU, the real benchmark), each with its
  seeds and overrides;
* ``<dataset>.yaml``: one complete :mod:`dml.train` config per dataset (the headline method's recipe), so that any
  run is also a ``dml train`` command line (:meth:`Experiment.command`);
* ``published.yaml``: the paper's and the released code's result tables, each tagged with its source
  (``../shared/references/papers.md`` provenance tags).

:func:`run_methods` trains every (method, seed) pair in its own folder and, like the released code, reports the
**last** epoch. A finished run whose saved ``config.yaml`` matches is reused and an interrupted one is resumed from
its checkpoint, so a Colab session that disconnects halfway through 15 full runs loses at most one epoch.
:func:`summarize` gives mean ± std over seeds (NumPy's ``std`` with ``ddof=0``, the population standard deviation).
:func:`save_full_run` writes ``results/<paper>/<dataset>.json`` with the commit, date, GPU, seeds and the resolved
config of every method; :func:`comparison_table` sets the published numbers and this suite's recorded ones side by
side.
"""
from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dml.train.config import Config, ConfigError, from_dict, load_config, to_dict
from dml.utils import atomic_save_json, run_info

#: File names in an experiment folder that are not dataset configs.
RESERVED = ("experiment.yaml", "published.yaml")
#: The repository's ``results/`` folder (full runs are recorded there).
RESULTS_ROOT = Path(__file__).resolve().parents[1] / "results"
_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DEVICES = ("cpu", "cuda")

EpochCallback = Callable[[int, Any], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Profile:
    """One way to run an experiment: ``dataset`` is fixed for the built-in-data profiles (``None``: any dataset
    with a config), ``device`` the hardware it is meant for, ``overrides`` applied to every run."""

    name: str
    dataset: str | None
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    device: str


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


@dataclass
class Experiment:
    """A paper's reproduction folder, loaded by :func:`load_experiment`."""

    paper: str
    title: str
    folder: Path
    methods: dict[str, tuple[str, ...]]
    dataset_methods: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def datasets(self) -> list[str]:
        """The datasets with a config file in the folder."""
        return sorted(p.stem for p in self.folder.glob("*.yaml") if p.name not in RESERVED)

    def config_path(self, dataset: str) -> Path:
        path = self.folder / f"{dataset}.yaml"
        if not path.is_file():
            raise ConfigError(f"Experiment {self.paper!r} has no config for dataset {dataset!r} ({path} is missing); "
                              f"choose one of {self.datasets()}.")
        return path

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise ValueError(f"profile={name!r} is not one of {sorted(self.profiles)} of experiment {self.paper!r}.")
        return self.profiles[name]

    def dataset_for(self, profile: str, dataset: str | None = None) -> str:
        """The dataset a profile runs on: its fixed built-in dataset, else ``dataset`` (which must then be given)."""
        fixed = self.profile(profile).dataset
        if fixed is not None:
            if dataset not in (None, fixed):
                raise ValueError(f"profile={profile!r} runs on the built-in dataset {fixed!r}, not {dataset!r}; use "
                                 f"profile='full' for a real benchmark ({self.real_datasets()}).")
            return fixed
        if dataset is None or dataset not in self.real_datasets():
            raise ValueError(f"profile={profile!r} needs a real benchmark: set dataset to one of "
                             f"{self.real_datasets()} (got {dataset!r}).")
        return dataset

    def real_datasets(self) -> list[str]:
        fixed = {p.dataset for p in self.profiles.values() if p.dataset is not None}
        return [d for d in self.datasets() if d not in fixed]

    def overrides(self, method: str, *, dataset: str, profile: str) -> list[str]:
        """The overrides of one run, in the order they apply: profile, method, the method on this dataset."""
        if method not in self.methods:
            raise ValueError(f"Unknown method {method!r} of experiment {self.paper!r}; choose one of "
                             f"{list(self.methods)}.")
        return (list(self.profile(profile).overrides) + list(self.methods[method])
                + list(self.dataset_methods.get(dataset, {}).get(method, ())))

    def config(self, method: str, *, dataset: str, profile: str, seed: int, output_dir: str | Path,
               overrides: Sequence[str] = ()) -> Config:
        """The resolved :class:`~dml.train.Config` of one run (``overrides`` apply last, before seed and folder)."""
        everything = [o.replace("{seed}", str(int(seed)))
                      for o in self.overrides(method, dataset=dataset, profile=profile) + list(overrides)]
        everything += [f"seed={int(seed)}", f"output_dir={output_dir}"]
        return load_config(self.config_path(dataset), everything)

    def command(self, method: str, *, dataset: str, profile: str, seed: int, output_dir: str | Path,
                overrides: Sequence[str] = ()) -> str:
        """The ``dml train`` command line that trains the same run (paths relative to the repository root)."""
        everything = [o.replace("{seed}", str(int(seed)))
                      for o in self.overrides(method, dataset=dataset, profile=profile) + list(overrides)]
        everything.append(f"seed={int(seed)}")
        try:
            config = self.config_path(dataset).relative_to(_NOTEBOOKS.parent)
        except ValueError:
            config = self.config_path(dataset)
        parts = ["dml", "train", str(config)] + [f"--set {shlex.quote(o)}" for o in everything]
        return " ".join(parts + ["--output-dir", shlex.quote(str(output_dir))])

    def results_path(self, dataset: str, root: str | Path | None = None) -> Path:
        return Path(root if root is not None else RESULTS_ROOT) / self.paper / f"{dataset}.json"


def load_experiment(folder: str | Path) -> Experiment:
    """Load ``folder/experiment.yaml``; a bare name (``"sct"``) is also looked up in the repository's notebooks/."""
    path = Path(folder)
    if not (path / "experiment.yaml").is_file() and (_NOTEBOOKS / path / "experiment.yaml").is_file():
        path = _NOTEBOOKS / path
    spec_path = path / "experiment.yaml"
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path} does not exist; an experiment folder holds experiment.yaml and one "
                                "config per dataset (see notebooks/README.md).")
    spec = yaml.safe_load(spec_path.read_text()) or {}
    unknown = sorted(set(spec) - {"paper", "title", "methods", "dataset_methods", "profiles"})
    if unknown or "paper" not in spec or not spec.get("methods"):
        raise ConfigError(f"{spec_path}: needs 'paper' and 'methods' (and may have 'title', 'dataset_methods', "
                          f"'profiles'); unknown keys: {unknown}.")
    profiles = {}
    for name, p in (spec.get("profiles") or {}).items():
        extra = sorted(set(p) - {"dataset", "seeds", "overrides", "device"})
        if extra:
            raise ConfigError(f"{spec_path}: profile {name!r} has unknown keys {extra}; valid: dataset, seeds, "
                              "overrides, device.")
        device = p.get("device", "cpu")
        if device not in DEVICES:
            raise ConfigError(f"{spec_path}: profile {name!r} device must be one of {list(DEVICES)}; got {device!r}.")
        profiles[name] = Profile(name=name, dataset=p.get("dataset"), seeds=tuple(int(s) for s in p.get("seeds", [0])),
                                 overrides=tuple(p.get("overrides") or ()), device=device)
    methods = {name: tuple(o or ()) for name, o in spec["methods"].items()}
    dataset_methods = {d: {m: tuple(o or ()) for m, o in per.items()}
                       for d, per in (spec.get("dataset_methods") or {}).items()}
    for dataset, per in dataset_methods.items():
        strange = sorted(set(per) - set(methods))
        if strange:
            raise ConfigError(f"{spec_path}: dataset_methods.{dataset} names unknown methods {strange}; methods are "
                              f"{list(methods)}.")
    return Experiment(paper=str(spec["paper"]), title=str(spec.get("title", spec["paper"])), folder=path.resolve(),
                      methods=methods, dataset_methods=dataset_methods, profiles=profiles)


def check_device(config: Config, *, profile: str) -> None:
    """Refuse a run whose config asks for CUDA on a machine without it, before anything is built: the full recipe
    would take weeks on a CPU. (An explicit ``device=cpu`` override, e.g. for a plumbing test, is honoured.)"""
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"profile={profile!r} runs the released recipe (ResNet-50, the real benchmark) and needs a "
                           "CUDA GPU, but torch.cuda.is_available() is False. On Colab choose Runtime → Change "
                           "runtime type → GPU; on a CPU use profile='medium' (built-in data, minutes).")


def run_methods(experiment: Experiment, methods: Sequence[str], *, dataset: str, profile: str,
                seeds: Sequence[int], output_dir: str | Path, overrides: Sequence[str] = (),
                callback: Callable[[Config], EpochCallback | None] | None = None,
                log: Callable[[str], None] | None = print) -> dict[str, list[RunResult]]:
    """Train every method with every seed, each in ``output_dir/<method>/seed<seed>``; return the runs by method.

    ``callback(config)`` may return an ``on_epoch_end`` hook for that run (e.g.
    :func:`dml.diagnostics.diagnostics_callback`); its numbers land in the run's history. A folder whose
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
            config = experiment.config(method, dataset=dataset, profile=profile, seed=seed, output_dir=folder,
                                       overrides=overrides)
            check_device(config, profile=profile)
            resolved = to_dict(config)
            previous = _previous_run(folder, resolved)
            if previous == "finished":
                record = _read_json(folder / "metrics.json")
                runs[method].append(RunResult(method, int(seed), resolved, record["epochs"], record["final"], folder,
                                              reused=True))
                if log:
                    log(f"{method} seed {seed}: reusing the finished run in {folder}")
                continue
            if log:
                log(f"{method} seed {seed}: training ({config.train.epochs} epochs) in {folder}")
            hook = callback(config) if callback is not None else None
            final = train(config, resume=previous == "resumable", on_epoch_end=hook)
            record = _read_json(folder / "metrics.json")
            runs[method].append(RunResult(method, int(seed), resolved, record["epochs"], final, folder))
    return runs


def summarize(runs: Mapping[str, Sequence[RunResult]], metrics: Sequence[str], *,
              epoch: int | None = None) -> dict[str, dict[str, dict[str, Any]]]:
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
                    raise KeyError(f"{method} seed {result.seed} has no {metric!r} at epoch "
                                   f"{record.get('epoch', epoch)}; available: {sorted(record)}.")
                values.append(float(value))
            out[method][metric] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                                   "values": values, "seeds": [r.seed for r in results]}
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


def save_full_run(experiment: Experiment, dataset: str, runs: Mapping[str, Sequence[RunResult]], *,
                  metrics: Sequence[str], path: str | Path | None = None) -> dict[str, Any]:
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


def published_tables(experiment: Experiment, dataset: str | None = None) -> list[dict[str, Any]]:
    """The tables of ``published.yaml`` (all, or those of ``dataset``): dicts with ``title``, ``dataset``,
    ``source`` (the provenance tag), ``columns``, ``rows`` (``{method: [values]}``) and an optional ``note``."""
    path = experiment.folder / "published.yaml"
    if not path.is_file():
        return []
    tables = (yaml.safe_load(path.read_text()) or {}).get("tables", [])
    for table in tables:
        missing = {"title", "dataset", "source", "columns", "rows"} - set(table)
        if missing:
            raise ConfigError(f"{path}: table {table.get('title', '?')!r} lacks {sorted(missing)}.")
        for method, row in table["rows"].items():
            if len(row) != len(table["columns"]):
                raise ConfigError(f"{path}: table {table['title']!r}, row {method!r} has {len(row)} values for "
                                  f"{len(table['columns'])} columns.")
    return [t for t in tables if dataset is None or t["dataset"] == dataset]


def comparison_table(experiment: Experiment, dataset: str, *, recorded: Mapping[str, Any] | None = None,
                     columns: Mapping[str, str]) -> Any:
    """A pandas DataFrame of R@K-style numbers, one row per (source, method): every published table of
    ``dataset`` that has at least one of ``columns``' labels (the others show "–"), then this suite's
    ``recorded`` full run (if any).

    ``columns`` maps a table column label (``"R@1"``) to the recorded metric (``"recall@1"``); recorded values are
    shown in percent as ``mean ± std``, like the released README.
    """
    import pandas as pd

    rows = []
    for table in published_tables(experiment, dataset):
        if not set(table["columns"]) & set(columns):
            continue
        for method, values in table["rows"].items():
            cells = dict(zip(table["columns"], values))
            rows.append({"source": f"{table['title']} [{table['source']}]", "method": method,
                         **{label: cells.get(label, "–") for label in columns}})
    if recorded is not None:
        info = recorded.get("run_info", {})
        gpus = ", ".join(info.get("hardware", {}).get("gpus", [])) or "no GPU recorded"
        source = (f"this suite, {str(info.get('date', '?'))[:10]}, commit {str(info.get('commit'))[:10]}, {gpus}, "
                  f"seeds {info.get('seeds')}")
        for method, metrics in recorded["summary"].items():
            rows.append({"source": source, "method": method,
                         **{label: _pm(metrics.get(metric)) for label, metric in columns.items()}})
    return pd.DataFrame(rows, columns=["source", "method", *columns])


def _pm(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return "–"
    return f"{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f}"


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
    raise KeyError(f"{result.method} seed {result.seed} has no epoch {epoch} (it ran "
                   f"{len(result.history)} epochs).")


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
