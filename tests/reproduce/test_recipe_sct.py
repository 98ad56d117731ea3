"""Golden values: notebooks/sct/ holds the released SCT recipe (github.com/littleredxh/HardNegative, commit
f5f392377fd0) and the published tables.

Xuan, Stylianou, Liu & Pless, "Hard negative examples are hard, but useful", ECCV 2020; released code
github.com/littleredxh/HardNegative (Feb 2021 version). No training: every config is only loaded and preflighted.
"""

from __future__ import annotations

import shlex

import pytest
import yaml

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight
from tests.pages import REPO

FOLDER = REPO / "notebooks" / "sct"

# The release's README table: dim, batch (classes x 2), epochs (repeat), lr SCT, lr SHN; the release gives no lr for HN,
# which uses SCT's. Milestones at 50 % (CUB/Cars) or 50 % and 75 % (SOP/In-shop/Hotels) of the epochs.
RELEASED = {
    "cub200": dict(
        dim=64,
        batch=128,
        variant="filled",
        repeat=1,
        epochs=80,
        milestones=[40],
        sct=9e-3,
        shn=2e-3,
        ks=[1, 2, 4, 8],
        normalize="cub200",
    ),
    "cars196": dict(
        dim=64,
        batch=128,
        variant="filled",
        repeat=1,
        epochs=80,
        milestones=[40],
        sct=2e-2,
        shn=4e-3,
        ks=[1, 2, 4, 8],
        normalize="cars196",
    ),
    "sop": dict(
        dim=512,
        batch=512,
        variant="sample-repeat",
        repeat=5,
        epochs=200,
        milestones=[100, 150],
        sct=3e-2,
        shn=1e-2,
        ks=[1, 10, 100, 1000],
        normalize="sop",
    ),
    "inshop": dict(
        dim=512,
        batch=512,
        variant="sample-repeat",
        repeat=5,
        epochs=200,
        milestones=[100, 150],
        sct=1e-1,
        shn=3e-1,
        ks=[1, 10, 20, 30],
        normalize="inshop",
    ),
    "hotels50k": dict(
        dim=256,
        batch=512,
        variant="sample-repeat",
        repeat=5,
        epochs=200,
        milestones=[100, 150],
        sct=1e-1,
        shn=1e-2,
        ks=[1, 10, 100],
        normalize="hotels50k",
    ),
}


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(FOLDER)


def test_experiment_lists_the_methods_profiles_and_datasets(experiment) -> None:
    assert experiment.paper == "sct"
    assert list(experiment.methods) == ["HN", "SHN", "SCT"]
    assert sorted(experiment.real_datasets()) == sorted(RELEASED)
    assert experiment.profile("smoke").dataset == "synthetic" and experiment.profile("smoke").seeds == (0,)
    assert experiment.profile("medium").seeds == (0, 1, 2)
    full = experiment.profile("full")
    assert full.dataset is None and full.device == "cuda" and full.seeds == (0, 1, 2, 3, 4)
    # the bare name resolves to the same folder
    assert load_experiment("sct").folder == experiment.folder


@pytest.mark.parametrize("dataset", sorted(RELEASED))
@pytest.mark.parametrize("method", ["HN", "SHN", "SCT"])
def test_dataset_config_is_the_released_recipe(experiment, dataset: str, method: str, tmp_path) -> None:
    want = RELEASED[dataset]
    config = experiment.config(method, dataset=dataset, profile="full", seed=3, output_dir=tmp_path)
    preflight(config)
    assert config.seed == 3 and config.output_dir == str(tmp_path)
    assert config.device == "cuda" and config.amp is False
    m = config.model
    assert (m.backbone, m.pretrained, m.pooling, m.normalize, m.embedding_dim) == (
        "resnet50",
        True,
        "avg",
        True,
        want["dim"],
    )
    s = config.data.sampler
    assert s.k == 2 and s.p * s.k == want["batch"] and s.variant == want["variant"] and s.repeat == want["repeat"]
    # the release's epoch (one stream of rounds cut into batches of B) and recall (over all queries)
    assert s.batching == "released" and config.eval.lone_queries == "miss"
    d, a = config.data, config.data.augment
    assert d.name == dataset and d.pipeline == "cached" and d.cache_size == 281
    assert (a.size, a.crop, a.flip, a.test_resize, a.normalize) == (256, "random", 0.5, 256, want["normalize"])
    o = config.optim
    assert (o.name, o.momentum, o.weight_decay, o.gamma) == ("sgd", 0.0, 0.0, 0.1)
    assert o.milestones == want["milestones"] and config.train.epochs == want["epochs"]
    assert o.lr == pytest.approx(want["shn"] if method == "SHN" else want["sct"], rel=1e-12)
    assert config.loss.name == "sct"
    # the full recipe is the Feb 2021 release's loss; the baselines replace the kwargs (no rule applies to them)
    assert config.loss.kwargs == ({"rule": "feb2021"} if method == "SCT" else {"mode": method.lower()})
    assert config.eval.every == 10 and config.eval.ks == want["ks"] and config.eval.include == ["recall"]


def test_milestones_are_half_and_three_quarters_of_the_epochs(experiment) -> None:
    for dataset in RELEASED:
        config = experiment.config("SCT", dataset=dataset, profile="full", seed=0, output_dir="runs")
        epochs = config.train.epochs
        expected = [epochs // 2] if config.data.sampler.variant == "filled" else [epochs // 2, 3 * epochs // 4]
        assert config.optim.milestones == expected


@pytest.mark.parametrize("profile, epochs", [("smoke", 8), ("medium", 20)])
def test_builtin_profiles_resolve_to_the_cpu_setting(experiment, profile: str, epochs: int, tmp_path) -> None:
    for seed in experiment.profile(profile).seeds:
        for method in experiment.methods:
            config = experiment.config(method, dataset="synthetic", profile=profile, seed=seed, output_dir=tmp_path)
            preflight(config)
            assert config.device == "cpu" and config.train.epochs == epochs
            assert config.data.kwargs["seed"] == seed and config.seed == seed
            assert config.model.backbone_kwargs["norm"] == "none"  # the collapse needs a network without BN
            assert (config.data.sampler.p, config.data.sampler.k) == (25, 2)
            assert config.optim.lr == 0.2 and config.optim.momentum == 0.0
    with pytest.raises(ValueError, match="built-in dataset"):
        experiment.dataset_for(profile, "cub200")


def test_command_is_a_dml_train_line(experiment) -> None:
    line = experiment.command("SHN", dataset="cub200", profile="full", seed=1, output_dir="runs/sct/cub200/SHN/seed1")
    words = shlex.split(line)
    assert words[:3] == ["dml", "train", "notebooks/sct/cub200.yaml"]
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert sets == ["loss.kwargs={mode: shn}", "optim.lr=0.002", "seed=1"]
    assert words[-2:] == ["--output-dir", "runs/sct/cub200/SHN/seed1"]


def test_each_dataset_file_documents_its_command_line() -> None:
    for dataset in list(RELEASED) + ["synthetic"]:
        text = (FOLDER / f"{dataset}.yaml").read_text()
        assert f"dml train notebooks/sct/{dataset}.yaml" in text


def test_published_tables_cover_every_dataset(experiment) -> None:
    tables = published_tables(experiment)
    assert {t["dataset"] for t in tables} == set(RELEASED)
    for dataset in RELEASED:
        titles = [t["title"] for t in published_tables(experiment, dataset)]
        assert any("README" in title for title in titles) and any("bar chart" in title for title in titles)
        assert all(t["source"] for t in published_tables(experiment, dataset))
    readme_cub = next(t for t in tables if t["dataset"] == "cub200" and "README" in t["title"])
    assert readme_cub["rows"]["SCT"][0] == "57.71 ± 0.75" and readme_cub["rows"]["HN"][0] == "collapse"
    bars = {t["dataset"]: t["rows"]["HN"][0] for t in tables if "bar chart" in t["title"]}
    assert bars == {"cub200": 34.7, "cars196": 21.8, "sop": 81.0, "inshop": 89.9, "hotels50k": 4.5}
    inshop = next(t for t in tables if t["dataset"] == "inshop" and "README" in t["title"])
    assert inshop["columns"][-1] == "R@30" and "R@40" in inshop["note"]


def test_experiment_yaml_parses() -> None:
    spec = yaml.safe_load((FOLDER / "experiment.yaml").read_text())
    assert set(spec["dataset_methods"]) == set(RELEASED)
