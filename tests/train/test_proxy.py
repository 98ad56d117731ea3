"""Proxy losses in the trainer: sizes filled in, original class ids mapped to proxy rows, their own learning rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dml.data
from dml.train import config as train_config
from dml.train import load_model, train
from dml.train.trainer import build_loss
from tests.train.test_callback import TINY


def _config(tmp_path: Path, name: str, **optim) -> train_config.Config:
    (tmp_path / "data").mkdir(exist_ok=True)
    return train_config.from_dict(
        {
            **TINY,
            "output_dir": str(tmp_path / name),
            "data": {**TINY["data"], "root": str(tmp_path / "data")},
            "loss": {"name": "proxy_anchor", "kwargs": {}},
            "optim": {**TINY["optim"], **optim},
            "train": {"epochs": 1, "log_every": 100},
        }
    )


def test_proxy_loss_sizes_come_from_the_data_and_model(tmp_path: Path) -> None:
    config = _config(tmp_path, "sizes")
    loss = build_loss(config, num_classes=4)
    assert tuple(loss.proxies.shape) == (4, TINY["model"]["embedding_dim"])
    config.loss.kwargs = {"num_classes": 6, "embedding_dim": 8}  # explicit values win
    assert tuple(build_loss(config, num_classes=4).proxies.shape) == (6, 8)


def test_margin_beta_stays_a_single_scalar_when_num_classes_is_unset(tmp_path: Path) -> None:
    config = _config(tmp_path, "margin")
    config.loss.name, config.loss.kwargs = "margin", {}
    assert build_loss(config, num_classes=4).beta.numel() == 1


@pytest.fixture
def shifted_synthetic() -> Iterator[str]:
    """The synthetic set with class ids 100 + c, like CUB's 1..100 or SOP's large ids: not valid proxy rows."""
    name = "synthetic_shifted_ids"

    @dml.data.register(name)
    def build(*, split: str, root: Any, transform: Any, **kw: Any) -> dml.data.DMLDataset:
        dataset = dml.data.build("synthetic", split=split, root=root, transform=transform, **kw)
        dataset.labels = dataset.labels + 100
        return dataset

    yield name
    dml.data.registry._REGISTRY.unregister(name)


def test_proxy_anchor_trains_on_original_class_ids_with_its_own_learning_rate(
    tmp_path: Path, shifted_synthetic: str
) -> None:
    config = _config(tmp_path, "proxy", loss_lr_multiplier=100.0)
    config.data.name = shifted_synthetic
    train_set = dml.data.build(shifted_synthetic, split="train", root=str(tmp_path / "data"), **TINY["data"]["kwargs"])
    assert train_set.num_classes == 4 and train_set.labels.min() >= 100
    metrics = train(config)
    assert np.isfinite(metrics["loss"]) and 0.0 <= metrics["recall@1"] <= 1.0
    state = torch.load(tmp_path / "proxy" / "checkpoint.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.01, 1.0]
    assert tuple(state["loss"]["proxies"].shape) == (4, 8)
    load_model(tmp_path / "proxy")  # the run folder is loadable as usual
