"""The divide-and-conquer method: its schedule (and the released quirk), its step, and a tiny run from a config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dml.data.loaders import build_loaders
from dml.train import ConfigError, build_loss, build_model, from_dict, preflight, train
from dml.train.divide_conquer import DivideConquer, load_clusters
from tests.train.test_resume import TINY

DC = {
    **TINY,
    "model": {
        **TINY["model"],
        "pooling": "avg",
        "head": "split",
        "head_kwargs": {"num_slices": 2, "layout": "separate"},
    },
    "loss": {"name": "margin", "kwargs": {"learn_beta": False}},
    "train": {"epochs": 5, "log_every": 100},
    "method": {"name": "divide_conquer", "kwargs": {"recluster_every": 2, "finetune_epoch": 4, "kmeans_nredo": 1}},
}


def _config(tmp_path: Path, **method: object):
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    kwargs = {**DC["method"]["kwargs"], **method}
    return from_dict(
        {
            **DC,
            "output_dir": str(tmp_path / "run"),
            "data": {**DC["data"], "root": str(tmp_path / "data")},
            "method": {"name": "divide_conquer", "kwargs": kwargs},
        }
    )


def test_the_schedule_and_the_released_switch() -> None:
    paper = DivideConquer(recluster_every=2, finetune_epoch=190)
    released = DivideConquer(recluster_every=2, finetune_epoch=190, switch="released")
    # epochs count from 1 (the release's epoch e is epoch e + 1): divisions before epochs 1, 3, 5, ..., 189
    assert [t for t in range(1, 201) if paper.reclusters(t)] == list(range(1, 190, 2))
    assert [t for t in range(1, 201) if paper.fine_tunes(t)] == list(range(191, 201))
    assert [t for t in range(1, 201) if paper.uses_full_embedding(t)] == list(range(191, 201))
    # the release: full embedding from its epoch e >= 190 * 8 / 19 = 80, i.e. our epoch 81; clusters go on
    assert [t for t in range(1, 201) if released.uses_full_embedding(t)] == list(range(81, 201))
    assert released.reclusters(181) and not released.fine_tunes(190)
    # config.json's finetune_epoch 100: e >= 42.1, i.e. from e = 43 (epoch 44)
    quirk = DivideConquer(finetune_epoch=100, switch="released")
    assert min(t for t in range(1, 201) if quirk.uses_full_embedding(t)) == 44
    never = DivideConquer()
    assert not any(never.uses_full_embedding(t) or never.fine_tunes(t) for t in range(1, 50))
    with pytest.raises(ValueError, match="switch"):
        DivideConquer(switch="late")
    with pytest.raises(ValueError, match="recluster_every"):
        DivideConquer(recluster_every=0)


def test_a_clusters_batch_trains_only_its_learner_and_the_backbone(tmp_path: Path) -> None:
    config = _config(tmp_path)
    data = build_loaders(config.data, seed=config.seed)
    model = build_model(config)
    loss_fn = build_loss(config, num_classes=data.train_set.num_classes)
    method = DivideConquer(**config.method.kwargs)
    method.setup(model=model, data=data, config=config, device=torch.device("cpu"))
    method.on_epoch_start(1, model)
    assert method.sampler.num_clusters == 2 and data.sampler is method.sampler
    classes = torch.as_tensor(np.unique(data.train_set.labels))
    seen = set()
    for images, labels in data.loader:
        model.zero_grad(set_to_none=True)
        labels = torch.searchsorted(classes, labels)
        cluster = method.sampler.pending[0]  # the cluster of this batch, which the step pops
        loss = method.training_step(model, loss_fn, images, labels, amp=False, gather=None, gather_labels=None)
        loss.backward()
        trained = [layer.weight.grad is not None for layer in model.head.slices]
        assert trained == [k == cluster for k in range(2)]  # its own learner only, and the backbone
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
        seen.add(cluster)
    assert seen == {0, 1} and not method.sampler.pending


def test_a_tiny_run_from_its_config_divides_matches_and_fine_tunes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    preflight(config)
    final = train(config)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert [r["dc_clusters"] for r in history] == [2, 2, 2, 2, 1]
    assert [r["dc_full"] for r in history] == [0, 0, 0, 0, 1]
    assert history[-1]["dc_steps"] == 48 // 12 and all(r["dc_steps"] >= 4 for r in history)
    assert ["dc_overlap" in r for r in history] == [False, False, True, False, False]  # epoch 3 re-divides
    assert 0.0 <= history[2]["dc_overlap"] <= 1.0 and history[2]["dc_overlap"] == history[2]["dc_overlap_hungarian"]
    assert history[2]["dc_overlap_hungarian"] >= history[2]["dc_overlap_released"]  # the best matching
    epochs, assignments = load_clusters(tmp_path / "run")
    assert epochs.tolist() == [1, 3] and assignments.shape == (2, 6 * 8)  # 6 training classes of 8 images
    assert set(np.unique(assignments)) <= {-1, 0, 1}
    assert final["epoch"] == 5 and 0.0 <= final["recall@1"] <= 1.0
    # the same seed gives the same run
    again = train(_config(tmp_path / "again"))
    assert again == final


def test_bad_method_configs_fail_with_the_fix(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.method.name = "divide_and_conquer"
    with pytest.raises(ConfigError, match="divide_conquer"):
        preflight(config)
    config = _config(tmp_path, clusters=4)
    with pytest.raises(ConfigError, match="clusters"):
        preflight(config)
    config = _config(tmp_path)
    config.model.head = "linear"
    config.model.head_kwargs = {}
    with pytest.raises(ValueError, match="model.head=split"):
        train(config)
