"""Golden values of the Sampling Matters reproduction folder ``notebooks/sampling_matters/`` (no training).

The recipes follow the released MXNet example of Wu et al. (apache/mxnet ``example/gluon/embedding_learning/``:
train.py 3c9ce5fb5c9e, model.py 4957c7c4739d, data.py 58d6d06c5f18) where it says something; each YAML header names
the source of each choice. These tests pin the documented values so that an edit of a recipe is a deliberate,
reviewed change.
"""

from __future__ import annotations

import pytest

from dml.losses import MarginLoss
from dml.mining import DistanceWeightedMiner, SemiHardMiner, UniformNegativeMiner
from dml.reproduce import load_experiment, published_tables
from dml.train import build_loss, preflight

EXPERIMENT = load_experiment("notebooks/sampling_matters")
REAL = ("cub200", "cars196", "sop")
# dataset: (training classes = betas, passes per epoch, bbox crop, R@K, evaluated every)
RECIPE = {
    "cub200": (100, 28, True, [1, 2, 4, 8, 16], 1),
    "cars196": (98, 28, True, [1, 2, 4, 8], 1),
    "sop": (11318, 1, False, [1, 10, 100, 1000], 5),
}
METHODS = ("distance-weighted", "semi-hard", "uniform", "distance-weighted, RevisitDML")
RELEASED_DW = {"name": "distance_weighted", "cutoff": 0.5, "nonzero_loss_cutoff": 1.4, "positives": "all"}


def _config(method: str, dataset: str, profile: str = "full"):
    return EXPERIMENT.config(method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused")


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "sampling_matters"
    assert tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic", (0, 1, 2), "cpu")
    assert (full.dataset, full.seeds, full.device) == (None, (0, 1, 2), "cuda")
    assert "train.epochs=4" in smoke.overrides and "train.epochs=12" in medium.overrides


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_recipe_is_the_released_example(dataset: str) -> None:
    classes, passes, bbox, ks, every = RECIPE[dataset]
    c = _config("distance-weighted", dataset)
    assert (c.model.backbone, c.model.pretrained, c.model.embedding_dim, c.model.pooling, c.model.normalize) == (
        "resnet50",
        True,
        128,
        "avg",
        True,
    )
    s = c.data.sampler
    assert (s.variant, s.p, s.k, s.repeat) == ("sample-repeat", 14, 5, passes)  # batch 70, batch_k 5
    assert c.data.kwargs == ({"bbox_crop": True} if bbox else {})
    a = c.data.augment
    assert (c.data.pipeline, c.data.cache_size, a.size, a.crop, a.flip, a.test_resize, a.normalize) == (
        "cached",
        256,
        224,
        "random",
        0.5,
        256,
        "imagenet",
    )
    o = c.optim
    assert (o.name, o.lr, o.milestones, o.gamma, c.train.epochs) == ("adam", 1e-4, [12, 14, 16, 18], 0.5, 20)
    assert o.weight_decay == pytest.approx(70 * 1e-4)  # wd 1e-4 on Gluon's gradient / batch of 70
    assert o.lr * o.loss_lr_multiplier == pytest.approx(1e-3)  # beta's learning rate (derived)
    assert c.loss.name == "margin"
    assert c.loss.kwargs == {"margin": 0.2, "beta": 1.2, "nu": 0.0, "num_classes": classes, "miner": RELEASED_DW}
    assert (c.eval.ks, c.eval.every, c.eval.include, c.device, c.seed) == (ks, every, ["recall"], "cuda", 3)


def test_synthetic_recipe() -> None:
    c = _config("distance-weighted", "synthetic", profile="smoke")
    assert c.data.kwargs == {
        "num_classes": 100,
        "images_per_class": 20,
        "modes_per_class": 2,
        "siblings": 4,
        "sibling_similarity": 0.5,
        "image_size": 32,
        "seed": 3,
    }  # data.kwargs.seed={seed}
    s = c.data.sampler
    assert (s.variant, s.p, s.k) == ("filled", 14, 5)
    assert (c.model.backbone, c.model.embedding_dim, c.device) == ("small_cnn", 128, "cpu")
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.loss_lr_multiplier) == ("adam", 1e-3, 1e-4, 10.0)
    assert c.loss.kwargs["num_classes"] == 50 and c.loss.kwargs["miner"] == RELEASED_DW
    assert (c.train.epochs, c.eval.at_start, c.eval.include) == (4, True, ["recall", "map@r"])
    assert _config("distance-weighted", "synthetic", profile="medium").train.epochs == 12


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_the_margin_loss_with_its_sampler(method: str, dataset: str) -> None:
    """Only the miner differs between the methods: same loss hyperparameters, same everything else."""
    c = _config(method, dataset, profile="smoke" if dataset == "synthetic" else "full")
    preflight(c)
    reference = _config("distance-weighted", dataset, profile="smoke" if dataset == "synthetic" else "full")
    assert {k: v for k, v in c.loss.kwargs.items() if k != "miner"} == {
        k: v for k, v in reference.loss.kwargs.items() if k != "miner"
    }
    assert c.optim == reference.optim and c.data == reference.data and c.model == reference.model
    loss = build_loss(c, num_classes=c.loss.kwargs["num_classes"])
    assert isinstance(loss, MarginLoss)
    miner = loss.miner
    if method == "distance-weighted":
        assert type(miner) is DistanceWeightedMiner
        assert (miner.cutoff, miner.nonzero_loss_cutoff, miner.positives) == (0.5, 1.4, "all")
    elif method == "distance-weighted, RevisitDML":
        assert type(miner) is DistanceWeightedMiner
        assert (miner.cutoff, miner.nonzero_loss_cutoff, miner.positives) == (0.5, None, "random")
    elif method == "semi-hard":
        assert isinstance(miner, SemiHardMiner) and (miner.select, miner.fallback) == ("one", "drop")
    else:
        assert isinstance(miner, UniformNegativeMiner) and miner.positives == "all"


def test_published_tables() -> None:
    tables = published_tables(EXPERIMENT)
    r1 = {(t["dataset"], m): row[t["columns"].index("R@1")] for t in tables for m, row in t["rows"].items()}
    assert r1 == {
        ("cub200", "margin + distance-weighted (ResNet-50, 128-d)"): 63.6,
        ("cub200", 'margin + distance-weighted, best epoch ("~64%")'): 64.0,
        ("cars196", "margin + distance-weighted (ResNet-50, 128-d)"): 79.6,
    }
    sources = {t["source"] for t in tables}
    assert sources == {
        "third-party (leaderboard): paperswithcode",
        "released code: apache/mxnet example/gluon/embedding_learning/README.md",
    }


def test_commands_name_the_recipe_file() -> None:
    line = EXPERIMENT.command("uniform", dataset="cub200", profile="full", seed=0, output_dir="runs/x")
    assert line.startswith("dml train notebooks/sampling_matters/cub200.yaml ")
    assert "uniform" in line and line.endswith("--output-dir runs/x")
