"""Hyperparameter search on validation MAP@R with Optuna, in a resumable SQLite study.

Musgrave et al. (ECCV 2020) tune every loss with 50 steps of Bayesian optimisation (Ax) on the mean validation
MAP@R over the folds. Here the optimiser is Optuna's tree-structured Parzen estimator (TPE; Akiba et al., "Optuna:
A Next-generation Hyperparameter Optimization Framework", KDD 2019), and the study lives in a SQLite file in the
run folder, so a search that is killed resumes where it stopped:

* the budget counts **finished** trials (complete, or failed by the objective): a resumed search runs only the
  missing ones and never repeats a finished one;
* a trial the kill left ``RUNNING`` is marked failed with ``interrupted: true`` and its parameters are queued again,
  so the interrupted point is still evaluated, once; interrupted trials do not count towards the budget;
* each trial is asked from a fresh TPE sampler seeded with ``seed + number of finished trials``: the sequence of
  suggested points depends only on the seed and the finished history, so a resumed search suggests what an
  uninterrupted one would have (given the same objective values).

A search space maps config keys (``loss.kwargs.margin``, ``optim.loss_lr_multiplier``) to ``{low, high, log}``;
each trial's point becomes config overrides ``key=value``. ``start`` points (e.g. published tuned optima) are
evaluated first.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Space = Mapping[str, Mapping[str, Any]]


def _optuna() -> Any:
    """``import optuna``, without the warning its progress bars' ``tqdm.auto`` gives where ipywidgets is missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def check_space(space: Space) -> None:
    """Raise ``ValueError`` unless every entry is ``{low, high[, log]}`` with ``low < high`` (``low > 0`` if log)."""
    if not space:
        raise ValueError("The search space is empty; give at least one key with {low, high}.")
    for key, spec in space.items():
        extra = sorted(set(spec) - {"low", "high", "log"})
        if extra or "low" not in spec or "high" not in spec:
            raise ValueError(f"search space entry {key!r} must be {{low, high[, log]}}; got {dict(spec)}.")
        low, high, log = float(spec["low"]), float(spec["high"]), bool(spec.get("log", False))
        if not low < high or (log and low <= 0):
            raise ValueError(f"search space entry {key!r} needs low < high (and low > 0 when log); got {dict(spec)}.")


def suggest(trial: Any, space: Space) -> dict[str, float]:
    """One point of ``space`` from an Optuna trial."""
    return {
        key: trial.suggest_float(key, float(s["low"]), float(s["high"]), log=bool(s.get("log", False)))
        for key, s in space.items()
    }


def overrides_of(point: Mapping[str, float]) -> list[str]:
    """Config overrides ``key=value`` of a point."""
    return [f"{key}={value!r}" for key, value in point.items()]


def open_study(path: str | Path, *, name: str) -> Any:
    """The study ``name`` in the SQLite file ``path`` (created if needed), maximising."""
    optuna = _optuna()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=name, storage=f"sqlite:///{Path(path).resolve()}", direction="maximize", load_if_exists=True
    )


def search(
    path: str | Path,
    objective: Callable[[Any, dict[str, float]], float],
    *,
    name: str,
    space: Space,
    trials: int,
    seed: int = 0,
    start: Sequence[Mapping[str, float]] = (),
) -> Any:
    """Run ``objective(trial, point)`` until ``trials`` trials have finished in the study; return the study.

    A study that already holds ``trials`` finished trials is returned as it is (nothing is trained)."""
    optuna = _optuna()
    check_space(space)
    if isinstance(trials, bool) or int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be a positive integer (the search budget); got {trials!r}.")
    study = open_study(path, name=name)
    _requeue_interrupted(study)
    if not study.trials:
        for point in start:
            study.enqueue_trial(dict(point))
    while _finished(study) < trials:
        sampler = optuna.samplers.TPESampler(seed=int(seed) + _finished(study))
        study = optuna.load_study(study_name=name, storage=study._storage, sampler=sampler)
        study.optimize(lambda trial: objective(trial, suggest(trial, space)), n_trials=1, catch=())
    return study


def finished_trials(study: Any) -> list[Any]:
    """The study's finished trials (complete, or failed by the objective), in order."""
    from optuna.trial import TrialState

    return [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
    ]


def _finished(study: Any) -> int:
    return len(finished_trials(study))


def _requeue_interrupted(study: Any) -> None:
    """Mark the trials a killed process left running as failed (``interrupted``) and queue their points again."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(dict(trial.params))
