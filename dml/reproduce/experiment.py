"""A paper's reproduction folder: its recipes as YAML files next to its notebook.

A reproduction lives in a folder next to its notebook (``notebooks/<paper>/``):

* ``experiment.yaml``: the paper's short name and title, the **methods** compared (each a list of
  ``key.sub=value`` config overrides; ``{seed}`` in an override becomes the run's seed, e.g. to draw the synthetic
  data with it), per-dataset method overrides (the released per-method learning rates), and
  the **profiles** (``smoke``, ``medium``: CPU, built-in data; ``full``: GPU, the real benchmark), each with its
  seeds and overrides;
* ``<dataset>.yaml``: one complete :mod:`dml.train` config per dataset (the headline method's recipe), so that any
  run is also a ``dml train`` command line (:meth:`Experiment.command`);
* ``published.yaml``: the paper's and the released code's result tables, each tagged with its source (a table or
  figure of the paper, or the README of a released repository at a commit).

Nothing here depends on where the package is installed: a bare experiment name and the default ``results/`` root
are found from the current directory (:func:`find_root`), or passed in.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dml.train.config import Config, ConfigError, load_config

#: File names in an experiment folder that are not dataset configs (search.yaml: the budget of dml.protocol).
RESERVED = ("experiment.yaml", "published.yaml", "search.yaml")
DEVICES = ("cpu", "cuda")


def find_root(start: str | Path | None = None, *, argument: str = "the folder") -> Path:
    """The nearest folder at or above ``start`` (default: the current directory) that holds ``notebooks/`` or
    ``results/``: the root of a checkout of this course, wherever the package itself is installed."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() or (folder / "results").is_dir():
            return folder
    raise FileNotFoundError(
        f"No folder at or above {here} holds notebooks/ or results/; pass {argument} "
        "explicitly or run from inside a checkout of the course."
    )


@dataclass(frozen=True)
class Profile:
    """One way to run an experiment: ``dataset`` is fixed for the built-in-data profiles (``None``: any dataset
    with a config), ``device`` the hardware it is meant for, ``overrides`` applied to every run."""

    name: str
    dataset: str | None
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    device: str


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
            raise ConfigError(
                f"Experiment {self.paper!r} has no config for dataset {dataset!r} ({path} is missing); "
                f"choose one of {self.datasets()}."
            )
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
                raise ValueError(
                    f"profile={profile!r} runs on the built-in dataset {fixed!r}, not {dataset!r}; use "
                    f"profile='full' for a real benchmark ({self.real_datasets()})."
                )
            return fixed
        if dataset is None or dataset not in self.real_datasets():
            raise ValueError(
                f"profile={profile!r} needs a real benchmark: set dataset to one of "
                f"{self.real_datasets()} (got {dataset!r})."
            )
        return dataset

    def real_datasets(self) -> list[str]:
        fixed = {p.dataset for p in self.profiles.values() if p.dataset is not None}
        return [d for d in self.datasets() if d not in fixed]

    def overrides(self, method: str, *, dataset: str, profile: str) -> list[str]:
        """The overrides of one run, in the order they apply: profile, method, the method on this dataset."""
        if method not in self.methods:
            raise ValueError(
                f"Unknown method {method!r} of experiment {self.paper!r}; choose one of {list(self.methods)}."
            )
        return (
            list(self.profile(profile).overrides)
            + list(self.methods[method])
            + list(self.dataset_methods.get(dataset, {}).get(method, ()))
        )

    def _run_overrides(
        self, method: str, *, dataset: str, profile: str, seed: int, overrides: Sequence[str]
    ) -> list[str]:
        """:meth:`overrides`, then ``overrides``, with ``{seed}`` filled in, and ``seed=<seed>`` last."""
        everything = self.overrides(method, dataset=dataset, profile=profile) + list(overrides)
        return [o.replace("{seed}", str(int(seed))) for o in everything] + [f"seed={int(seed)}"]

    def config(
        self,
        method: str,
        *,
        dataset: str,
        profile: str,
        seed: int,
        output_dir: str | Path,
        overrides: Sequence[str] = (),
    ) -> Config:
        """The resolved :class:`~dml.train.Config` of one run (``overrides`` apply last, before seed and folder)."""
        everything = self._run_overrides(method, dataset=dataset, profile=profile, seed=seed, overrides=overrides)
        return load_config(self.config_path(dataset), [*everything, f"output_dir={output_dir}"])

    def command(
        self,
        method: str,
        *,
        dataset: str,
        profile: str,
        seed: int,
        output_dir: str | Path,
        overrides: Sequence[str] = (),
    ) -> str:
        """The ``dml train`` command line that trains the same run (paths relative to the repository root)."""
        everything = self._run_overrides(method, dataset=dataset, profile=profile, seed=seed, overrides=overrides)
        config = self.config_path(dataset)
        with contextlib.suppress(FileNotFoundError, ValueError):
            config = config.relative_to(find_root(self.folder))
        parts = ["dml", "train", str(config)] + [f"--set {shlex.quote(o)}" for o in everything]
        return " ".join(parts + ["--output-dir", shlex.quote(str(output_dir))])

    def results_path(self, dataset: str, root: str | Path | None = None) -> Path:
        """``<root>/<paper>/<dataset>.json``; ``root=None`` is ``results/`` of :func:`find_root`."""
        if root is None:
            root = find_root(argument="the results folder (results_dir / root)") / "results"
        return Path(root) / self.paper / f"{dataset}.json"


def load_experiment(folder: str | Path) -> Experiment:
    """Load ``folder/experiment.yaml``; a bare name (``"sct"``) is also looked up in ``notebooks/`` of
    :func:`find_root` (the current directory or a folder above it)."""
    path = Path(folder)
    if not (path / "experiment.yaml").is_file() and not path.is_absolute():
        try:
            candidate = find_root(argument="the experiment folder's path") / "notebooks" / path
        except FileNotFoundError:
            candidate = None
        if candidate is not None and (candidate / "experiment.yaml").is_file():
            path = candidate
    spec_path = path / "experiment.yaml"
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{spec_path} does not exist; an experiment folder holds experiment.yaml and one "
            "config per dataset (see notebooks/README.md)."
        )
    spec = yaml.safe_load(spec_path.read_text()) or {}
    unknown = sorted(set(spec) - {"paper", "title", "methods", "dataset_methods", "profiles"})
    if unknown or "paper" not in spec or not spec.get("methods"):
        raise ConfigError(
            f"{spec_path}: needs 'paper' and 'methods' (and may have 'title', 'dataset_methods', "
            f"'profiles'); unknown keys: {unknown}."
        )
    profiles = {}
    for name, p in (spec.get("profiles") or {}).items():
        extra = sorted(set(p) - {"dataset", "seeds", "overrides", "device"})
        if extra:
            raise ConfigError(
                f"{spec_path}: profile {name!r} has unknown keys {extra}; valid: dataset, seeds, overrides, device."
            )
        device = p.get("device", "cpu")
        if device not in DEVICES:
            raise ConfigError(f"{spec_path}: profile {name!r} device must be one of {list(DEVICES)}; got {device!r}.")
        profiles[name] = Profile(
            name=name,
            dataset=p.get("dataset"),
            seeds=tuple(int(s) for s in p.get("seeds", [0])),
            overrides=tuple(p.get("overrides") or ()),
            device=device,
        )
    methods = {name: tuple(o or ()) for name, o in spec["methods"].items()}
    dataset_methods = {
        d: {m: tuple(o or ()) for m, o in per.items()} for d, per in (spec.get("dataset_methods") or {}).items()
    }
    for dataset, per in dataset_methods.items():
        strange = sorted(set(per) - set(methods))
        if strange:
            raise ConfigError(
                f"{spec_path}: dataset_methods.{dataset} names unknown methods {strange}; methods are {list(methods)}."
            )
    return Experiment(
        paper=str(spec["paper"]),
        title=str(spec.get("title", spec["paper"])),
        folder=path.resolve(),
        methods=methods,
        dataset_methods=dataset_methods,
        profiles=profiles,
    )


def check_device(config: Config, *, profile: str) -> None:
    """Refuse a run whose config asks for CUDA on a machine without it, before anything is built: the full recipe
    would take weeks on a CPU. (An explicit ``device=cpu`` override, e.g. for a plumbing test, is honoured.)"""
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"profile={profile!r} runs the released recipe (ResNet-50, the real benchmark) and needs a "
            "CUDA GPU, but torch.cuda.is_available() is False. On Colab choose Runtime → Change "
            "runtime type → GPU; on a CPU use profile='medium' (built-in data, minutes)."
        )
