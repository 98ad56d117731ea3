"""The trainer's optional ``on_epoch_end`` hook: extra per-epoch numbers, without changing what is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dml.data
from dml.diagnostics import hard_triplet_ratio
from dml.eval import embed
from dml.train import config as train_config
from dml.train import train

TINY = {
    "seed": 5,
    "deterministic": False,
    "device": "cpu",
    "data": {
        "name": "synthetic",
        "kwargs": {"num_classes": 8, "images_per_class": 6, "modes_per_class": 1, "image_size": 16, "seed": 2},
        "sampler": {"variant": "filled", "p": 2, "k": 3},
    },
    "model": {"backbone": "small_cnn", "embedding_dim": 8, "backbone_kwargs": {"widths": [4, 8]}},
    "loss": {"name": "triplet", "kwargs": {"margin": 0.2}},
    "optim": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "log_every": 100},
    "eval": {"every": 1, "ks": [1]},
}


def _config(tmp_path: Path, name: str) -> train_config.Config:
    (tmp_path / "data").mkdir(exist_ok=True)
    return train_config.from_dict(
        {**TINY, "output_dir": str(tmp_path / name), "data": {**TINY["data"], "root": str(tmp_path / "data")}}
    )


def test_callback_records_extra_numbers_and_does_not_change_training(tmp_path: Path) -> None:
    """Two tiny training runs (about 5 s): the second, without the callback, must give identical metrics."""
    calls = []

    def hook(epoch: int, model: torch.nn.Module) -> dict[str, float]:
        train_set = dml.data.build("synthetic", split="train", root=str(tmp_path / "data"), **TINY["data"]["kwargs"])
        embeddings, labels = embed(model, train_set)
        torch.rand(3)  # a callback may draw random numbers; the trainer restores the RNG state afterwards
        calls.append(epoch)
        return {"train_hn_ratio": hard_triplet_ratio(embeddings, labels)}

    with_hook = train(_config(tmp_path, "hook"), on_epoch_end=hook)
    without = train(_config(tmp_path, "plain"))
    assert calls == [1, 2]
    assert 0.0 <= with_hook["train_hn_ratio"] <= 1.0
    assert {k: v for k, v in with_hook.items() if k != "train_hn_ratio"} == without
    history = json.loads((tmp_path / "hook" / "metrics.json").read_text())["epochs"]
    assert [("train_hn_ratio" in record) for record in history] == [True, True]


def test_callback_may_not_overwrite_the_trainer_numbers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already records"):
        train(_config(tmp_path, "clash"), on_epoch_end=lambda epoch, model: {"loss": 0.0})
