"""The synthetic dataset: determinism, caching, zero-shot split, modes, siblings and factor table."""
import warnings
import zipfile

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from dml.data import SyntheticDataset, SyntheticSpec, build
from dml.data.synthetic import SHAPES, TEXTURES, generate

SMALL = dict(num_classes=8, images_per_class=9, modes_per_class=3, image_size=24)


def test_same_settings_give_byte_identical_images(tmp_path):
    spec = SyntheticSpec(**SMALL)
    first, second = generate(spec), generate(spec)
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()
    built = build("synthetic", split="all", root=tmp_path, **SMALL)
    reloaded = build("synthetic", split="all", root=tmp_path, **SMALL)
    assert built.images.tobytes() == first[0].tobytes() == reloaded.images.tobytes()
    np.testing.assert_array_equal(reloaded.labels, first[1])
    np.testing.assert_array_equal(reloaded.modes, first[2])


def test_cache_file_is_named_by_the_settings(tmp_path):
    ds = build("synthetic", root=tmp_path, **SMALL)
    assert ds.cache_path == tmp_path.resolve() / "synthetic" / f"{ds.spec.key()}.npz"
    assert ds.cache_path.is_file()
    other = build("synthetic", root=tmp_path, **{**SMALL, "noise": 0.0})
    assert other.cache_path != ds.cache_path
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == sorted(
        [ds.cache_path.name, other.cache_path.name]), "no temporary files may be left behind"


def test_different_seeds_give_different_images():
    a = generate(SyntheticSpec(**SMALL, seed=0))[0]
    b = generate(SyntheticSpec(**SMALL, seed=1))[0]
    assert np.mean(a != b) > 0.5


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper"])
def test_corrupt_cache_is_regenerated_with_a_warning(tmp_path, damage):
    good = build("synthetic", split="all", root=tmp_path, **SMALL)
    path = good.cache_path
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip file" * 100)
    else:  # valid archive, wrong pixels: only the stored checksum can tell
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["images"] = arrays["images"].copy()
        arrays["images"][0, 0, 0, 0] ^= 1
        np.savez(path, **arrays)
        assert zipfile.is_zipfile(path)
    with pytest.warns(RuntimeWarning, match=str(path.name)) as record:
        again = build("synthetic", split="all", root=tmp_path, **SMALL)
    assert "regenerating" in str(record[0].message)
    assert again.images.tobytes() == good.images.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("synthetic", split="all", root=tmp_path, **SMALL)  # repaired: loads silently


def test_train_and_test_hold_disjoint_halves_of_the_classes(tmp_path):
    train = build("synthetic", split="train", root=tmp_path, **SMALL)
    test = build("synthetic", split="test", root=tmp_path, **SMALL)
    everything = build("synthetic", split="all", root=tmp_path, **SMALL)
    assert set(train.classes) == set(range(4)) and set(test.classes) == set(range(4, 8))
    assert len(train) == len(test) == 4 * 9 and len(everything) == 8 * 9
    assert train.num_classes == test.num_classes == 4
    np.testing.assert_array_equal(np.concatenate([train.images, test.images]), everything.images)


def test_every_class_has_balanced_distinct_modes(tmp_path):
    ds = build("synthetic", split="all", root=tmp_path, **{**SMALL, "images_per_class": 12, "clutter": 0.0,
                                                           "noise": 0.0})
    flat = ds.images.reshape(len(ds), -1).astype(np.float64)
    same_mode, other_mode = [], []
    for c in ds.classes:
        members = np.flatnonzero(ds.labels == c)
        assert np.bincount(ds.modes[members]).tolist() == [4, 4, 4]
        dist = cdist(flat[members], flat[members])
        same = ds.modes[members][:, None] == ds.modes[members][None, :]
        off_diagonal = ~np.eye(members.size, dtype=bool)
        same_mode.append(dist[same & off_diagonal].mean())
        other_mode.append(dist[~same].mean())
    # Modes are visually distinct: images of one mode are clearly closer to each other than to the class's other
    # modes (with modes_per_class=1 the two averages are within a few percent of each other).
    assert np.all(np.array(same_mode) < 0.8 * np.array(other_mode))


def _sibling_gap(tmp_path, similarity):
    """Mean pixel distance between images of non-sibling classes minus that between sibling classes."""
    ds = build("synthetic", split="all", root=tmp_path, num_classes=24, images_per_class=6, image_size=16,
               sibling_similarity=similarity, clutter=0.0, noise=0.0, seed=3)
    group = ds.factors["group"][ds.labels]
    dist = cdist(*(2 * [ds.images.reshape(len(ds), -1).astype(np.float64)]))
    different_class = ds.labels[:, None] != ds.labels[None, :]
    siblings = different_class & (group[:, None] == group[None, :])
    return dist[different_class & ~siblings].mean() - dist[siblings].mean()


def test_siblings_are_closer_than_random_class_pairs_and_the_knob_controls_it(tmp_path):
    default_gap = _sibling_gap(tmp_path, 0.8)
    assert default_gap > 0.25 * 255, "siblings should look alike: they are the hard negatives"
    assert _sibling_gap(tmp_path, 0.0) < 0.5 * default_gap


def test_sibling_groups_exist_within_each_split(tmp_path):
    for split in ("train", "test"):
        ds = build("synthetic", split=split, root=tmp_path, num_classes=20, images_per_class=2,
                   modes_per_class=1, image_size=8)
        groups = ds.sibling_groups
        assert sum(len(g) for g in groups) == ds.num_classes
        assert all(2 <= len(g) <= 4 for g in groups)
        assert all(set(g) <= set(ds.classes) for g in groups)


def test_factor_table_describes_the_split(tmp_path):
    ds = build("synthetic", split="test", root=tmp_path, **SMALL)
    f = ds.factors
    np.testing.assert_array_equal(f["class"], ds.classes)
    for key in ("shape", "texture", "fg_hue", "bg_hue", "frequency", "orientation", "group"):
        assert f[key].shape == (ds.num_classes,)
    for key in ("mode_orientation", "mode_aspect", "mode_swap"):
        assert f[key].shape == (ds.num_classes, 3)
    assert set(f["shape_name"]) <= set(SHAPES) and set(f["texture_name"]) <= set(TEXTURES)
    assert np.all(f["mode_swap"][:, 1]) and not np.any(f["mode_swap"][:, 0])


@pytest.mark.parametrize("bad", [dict(num_classes=3), dict(sibling_similarity=1.5), dict(siblings=1),
                                 dict(modes_per_class=5, images_per_class=4), dict(clutter=-0.1)])
def test_invalid_knobs_are_rejected_before_generation(tmp_path, bad):
    with pytest.raises(ValueError, match="Invalid synthetic dataset settings"):
        SyntheticDataset(root=tmp_path, **{**SMALL, **bad})
    assert not (tmp_path / "synthetic").exists()


def test_images_do_not_depend_on_the_rendering_chunk_size(monkeypatch):
    from dml.data import synthetic

    spec = SyntheticSpec(**SMALL)
    reference = generate(spec)[0]
    monkeypatch.setattr(synthetic, "_CHUNK", 7)
    assert generate(spec)[0].tobytes() == reference.tobytes()


def test_object_masks_are_the_alpha_the_object_was_painted_with(tmp_path):
    data = SyntheticDataset("test", root=tmp_path, num_classes=8, images_per_class=6)
    masks = data.masks
    assert masks.shape == data.images.shape[:3] and masks.dtype == np.uint8
    coverage = (masks > 127).mean(axis=(1, 2))
    assert ((coverage > 0.05) & (coverage < 0.6)).all()
    # Re-render with the object made invisible (painted in the background colour, untextured): pixels change only
    # where the mask is non-zero, and almost everywhere it is 255, so the mask is where the object was painted.
    from dml.data import synthetic

    _, _, params = synthetic._image_params(data.spec)
    hidden = dict(params, fg=params["bg"], texture=np.zeros_like(params["texture"]))
    size = data.spec.image_size
    shown = synthetic._render(params, size=size, clutter=0.0)
    blank = synthetic._render(hidden, size=size, clutter=0.0)
    changed = np.abs(shown - blank).max(axis=-1) > 0.01  # mask 0 is alpha < 1/510: a change below 0.002
    all_masks = synthetic.object_masks(data.spec)
    np.testing.assert_array_equal(all_masks[-len(masks):], masks)
    assert not (changed & (all_masks == 0)).any()
    assert changed[all_masks == 255].mean() > 0.95


def test_palette_swap_follows_the_mode(tmp_path):
    data = SyntheticDataset("train", root=tmp_path, num_classes=8, images_per_class=6, modes_per_class=3)
    np.testing.assert_array_equal(data.palette_swapped, data.modes % 2 == 1)
    one_mode = SyntheticDataset("train", root=tmp_path, num_classes=8, images_per_class=6, modes_per_class=1)
    assert not one_mode.palette_swapped.any()
