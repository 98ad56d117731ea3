"""run_protocol end to end on a tiny experiment: tune on validation folds, retrain over seeds, test once."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from dml.eval import retrieval_metrics
from dml.protocol import fold_config, load_spec, run_protocol, test_embeddings
from dml.reproduce import load_experiment
from dml.train import from_dict
from tests.train.test_resume import TINY


def _experiment(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny_protocol"
    folder.mkdir()
    (tmp_path / "data").mkdir()
    config = copy.deepcopy(TINY)
    config["data"]["root"] = str(tmp_path / "data")
    config["data"]["kwargs"] = {**config["data"]["kwargs"], "num_classes": 16}
    config["train"]["epochs"] = 3
    config["eval"] = {"every": 0, "ks": [1], "include": ["recall", "map@r", "r_precision"]}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    (folder / "experiment.yaml").write_text(
        yaml.safe_dump(
            {
                "paper": "tiny",
                "methods": {"triplet": ["loss.name=triplet", "loss.kwargs={margin: 0.2}"]},
                "profiles": {"smoke": {"dataset": "tiny", "seeds": [0]}},
            }
        )
    )
    (folder / "search.yaml").write_text(
        yaml.safe_dump(
            {
                "folds": 2,
                "profiles": {"smoke": {"trials": 2, "patience": 1, "seeds": [0, 1]}},
                "spaces": {"triplet": {"loss.kwargs.margin": {"low": 0.05, "high": 0.5}}},
            }
        )
    )
    return folder


def test_run_protocol_tunes_on_validation_retrains_over_seeds_and_reports_separated_and_concatenated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = load_experiment(_experiment(tmp_path))
    spec = load_spec(experiment.folder)
    record = run_protocol(experiment, spec, "triplet", dataset="tiny", profile="smoke", work_dir=tmp_path / "work")
    assert len(record["trials"]) == 2
    best = max(record["trials"], key=lambda t: t["validation"])
    assert record["best_point"] == best["point"] and record["best_validation"] == best["validation"]
    assert record["test_tuned"]["map@r"] == max(t["test_map@r"] for t in record["trials"])
    assert {(m["seed"], m["fold"]) for m in record["fold_models"]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # the search seed reuses the best trial's folds; seed 1 was trained anew
    trial_dir = tmp_path / "work" / "triplet" / "trials" / str(best["number"])
    assert (trial_dir / "fold0" / "best_model.pt").is_file()
    assert (tmp_path / "work" / "triplet" / "retrain" / "seed1" / "fold1" / "best_model.pt").is_file()
    assert not (tmp_path / "work" / "triplet" / "retrain" / "seed0").exists()

    # the test numbers recomputed from the saved best weights
    from dml.protocol.run import FoldModel
    from dml.train import load_model

    config = experiment.config(
        "triplet",
        dataset="tiny",
        profile="smoke",
        seed=1,
        output_dir=tmp_path,
        overrides=[f"loss.kwargs.margin={record['best_point']['loss.kwargs.margin']!r}"],
    )
    models = []
    for fold in range(2):
        folder = tmp_path / "work" / "triplet" / "retrain" / "seed1" / f"fold{fold}"
        model = load_model(folder)
        model.load_state_dict(torch.load(folder / "best_model.pt", weights_only=True))
        models.append(FoldModel(fold, 1, folder, 0, 0, 0.0, model))
    xs, y = test_embeddings(models, config)
    test = record["test"]
    separated = np.mean([retrieval_metrics(x, y, ks=(1,), include=("map@r",))["map@r"] for x in xs])
    joined = torch.cat([F.normalize(x, dim=1) for x in xs], dim=1)
    assert joined.shape[1] == 2 * 16
    assert test["separated"]["map@r"]["per_seed"][1] == pytest.approx(separated)
    assert test["concatenated"]["map@r"]["per_seed"][1] == pytest.approx(
        retrieval_metrics(joined, y, ks=(1,), include=("map@r",))["map@r"]
    )
    assert test["separated"]["map@r"]["mean"] == pytest.approx(np.mean(test["separated"]["map@r"]["per_seed"]))
    assert test["separated"]["map@r"]["t_half_width"] > 0
    low, high = test["concatenated"]["map@r"]["bootstrap"]
    assert low <= test["concatenated"]["map@r"]["mean"] <= high
    assert record["train_seconds"] > 0
    assert json.loads((tmp_path / "work" / "triplet" / "result.json").read_text())["best_point"] == record["best_point"]

    # a second call reuses everything: nothing is trained
    import dml.train

    monkeypatch.setattr(dml.train, "train", lambda *a, **k: pytest.fail("retrained a finished fold"))
    monkeypatch.chdir(tmp_path)  # the same folder named relatively, as a page run from another folder does
    again = run_protocol(experiment, spec, "triplet", dataset="tiny", profile="smoke", work_dir="work")
    assert again["test"] == record["test"]


def test_fold_config_trains_on_the_folds_training_classes_and_validates_on_its_block(tmp_path: Path) -> None:
    config = from_dict({**TINY, "data": {**TINY["data"], "root": str(tmp_path)}})
    fc = fold_config(config, fold=1, folds=3, output_dir=tmp_path / "f")
    assert fc.data.name == "class_fold" and fc.data.eval_split == "test"
    assert fc.data.kwargs == {"source": "synthetic", "folds": 3, "fold": 1, "source_kwargs": TINY["data"]["kwargs"]}
    assert str(fc.output_dir) == str(tmp_path / "f") and config.data.name == "synthetic"  # the original untouched
    with pytest.raises(ValueError, match="whole dataset"):
        fold_config(fc, fold=0, folds=3, output_dir=tmp_path)
