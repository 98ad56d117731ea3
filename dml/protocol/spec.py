"""The protocol's settings next to an experiment's recipes: ``search.yaml`` in the experiment folder.

``search.yaml`` holds, for a :class:`dml.reproduce.Experiment` whose methods are the compared losses:

* ``folds``: the number of class-disjoint folds (MLRC: 4) and ``metric`` (MLRC: ``map@r``);
* ``profiles``: per profile, ``trials`` (the search budget per method), ``patience`` and ``every`` (early stopping:
  evaluations without improvement, epochs between evaluations), ``seeds`` (the retraining seeds; the first one is
  the search's), and optionally ``methods`` (the methods a profile tunes; default all);
* ``spaces``: per method, the search space (config key → ``{low, high, log}``, :mod:`dml.protocol.search`);
* ``start``: per dataset and method, points evaluated first (published tuned optima), each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dml.protocol.search import check_space


@dataclass(frozen=True)
class Settings:
    """How one profile runs the protocol (see the module docstring)."""

    folds: int = 4
    metric: str = "map@r"
    trials: int = 2
    patience: int = 2
    every: int = 1
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ProtocolSpec:
    """``search.yaml`` of an experiment folder, loaded by :func:`load_spec`."""

    path: Path
    profiles: dict[str, Settings]
    spaces: dict[str, dict[str, dict[str, Any]]]
    start: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)

    def settings(self, profile: str) -> Settings:
        if profile not in self.profiles:
            raise ValueError(
                f"{self.path}: no protocol settings for profile {profile!r}; have {sorted(self.profiles)}."
            )
        return self.profiles[profile]

    def space(self, method: str) -> dict[str, dict[str, Any]]:
        if method not in self.spaces:
            raise ValueError(f"{self.path}: method {method!r} has no search space; spaces: {sorted(self.spaces)}.")
        return self.spaces[method]

    def start_points(self, dataset: str, method: str) -> list[dict[str, float]]:
        return [dict(p) for p in self.start.get(dataset, {}).get(method, [])]


def load_spec(folder: str | Path) -> ProtocolSpec:
    """Read and check ``folder/search.yaml``."""
    path = Path(folder) / "search.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; the protocol reads its budget and search spaces from it.")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - {"folds", "metric", "profiles", "spaces", "start"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid: folds, metric, profiles, spaces, start.")
    common = {"folds": int(raw.get("folds", 4)), "metric": str(raw.get("metric", "map@r"))}
    profiles = {}
    for name, p in (raw.get("profiles") or {}).items():
        extra = sorted(set(p) - {"trials", "patience", "every", "seeds", "methods"})
        if extra:
            raise ValueError(f"{path}: profile {name!r} has unknown keys {extra}.")
        methods = p.get("methods")
        profiles[name] = Settings(
            **common,
            trials=int(p.get("trials", 2)),
            patience=int(p.get("patience", 2)),
            every=int(p.get("every", 1)),
            seeds=tuple(int(s) for s in p.get("seeds", [0])),
            methods=None if methods is None else tuple(methods),
        )
    spaces = {m: {k: dict(v) for k, v in s.items()} for m, s in (raw.get("spaces") or {}).items()}
    for method, space in spaces.items():
        try:
            check_space(space)
        except ValueError as err:
            raise ValueError(f"{path}: spaces.{method}: {err}") from err
    start = {
        d: {m: [{k: v for k, v in point.items() if k != "source"} for point in points] for m, points in per.items()}
        for d, per in (raw.get("start") or {}).items()
    }
    return ProtocolSpec(path=path, profiles=profiles, spaces=spaces, start=start)
