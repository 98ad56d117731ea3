"""Golden values of the CGD reproduction folder ``notebooks/cgd/`` (no training).

The recipes follow the PyTorch re-implementation github.com/leftthomas/CGD (no official training code exists; the
official github.com/naver/cgd is evaluation only); each YAML header names the source of each choice. These tests
pin the documented values so that an edit of a recipe is a deliberate, reviewed change.
"""

from __future__ import annotations

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight

EXPERIMENT = load_experiment("notebooks/cgd")
REAL = ("cub200", "cars196", "sop", "inshop")
# dataset: (descriptors of the re-implementation's table, R@K)
RECIPE = {
    "cub200": ("MG", [1, 2, 4, 8]),
    "cars196": ("SG", [1, 2, 4, 8]),
    "sop": ("SG", [1, 10, 100, 1000]),
    "inshop": ("GS", [1, 10, 20, 30]),
}
METHODS = ("SPoC", "MAC", "GeM", "SPoC+MAC+GeM", "SPoC+MAC+GeM, no auxiliary", "the file's descriptors")
DESCRIPTORS = {"SPoC": "S", "MAC": "M", "GeM": "G", "SPoC+MAC+GeM": "SMG", "SPoC+MAC+GeM, no auxiliary": "SMG"}


def _config(method: str, dataset: str, profile: str = "full", overrides: tuple[str, ...] = ()):
    return EXPERIMENT.config(
        method, dataset=dataset, profile=profile, seed=3, output_dir="/tmp/unused", overrides=overrides
    )


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "cgd"
    assert tuple(EXPERIMENT.methods) == METHODS
    assert sorted(EXPERIMENT.real_datasets()) == sorted(REAL)
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic", (0, 1), "cpu")
    assert (full.dataset, full.seeds, full.device) == (None, (0, 1, 2), "cuda")
    assert "train.epochs=3" in smoke.overrides and "train.epochs=10" in medium.overrides


@pytest.mark.parametrize("dataset", REAL)
def test_real_dataset_recipe(dataset: str) -> None:
    descriptors, ks = RECIPE[dataset]
    c = _config("the file's descriptors", dataset)
    m = c.model
    assert (m.backbone, m.pretrained, m.embedding_dim, m.head, m.backbone_kwargs) == (
        "resnet50",
        True,
        1536,
        "cgd",
        {"layer3_stride": 1, "norm": "batch-eval"},
    )
    assert m.head_kwargs == {"descriptors": descriptors, "p": 3.0, "auxiliary": True}
    assert (c.loss.name, c.loss.kwargs) == ("cgd", {"margin": 0.1, "smoothing": 0.1, "temperature": 0.5})
    s = c.data.sampler
    assert (s.variant, s.p, s.k) == ("filled", 32, 4)  # batch 128, 4 per class
    assert (c.optim.name, c.optim.lr, c.optim.milestones, c.optim.gamma, c.train.epochs) == (
        "adam",
        1e-4,
        [12, 16],
        0.1,
        20,
    )
    a = c.data.augment
    assert (c.data.pipeline, c.data.cache_size, a.size, a.crop, a.test_resize, a.flip, a.normalize) == (
        "cached",
        252,
        224,
        "random",
        224,
        0.5,
        "imagenet",
    )
    assert (c.device, c.eval.ks, c.eval.include, c.eval.every) == ("cuda", ks, ["recall", "map@r"], 5)
    assert c.data.kwargs == {}  # whole images: the crop is the page's bbox_crop option


@pytest.mark.parametrize("dataset", (*REAL, "synthetic"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight_and_sets_its_head(method: str, dataset: str) -> None:
    c = _config(method, dataset, profile="smoke" if dataset == "synthetic" else "full")
    preflight(c)
    own = "MG" if dataset == "synthetic" else RECIPE[dataset][0]
    assert c.model.head_kwargs["descriptors"] == DESCRIPTORS.get(method, own)
    auxiliary = method != "SPoC+MAC+GeM, no auxiliary"
    assert c.model.head_kwargs["auxiliary"] is auxiliary and c.loss.kwargs.get("auxiliary", True) is auxiliary
    assert c.model.embedding_dim % len(c.model.head_kwargs["descriptors"]) == 0


@pytest.mark.parametrize("dataset", ("cub200", "cars196"))
def test_the_crop_option_reaches_the_loader_of_cub_and_cars(dataset: str) -> None:
    c = _config("the file's descriptors", dataset, overrides=("data.kwargs.bbox_crop=true",))
    preflight(c)
    assert c.data.kwargs == {"bbox_crop": True}
    line = EXPERIMENT.command(
        "SPoC", dataset=dataset, profile="full", seed=0, output_dir="x", overrides=["data.kwargs.bbox_crop=true"]
    )
    assert "--set data.kwargs.bbox_crop=true" in line


def test_the_crop_option_is_refused_where_there_are_no_boxes() -> None:
    from dml.train import ConfigError

    with pytest.raises(ConfigError, match="bbox_crop"):
        preflight(_config("SPoC", "sop", overrides=("data.kwargs.bbox_crop=true",)))


def test_synthetic_recipe() -> None:
    c = _config("SPoC+MAC+GeM", "synthetic", profile="smoke")
    assert (c.model.backbone, c.model.embedding_dim, c.model.backbone_kwargs) == (
        "small_cnn",
        96,
        {"widths": [16, 32, 64]},
    )
    assert (c.data.sampler.p, c.data.sampler.k, c.optim.name, c.optim.lr, c.train.epochs) == (16, 4, "adam", 1e-3, 3)
    assert c.data.kwargs["seed"] == 3 and c.eval.include == ["recall", "map@r"]


def test_published_tables() -> None:
    tables = published_tables(EXPERIMENT)
    assert {t["dataset"] for t in tables} == set(REAL)
    r1 = {
        (t["dataset"], t["title"][:9], m): row[t["columns"].index("R@1")]
        for t in tables
        for m, row in t["rows"].items()
    }
    assert r1[("cub200", "CGD paper", "CGD (best descriptors)")] == 79.2
    assert r1[("cars196", "CGD paper", "CGD (best descriptors)")] == 94.8
    assert r1[("sop", "CGD paper", "CGD (best descriptors)")] == 84.2
    assert r1[("inshop", "CGD paper", "CGD (best descriptors)")] == 91.9
    assert r1[("cub200", "CGD re-im", "MG, uncropped")] == 66.0
    assert r1[("cub200", "CGD re-im", "MG, bounding-box crops")] == 73.9
    assert r1[("cars196", "CGD re-im", "SG, uncropped")] == 86.4
    assert r1[("cars196", "CGD re-im", "SG, bounding-box crops")] == 92.4
    checkpoint = next(t for t in tables if "checkpoint" in t["title"])
    assert checkpoint["rows"]["CGD MG"] == [76.81, 84.84, 90.60, 94.33]
    assert checkpoint["source"] == "released code (naver/cgd README)"
