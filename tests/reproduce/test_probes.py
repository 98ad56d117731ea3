"""dml.reproduce.probes.MarginBetaLog: the margin loss's β logged per epoch through the trainer's on_loss_built hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dml.reproduce import MarginBetaLog, load_experiment, run_methods
from dml.train import config as train_config
from dml.train import train
from dml.train.checkpoint import load_checkpoint

MARGIN = {
    "seed": 3,
    "deterministic": False,
    "device": "cpu",
    "data": {
        "name": "synthetic",
        "kwargs": {"num_classes": 8, "images_per_class": 6, "modes_per_class": 1, "image_size": 16, "seed": 1},
        "sampler": {"variant": "filled", "p": 2, "k": 3},
    },
    "model": {"backbone": "small_cnn", "embedding_dim": 8, "backbone_kwargs": {"widths": [4, 8]}},
    "loss": {"name": "margin", "kwargs": {"num_classes": 4, "miner": {"name": "distance_weighted"}}},
    "optim": {"name": "adam", "lr": 0.01, "loss_lr_multiplier": 5.0},
    "train": {"epochs": 2, "log_every": 100},
    "eval": {"every": 1, "ks": [1], "at_start": True},
}


def _config(tmp_path: Path, name: str) -> train_config.Config:
    (tmp_path / "data").mkdir(exist_ok=True)
    return train_config.from_dict(
        {**MARGIN, "output_dir": str(tmp_path / name), "data": {**MARGIN["data"], "root": str(tmp_path / "data")}}
    )


def test_beta_is_logged_every_epoch_from_the_loss_the_optimiser_trains(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = _config(tmp_path, "logged")
    train(config, callbacks=[MarginBetaLog()])
    history = json.loads((tmp_path / "logged" / "metrics.json").read_text())["epochs"]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert history[0]["beta"] == pytest.approx(1.2) and history[0]["beta_std"] == 0.0  # the initial boundary
    assert history[2]["beta"] != pytest.approx(1.2, abs=1e-4)  # it was learned
    # the logged numbers are those of the trained loss, as the checkpoint holds it
    beta = load_checkpoint(tmp_path / "logged" / "checkpoint.pt")["loss"]["beta"].double()
    assert history[2]["beta"] == pytest.approx(beta.mean().item())
    assert (history[2]["beta_min"], history[2]["beta_max"]) == pytest.approx((beta.min().item(), beta.max().item()))
    # logging does not change training
    plain = train(_config(tmp_path, "plain"))
    logged = json.loads((tmp_path / "logged" / "metrics.json").read_text())["final"]
    assert plain["recall@1"] == logged["recall@1"] and plain["loss"] == logged["loss"]


def test_also_adds_an_epoch_function_and_a_callback_without_a_loss_says_so(tmp_path: Path) -> None:
    log = MarginBetaLog(also=lambda epoch, model: {"probe": float(epoch)})
    with pytest.raises(RuntimeError, match="callbacks="):
        log.on_epoch_end(1, None)
    train(_config(tmp_path, "also"), callbacks=[log])
    history = json.loads((tmp_path / "also" / "metrics.json").read_text())["epochs"]
    assert [r["probe"] for r in history] == [0.0, 1.0, 2.0] and all("beta" in r for r in history)


def test_run_methods_passes_a_callback_object_to_the_trainer(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    experiment = load_experiment("notebooks/sampling_matters")
    runs = run_methods(
        experiment,
        ["uniform"],
        dataset="synthetic",
        profile="smoke",
        seeds=[0],
        output_dir=tmp_path / "runs",
        overrides=[
            "train.epochs=1",
            "data.kwargs.num_classes=12",
            "data.kwargs.images_per_class=5",
            "data.sampler.p=3",
            "loss.kwargs.num_classes=6",
        ],
        callback=lambda config: MarginBetaLog(),
        log=None,
    )
    history = runs["uniform"][0].history
    assert [r["epoch"] for r in history] == [0, 1] and history[0]["beta"] == pytest.approx(1.2)
    assert history[1]["beta"] != history[0]["beta"]
