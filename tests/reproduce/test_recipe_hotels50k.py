"""Golden values of the Hotels-50K reproduction folder ``notebooks/hotels50k/`` (no training).

The full recipe is the released baseline of GWUvision/Hotels-50K (commit 3614e4a5, ``baseline_implementation/``)
where it says something; each choice of ``hotels50k.yaml`` is tagged with its source in the file's header. These
tests pin the documented values so that an edit of a recipe is a deliberate, reviewed change.
"""

from __future__ import annotations

import pytest

from dml.reproduce import load_experiment, published_tables
from dml.train import preflight

EXPERIMENT = load_experiment("notebooks/hotels50k")
METHODS = ("occlusion augmentation", "no augmentation")


def _config(method: str, dataset: str, profile: str = "full", overrides: tuple[str, ...] = ()):
    return EXPERIMENT.config(
        method, dataset=dataset, profile=profile, seed=2, output_dir="/tmp/unused", overrides=overrides
    )


def test_experiment_folder() -> None:
    assert EXPERIMENT.paper == "hotels50k" and tuple(EXPERIMENT.methods) == METHODS
    assert EXPERIMENT.real_datasets() == ["hotels50k"]
    smoke, medium, full = (EXPERIMENT.profile(p) for p in ("smoke", "medium", "full"))
    assert (smoke.dataset, smoke.seeds, smoke.device) == ("synthetic-hotels", (0,), "cpu")
    assert (medium.dataset, medium.seeds, medium.device) == ("synthetic-hotels", (0, 1, 2), "cpu")
    assert (full.dataset, full.device) == (None, "cuda")


def test_full_recipe_is_the_released_baseline() -> None:
    c = _config("occlusion augmentation", "hotels50k")
    assert (c.model.backbone, c.model.embedding_dim, c.model.pretrained, c.model.normalize) == (
        "resnet50",
        256,
        True,
        True,
    )
    s = c.data.sampler
    assert (s.variant, s.p, s.k) == ("source-balanced", 10, 10)  # 10 hotels x 10 images, balanced sources
    assert (c.loss.name, c.loss.kwargs) == ("triplet", {"margin": 0.1, "triplets": "all"})  # batch-all
    a = c.data.augment
    assert (c.data.pipeline, c.data.cache_size, a.size, a.crop, a.test_resize, a.flip) == (
        "cached",
        256,
        224,
        "random",
        256,
        0.5,
    )
    o = a.occlusion
    assert (o.p, o.scale, o.measure, o.fill) == (1.0, [0.3, 0.7], "side", "mean")  # getImageAsMask's 30-70 %
    assert (c.eval.ks, c.eval.lone_queries, c.eval.protocol) == ([1, 10, 100], "miss", "auto")
    assert c.data.kwargs == {"occlusion": "unoccluded"} and c.seed == 2
    assert _config("no augmentation", "hotels50k").data.augment.occlusion.p == 0.0


def test_synthetic_recipe() -> None:
    c = _config("occlusion augmentation", "synthetic-hotels", profile="smoke")
    assert c.data.kwargs["seed"] == 2 and c.data.kwargs["rooms"] == 60  # data.kwargs.seed={seed}
    assert (c.data.sampler.variant, c.data.sampler.p, c.data.sampler.k) == ("source-balanced", 8, 6)
    assert (c.eval.protocol, c.eval.ks, c.train.epochs, c.device) == ("hotels", [1, 10, 100], 8, "cpu")
    assert c.data.augment.occlusion.p == 1.0
    medium = _config("no augmentation", "synthetic-hotels", profile="medium")
    assert (medium.train.epochs, medium.data.kwargs["rooms"], medium.data.augment.occlusion.p) == (15, 80, 0.0)


@pytest.mark.parametrize("dataset", ("hotels50k", "synthetic-hotels"))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_preflight(method: str, dataset: str) -> None:
    preflight(_config(method, dataset, profile="full" if dataset == "hotels50k" else "smoke"))


def test_published_tables_name_their_sources() -> None:
    tables = published_tables(EXPERIMENT, "hotels50k")
    assert tables and all(t["source"] for t in tables)
    released = next(t for t in tables if "Hotels-50K README" in t["title"])
    assert released["rows"]["released model (unoccluded)"] == [40.4, 54.1, 60.4]
    sct = [t for t in tables if "SCT" in t["title"]]
    assert [t["rows"]["SCT"][0] for t in sct] == ["29.24 ± 0.12", "60.78 ± 0.13"]
