"""Golden values of the DIML reproduction folder ``notebooks/diml/`` (no training).

The recipes follow the released DIML code (github.com/wl-zhao/DIML: scripts/diml/train_diml.sh, parameters.py
defaults), built on RevisitDML; each YAML header names the source of each choice. These tests pin the documented
values so that an edit of a recipe is a deliberate, reviewed change.
"""

from __future__ import annotations

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight

EXPERIMENT = load_experiment("notebooks/diml")
REAL = ("cub200", "cars196", "sop")
CLASSES = {"cub200": 100, "cars196": 98, "sop": 11318, "synthetic": 50}
METHODS = ("Margin", "MS", "Margin + DIML training", "MS + DIML training")
MS = {"alpha": 2.0, "beta": 40.0, "threshold": 0.5, "epsilon": 0.1}


def _config(method: str, dataset: str, profile: str = "full"):
    return EXPERIMENT.config(method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused")


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "diml"
    assert tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, medium.dataset, medium.seeds) == ("synthetic", (0,), "synthetic", (0,))
    assert (full.dataset, full.seeds, full.device) == (None, (0,), "cuda")


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_baseline_recipe(dataset: str) -> None:
    c = _config("Margin", dataset)
    m = c.model
    assert (m.backbone, m.pretrained, m.embedding_dim, m.pooling, m.head, m.backbone_kwargs) == (
        "resnet50",
        True,
        128,
        "avg",
        "linear",
        {"norm": "batch-frozen"},
    )
    assert (c.loss.name, c.loss.kwargs) == (
        "margin",
        {"margin": 0.2, "beta": 1.2, "num_classes": CLASSES[dataset], "miner": "distance_weighted"},
    )
    assert (c.data.sampler.p, c.data.sampler.k) == (56, 2)  # batch 112, samples_per_class 2
    o = c.optim
    assert (o.name, o.lr, o.weight_decay, o.milestones, o.loss_lr_multiplier) == ("adam", 1e-5, 4e-4, [], 50.0)
    assert c.train.epochs == 150
    a = c.data.augment
    assert (a.size, a.crop, a.test_resize, a.flip, a.normalize) == (224, "random-resized", 256, 0.5, "imagenet")
    assert c.eval.include == ["recall", "map@r"] and c.device == "cuda"


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight(method: str, dataset: str) -> None:
    c = _config(method, dataset, profile="smoke" if dataset == "synthetic" else "full")
    preflight(c)
    expected = {
        "Margin": ("linear", "margin"),
        "MS": ("linear", "multi_similarity"),
        "Margin + DIML training": ("diml", "diml"),
        "MS + DIML training": ("diml", "diml"),
    }[method]
    assert (c.model.head, c.loss.name) == expected
    if method == "MS":
        assert c.loss.kwargs == MS
    if method == "MS + DIML training":
        assert c.loss.kwargs == {"base": "multi_similarity", "base_kwargs": MS}
    if method == "Margin + DIML training":
        assert c.loss.kwargs == {
            "base": "margin",
            "base_kwargs": {"margin": 0.2, "beta": 1.2, "miner": "distance_weighted", "num_classes": CLASSES[dataset]},
        }


def test_published_tables() -> None:
    tables = published_tables(EXPERIMENT)
    r1 = {(t["dataset"], m): row[0] for t in tables for m, row in t["rows"].items()}
    assert r1 == {
        ("cub200", "MS + DIML"): 68.15,
        ("cars196", "ProxyAnchor + DIML"): 87.01,
        ("sop", "Margin + DIML"): 79.26,
    }
    assert all(t["source"] == "third-party (leaderboard): paperswithcode / hyper.ai" for t in tables)
