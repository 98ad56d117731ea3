"""Early stopping on validation MAP@R: the rule, the best weights, and the trainer stopping."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
import torch

from dml.protocol import EarlyStopping, Settings, fold_config, train_fold
from dml.reproduce.probes import test_evaluation
from dml.train import from_dict, train
from tests.train.test_resume import TINY


def test_the_rule_stops_after_patience_evaluations_without_a_strict_improvement() -> None:
    stopper = EarlyStopping(None, patience=2)
    model = torch.nn.Linear(2, 2)
    seen = []
    for epoch, value in enumerate([0.1, 0.3, 0.3, 0.2, 0.5], start=1):
        stopper.observe(epoch, value, model)
        seen.append(stopper.should_stop())
        if stopper.should_stop():
            break
    assert seen == [False, False, False, True]  # 0.3 then 0.3 (no strict gain) and 0.2: two evaluations
    assert (stopper.best, stopper.best_epoch) == (0.3, 2)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(None, patience=0)


def _tiny(tmp_path: Path) -> dict:
    config = copy.deepcopy(TINY)
    (tmp_path / "data").mkdir(exist_ok=True)
    config["data"]["root"] = str(tmp_path / "data")
    config["data"]["kwargs"] = {**config["data"]["kwargs"], "num_classes": 16}
    config["output_dir"] = str(tmp_path / "unused")
    config["train"]["epochs"] = 12
    config["optim"]["lr"] = 0.05  # noisy enough that the validation MAP@R stops improving
    return config


def test_the_trainer_stops_early_and_the_best_epochs_weights_are_kept(tmp_path: Path) -> None:
    config = from_dict(_tiny(tmp_path))
    fc = fold_config(config, fold=0, folds=2, output_dir=tmp_path / "fold0")
    fc.eval.every = 0
    stopper = EarlyStopping(test_evaluation(fc), patience=1, batch_size=64)
    final = train(fc, callbacks=[stopper])
    history = json.loads((tmp_path / "fold0" / "metrics.json").read_text())["epochs"]
    values = [r["val_map@r"] for r in history]
    assert final["epoch"] == len(history) < 12  # it stopped
    assert values[-1] <= max(values[:-1])  # ... after one evaluation without improvement
    assert all(b > a for a, b in itertools.pairwise(values[:-1]))  # and not before
    assert stopper.best == max(values) and stopper.best_epoch == 1 + values.index(max(values))
    model = train_fold(config, fold=0, settings=Settings(folds=2, patience=1), output_dir=tmp_path / "fold0b")
    assert model.validation == pytest.approx(stopper.best)  # same run, and its saved weights score the best value
    assert stopper.score(model.model) == pytest.approx(stopper.best)
