"""``synthetic``: procedurally generated RGB images with the structure that makes metric learning hard.

Real fine-grained benchmarks (CUB birds, Cars196) are hard for three reasons, and this dataset builds each in
deliberately, so lessons can turn them up or down and run on a laptop in seconds:

* **intra-class modes**: a class looks different from different viewpoints. Each class has ``modes_per_class``
  modes; a mode rotates the texture, changes the aspect ratio of the shape and, for odd-numbered modes, swaps the
  foreground and background colours. Modes of one class are visually distinct, yet always share the class's shape,
  hue pair, texture type and texture frequency;
* **fine-grained siblings** ("leopard vs jaguar"): classes come in sibling groups of ``siblings`` classes that share
  a prototype and differ only slightly, by an amount set by ``sibling_similarity``. Siblings are the hard
  negatives. Groups never straddle the train/test boundary, so both splits contain siblings;
* **nuisance variation**: position, scale, in-plane rotation, background clutter, illumination gradient, colour
  jitter and pixel noise, none of which carries class information.

The split is zero-shot, as in CUB: ``"train"`` holds the first ``num_classes // 2`` classes, ``"test"`` the rest.

Generative factors, one value per class (``dataset.factors``):

=================  =========================================================================================
factor             meaning
=================  =========================================================================================
``shape``          one of ``SHAPES``: circle, square, triangle, star, ring, cross, diamond, hexagon
``texture``        one of ``TEXTURES``: plain, stripes, dots, checker (drawn in a darker or lighter tone)
``fg_hue``         foreground hue in [0, 1); siblings are spaced apart in hue (the main sibling cue)
``bg_hue``         background hue, far from ``fg_hue`` so the object stands out
``*_sat, *_val``   saturation and value of the two colours
``frequency``      texture cycles per object radius; siblings are spaced apart in frequency as well
``orientation``    texture orientation (radians) of mode 0
``mode_*``         per class and mode (array ``C × M``): texture orientation, aspect ratio, palette swap
``group``          sibling-group id; classes with the same group are siblings
=================  =========================================================================================

Knobs (keyword-only arguments of :class:`SyntheticDataset`, gathered in :class:`SyntheticSpec`):

========================  =======  ==========================================================================
knob                      default  effect
========================  =======  ==========================================================================
``num_classes``           100      classes in total; train gets the first half, test the second
``images_per_class``      60       images per class, spread evenly over the modes
``modes_per_class``       3        visually distinct modes per class (1 = unimodal classes)
``siblings``              4        classes per sibling group (the last groups of a split may have one fewer)
``sibling_similarity``    0.8      0 = siblings nearly as different as random classes; 1 = share every discrete factor
                                   and differ only by the minimum hue and frequency steps (hardest)
``image_size``            64       side length in pixels
``jitter``                0.4      per-image spread of each class's hue and texture frequency, in units of the
                                   sibling step: near 0.5 and above, siblings overlap and even a perfect model
                                   confuses some of them (a non-zero Bayes error)
``rotation``              20.0     maximum in-plane rotation of the object, degrees
``clutter``               0.5      opacity of the random background discs (0 = clean background)
``noise``                 0.04     standard deviation of additive Gaussian pixel noise ([0, 1] scale)
``seed``                  0        same knobs and seed give byte-identical images
========================  =======  ==========================================================================

Generation is vectorised NumPy (the default 6,000 images take a few seconds) and cached as
``data_root()/synthetic/<hash of the knobs>.npz``, written atomically with a SHA-256 checksum; a corrupt or
truncated cache file is detected, reported in a warning and regenerated. Bump ``GENERATOR_VERSION`` whenever the
rendering changes, so stale caches are never reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from dml.data.base import InMemoryDataset, Transform, check_split
from dml.data.registry import register
from dml.data.root import data_root
from dml.utils import atomic_write

GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")
TEXTURES = ("plain", "stripes", "dots", "checker")
_CHUNK = 256  # images per vectorised step: bounds memory; the images do not depend on it (noise is one stream)
_CLUTTER_DISCS = 4


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Every knob that determines the generated images; its hash names the cache file.

    See the module docstring for the meaning of each field.
    """

    num_classes: int = 100
    images_per_class: int = 60
    modes_per_class: int = 3
    siblings: int = 4
    sibling_similarity: float = 0.8
    image_size: int = 64
    jitter: float = 0.4
    rotation: float = 20.0
    clutter: float = 0.5
    noise: float = 0.04
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.num_classes < 4:
            problems.append(f"num_classes={self.num_classes} must be >= 4 (two sibling classes per split)")
        if self.modes_per_class < 1 or self.images_per_class < self.modes_per_class:
            problems.append(f"need 1 <= modes_per_class ({self.modes_per_class}) <= images_per_class "
                            f"({self.images_per_class})")
        if self.siblings < 2:
            problems.append(f"siblings={self.siblings} must be >= 2 (a group of one has no sibling)")
        if not 0.0 <= self.sibling_similarity <= 1.0:
            problems.append(f"sibling_similarity={self.sibling_similarity} must lie in [0, 1]")
        if self.image_size < 8:
            problems.append(f"image_size={self.image_size} must be >= 8 pixels")
        if not 0.0 <= self.clutter <= 1.0:
            problems.append(f"clutter={self.clutter} must lie in [0, 1]")
        if min(self.noise, self.rotation, self.jitter) < 0:
            problems.append(f"noise={self.noise}, rotation={self.rotation} and jitter={self.jitter} must be >= 0")
        if problems:
            raise ValueError("Invalid synthetic dataset settings: " + "; ".join(problems) + ".")

    @property
    def num_train_classes(self) -> int:
        return self.num_classes // 2

    def key(self) -> str:
        """A short hash of the knobs and the generator version: the cache file name."""
        text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@register("synthetic")
class SyntheticDataset(InMemoryDataset):
    """The synthetic metric-learning dataset (see the module docstring for factors and knobs).

    Attributes:
        images: ``uint8`` array ``(N, H, W, 3)``.
        labels: ``int64`` class ids; test ids continue after the train ids.
        modes: ``int64`` mode id of each image, in ``[0, modes_per_class)``.
        factors: dict of per-class arrays for the classes of this split (row ``i`` describes
            ``factors["class"][i]``); ``mode_*`` entries have shape ``(classes, modes_per_class)``.
        spec: the :class:`SyntheticSpec` used.
        cache_path: the ``.npz`` file the images were read from or written to.
        palette_swapped: ``bool`` per image: its mode swaps the foreground and background colours, so the class's
            foreground hue (the main cue that tells siblings apart) is painted on the background.
        masks: (computed on first access) ``uint8 (N, H, W)``, the object's coverage in each image (255 = object),
            from :func:`object_masks`. Siblings differ by foreground hue (on the object, or on the background when
            ``palette_swapped``) and texture frequency (always on the object).
    """

    def __init__(self, split: str = "train", *, root: str | os.PathLike | None = None,
                 transform: Transform | None = None, num_classes: int = 100, images_per_class: int = 60,
                 modes_per_class: int = 3, siblings: int = 4, sibling_similarity: float = 0.8,
                 image_size: int = 64, jitter: float = 0.4, rotation: float = 20.0, clutter: float = 0.5,
                 noise: float = 0.04, seed: int = 0) -> None:
        check_split(split)
        self.spec = SyntheticSpec(num_classes=num_classes, images_per_class=images_per_class,
                                  modes_per_class=modes_per_class, siblings=siblings,
                                  sibling_similarity=sibling_similarity, image_size=image_size, jitter=jitter,
                                  rotation=rotation, clutter=clutter, noise=noise, seed=seed)
        self.cache_path = data_root(root) / "synthetic" / f"{self.spec.key()}.npz"
        images, labels, modes = load_or_generate(self.spec, self.cache_path)
        train = labels < self.spec.num_train_classes
        keep = {"train": train, "test": ~train, "all": np.ones_like(train)}[split]
        super().__init__(split=split, images=images[keep], labels=labels[keep], transform=transform)
        self.modes = modes[keep]
        self._keep = keep
        self._masks: np.ndarray | None = None
        all_factors = class_factors(self.spec)
        self.palette_swapped = all_factors["mode_swap"][self.labels, self.modes]
        rows = np.unique(self.labels)
        self.factors = {name: values[rows] for name, values in all_factors.items()}

    @property
    def masks(self) -> np.ndarray:
        """The object mask of every image of this split, ``uint8 (N, H, W)``, aligned with ``images``."""
        if self._masks is None:
            self._masks = object_masks(self.spec)[self._keep]
        return self._masks

    @property
    def sibling_groups(self) -> list[np.ndarray]:
        """Class ids of each sibling group in this split."""
        groups = self.factors["group"]
        return [self.factors["class"][groups == g] for g in np.unique(groups)]


def load_or_generate(spec: SyntheticSpec, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(images, labels, modes)`` from the cache at ``path``, regenerating it if missing or corrupt."""
    if path.exists():
        try:
            return _read_cache(spec, path)
        except Exception as error:  # noqa: BLE001 - any unreadable cache is simply rebuilt
            warnings.warn(f"Synthetic-data cache {path} is unreadable or corrupt ({type(error).__name__}: "
                          f"{error}); regenerating it.", RuntimeWarning, stacklevel=3)
    images, labels, modes = generate(spec)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, images=images, labels=labels, modes=modes,
                 spec=np.array(json.dumps(dataclasses.asdict(spec), sort_keys=True)),
                 checksum=np.array(_checksum(images, labels, modes)))
    return images, labels, modes


def _read_cache(spec: SyntheticSpec, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Opening the file here (not inside np.load) closes it even when a damaged archive makes np.load raise.
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
        images, labels, modes = archive["images"], archive["labels"], archive["modes"]
        stored_spec, stored_sum = str(archive["spec"]), str(archive["checksum"])
    if json.loads(stored_spec) != dataclasses.asdict(spec):
        raise ValueError(f"it was generated with different settings {stored_spec}")
    if _checksum(images, labels, modes) != stored_sum:
        raise ValueError("checksum mismatch")
    return images, labels, modes


def _checksum(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _sibling_groups(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Group id of every class, and its centred position within the group (e.g. -1.5, -0.5, 0.5, 1.5)."""
    group = np.empty(spec.num_classes, dtype=np.int64)
    position = np.empty(spec.num_classes, dtype=np.float64)
    next_group = 0
    for lo, hi in ((0, spec.num_train_classes), (spec.num_train_classes, spec.num_classes)):
        for members in np.array_split(np.arange(lo, hi), -(-(hi - lo) // spec.siblings)):
            group[members] = next_group
            position[members] = np.arange(members.size) - (members.size - 1) / 2
            next_group += 1
    return group, position


def class_factors(spec: SyntheticSpec) -> dict[str, np.ndarray]:
    """The generative factors of every class (cheap; recomputed rather than cached).

    Each sibling group draws a prototype. Each class redraws the prototype's shape and texture type with
    probability ``(1 - sibling_similarity) ** 2`` (4 % at the default 0.8), and deviates from the prototype's
    colours and orientation by an amount proportional to ``1 - sibling_similarity``. Hue and texture frequency
    are in addition *spaced* by the steps of :func:`sibling_steps`, which have a floor, so siblings stay
    distinguishable even at ``sibling_similarity = 1``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0]))
    group, position = _sibling_groups(spec)
    n, g, m = spec.num_classes, int(group.max()) + 1, spec.modes_per_class
    d = 1.0 - spec.sibling_similarity
    hue_step, freq_step = sibling_steps(spec)

    proto = {
        "shape": rng.integers(0, len(SHAPES), g), "texture": rng.integers(0, len(TEXTURES), g),
        "fg_hue": rng.random(g), "hue_gap": rng.uniform(0.3, 0.7, g),
        "fg_sat": rng.uniform(0.55, 0.95, g), "bg_sat": rng.uniform(0.2, 0.7, g),
        "fg_val": rng.uniform(0.7, 1.0, g), "bg_val": rng.uniform(0.25, 0.6, g),
        "frequency": rng.uniform(1.2, 2.4, g), "orientation": rng.uniform(0, np.pi, g),
    }
    own_shape, own_texture = rng.integers(0, len(SHAPES), n), rng.integers(0, len(TEXTURES), n)
    redraw_shape, redraw_texture = rng.random(n) < d ** 2, rng.random(n) < d ** 2
    jitter = rng.uniform(-1, 1, (6, n)) * d
    f = {
        "class": np.arange(n, dtype=np.int64), "group": group,
        "shape": np.where(redraw_shape, own_shape, proto["shape"][group]),
        "texture": np.where(redraw_texture, own_texture, proto["texture"][group]),
        "fg_hue": (proto["fg_hue"][group] + position * hue_step) % 1.0,
        "bg_hue": (proto["fg_hue"][group] + proto["hue_gap"][group] + 0.15 * jitter[0]) % 1.0,
        "fg_sat": np.clip(proto["fg_sat"][group] + 0.3 * jitter[1], 0.2, 1.0),
        "bg_sat": np.clip(proto["bg_sat"][group] + 0.3 * jitter[2], 0.1, 0.9),
        "fg_val": np.clip(proto["fg_val"][group] + 0.3 * jitter[3], 0.55, 1.0),
        "bg_val": np.clip(proto["bg_val"][group] + 0.3 * jitter[4], 0.15, 0.7),
        "frequency": proto["frequency"][group] * (1.0 + position * freq_step),
        "orientation": (proto["orientation"][group] + np.pi / 2 * jitter[5]) % np.pi,
    }
    f["frequency"] = np.clip(f["frequency"], 0.6, 4.0)
    f["shape_name"] = np.array(SHAPES)[f["shape"]]
    f["texture_name"] = np.array(TEXTURES)[f["texture"]]
    f["mode_orientation"] = (f["orientation"][:, None] + np.arange(m) * np.pi / m) % np.pi
    aspects = np.linspace(1.0, 0.55, m) if m > 1 else np.ones(1)
    f["mode_aspect"] = np.stack([rng.permutation(aspects) for _ in range(n)])
    f["mode_swap"] = np.broadcast_to(np.arange(m) % 2 == 1, (n, m)).copy()
    return f


def sibling_steps(spec: SyntheticSpec) -> tuple[float, float]:
    """Hue difference and relative texture-frequency difference between neighbouring siblings."""
    d = 1.0 - spec.sibling_similarity
    return 0.02 + 0.15 * d, 0.1 + 0.3 * d


def generate(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render every image of every class: ``(images uint8 (N, S, S, 3), labels int64, modes int64)``."""
    labels, modes, image_params = _image_params(spec)
    n, size = labels.size, spec.image_size
    noise_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2]))
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n))
        chunk = _render({k: v[rows] for k, v in image_params.items()}, size=size, clutter=spec.clutter)
        if spec.noise > 0:
            chunk += spec.noise * noise_rng.standard_normal(chunk.shape, dtype=np.float32)
        images[rows] = np.rint(np.clip(chunk, 0.0, 1.0) * 255.0)
    return images, labels, modes


def object_masks(spec: SyntheticSpec) -> np.ndarray:
    """The object's anti-aliased coverage of every image, ``uint8 (N, S, S)`` (255 = object), in generation order.

    Computed from the same draws as :func:`generate` (the images are not needed and not changed), so mask ``i`` is
    exactly the alpha with which the object of image ``i`` was painted over its background and clutter.
    """
    labels, _, image_params = _image_params(spec)
    n, size = labels.size, spec.image_size
    masks = np.empty((n, size, size), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n))
        alpha, _, _ = _object_alpha({k: v[rows] for k, v in image_params.items()}, size=size)
        masks[rows] = np.rint(alpha * 255.0)
    return masks


def _image_params(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Labels, modes and the per-image rendering parameters: class factors plus the nuisance draws."""
    f = class_factors(spec)
    per, m = spec.images_per_class, spec.modes_per_class
    labels = np.repeat(np.arange(spec.num_classes, dtype=np.int64), per)
    modes = np.tile(np.arange(per, dtype=np.int64) % m, spec.num_classes)
    n = labels.size

    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    nuisance = {
        "tx": rng.uniform(-0.3, 0.3, n), "ty": rng.uniform(-0.3, 0.3, n),
        "radius": rng.uniform(0.32, 0.55, n),
        "angle": np.deg2rad(rng.uniform(-spec.rotation, spec.rotation, n)),
        "tex_angle": rng.normal(0.0, 0.06, n), "hue": rng.normal(0.0, 1.0, (2, n)),
        "freq": rng.normal(0.0, 1.0, n), "fg_gain": rng.uniform(0.85, 1.15, n), "bg_gain": rng.uniform(0.7, 1.3, n),
        "light_dir": rng.uniform(0, 2 * np.pi, n), "light": rng.uniform(0.0, 0.4, n),
        "disc_xy": rng.uniform(-1, 1, (n, _CLUTTER_DISCS, 2)),
        "disc_r": rng.uniform(0.06, 0.22, (n, _CLUTTER_DISCS)),
        "disc_rgb": rng.random((n, _CLUTTER_DISCS, 3)),
    }

    swap = f["mode_swap"][labels, modes]
    hue_step, freq_step = sibling_steps(spec)
    fg = _hsv_to_rgb(f["fg_hue"][labels] + spec.jitter * hue_step * nuisance["hue"][0], f["fg_sat"][labels],
                     np.clip(f["fg_val"][labels] * nuisance["fg_gain"], 0, 1))
    bg = _hsv_to_rgb(f["bg_hue"][labels] + 0.02 * nuisance["hue"][1], f["bg_sat"][labels],
                     np.clip(f["bg_val"][labels] * nuisance["bg_gain"], 0, 1))
    fg, bg = np.where(swap[:, None], bg, fg), np.where(swap[:, None], fg, bg)
    image_params = {
        **nuisance, "fg": fg, "bg": bg, "shape": f["shape"][labels], "texture": f["texture"][labels],
        "frequency": f["frequency"][labels] * (1 + spec.jitter * freq_step * nuisance["freq"]),
        "aspect": f["mode_aspect"][labels, modes],
        "orientation": f["mode_orientation"][labels, modes] + nuisance["tex_angle"],
    }
    return labels, modes, image_params


def _canvas_axes(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return axis[None, None, :], axis[None, :, None]


def _col(a: np.ndarray) -> np.ndarray:
    """Per-image scalar -> ``(n, 1, 1)`` float32, broadcasting against the canvas."""
    return np.asarray(a, dtype=np.float32).reshape(-1, 1, 1)


def _object_alpha(p: dict[str, np.ndarray], *, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The object's coverage ``(n, S, S)`` in [0, 1], and its unsquashed frame ``(u0, v0)`` (for the texture)."""
    n = p["tx"].size
    x, y = _canvas_axes(size)
    px = size / 2  # pixels per unit of the [-1, 1] canvas; makes every edge about one pixel wide
    # Object frame: translate, rotate, scale to unit radius; (u, v) additionally squashed by the mode's aspect.
    cos, sin, radius = _col(np.cos(p["angle"])), _col(np.sin(p["angle"])), _col(p["radius"])
    dx, dy = x - _col(p["tx"]), y - _col(p["ty"])
    u0, v0 = (cos * dx + sin * dy) / radius, (-sin * dx + cos * dy) / radius
    stretch = _col(np.sqrt(p["aspect"]))
    u, v = u0 / stretch, v0 * stretch

    level = np.empty((n, size, size), dtype=np.float32)  # shape "distance": < 1 inside, 1 on the outline
    for s in np.unique(p["shape"]):
        idx = np.flatnonzero(p["shape"] == s)
        level[idx] = _SHAPE_LEVEL[SHAPES[s]](u[idx], v[idx])
    return np.clip((1 - level) * radius * px + 0.5, 0, 1), u0, v0


def _render(p: dict[str, np.ndarray], *, size: int, clutter: float) -> np.ndarray:
    """Draw one chunk of images as ``float32`` ``(n, S, S, 3)`` in roughly [0, 1] (before noise)."""
    n = p["tx"].size
    f32 = np.float32
    x, y = _canvas_axes(size)
    col = _col

    # Background: base colour, a linear illumination gradient, then opaque clutter discs.
    light = 1 + col(p["light"]) * (x * col(np.cos(p["light_dir"])) + y * col(np.sin(p["light_dir"])))
    canvas = light[..., None] * p["bg"].astype(f32)[:, None, None, :]
    px = size / 2
    for i in range(_CLUTTER_DISCS):
        dist = np.hypot(x - col(p["disc_xy"][:, i, 0]), y - col(p["disc_xy"][:, i, 1]))
        alpha = clutter * np.clip((col(p["disc_r"][:, i]) - dist) * px + 0.5, 0, 1)
        canvas += alpha[..., None] * (p["disc_rgb"][:, i].astype(f32)[:, None, None, :] - canvas)

    alpha, u0, v0 = _object_alpha(p, size=size)
    tex = np.zeros((n, size, size), dtype=f32)
    phase = col(p["orientation"])
    along = u0 * np.cos(phase) + v0 * np.sin(phase)
    across = -u0 * np.sin(phase) + v0 * np.cos(phase)
    freq = col(p["frequency"])
    for t in np.unique(p["texture"]):
        idx = np.flatnonzero(p["texture"] == t)
        tex[idx] = _TEXTURE[TEXTURES[t]](along[idx] * freq[idx], across[idx] * freq[idx])

    fg = p["fg"].astype(f32)
    bright = (fg @ np.array([0.299, 0.587, 0.114], dtype=f32)) > 0.45
    ink = np.where(bright[:, None], fg * 0.45, fg + (1 - fg) * 0.55)  # texture tone: darker on light, lighter on dark
    obj = fg[:, None, None, :] + tex[..., None] * (ink - fg)[:, None, None, :]
    return canvas + alpha[..., None] * (obj - canvas)


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r, phi = np.hypot(u, v), np.arctan2(v, u)
    return r / (0.5 + 0.5 * np.abs(np.cos(2.5 * phi)) ** 1.5)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Equilateral, apex up, circumradius 1: the largest of the three edge-normal projections, over the inradius.
    return np.maximum(np.maximum(-v, 0.866 * u + 0.5 * v), -0.866 * u + 0.5 * v) / 0.5


_SHAPE_LEVEL = {
    "circle": lambda u, v: np.hypot(u, v),
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) / 0.8,
    "triangle": _triangle,
    "star": _star,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.7) / 0.3,
    "cross": lambda u, v: np.minimum(np.maximum(np.abs(u) / 0.32, np.abs(v)), np.maximum(np.abs(u), np.abs(v) / 0.32)),
    "diamond": lambda u, v: (np.abs(u) + np.abs(v)) / 1.1,
    "hexagon": lambda u, v: np.maximum(0.866 * np.abs(u) + 0.5 * np.abs(v), np.abs(v)) / 0.9,
}

_TEXTURE = {
    "plain": lambda a, b: np.zeros_like(a),
    "stripes": lambda a, b: np.clip(0.5 + 3 * np.sin(2 * np.pi * a), 0, 1),
    "dots": lambda a, b: np.clip((0.3 - np.hypot(a - np.round(a), b - np.round(b))) * 12 + 0.5, 0, 1),
    "checker": lambda a, b: np.clip(0.5 + 3 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b), 0, 1),
}


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs broadcast, hue wraps, output has a trailing axis of 3."""
    h = np.mod(h, 1.0) * 6
    i = np.floor(h).astype(np.int64) % 6
    frac = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - frac * s), v * (1 - (1 - frac) * s)
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return np.take_along_axis(table, i[None, ..., None], axis=0)[0]
