"""Golden values of the divide-and-conquer reproduction folder ``notebooks/divide_conquer/`` (no training).

The SOP and In-Shop recipes follow the released code (github.com/CompVis/metric-learning-divide-and-conquer,
commit 1766c2c: README command, ``config.json``, ``train.py``, ``lib/*``); CUB and Cars reuse it with 4 learners,
a derived choice that each YAML header states. These tests pin the documented values so that an edit of a recipe is
a deliberate, reviewed change.
"""

from __future__ import annotations

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight

EXPERIMENT = load_experiment("notebooks/divide_conquer")
REAL = ("cub200", "cars196", "sop", "inshop")
LEARNERS = {"cub200": 4, "cars196": 4, "sop": 8, "inshop": 8}
KS = {"cub200": [1, 2, 4, 8], "cars196": [1, 2, 4, 8], "sop": [1, 10, 100, 1000], "inshop": [1, 10, 20, 30, 50]}
METHODS = ("paper schedule", "released schedule", "no fine-tuning", "single learner")


def _config(method: str, dataset: str, profile: str = "full"):
    return EXPERIMENT.config(method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused")


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "divide_conquer" and tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic", (0, 1), "cpu")
    assert (full.dataset, full.seeds, full.device) == (None, (0,), "cuda")


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_recipe_follows_the_release(dataset: str) -> None:
    c = _config("released schedule", dataset)
    m = c.model
    assert (m.backbone, m.pretrained, m.embedding_dim, m.pooling, m.backbone_kwargs) == (
        "resnet50",
        True,
        128,
        "avg",
        {"norm": "batch-eval"},  # all batch norm frozen (eval mode)
    )
    assert m.head == "split" and m.head_kwargs == {"num_slices": LEARNERS[dataset], "dropout": 0.01, "layout": "shared"}
    assert (c.data.sampler.p, c.data.sampler.k) == (20, 4)  # batches of 80
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.milestones) == ("adam", 1e-5, 1e-4, [])
    assert c.train.epochs == 200 and c.eval.ks == KS[dataset]
    a = c.data.augment
    assert (a.size, a.crop, a.test_resize, a.normalize, a.flip) == (224, "random-resized", 256, "imagenet", 0.5)
    assert c.loss.name == "margin"
    assert c.loss.kwargs == {"margin": 0.2, "beta": 1.2, "learn_beta": False, "miner": "distance_weighted"}
    assert c.method.name == "divide_conquer"
    assert c.method.kwargs == {
        "recluster_every": 2,
        "finetune_epoch": 190,
        "switch": "released",
        "relabel": "released",
        "gpu": True,
    }
    assert (c.device, c.seed) == ("cuda", 3)


def test_the_methods_switch_schedule_relabelling_and_learners() -> None:
    paper = _config("paper schedule", "sop").method.kwargs
    assert (paper["switch"], paper["relabel"]) == ("paper", "hungarian")
    assert _config("no fine-tuning", "sop").method.kwargs["finetune_epoch"] is None
    assert _config("single learner", "sop").model.head_kwargs["num_slices"] == 1


def test_synthetic_profiles() -> None:
    smoke, medium = _config("paper schedule", "synthetic", "smoke"), _config("paper schedule", "synthetic", "medium")
    assert (smoke.train.epochs, smoke.method.kwargs["finetune_epoch"]) == (5, 3)
    assert (medium.train.epochs, medium.method.kwargs["finetune_epoch"]) == (16, 12)
    assert smoke.data.kwargs["seed"] == 3  # data.kwargs.seed={seed}
    assert (smoke.model.backbone, smoke.model.embedding_dim, smoke.model.head_kwargs["num_slices"]) == (
        "small_cnn",
        32,
        4,
    )
    assert (smoke.device, smoke.optim.name, smoke.optim.lr) == ("cpu", "adam", 1e-3)


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight(method: str, dataset: str) -> None:
    preflight(_config(method, dataset, profile="smoke" if dataset == "synthetic" else "full"))


def test_published_tables_and_their_sources() -> None:
    tables = published_tables(EXPERIMENT)
    r1 = {(t["dataset"], m): row[t["columns"].index("R@1")] for t in tables for m, row in t["rows"].items()}
    assert r1 == {
        ("cub200", "D&C"): 65.9,
        ("cars196", "D&C"): 84.6,
        ("sop", "D&C"): 75.9,
        ("sop", "D&C, 8 learners, current code"): 76.40,
        ("inshop", "D&C, 8 learners, current code"): 87.36,
    }
    sources = {t["source"] for t in tables}
    assert any("leaderboard" in s and "not checked" in s for s in sources)
    assert any("README" in s and "1766c2c" in s for s in sources)
