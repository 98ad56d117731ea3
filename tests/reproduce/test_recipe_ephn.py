"""Golden values of the EPHN reproduction folder ``notebooks/ephn/`` (no training).

The recipes follow the released EPHN code (github.com/littleredxh/EasyPositiveHardNegative, commit d4520cfa2b3b)
where it says something and the group's SCT release (HardNegative, f5f392377fd0) otherwise; each YAML header names
the source of each choice.
These tests pin the documented values so that an edit of a recipe is a deliberate, reviewed change.
"""

from __future__ import annotations

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight

EXPERIMENT = load_experiment("notebooks/ephn")
REAL = ("cub200", "cars196", "sop", "inshop", "hotels50k")
# dataset: (backbone, embedding dim, sampler variant, R@K)
RECIPE = {
    "cub200": ("resnet18", 64, "filled", [1, 2, 4, 8]),
    "cars196": ("resnet18", 64, "filled", [1, 2, 4, 8]),
    "sop": ("resnet50", 512, "sample-repeat", [1, 10, 100, 1000]),
    "inshop": ("resnet50", 512, "sample-repeat", [1, 10, 20, 30]),
    "hotels50k": ("resnet50", 256, "sample-repeat", [1, 10, 100]),
}
METHODS = ("EPHN", "EPSHN", "NCA, all positives", "triplet, batch-all")


def _config(method: str, dataset: str, profile: str = "full", overrides: tuple[str, ...] = ()):
    return EXPERIMENT.config(
        method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused", overrides=overrides
    )


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "ephn"
    assert tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic", (0, 1), "cpu")
    assert (full.dataset, full.seeds, full.device) == (None, (0, 1, 2, 3, 4), "cuda")
    assert "train.epochs=4" in smoke.overrides and "train.epochs=10" in medium.overrides


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_recipe(dataset: str) -> None:
    backbone, dim, variant, ks = RECIPE[dataset]
    c = _config("EPHN", dataset)
    assert (c.model.backbone, c.model.embedding_dim, c.model.pretrained, c.model.normalize) == (
        backbone,
        dim,
        True,
        True,
    )
    s = c.data.sampler
    assert (s.p * s.k, s.k, s.variant, s.repeat) == (128, 16, variant, 1)  # batch 128, G = 16 (2020 run.sh)
    assert s.batching == "released" and c.eval.lone_queries == "miss"  # the release's epoch and recall
    assert (c.train.epochs, c.optim.milestones, c.optim.gamma) == (100, [50, 75], 0.1)
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == ("sgd", 0.03, 0.0, 0.0)
    a = c.data.augment
    assert (c.data.pipeline, c.data.cache_size, a.size, a.crop, a.test_resize, a.flip) == (
        "cached",
        281,
        256,
        "random",
        256,
        0.5,
    )
    assert a.normalize == ("cache" if dataset == "hotels50k" else dataset)
    assert (c.device, c.amp, c.deterministic) == ("cuda", False, False)
    assert (c.eval.every, c.eval.ks, c.eval.include) == (10, ks, ["recall"])
    assert (c.loss.name, c.loss.kwargs) == ("ephn", {})
    assert c.seed == 3


def test_synthetic_recipe() -> None:
    c = _config("EPHN", "synthetic", profile="smoke")
    assert c.data.kwargs == {
        "num_classes": 100,
        "images_per_class": 24,
        "modes_per_class": 4,
        "siblings": 4,
        "sibling_similarity": 0.5,
        "image_size": 32,
        "seed": 3,
    }  # data.kwargs.seed={seed}
    s = c.data.sampler
    assert (s.variant, s.p, s.k, s.batching) == ("filled", 8, 8, "per-round")  # the smoke baseline's epoch
    assert c.eval.lone_queries == "exclude"
    assert (c.model.backbone, c.model.embedding_dim, c.model.pooling) == ("small_cnn", 64, "gem")
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.milestones) == (
        "sgd",
        0.1,
        0.0,
        0.0,
        [],
    )
    assert (c.train.epochs, c.device, c.eval.include) == (4, "cpu", ["recall", "map@r"])
    assert _config("EPHN", "synthetic", profile="medium").train.epochs == 10


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight(method: str, dataset: str) -> None:
    """Catches hyperparameters of one loss leaking into another (preflight rejects unknown loss kwargs)."""
    c = _config(method, dataset, profile="smoke" if dataset == "synthetic" else "full")
    preflight(c)
    expected = {
        "EPHN": ("ephn", {}),
        "EPSHN": ("ephn", {"negatives": "semihard"}),
        "NCA, all positives": ("nca", {"temperature": 0.1, "triplets": "all"}),
        "triplet, batch-all": ("triplet", {"margin": 0.1, "triplets": "all"}),
    }[method]
    assert (c.loss.name, c.loss.kwargs) == expected


@pytest.mark.parametrize(
    ("dataset", "profile", "batch"),
    [("cub200", "full", 128), ("sop", "full", 128), ("synthetic", "smoke", 64), ("synthetic", "medium", 64)],
)
def test_group_size_sweep_keeps_the_batch(dataset: str, profile: str, batch: int) -> None:
    """The notebook's sweep overrides (P = B / G) keep the batch size fixed for every G."""
    base = _config("EPHN", dataset, profile=profile)
    assert base.data.sampler.p * base.data.sampler.k == batch
    for k in (2, 4, 8, 16):
        c = _config(
            "NCA, all positives",
            dataset,
            profile=profile,
            overrides=(f"data.sampler.p={batch // k}", f"data.sampler.k={k}"),
        )
        assert (c.data.sampler.k, c.data.sampler.p * c.data.sampler.k) == (k, batch)
        preflight(c)


def test_published_tables() -> None:
    tables = published_tables(EXPERIMENT)
    assert {t["dataset"] for t in tables} == {"cub200", "cars196", "sop", "inshop"}
    r1 = {(t["dataset"], method): row[t["columns"].index("R@1")] for t in tables for method, row in t["rows"].items()}
    assert r1 == {
        ("cub200", "EPSHN (64-d)"): 57.3,
        ("cub200", "EPSHN (512-d)"): 64.9,
        ("cars196", "EPSHN (64-d)"): 75.5,
        ("cars196", "EPSHN (512-d)"): 82.7,
        ("sop", "EPSHN (512-d)"): 78.3,
        ("inshop", "EPSHN (512-d)"): 87.8,
    }
    assert all(t["source"] == "third-party (leaderboard): paperswithcode / OpenCodePapers" for t in tables)


def test_commands_name_the_recipe_file() -> None:
    line = EXPERIMENT.command("EPSHN", dataset="cars196", profile="full", seed=0, output_dir="runs/x")
    assert line.startswith("dml train notebooks/ephn/cars196.yaml ")
    assert "--set loss.kwargs.negatives=semihard" in line and line.endswith("--output-dir runs/x")
