"""``eval.protocol``: the trainer evaluates In-Shop by queries against a gallery and Hotels-50K by test photos
against the training images, with every pipeline, and its numbers equal those computed by hand from the final model.

The hand computation is an independent path: it builds the query and gallery datasets itself (the registry's
``subset`` for In-Shop, the train and test splits for Hotels-50K; the ``cached`` runs read the caches the run wrote)
under a test transform written out here, embeds them with :func:`dml.eval.embed` and calls the metric functions.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import dml.data
import dml.eval
import dml.models
from dml.data import loaders
from dml.data.augment import IMAGENET_MEAN, IMAGENET_STD, CenterCropTransform
from dml.eval.hotels import CHAIN_KS
from dml.eval.protocol import PROTOCOL_ARRAY, resolve_protocol
from dml.train import ConfigError, from_dict, load_model, preflight, to_dict, train
from dml.train.checkpoint import check_resumable as _check_resumable
from dml.train.checkpoint import load_checkpoint, save_checkpoint
from dml.train.checkpoint import with_defaults as _with_defaults
from tests.fixtures.benchmarks import make_hotels, make_inshop

SIZE, TEST_RESIZE, CACHE = 32, 36, 40
KS = [1, 2]
INCLUDE = ["recall", "map@r", "r_precision"]
HOTELS, QUERIES_PER_HOTEL = 10, 2


def _config(root: Path, name: str, pipeline_name: str, **eval_keys: object) -> dict:
    return {
        "seed": 1,
        "deterministic": False,
        "device": "cpu",
        "output_dir": str(root / f"run-{name}-{pipeline_name}"),
        "data": {
            "name": name,
            "root": str(root),
            "pipeline": pipeline_name,
            "sampler": {"p": 3, "k": 2},
            "augment": {"size": SIZE, "test_resize": TEST_RESIZE},
            "cache_size": CACHE,
            "cache_workers": 0,
        },
        # A 2-D embedding of a tiny CNN keeps retrieval imperfect, so that equal numbers mean something.
        "model": {"backbone": "small_cnn", "embedding_dim": 2, "backbone_kwargs": {"widths": [4, 4]}},
        "loss": {"name": "triplet"},
        "train": {"epochs": 1, "log_every": 100},
        "eval": {"ks": KS, "include": INCLUDE, **eval_keys},
    }


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """In-Shop (4 training items, 8 test items with 2 query and 2 gallery images each) and Hotels-50K (10 hotels,
    3 training images and 2 test photos each; the last hotel, the one of no known chain, lost all its training
    images, so its 2 test photos have no positive in the gallery)."""
    root = tmp_path_factory.mktemp("benchmarks")
    make_inshop(root / "inshop", train_items=4, test_items=8, per_item=2)
    make_hotels(root / "hotels50k", hotels=HOTELS, train_per_hotel=3, test_per_hotel=QUERIES_PER_HOTEL, missing_train=3)
    return root


def _test_transform():
    """``Resize(36) → CenterCrop(32) → Normalize(ImageNet)``, the ``jpeg`` test transform, written out here."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(TEST_RESIZE, antialias=True),
            v2.CenterCrop(SIZE),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )


def _split(root: Path, name: str, pipeline_name: str, split: str, **kw: object) -> tuple[object, np.ndarray | None]:
    """``(dataset of test-transformed images, chain labels or None)`` of one split, built without the trainer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Hotels-50K's missing training files
        if pipeline_name == "jpeg":
            dataset = dml.data.build(name, split=split, root=root, transform=_test_transform(), **kw)
            return dataset, getattr(dataset, "chain_labels", None)
        cache = dml.data.open_cache(name, split=split, size=CACHE, root=root)
    images = CenterCropTransform(resize=TEST_RESIZE, size=SIZE)(cache.batch(np.arange(len(cache))))
    return TensorDataset(images, torch.from_numpy(cache.labels)), getattr(cache, "chain_labels", None)


def _embed(model: torch.nn.Module, dataset: object) -> tuple[torch.Tensor, np.ndarray]:
    return dml.eval.embed(model, dataset, batch_size=256, device="cpu")


def _recorded_final(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["final"]


@pytest.mark.parametrize("pipeline_name", ["jpeg", "cached"])
def test_inshop_is_evaluated_by_queries_against_the_gallery(benchmarks: Path, pipeline_name: str) -> None:
    config = from_dict(_config(benchmarks, "inshop", pipeline_name))
    final = train(config)
    assert final == _recorded_final(Path(config.output_dir))
    model = load_model(config.output_dir)
    if pipeline_name == "jpeg":
        query, gallery = (_split(benchmarks, "inshop", "jpeg", "test", subset=s)[0] for s in ("query", "gallery"))
    else:  # the cached test split is queries then gallery, with the is_query mask restored from the cache
        both, _ = _split(benchmarks, "inshop", "cached", "test")
        mask = dml.data.open_cache("inshop", split="test", size=CACHE, root=benchmarks).is_query
        query = TensorDataset(*(t[torch.from_numpy(mask)] for t in both.tensors))
        gallery = TensorDataset(*(t[torch.from_numpy(~mask)] for t in both.tensors))
    (eq, yq), (eg, yg) = _embed(model, query), _embed(model, gallery)
    assert len(yq) == len(yg) == 16 and set(yq) == set(yg)
    expected = dml.eval.query_gallery_metrics(eq, yq, eg, yg, ks=KS, include=INCLUDE, seed=config.seed)
    assert {k: v for k, v in final.items() if k not in ("epoch", "loss", "lr")} == expected
    # 16 queries, not the 32 images of the test split that self-retrieval (the old behaviour) would rank.
    assert final["num_queries"] == 16 and final["num_queries_without_positives"] == 0


@pytest.mark.parametrize("pipeline_name", ["jpeg", "cached"])
def test_hotels_are_evaluated_by_test_photos_against_the_training_images(benchmarks: Path, pipeline_name: str) -> None:
    config = from_dict(_config(benchmarks, "hotels50k", pipeline_name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        final = train(config)
    assert final == _recorded_final(Path(config.output_dir))
    model = load_model(config.output_dir)
    (query, query_chains), (gallery, gallery_chains) = (
        _split(benchmarks, "hotels50k", pipeline_name, split) for split in ("test", "train")
    )
    (eq, yq), (eg, yg) = _embed(model, query), _embed(model, gallery)
    assert len(yq) == HOTELS * QUERIES_PER_HOTEL and len(yg) == (HOTELS - 1) * 3
    expected = dml.eval.query_gallery_metrics(eq, yq, eg, yg, ks=KS, include=INCLUDE, seed=config.seed)
    expected.update(
        dml.eval.hotel_retrieval_metrics(
            eq, eg, yq, yg, query_chains, gallery_chains, top=max(KS + list(CHAIN_KS)), instance_ks=KS
        )
    )
    assert {k: v for k, v in final.items() if k not in ("epoch", "loss", "lr")} == expected
    assert {f"instance@{k}" for k in KS} | {f"recall@{k}" for k in KS} | {f"chain@{k}" for k in CHAIN_KS} <= set(final)
    # The last hotel has no training image: the released code counts its photos as misses, recall@K skips them.
    assert final["num_queries_without_positives"] == QUERIES_PER_HOTEL
    assert final["num_queries_with_chain"] == (HOTELS - 1) * QUERIES_PER_HOTEL
    for k in KS:
        kept = 1 - final["num_queries_without_positives"] / final["num_queries"]
        assert final[f"instance@{k}"] == pytest.approx(final[f"recall@{k}"] * kept, abs=1e-12)


@pytest.mark.parametrize("pipeline_name", ["jpeg", "cached"])
def test_evaluation_data_holds_each_protocols_sets(benchmarks: Path, pipeline_name: str) -> None:
    """The pipeline hands over the In-Shop mask, and for Hotels-50K the training images centre-cropped (the same
    tensors as the hand-built evaluation transform gives, not a random training crop) with their chains."""
    inshop_config = from_dict(_config(benchmarks, "inshop", pipeline_name))
    inshop = loaders.build_loaders(inshop_config.data, protocol=inshop_config.eval.protocol).evaluation
    assert inshop.protocol == "query-gallery" and inshop.gallery is None
    assert inshop.is_query.tolist() == [True] * 16 + [False] * 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hotels_config = from_dict(_config(benchmarks, "hotels50k", pipeline_name))
        hotels = loaders.build_loaders(hotels_config.data, protocol=hotels_config.eval.protocol).evaluation
    assert hotels.protocol == "hotels" and hotels.is_query is None
    gallery, chains = _split(benchmarks, "hotels50k", pipeline_name, "train")
    expected = torch.stack([gallery[i][0] for i in range(len(gallery))])
    batches = list(hotels.gallery)
    assert torch.equal(torch.cat([images for images, _ in batches]), expected)
    assert np.array_equal(
        np.concatenate([labels.numpy() for _, labels in batches]),
        np.array([gallery[i][1] for i in range(len(gallery))]),
    )
    assert np.array_equal(hotels.gallery_chain_labels, chains) and set(chains) == {0, 1}
    _, query_chains = _split(benchmarks, "hotels50k", pipeline_name, "test")
    assert np.array_equal(hotels.chain_labels, query_chains) and (query_chains == -1).sum() == QUERIES_PER_HOTEL


def _toy_factory(kind: str):
    """A registrable in-memory dataset of 16-pixel images that carries ``is_query`` or ``chain_labels``: for
    ``"hotels"`` train and test share their 6 classes; for ``"query-gallery"`` the test classes are new."""

    def factory(*, split: str = "train", root: object = None, transform: object = None) -> dml.data.InMemoryDataset:
        rng = np.random.default_rng(0 if split == "train" else 1)
        classes = np.arange(6) if kind == "hotels" or split == "train" else np.arange(6, 12)
        labels = np.repeat(classes, 4)
        colours = np.stack([(labels * 53) % 256, (labels * 97) % 256, (labels * 151) % 256], axis=1)
        images = np.clip(colours[:, None, None, :] + rng.normal(0, 40, (len(labels), 16, 16, 3)), 0, 255)
        dataset = dml.data.InMemoryDataset(
            split=split, images=images.astype(np.uint8), labels=labels, transform=transform
        )
        if kind == "hotels":
            dataset.chain_labels = np.where(labels < 5, labels % 2, -1)
        else:
            dataset.is_query = np.arange(len(labels)) % 2 == 0 if split == "test" else np.zeros(len(labels), bool)
        return dataset

    return factory


@pytest.mark.parametrize("protocol", ["query-gallery", "hotels"])
def test_tensor_pipeline_runs_both_protocols_on_a_dataset_that_carries_their_arrays(
    tmp_path: Path, protocol: str
) -> None:
    from dml.data.registry import _REGISTRY

    name = f"toy-{protocol}"
    dml.data.register(name)(_toy_factory(protocol))
    try:
        raw = _config(tmp_path, name, "tensor", protocol=protocol)
        raw["model"]["embedding_dim"] = 4
        config = from_dict(raw)
        assert resolve_protocol(name, "auto") == "self"  # not a catalogued benchmark: explicit only
        final = train(config)
        model = load_model(config.output_dir)
        test = dml.data.build(name, split="test")
        eq, yq = _embed(model, test)
        if protocol == "query-gallery":
            q = test.is_query
            expected = dml.eval.query_gallery_metrics(
                eq[torch.from_numpy(q)],
                yq[q],
                eq[torch.from_numpy(~q)],
                yq[~q],
                ks=KS,
                include=INCLUDE,
                seed=config.seed,
            )
        else:
            train_set = dml.data.build(name, split="train")
            eg, yg = _embed(model, train_set)
            expected = dml.eval.query_gallery_metrics(eq, yq, eg, yg, ks=KS, include=INCLUDE, seed=config.seed)
            expected.update(
                dml.eval.hotel_retrieval_metrics(
                    eq,
                    eg,
                    yq,
                    yg,
                    test.chain_labels,
                    train_set.chain_labels,
                    top=max(KS + list(CHAIN_KS)),
                    instance_ks=KS,
                )
            )
        assert {k: v for k, v in final.items() if k not in ("epoch", "loss", "lr")} == expected
    finally:
        _REGISTRY.unregister(name)


def test_auto_picks_each_benchmarks_protocol() -> None:
    assert {
        name: resolve_protocol(name)
        for name in ("inshop", "hotels50k", "cub200", "cars196", "sop", "synthetic", "digits")
    } == {
        "inshop": "query-gallery",
        "hotels50k": "hotels",
        "cub200": "self",
        "cars196": "self",
        "sop": "self",
        "synthetic": "self",
        "digits": "self",
    }
    assert resolve_protocol("inshop", "self") == "self"
    assert from_dict({}).eval.protocol == "auto"


def test_unknown_protocol_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'eval.protocol' must be one of .*Did you mean 'query-gallery'\?"):
        from_dict({"eval": {"protocol": "query_gallery"}})


@pytest.mark.parametrize(
    ("name", "protocol", "data", "message"),
    [
        ("cub200", "query-gallery", {}, r"not a protocol of dataset 'cub200'.*eval.protocol=auto"),
        ("inshop", "hotels", {}, r"not a protocol of dataset 'inshop', whose evaluation is 'query-gallery'"),
        ("hotels50k", "query-gallery", {}, r"dataset 'hotels50k', whose evaluation is 'hotels'"),
        ("inshop", "auto", {"eval_split": "train"}, r"'data.eval_split'.*set data.eval_split=test"),
    ],
)
def test_protocol_that_does_not_fit_the_benchmark_fails_in_preflight(
    tmp_path: Path, name: str, protocol: str, data: dict, message: str
) -> None:
    raw = _config(tmp_path, name, "jpeg", protocol=protocol)
    raw["data"].update(data)
    with pytest.raises(ConfigError, match=message):
        preflight(from_dict(raw))


@pytest.mark.parametrize("protocol", ["query-gallery", "hotels"])
def test_protocol_needing_an_array_the_dataset_lacks_fails_before_training(tmp_path: Path, protocol: str) -> None:
    raw = {
        **_config(tmp_path, "synthetic", "tensor", protocol=protocol),
        "data": {
            "name": "synthetic",
            "root": str(tmp_path),
            "sampler": {"p": 3, "k": 2},
            "kwargs": {"num_classes": 6, "images_per_class": 4, "image_size": 16},
        },
    }
    array = PROTOCOL_ARRAY[protocol]
    with pytest.raises(ConfigError, match=rf"'{protocol}' needs the per-image array '{array}'.*eval.protocol=self"):
        train(from_dict(raw))
    assert not Path(raw["output_dir"]).exists()


def test_unknown_data_kwargs_name_the_key_the_dataset_and_the_valid_keys() -> None:
    with pytest.raises(
        ConfigError,
        match=r"'data.kwargs': Dataset 'synthetic' got unexpected keyword argument\(s\) "
        r"'num_clases'\. Closest: 'num_clases' -> 'num_classes'\. Accepted: "
        r"num_classes, ",
    ):
        preflight(from_dict({"data": {"kwargs": {"num_clases": 4}}}))
    with pytest.raises(
        ConfigError,
        match=r"Dataset 'cub200' got unexpected keyword argument\(s\) 'bbox'\. Closest: "
        r"'bbox' -> 'bbox_crop'\. Accepted: bbox_crop, skip_corrupt \(",
    ):
        preflight(from_dict({"data": {"name": "cub200", "pipeline": "jpeg", "kwargs": {"bbox": True}}}))
    preflight(from_dict({"data": {"name": "cub200", "pipeline": "jpeg", "kwargs": {"bbox_crop": True}}}))


TINY = {
    "seed": 2,
    "deterministic": False,
    "device": "cpu",
    "data": {
        "name": "synthetic",
        "kwargs": {"num_classes": 8, "images_per_class": 6, "image_size": 16},
        "sampler": {"p": 2, "k": 3},
    },
    "model": {"backbone": "small_cnn", "embedding_dim": 8, "backbone_kwargs": {"widths": [4, 8]}},
    "loss": {"name": "triplet"},
    "train": {"epochs": 1, "log_every": 100},
    "eval": {"ks": [1, 2], "include": ["recall"]},
}


def test_checkpoint_from_before_eval_protocol_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    raw = {**TINY, "output_dir": str(out), "data": {**TINY["data"], "root": str(tmp_path)}}
    train(from_dict(raw))
    state = load_checkpoint(out / "checkpoint.pt")
    del state["config"]["eval"]["protocol"]  # as written before the key existed
    save_checkpoint(state, out / "checkpoint.pt")
    resumed = train(from_dict({**raw, "train": {"epochs": 2, "log_every": 100}}), resume=True)
    assert resumed["epoch"] == 2 and 0.0 <= resumed["recall@1"] <= 1.0


def test_resume_compares_the_protocol_by_what_it_evaluates() -> None:
    inshop = to_dict(from_dict({"data": {"name": "inshop", "pipeline": "jpeg"}}))
    explicit = to_dict(
        from_dict({"data": {"name": "inshop", "pipeline": "jpeg"}, "eval": {"protocol": "query-gallery"}})
    )
    self_retrieval = to_dict(from_dict({"data": {"name": "inshop", "pipeline": "jpeg"}, "eval": {"protocol": "self"}}))
    _check_resumable(_with_defaults(inshop), explicit)  # auto is query-gallery for In-Shop
    with pytest.raises(ValueError, match=r"eval.protocol: 'query-gallery' -> 'self'"):
        _check_resumable(_with_defaults(inshop), self_retrieval)
    # An In-Shop checkpoint from before the key was evaluated by self-retrieval: auto would change that mid-run.
    old = to_dict(from_dict({"data": {"name": "inshop", "pipeline": "jpeg"}}))
    del old["eval"]["protocol"]
    with pytest.raises(ValueError, match=r"eval.protocol: 'self' -> 'query-gallery'.*--set eval.protocol=self"):
        _check_resumable(_with_defaults(old), inshop)
    _check_resumable(_with_defaults(old), self_retrieval)


def test_whole_classes_keeps_complete_classes_under_the_limit() -> None:
    labels = np.repeat(np.arange(10), [3, 1, 4, 2, 5, 2, 3, 1, 2, 4])
    keep = loaders.whole_classes(labels, 9, seed=3)
    assert len(keep) <= 9 and np.all(np.diff(keep) > 0)
    for c in np.unique(labels[keep]):  # every kept class is kept whole
        assert np.array_equal(np.flatnonzero(labels == c), keep[labels[keep] == c])
    assert np.array_equal(keep, loaders.whole_classes(labels, 9, seed=3))  # seeded
    assert np.array_equal(loaders.whole_classes(labels, None), np.arange(len(labels)))
    assert np.array_equal(loaders.whole_classes(labels, 100), np.arange(len(labels)))
    with pytest.raises(ValueError, match="at least 2"):
        loaders.whole_classes(labels, 1)
    with pytest.raises(ValueError, match="smaller than every class"):
        loaders.whole_classes(np.repeat([0, 1], 5), 4)


@pytest.mark.parametrize("pipeline_name", ["jpeg", "cached"])
def test_evaluation_split_serves_what_the_trainer_evaluates(benchmarks: Path, pipeline_name: str) -> None:
    config = from_dict(_config(benchmarks, "inshop", pipeline_name, protocol="self"))
    model = dml.models.build("small_cnn", embedding_dim=2, backbone_kwargs={"widths": [4, 4]}).eval()
    built = loaders.build_loaders(
        config.data, protocol=config.eval.protocol, seed=config.seed, eval_batch_size=config.eval.batch_size
    )
    expected, expected_labels = dml.eval.embed(model, built.eval_data)
    data, labels = loaders.evaluation_split(config.data, "test", batch_size=config.eval.batch_size)
    x, y = dml.eval.embed(model, data)
    assert torch.equal(x, expected) and np.array_equal(labels, expected_labels) and np.array_equal(y, labels)
    part, part_labels = loaders.evaluation_split(
        config.data, "test", batch_size=config.eval.batch_size, max_items=6, seed=1
    )
    px, py = dml.eval.embed(model, part)
    rows = loaders.whole_classes(labels, 6, seed=1)
    assert np.array_equal(part_labels, labels[rows]) and np.array_equal(py, part_labels)
    assert torch.allclose(px, expected[torch.from_numpy(rows)])
