"""The decoded-image cache: exact round trip, atomic and resumable builds, stale and missing caches."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

import dml.data
from dml.data import cache as cache_mod
from dml.data.cache import (CacheMissingError, CachedDataset, StaleCacheError, build_cache, cache_dir,
                            decode_resized, fingerprint, open_cache, read_manifest, write_cache)
from dml.data.images import CorruptImageError

SYNTHETIC = dict(num_classes=8, images_per_class=4, image_size=24)


class Files:
    """The file-backed dataset contract the cache relies on: ``paths``, ``labels``, ``split``."""

    def __init__(self, paths: list[Path], labels: list[int], split: str = "train") -> None:
        self.paths, self.labels, self.split = paths, np.asarray(labels, dtype=np.int64), split

    def __len__(self) -> int:
        return len(self.paths)


def _write_pngs(folder: Path, shapes: list[tuple[int, int]], seed: int = 0) -> Files:
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(shapes):
        path = folder / f"class{i % 3}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return Files(paths, [i % 3 for i in range(len(shapes))])


# Landscape, portrait, square, smaller than the cache side (upsampled), odd sizes (rounding of the crop).
SHAPES = [(30, 40), (45, 20), (32, 32), (12, 17), (33, 51), (50, 37), (21, 21), (40, 30)]


def _reference(path: Path, size: int) -> np.ndarray:
    """torchvision's PIL path: Resize(size) then CenterCrop(size)."""
    with Image.open(path) as image:
        return np.array(TF.center_crop(TF.resize(image.convert("RGB"), size), size))


@pytest.mark.parametrize("workers", [0, 2])
def test_png_round_trip_is_exactly_resize_then_center_crop(tmp_path: Path, workers: int) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    cached = CachedDataset(write_cache(files, tmp_path / "cache", size=24, workers=workers, chunk_size=3))
    assert cached.images.shape == (len(SHAPES), 24, 24, 3) and cached.images.dtype == np.uint8
    for i, path in enumerate(files.paths):
        np.testing.assert_array_equal(cached.images[i], _reference(path, 24), err_msg=str(path))
    np.testing.assert_array_equal(cached.labels, files.labels)
    image, label = cached[3]
    assert image.dtype == torch.float32 and image.shape == (3, 24, 24) and label == files.labels[3]
    torch.testing.assert_close(image, torch.from_numpy(_reference(files.paths[3], 24)).permute(2, 0, 1) / 255.0)
    batch = cached.batch([5, 0, 5])
    assert batch.shape == (3, 3, 24, 24) and batch.dtype == torch.uint8
    assert batch.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(batch[1].float() / 255.0, cached.load(0))


def test_in_memory_dataset_round_trip_and_manifest(tmp_path: Path) -> None:
    data = dml.data.build("synthetic", split="test", root=tmp_path, **SYNTHETIC)
    same = CachedDataset(write_cache(data, tmp_path / "same", size=24, source="synthetic"))
    np.testing.assert_array_equal(same.images, data.images)
    smaller = CachedDataset(write_cache(data, tmp_path / "small", size=16))
    expected = np.asarray(TF.center_crop(TF.resize(Image.fromarray(data.images[7]), 16), 16))
    np.testing.assert_array_equal(smaller.images[7], expected)

    m = same.manifest
    assert (m["source"], m["split"], m["size"], m["count"]) == ("synthetic", "test", 24, len(data))
    assert m["fingerprint"] == fingerprint(data) and m["dml_version"] == dml.__version__
    pixels = data.images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(same.mean, pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(same.std, pixels.std(0), atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["extras.npz", "images.npy", "labels.npy",
                                                                      "manifest.json"]
    assert same.extras == ["modes", "palette_swapped"]  # per-image arrays are kept
    assert np.array_equal(same.modes, data.modes) and np.array_equal(same.palette_swapped, data.palette_swapped)
    assert "CachedDataset(source='synthetic'" in repr(same)


def test_jpeg_draft_decoding_keeps_both_sides_and_stays_close(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:600, 0:800] / 600.0
    smooth = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], -1)
    path = tmp_path / "large.jpg"
    Image.fromarray(np.uint8((smooth + 1) * 127.5)).save(path, quality=95)
    fast, full = decode_resized(path, 64, draft=True), decode_resized(path, 64, draft=False)
    assert fast.shape == full.shape == (64, 64, 3)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2.0


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(CorruptImageError, match="bad.jpg"):
        decode_resized(bad, 16)
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        decode_resized(tmp_path / "gone.jpg", 16)


def _failing_decoder(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> list[str]:
    """Make the in-process decoder raise on its ``fail_at``-th call; return the list of decoded paths."""
    calls: list[str] = []
    real = cache_mod.decode_resized

    def decode(path, size, *, draft=True, box=None):
        calls.append(Path(path).name)
        if len(calls) == fail_at:
            raise OSError("simulated crash")
        return real(path, size, draft=draft, box=box)

    monkeypatch.setattr(cache_mod, "decode_resized", decode)
    return calls


def test_interrupted_build_looks_missing_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    target = tmp_path / "cache"
    calls = _failing_decoder(monkeypatch, fail_at=6)
    with pytest.raises(OSError, match="simulated crash"):
        write_cache(files, target, size=24, workers=0, chunk_size=2)
    assert not target.exists()
    with pytest.raises(CacheMissingError, match="interrupted build"):
        CachedDataset(target)

    calls.clear()
    monkeypatch.setattr(cache_mod, "decode_resized", decode_resized)
    resumed = CachedDataset(write_cache(files, target, size=24, workers=0, chunk_size=2))
    clean = CachedDataset(write_cache(files, tmp_path / "clean", size=24, workers=0))
    np.testing.assert_array_equal(resumed.images, clean.images)
    assert resumed.manifest["fingerprint"] == clean.manifest["fingerprint"]
    np.testing.assert_allclose(resumed.mean, clean.mean)
    assert not target.with_name("cache.partial").exists()


def test_resume_skips_finished_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    calls = _failing_decoder(monkeypatch, fail_at=6)
    with pytest.raises(OSError):
        write_cache(files, tmp_path / "cache", size=24, workers=0, chunk_size=2)
    calls.clear()
    write_cache(files, tmp_path / "cache", size=24, workers=0, chunk_size=2)
    # Chunks [0, 1] and [2, 3] finished before the crash in the third chunk; only images 4.. are decoded again.
    assert calls == [p.name for p in files.paths[4:]]


def test_partial_build_with_other_inputs_is_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    _failing_decoder(monkeypatch, fail_at=6)
    with pytest.raises(OSError):
        write_cache(files, tmp_path / "cache", size=24, workers=0, chunk_size=2)
    monkeypatch.setattr(cache_mod, "decode_resized", decode_resized)
    cached = CachedDataset(write_cache(files, tmp_path / "cache", size=16, workers=0, chunk_size=2))
    for i, path in enumerate(files.paths):
        np.testing.assert_array_equal(cached.images[i], _reference(path, 16))


def test_failed_rebuild_leaves_the_previous_cache_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    target = write_cache(files, tmp_path / "cache", size=24, workers=0)
    before = read_manifest(target)
    _failing_decoder(monkeypatch, fail_at=3)
    with pytest.raises(OSError):
        write_cache(files, target, size=16, workers=0)
    assert read_manifest(target) == before
    assert CachedDataset(target).images.shape[1] == 24


def test_changed_files_make_the_cache_stale(tmp_path: Path) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    target = write_cache(files, tmp_path / "cache", size=24, workers=0, source="mydata")
    assert CachedDataset(target, expected_fingerprint=fingerprint(files)).manifest["source"] == "mydata"
    Image.fromarray(np.zeros((7, 9, 3), np.uint8)).save(files.paths[2])  # replaced file, new size on disk
    with pytest.raises(StaleCacheError, match=r"stale.*dml data cache mydata --split train --size 24 --force"):
        CachedDataset(target, expected_fingerprint=fingerprint(files))
    current = fingerprint(files)
    moved = Files([tmp_path / "elsewhere" / p.relative_to(tmp_path / "images") for p in files.paths], files.labels)
    for old, new in zip(files.paths, moved.paths):
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)
    assert fingerprint(moved) == current, "moving the data folder must not invalidate the cache"
    relabelled = Files(moved.paths, np.roll(moved.labels, 1))
    assert fingerprint(relabelled) != fingerprint(moved)


def test_build_and_open_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CacheMissingError, match=r"dml data cache synthetic --split train --size 16`"):
        open_cache("synthetic", split="train", size=16, root=tmp_path, **SYNTHETIC)
    folder = build_cache("synthetic", split="train", size=16, root=tmp_path, progress=False, **SYNTHETIC)
    assert folder == cache_dir("synthetic", split="train", size=16, root=tmp_path, source_kwargs=SYNTHETIC)
    assert folder.parent == tmp_path / "cache" and folder.name.startswith("synthetic-train-16-")
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert build_cache("synthetic", split="train", size=16, root=tmp_path, progress=False, **SYNTHETIC) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp, "an up-to-date cache must not be rebuilt"

    opened = dml.data.build("cached", split="train", root=tmp_path, source="synthetic", size=16,
                            source_kwargs=SYNTHETIC)
    assert isinstance(opened, CachedDataset) and len(opened) == 16 and opened.num_classes == 4

    original = dml.data.build("synthetic", split="train", root=tmp_path, **SYNTHETIC)
    changed = dml.data.InMemoryDataset(split="train", images=255 - original.images, labels=original.labels)
    monkeypatch.setattr(cache_mod, "build", lambda *a, **k: changed)
    with pytest.raises(StaleCacheError, match="build_cache\\('synthetic', split='train', size=16"):
        open_cache("synthetic", split="train", size=16, root=tmp_path, **SYNTHETIC)
    assert len(open_cache("synthetic", split="train", size=16, root=tmp_path, verify=False, **SYNTHETIC)) == 16


def test_source_gone_warns_but_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_cache("synthetic", split="test", size=16, root=tmp_path, progress=False, **SYNTHETIC)

    def missing(*args, **kwargs):
        raise FileNotFoundError("CUB_200_2011 not found under the data root")

    monkeypatch.setattr(cache_mod, "build", missing)
    with pytest.warns(UserWarning, match="Cannot check the cache"):
        opened = open_cache("synthetic", split="test", size=16, root=tmp_path, **SYNTHETIC)
    assert len(opened) == 16


def test_damaged_or_foreign_caches_are_rejected(tmp_path: Path) -> None:
    data = dml.data.build("synthetic", split="test", root=tmp_path, **SYNTHETIC)
    target = write_cache(data, tmp_path / "cache", size=16)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "count": manifest["count"] + 1}))
    with pytest.raises(StaleCacheError, match="damaged"):
        CachedDataset(target)
    (target / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(StaleCacheError, match="format 99"):
        CachedDataset(target)
    with pytest.raises(ValueError, match="source=NAME"):
        dml.data.build("cached", split="train")


@pytest.mark.parametrize(
    "damage",
    ["manifest-not-json", "manifest-a-list", "labels-missing", "labels-not-npy", "images-truncated", "extras-gone"],
)
def test_damaged_cache_files_are_one_line_errors_and_build_cache_rebuilds_them(tmp_path: Path, damage: str) -> None:
    """A cache damaged on disk (a copy interrupted, a file deleted) used to raise json, numpy or mmap errors naming
    no cache; now StaleCacheError says which cache and how to rebuild it, and build_cache rebuilds it itself."""
    from tests.fixtures.benchmarks import make_inshop

    make_inshop(tmp_path / "inshop")  # In-Shop: its cache has extras.npz (is_query)
    options = dict(split="test", size=16, root=tmp_path, workers=0, progress=False)
    folder = build_cache("inshop", **options)
    before = np.load(folder / "images.npy").copy()
    path, change = {
        "manifest-not-json": ("manifest.json", b"{not json"),
        "manifest-a-list": ("manifest.json", b"[1, 2]"),
        "labels-missing": ("labels.npy", None),
        "labels-not-npy": ("labels.npy", b"garbage"),
        "images-truncated": ("images.npy", (folder / "images.npy").read_bytes()[:200]),
        "extras-gone": ("extras.npz", None),
    }[damage]
    if change is None:
        (folder / path).unlink()
    else:
        (folder / path).write_bytes(change)
    with pytest.raises(StaleCacheError, match=rf"The cache at {folder} is damaged.*(rebuild|build the cache again)"):
        dml.data.build("cached", split="test", root=tmp_path, source="inshop", size=16)
    assert build_cache("inshop", **options) == folder
    rebuilt = dml.data.build("cached", split="test", root=tmp_path, source="inshop", size=16)
    assert np.array_equal(rebuilt.images, before) and rebuilt.is_query.any()


def test_benchmark_loaders_bbox_crops_and_per_image_arrays(tmp_path: Path) -> None:
    from tests.fixtures.benchmarks import make_cub, make_inshop

    tree = make_cub(tmp_path / "cub200")
    cub = dml.data.build("cub200", split="train", root=tree.root, bbox_crop=True)
    cached = CachedDataset(write_cache(cub, tmp_path / "cub-cache", size=12, workers=0, draft=False))
    for i in range(len(cub)):  # the 20×16 box of the loader, then the cache geometry
        crop = (cub.load(i) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert crop.shape == (16, 20, 3)
        expected = np.array(TF.center_crop(TF.resize(Image.fromarray(crop), 12), 12))
        np.testing.assert_array_equal(cached.images[i], expected)
    whole = dml.data.build("cub200", split="train", root=tree.root)
    assert fingerprint(whole) != fingerprint(cub), "bbox_crop changes the pixels, so it must change the fingerprint"
    drafted = CachedDataset(write_cache(cub, tmp_path / "cub-draft", size=8, workers=0, draft=True))
    assert np.abs(drafted.images.astype(int) - CachedDataset(
        write_cache(cub, tmp_path / "cub-full", size=8, workers=0, draft=False)).images.astype(int)).mean() < 8

    shop = dml.data.build("inshop", split="test", root=make_inshop(tmp_path / "inshop").root)
    cached = CachedDataset(write_cache(shop, tmp_path / "shop-cache", size=16, workers=0))
    assert "is_query" in cached.extras and "status" in cached.extras
    np.testing.assert_array_equal(cached.is_query, shop.is_query)
    assert list(cached.status) == list(shop.status)


def test_worker_failure_names_the_file_and_a_fixed_rerun_completes(tmp_path: Path) -> None:
    files = _write_pngs(tmp_path / "images", SHAPES)
    good = files.paths[5].read_bytes()
    files.paths[5].write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    with pytest.raises(CorruptImageError, match=files.paths[5].name):
        write_cache(files, tmp_path / "cache", size=24, workers=2, chunk_size=1)
    assert not (tmp_path / "cache").exists()
    files.paths[5].write_bytes(good)  # a different file size: the partial build is discarded and rebuilt
    cached = CachedDataset(write_cache(files, tmp_path / "cache", size=24, workers=2, chunk_size=1))
    np.testing.assert_array_equal(cached.images[5], _reference(files.paths[5], 24))


def test_a_users_image_folder_is_cached_outside_it_keyed_by_its_list(tmp_path: Path, monkeypatch) -> None:
    """Issue 17: the cached pipeline wrote its cache inside the user's image folder, which the folder loader then
    read as an extra class (in both splits). Now the cache goes under the data folder's cache/ (or cache_root)."""
    from tests.fixtures.user_images import make_image_folder

    root = make_image_folder(tmp_path / "photos")
    data = tmp_path / "dmldata"
    data.mkdir()
    monkeypatch.setenv("DML_DATA", str(data))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    train = build_cache("imagefolder", split="train", size=16, root=root, progress=False, workers=0)
    test = build_cache("imagefolder", split="test", size=16, root=root, progress=False, workers=0)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written inside the folder
    assert train.parent == test.parent == data / "cache" and train.name.startswith("imagefolder-train-16-")
    classes = [set(CachedDataset(folder).labels.tolist()) for folder in (train, test)]
    assert len(classes[0]) == len(classes[1]) == 3 and not classes[0] & classes[1]
    other = build_cache("imagefolder", split="train", size=16, root=root, progress=False, workers=0, seed=1)
    assert other != train  # another list (another seeded split), another cache
    elsewhere = build_cache("imagefolder", split="train", size=16, root=root, progress=False, workers=0,
                            cache_root=tmp_path / "mine")
    assert elsewhere.parent == tmp_path / "mine"
    with pytest.raises(ValueError, match="would be inside the data folder"):
        build_cache("imagefolder", split="train", size=16, root=root, cache_root=root / "cache", progress=False)
