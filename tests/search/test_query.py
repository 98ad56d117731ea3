"""``dml search``: exact search reproduces the evaluation's rankings; mismatched runs and bad queries refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dml.data
from dml.data.loaders import image_transforms
from dml.data.settings import AugmentConfig
from dml.eval import embed, knn, query_gallery_metrics
from dml.search import IndexMismatchError, UnknownImageFormatError, build_index, open_run, search


def _splits(images: Path):
    _, test_t = image_transforms(AugmentConfig(size=24, test_resize=28), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    kw = dict(root=images, split_by="image", test_fraction=0.5, transform=test_t)
    return dml.data.build("imagefolder", split="train", **kw), dml.data.build("imagefolder", split="test", **kw)


def test_exact_search_reproduces_the_evaluation_ranking_and_recall(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    gallery_set, query_set = _splits(images)
    listed = tmp_path / "gallery.csv"
    listed.write_text("".join(f"{p},{c}\n" for p, c in zip(gallery_set.paths, gallery_set.class_names)))
    index = build_index(run, listed, tmp_path / "index")
    result = search(tmp_path / "index", [str(p) for p in query_set.paths], top_k=10)

    model = open_run(run).model
    g, g_labels = embed(model, gallery_set)  # the evaluation's own embedding (the jpeg pipeline's transform)
    q, q_labels = embed(model, query_set)
    assert np.allclose(index.embeddings, torch.nn.functional.normalize(g, dim=1).numpy(), atol=1e-5)
    _, expected = knn(q, g, k=10)
    assert np.array_equal(result.rows, expected.numpy())
    top1 = np.array([index.items.labels[r] for r in result.rows[:, 0]])
    recall = float(np.mean(top1 == np.array(query_set.class_names)))
    assert recall == pytest.approx(query_gallery_metrics(q, q_labels, g, g_labels, ks=(1,))["recall@1"])


def test_a_query_with_another_model_or_preprocessing_is_refused(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    other = tmp_path / "other"
    import shutil

    shutil.copytree(run, other)
    from dml.train import checkpoint as ckpt

    state = ckpt.load_checkpoint(other / "checkpoint.pt")
    next(iter(state["model"].values())).add_(0.01)
    ckpt.save_checkpoint(state, other / "checkpoint.pt")
    query = next(images.rglob("*.jpg"))
    with pytest.raises(IndexMismatchError, match="is not the one that built the index"):
        search(tmp_path / "index", [query], run=other)
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    manifest["preprocessing"]["test_resize"] = 32
    (tmp_path / "index" / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="test_resize: 28 vs 32"):
        search(tmp_path / "index", [query])


def test_bad_queries_are_named_and_unreadable_ones_skipped(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF")
    with pytest.raises(UnknownImageFormatError, match="scan.pdf is not an image format"):
        search(tmp_path / "index", [tmp_path / "scan.pdf"])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    good = next(images.rglob("*.png"))
    with pytest.warns(RuntimeWarning, match="Skipped 1 unreadable query image"):
        result = search(tmp_path / "index", [tmp_path / "broken.jpg", good], top_k=3)
    assert [s["path"] for s in result.skipped] == [str(tmp_path / "broken.jpg")]
    assert len(result.queries) == 1 and result.rows.shape == (1, 3)
    assert result.index.items.paths[result.rows[0, 0]] == good  # an image finds itself first


def test_approximate_index_is_searched_with_faiss_and_exact_on_request(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    index = build_index(run, images, tmp_path / "index", search="approximate", kind="ivf")
    assert index.manifest["approximate"]["kind"] == "ivf" and 0.0 <= index.manifest["approximate"]["recall"] <= 1.0
    queries = sorted(images.rglob("*.jpg"))[:5]
    approximate = search(tmp_path / "index", queries, top_k=5)
    exact = search(tmp_path / "index", queries, top_k=5, exact=True)
    assert not approximate.exact and exact.exact
    assert np.array_equal(approximate.rows[:, 0], exact.rows[:, 0])  # each image finds itself first either way
