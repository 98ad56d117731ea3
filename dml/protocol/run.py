"""The Reality-Check protocol for one method: tune on validation folds, retrain over seeds, test once.

Musgrave, Belongie & Lim, "A Metric Learning Reality Check", ECCV 2020 (arXiv:2003.08505; released code
github.com/KevinMusgrave/powerful-benchmarker, branch ``metric-learning``). For a method of an experiment
(:class:`dml.reproduce.Experiment`, its overrides on the dataset's config) :func:`run_protocol`:

1. **tunes** its hyperparameters (:func:`tune`): each trial of the Optuna study (:mod:`dml.protocol.search`)
   trains one model per class-disjoint fold of the training classes (:mod:`dml.protocol.splits`), each stopped
   early on its fold's validation MAP@R (:class:`~dml.protocol.stopping.EarlyStopping`); the trial's value is the
   mean over folds of the best validation MAP@R. The test classes are not used to choose anything. Each trial
   also records the test MAP@R of its fold models (``test_map@r``, never read by the search) so that the page
   can show what choosing by the test set would have reported;
2. **retrains** the best point with every seed of the profile, one model per fold and seed (the search's seed
   reuses the best trial's models, which the same config and seed would reproduce exactly on the CPU);
3. **tests** once (:func:`test_report`): "separated" is each fold model alone, averaged over the folds;
   "concatenated" the folds' L2-normalised embeddings concatenated (``folds × D`` dimensions), as MLRC's
   "separated 128-d" and "concatenated 512-d". Each metric is averaged over seeds, with a 95 % t-interval over
   seeds (two seeds or more) and a 95 % percentile bootstrap over test queries of the seed-averaged per-query
   MAP@R (:mod:`dml.protocol.intervals`).

Everything is written under ``work_dir/<method>/``: ``study.db`` (the search, resumable), ``trials/<n>/fold<i>``
and ``retrain/seed<s>/fold<i>`` (trainer folders with ``best_model.pt``, the best epoch's weights, and
``fold.json`` with its best epoch and training seconds; a finished fold with the same config is reused), and
``result.json`` (``train_seconds``: the training time summed over every fold run of the method, whichever
process trained it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from dml.protocol.intervals import bootstrap_interval, t_interval
from dml.protocol.search import finished_trials, overrides_of, search
from dml.protocol.spec import ProtocolSpec, Settings
from dml.protocol.splits import fold_config, test_config
from dml.protocol.stopping import EarlyStopping
from dml.utils import atomic_save_json, atomic_write

METRICS = ("map@r", "recall@1", "r_precision")


@dataclass
class FoldModel:
    """One trained fold: its early-stopped model (best validation epoch) and where it came from."""

    fold: int
    seed: int
    folder: Path
    best_epoch: int
    stopped_epoch: int
    validation: float
    model: nn.Module

    def record(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("fold", "seed", "best_epoch", "stopped_epoch", "validation")}


def train_fold(config: Any, *, fold: int, settings: Settings, output_dir: str | Path) -> FoldModel:
    """Train ``config`` on fold ``fold`` with early stopping (or reuse the finished fold in ``output_dir``)."""
    from dml.reproduce.probes import test_evaluation
    from dml.train import load_model, to_dict, train

    out = Path(output_dir)
    fc = fold_config(config, fold=fold, folds=settings.folds, output_dir=out)
    fc.eval.every = 0  # the early-stopping callback evaluates the validation classes
    done = _finished_fold(out, to_dict(fc))
    if done is None:
        stopper = EarlyStopping(
            test_evaluation(fc),
            patience=settings.patience,
            metric=settings.metric,
            every=settings.every,
            batch_size=fc.eval.batch_size,
            seed=fc.seed,
        )
        started = time.perf_counter()
        final = train(fc, callbacks=[stopper])
        with atomic_write(out / "best_model.pt") as handle:
            torch.save(stopper.best_state, handle)
        done = {
            "best_epoch": stopper.best_epoch,
            "stopped_epoch": int(final["epoch"]),
            "validation": stopper.best,
            "seconds": time.perf_counter() - started,  # wall time of the training (early-stopping evaluations included)
        }
        atomic_save_json(done, out / "fold.json")
    model = load_model(out)
    model.load_state_dict(torch.load(out / "best_model.pt", weights_only=True))
    return FoldModel(
        fold,
        int(fc.seed),
        out,
        int(done["best_epoch"]),
        int(done["stopped_epoch"]),
        float(done["validation"]),
        model.eval(),
    )


def _finished_fold(out: Path, resolved: dict[str, Any]) -> dict[str, Any] | None:
    from dml.train import from_dict, to_dict

    needed = [out / name for name in ("fold.json", "best_model.pt", "config.yaml", "checkpoint.pt")]
    if not all(p.is_file() for p in needed):
        return None
    saved = to_dict(from_dict(yaml.safe_load((out / "config.yaml").read_text())))
    if _without_folder(saved) != _without_folder(resolved):  # the folder itself may be named another way
        return None
    return json.loads((out / "fold.json").read_text())


def _without_folder(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "output_dir"}


def test_embeddings(models: list[FoldModel], config: Any) -> tuple[list[torch.Tensor], np.ndarray]:
    """The test split embedded by every fold model, and its labels."""
    from dml.eval import embed
    from dml.reproduce.probes import probe
    from dml.train import resolve_device

    tc = test_config(config)
    data = probe(tc, "test")
    device = resolve_device(tc.device)
    out = [embed(m.model, data, batch_size=tc.eval.batch_size, device=device) for m in models]
    return [x for x, _ in out], out[0][1]


test_embeddings.__test__ = False  # not a pytest test


def tune(
    experiment: Any,
    spec: ProtocolSpec,
    method: str,
    *,
    dataset: str,
    profile: str,
    work_dir: str | Path,
    overrides: tuple[str, ...] = (),
) -> Any:
    """Search ``method``'s space on the validation folds; the Optuna study (``work_dir/<method>/study.db``)."""
    from dml.eval import retrieval_metrics

    settings = spec.settings(profile)
    folder = _method_dir(work_dir, method)

    def objective(trial: Any, point: dict[str, float]) -> float:
        config = experiment.config(
            method,
            dataset=dataset,
            profile=profile,
            seed=settings.seeds[0],
            output_dir=folder,
            overrides=[*overrides, *overrides_of(point)],
        )
        trial_dir = folder / "trials" / str(trial.number)
        try:
            folds = [
                train_fold(config, fold=i, settings=settings, output_dir=trial_dir / f"fold{i}")
                for i in range(settings.folds)
            ]
        except FloatingPointError:  # a diverged point: the worst possible value, recorded as such
            trial.set_user_attr("diverged", True)
            return 0.0
        xs, y = test_embeddings(folds, config)
        test = [retrieval_metrics(x, y, ks=(1,), include=("map@r",))["map@r"] for x in xs]
        trial.set_user_attr("validation_per_fold", [f.validation for f in folds])
        trial.set_user_attr("test_map@r", float(np.mean(test)))  # for the test-tuning comparison only
        trial.set_user_attr("folder", str(trial_dir))
        return float(np.mean([f.validation for f in folds]))

    return search(
        folder / "study.db",
        objective,
        name=method,
        space=spec.space(method),
        trials=settings.trials,
        seed=settings.seeds[0],
        start=spec.start_points(dataset, method),
    )


def _method_dir(work_dir: str | Path, method: str) -> Path:
    return Path(work_dir) / "".join(c if c.isalnum() or c in "-_" else "_" for c in method)


def retrain(
    experiment: Any,
    spec: ProtocolSpec,
    method: str,
    point: dict[str, float],
    *,
    dataset: str,
    profile: str,
    work_dir: str | Path,
    best_trial_dir: str | Path | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[int, list[FoldModel]]:
    """The fold models of ``point`` for every seed of the profile; the search seed reuses ``best_trial_dir``."""
    settings = spec.settings(profile)
    folder = _method_dir(work_dir, method)
    models: dict[int, list[FoldModel]] = {}
    for seed in settings.seeds:
        config = experiment.config(
            method,
            dataset=dataset,
            profile=profile,
            seed=seed,
            output_dir=folder,
            overrides=[*overrides, *overrides_of(point)],
        )
        reuse = seed == settings.seeds[0] and best_trial_dir is not None
        base = Path(best_trial_dir) if reuse else folder / "retrain" / f"seed{seed}"
        models[seed] = [
            train_fold(config, fold=i, settings=settings, output_dir=base / f"fold{i}") for i in range(settings.folds)
        ]
    return models


def test_report(models: dict[int, list[FoldModel]], config: Any, *, resamples: int = 2000) -> dict[str, Any]:
    """Separated and concatenated test metrics over seeds, with a t-interval over seeds and a query bootstrap."""
    from dml.eval import map_at_r_per_query, retrieval_metrics

    per_seed: dict[str, dict[str, list[float]]] = {"separated": {}, "concatenated": {}}
    queries: dict[str, list[np.ndarray]] = {"separated": [], "concatenated": []}
    for seed in sorted(models):
        xs, y = test_embeddings(models[seed], config)
        joined = torch.cat([F.normalize(x, dim=1) for x in xs], dim=1)
        separated = [retrieval_metrics(x, y, ks=(1,), include=("recall", "map@r", "r_precision")) for x in xs]
        together = retrieval_metrics(joined, y, ks=(1,), include=("recall", "map@r", "r_precision"))
        for metric in METRICS:
            per_seed["separated"].setdefault(metric, []).append(float(np.mean([s[metric] for s in separated])))
            per_seed["concatenated"].setdefault(metric, []).append(float(together[metric]))
        queries["separated"].append(np.mean([map_at_r_per_query(x, y) for x in xs], axis=0))
        queries["concatenated"].append(map_at_r_per_query(joined, y))
    report: dict[str, Any] = {"seeds": sorted(models), "folds": len(next(iter(models.values())))}
    for kind, metrics in per_seed.items():
        report[kind] = {}
        for metric, values in metrics.items():
            entry: dict[str, Any] = {"mean": float(np.mean(values)), "per_seed": values, "t_half_width": None}
            if len(values) > 1:
                entry["t_half_width"] = t_interval(values)[1]
            report[kind][metric] = entry
        _, low, high = bootstrap_interval(np.mean(queries[kind], axis=0), resamples=resamples, seed=0)
        report[kind]["map@r"]["bootstrap"] = [low, high]
        report[kind]["map@r"]["bootstrap_half_width"] = (high - low) / 2
    return report


test_report.__test__ = False  # not a pytest test


def run_protocol(
    experiment: Any,
    spec: ProtocolSpec,
    method: str,
    *,
    dataset: str,
    profile: str,
    work_dir: str | Path,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Tune, retrain and test ``method``; the record written to ``work_dir/<method>/result.json``."""
    settings = spec.settings(profile)
    study = tune(experiment, spec, method, dataset=dataset, profile=profile, work_dir=work_dir, overrides=overrides)
    trials = [t for t in finished_trials(study) if t.value is not None][: settings.trials]  # the budget's first
    best = max(trials, key=lambda t: (t.value, -t.number))  # ties: the earlier trial
    by_test = max(trials, key=lambda t: (t.user_attrs.get("test_map@r", 0.0), -t.number))
    models = retrain(
        experiment,
        spec,
        method,
        dict(best.params),
        dataset=dataset,
        profile=profile,
        work_dir=work_dir,
        best_trial_dir=_method_dir(work_dir, method) / "trials" / str(best.number),
        overrides=overrides,
    )
    config = experiment.config(
        method,
        dataset=dataset,
        profile=profile,
        seed=settings.seeds[0],
        output_dir=_method_dir(work_dir, method),
        overrides=list(overrides),
    )
    record = {
        "method": method,
        "dataset": dataset,
        "profile": profile,
        "settings": {k: getattr(settings, k) for k in ("folds", "metric", "trials", "patience", "every", "seeds")},
        "best_point": dict(best.params),
        "best_validation": float(best.value),
        "trials": [
            {
                "number": t.number,
                "point": dict(t.params),
                "validation": t.value,
                "test_map@r": t.user_attrs.get("test_map@r"),
                "diverged": bool(t.user_attrs.get("diverged")),
            }
            for t in trials
        ],
        "selected_trial_test_map@r": best.user_attrs.get("test_map@r"),
        "test_tuned": {"map@r": by_test.user_attrs.get("test_map@r"), "point": dict(by_test.params)},
        "fold_models": [m.record() for seed_models in models.values() for m in seed_models],
        "test": test_report(models, config),
        "train_seconds": sum(
            json.loads(p.read_text()).get("seconds", 0.0) for p in _method_dir(work_dir, method).glob("**/fold.json")
        ),
    }
    atomic_save_json(record, _method_dir(work_dir, method) / "result.json")
    return record
