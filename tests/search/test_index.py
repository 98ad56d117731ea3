"""``dml index``: what an index folder holds, float16, resumption, unreadable images, incomplete folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dml.search import IncompleteIndexError, UnknownImageFormatError, build_index, open_index
from dml.search import embedding as embedding_module
from tests.fixtures.benchmarks import truncate


def test_the_index_holds_embeddings_items_model_and_preprocessing(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    index = build_index(run, images, tmp_path / "index")
    m = index.manifest
    assert m["count"] == len(index.items) == 48 and m["dim"] == 16 and m["search"] == "exact"
    assert m["model"]["fingerprint"].startswith("sha256:") and m["model"]["epoch"] == 2
    assert m["preprocessing"] == {
        "pipeline": "jpeg",
        "size": 24,
        "test_resize": 28,
        "cache_size": None,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-5)
    assert index.items.labels[0] == "class_0" and index.items.ids == list(range(48))
    assert not (tmp_path / "index" / ".building").exists()
    with pytest.raises(ValueError, match="already holds an index"):
        build_index(run, images, tmp_path / "index")


def test_float16_index_stores_half_the_bytes_and_the_same_directions(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    full = build_index(run, images, tmp_path / "f32")
    half = build_index(run, images, tmp_path / "f16", dtype="float16")
    assert half.embeddings.dtype == np.float16 and half.embeddings.nbytes * 2 == full.embeddings.nbytes
    assert np.abs(half.embeddings.astype(np.float32) - full.embeddings).max() < 1e-3


def test_an_interrupted_build_resumes_without_embedding_the_done_rows_again(
    trained, tmp_path: Path, monkeypatch
) -> None:
    run, images, _ = trained
    calls = []
    original = embedding_module._Files.__getitem__

    def counting(self, i):
        calls.append(int(self.rows[i]))
        if len(calls) == 40:
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(embedding_module, "_SAVE_EVERY", 1)
    monkeypatch.setattr(embedding_module._Files, "__getitem__", counting)
    with pytest.raises(KeyboardInterrupt):
        build_index(run, images, tmp_path / "index", batch_size=8)
    with pytest.raises(IncompleteIndexError, match="interrupted build"):
        open_index(tmp_path / "index")
    first = len(calls)
    index = build_index(run, images, tmp_path / "index", batch_size=8)
    assert len(calls) - first == 48 - 32  # the four finished batches are not embedded again
    reference = build_index(run, images, tmp_path / "again")
    assert np.array_equal(index.embeddings, reference.embeddings)


def test_unreadable_images_are_skipped_listed_and_warned_about(trained, tmp_path: Path) -> None:
    run, images, _ = trained
    gallery = tmp_path / "gallery"
    shutil.copytree(images, gallery)
    truncate(gallery / "class_1" / "img0.jpg", keep=0.1)
    (gallery / "class_2" / "img2.jpg").write_bytes(b"not an image")
    (gallery / "class_2" / "notes.txt").write_text("hello")
    with pytest.warns(RuntimeWarning) as caught:
        index = build_index(run, gallery, tmp_path / "index")
    text = " ".join(str(w.message) for w in caught)
    assert "Skipped 2 unreadable image(s) of 48" in text and "notes.txt" in text
    assert [Path(s["path"]).name for s in index.manifest["skipped"]] == ["img0.jpg", "img2.jpg"]
    assert index.manifest["count"] == 46 and len(index.items) == 46


@pytest.mark.parametrize("damage", ["index.json", "embeddings.npy", "items.csv", "shape"])
def test_an_incomplete_index_folder_is_refused(trained, tmp_path: Path, damage: str) -> None:
    run, images, _ = trained
    build_index(run, images, tmp_path / "index")
    if damage == "shape":
        np.save(tmp_path / "index" / "embeddings.npy", np.zeros((3, 16), dtype=np.float32))
        match = "inconsistent"
    else:
        (tmp_path / "index" / damage).unlink()
        match = f"incomplete: {damage} missing"
    with pytest.raises(IncompleteIndexError, match=match):
        open_index(tmp_path / "index")


def test_a_gallery_of_another_format_is_refused(trained, tmp_path: Path) -> None:
    run, _, _ = trained
    (tmp_path / "gallery.json").write_text(json.dumps([]))
    with pytest.raises(UnknownImageFormatError, match="not a .json file"):
        build_index(run, tmp_path / "gallery.json", tmp_path / "index")
    with pytest.raises(FileNotFoundError, match="no such folder or list"):
        build_index(run, tmp_path / "nothing", tmp_path / "index")
