"""The gradient-surgery reproduction folder ``notebooks/gradient_surgery/`` (no training).

Its full recipes are the SCT release's (``notebooks/sct/``) with only the loss and the model's output normalisation
changed, and its default update is the NCA loss's own elements.
"""

from __future__ import annotations

import pytest

import dml.losses
from dml.reproduce import load_experiment
from dml.train.config import to_dict
from tests.pages import REPO

EXPERIMENT = load_experiment(REPO / "notebooks" / "gradient_surgery")
SCT = load_experiment(REPO / "notebooks" / "sct")
REAL = ("cub200", "cars196", "sop", "inshop")


def test_the_folder_has_the_four_benchmarks_and_the_builtin_data() -> None:
    assert EXPERIMENT.real_datasets() == sorted(REAL)
    assert set(EXPERIMENT.methods) == {"Surgery", "Triplet", "NCA", "MS", "SCT"}
    assert EXPERIMENT.profile("smoke").dataset == EXPERIMENT.profile("medium").dataset == "synthetic"
    assert EXPERIMENT.profile("full").device == "cuda"


@pytest.mark.parametrize("dataset", REAL)
def test_the_full_recipe_is_the_sct_release_but_for_the_loss(dataset: str) -> None:
    ours = to_dict(EXPERIMENT.config("Surgery", dataset=dataset, profile="full", seed=0, output_dir="runs"))
    sct = to_dict(SCT.config("SCT", dataset=dataset, profile="full", seed=0, output_dir="runs"))
    assert ours["loss"]["name"] == "gradient_surgery" and not ours["model"]["normalize"]
    for key in ("data", "optim", "train", "eval"):
        assert ours[key] == sct[key], key
    assert {k: v for k, v in ours["model"].items() if k != "normalize"} == {
        k: v for k, v in sct["model"].items() if k != "normalize"
    }
    baseline_sct = EXPERIMENT.config("SCT", dataset=dataset, profile="full", seed=0, output_dir="runs")
    assert baseline_sct.loss.name == "sct" and baseline_sct.loss.kwargs == {"rule": "feb2021"}
    for method in ("Triplet", "MS"):
        lr = EXPERIMENT.config(method, dataset=dataset, profile="full", seed=0, output_dir="runs").optim.lr
        assert lr == pytest.approx(10 * sct["optim"]["lr"])


def test_the_default_update_is_the_nca_loss() -> None:
    config = EXPERIMENT.config("Surgery", dataset="synthetic", profile="smoke", seed=0, output_dir="runs")
    update = dml.losses.build(config.loss.name, **config.loss.kwargs)
    nca = EXPERIMENT.config("NCA", dataset="synthetic", profile="smoke", seed=0, output_dir="runs")
    assert update.name == "nca/constant/cosine/proj" and update.scale == pytest.approx(
        1 / nca.loss.kwargs["temperature"]
    )
