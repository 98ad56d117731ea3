"""Golden values of the DREML reproduction folder ``notebooks/dreml/`` (no training).

The recipes follow the released DREML code (github.com/littleredxh/DREML at 24f008b, 2020-06-16: ``main.py``,
``run.slurm``, ``_code/Train.py``), the method "DREML, 2018 loss" its 2018 version (59d8d29); each YAML header names
the source of each choice. These tests pin the documented values so that an edit of a recipe is a deliberate,
reviewed change.
"""

from __future__ import annotations

import shlex

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import build_loss, build_model, preflight

EXPERIMENT = load_experiment("notebooks/dreml")
REAL = ("cub200", "cars196", "sop", "inshop")
# dataset: (training classes, sampler (variant, p, k, repeat), R@K)
RECIPE = {
    "cub200": (100, ("filled", 32, 4, 1), [1, 2, 4, 8]),
    "cars196": (98, ("filled", 32, 4, 1), [1, 2, 4, 8]),
    "sop": (11318, ("sample-repeat", 64, 2, 3), [1, 10, 100, 1000]),
    "inshop": (3997, ("sample-repeat", 64, 2, 3), [1, 10, 20, 30]),
}
METHODS = ("DREML", "DREML, 2018 loss", "single learner", "single learner, 2018 loss")


def _config(method: str, dataset: str, profile: str = "full", overrides: tuple[str, ...] = ()):
    return EXPERIMENT.config(
        method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused", overrides=overrides
    )


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "dreml"
    assert tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic", (0, 1), "cpu")
    assert (full.dataset, full.seeds, full.device) == (None, (0, 1, 2), "cuda")
    assert "train.epochs=3" in smoke.overrides and "train.epochs=6" in medium.overrides
    assert "model.learners=12" in medium.overrides


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_recipe_is_the_released_one(dataset: str) -> None:
    _, sampler, ks = RECIPE[dataset]
    c = _config("DREML", dataset)
    m = c.model
    assert (m.backbone, m.pretrained, m.pooling, m.normalize) == ("resnet18", True, "avg", False)
    assert (m.learners, m.embedding_dim, m.shared_backbone) == (12, 12, False)  # run.slurm: --Esize 12 --Msize 12
    assert (c.loss.name, c.loss.kwargs) == ("meta_class_softmax", {"variant": "2020", "seed": 3})
    o = c.optim
    assert (o.name, o.lr, o.momentum, o.weight_decay) == ("sgd", 0.01, 0.9, 0.0)
    assert (c.train.epochs, o.milestones, o.gamma) == (12, [6, 9], 0.01)  # int(0.5 * 12), int(0.8 * 12)
    s = c.data.sampler
    assert (s.variant, s.p, s.k, s.repeat, s.batching) == (*sampler, "released") and s.p * s.k == 128
    a = c.data.augment
    assert (c.data.pipeline, c.data.cache_size, a.size, a.crop, a.test_resize, a.flip, a.normalize) == (
        "cached",
        281,
        256,
        "random",
        256,
        0.5,
        dataset,
    )
    assert (c.device, c.amp, c.eval.every, c.eval.ks, c.eval.include) == ("cuda", False, 0, ks, ["recall"])
    assert c.eval.lone_queries == "miss"


@pytest.mark.parametrize("dataset", REAL)
def test_2018_method_and_the_single_learner(dataset: str) -> None:
    classes = RECIPE[dataset][0]
    old = _config("DREML, 2018 loss", dataset)
    assert (old.loss.kwargs["variant"], old.optim.gamma, old.model.learners) == ("2018", 0.1, 12)
    single = _config("single learner", dataset)
    assert (single.model.learners, single.model.embedding_dim) == (1, classes)  # E = 1, M = C
    assert single.loss.kwargs["variant"] == "2020"
    assert _config("single learner, 2018 loss", dataset).model.embedding_dim == classes


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight_and_builds(method: str, dataset: str) -> None:
    c = _config(method, dataset, profile="smoke" if dataset == "synthetic" else "full")
    preflight(c)
    if dataset == "synthetic":
        model, loss = build_model(c), build_loss(c, num_classes=48)
        assert loss.learners * loss.embedding_dim == getattr(model, "embedding_dim", c.model.embedding_dim)


def test_synthetic_recipe() -> None:
    c = _config("DREML", "synthetic", profile="smoke")
    assert c.data.kwargs == {
        "num_classes": 96,
        "images_per_class": 24,
        "modes_per_class": 2,
        "siblings": 4,
        "sibling_similarity": 0.5,
        "image_size": 32,
        "seed": 3,
    }  # data.kwargs.seed={seed}
    assert (c.model.learners, c.model.embedding_dim, c.model.shared_backbone) == (8, 12, False)
    assert c.model.backbone_kwargs == {"widths": [8, 16, 32]}
    assert (c.loss.kwargs, c.train.epochs, c.device) == ({"variant": "2020", "seed": 3}, 3, "cpu")
    assert (c.optim.lr, c.optim.momentum, c.optim.milestones) == (0.05, 0.9, [])
    single = _config("single learner", "synthetic", profile="smoke")
    assert (single.model.learners, single.model.embedding_dim) == (1, 48)  # the 48 training classes
    assert _config("DREML", "synthetic", profile="medium").model.learners == 12


def test_published_tables_and_their_provenance() -> None:
    tables = published_tables(EXPERIMENT)
    assert {t["dataset"] for t in tables} == {"cub200", "cars196", "sop", "inshop"}
    r1 = {(t["dataset"], t["source"].split(" ")[0]): row[0] for t in tables for row in t["rows"].values()}
    assert r1 == {
        ("inshop", "third-party"): 78.4,
        ("cub200", "third-party"): 63.52,
        ("cars196", "third-party"): 84.96,
        ("sop", "third-party"): 73.70,
        ("cub200", "UNVERIFIED"): "≈ 63.9",
        ("cars196", "UNVERIFIED"): "≈ 86.0",
    }
    assert all(t["columns"][0] == "R@1" for t in tables)


def test_commands_name_the_recipe_file() -> None:
    line = EXPERIMENT.command("DREML, 2018 loss", dataset="cars196", profile="full", seed=0, output_dir="runs/x")
    assert line.startswith("dml train notebooks/dreml/cars196.yaml ")
    words = shlex.split(line)  # the quoted value stays a string: variant '2018', not the integer 2018
    assert "loss.kwargs.variant='2018'" in words and "optim.gamma=0.1" in words and line.endswith("--output-dir runs/x")
