"""One gradient step of a single triplet on the unit sphere, seen in triplet space (S_ap, S_an).

Xuan, Stylianou, Liu & Pless, "Hard negative examples are hard, but useful", ECCV 2020, arXiv:2007.12749. The
released notebook ``triplet_gradient_simulation.ipynb`` (github.com/littleredxh/HardNegative) places a triplet with
given similarities on the sphere,

.. math::  f_a = e_1,\\quad f_p = S_{ap} e_1 + \\sqrt{1 - S_{ap}^2}\\, e_2,\\quad
           f_n = S_{an} e_1 + \\sqrt{1 - S_{an}^2}\\,(c\\, e_2 + \\sqrt{1 - c^2}\\, e_3),

(``c``, the *coplanarity*, sets how much ``f_p`` and ``f_n`` share a direction; the notebook's ``projection``),
moves the three unit vectors one step along the pair weights of a loss, re-normalises them and records the change
``(dS_ap, dS_an)``. Embeddings come from one network with shared weights, so moving one image also moves similar
images; the notebook models this with an *entanglement* term

.. math::  \\Delta S_{ap}^{tot} = \\Delta S_{ap} + m\\,\\Delta S_{an},\\qquad
           \\Delta S_{an}^{tot} = \\Delta S_{an} + m\\,\\Delta S_{ap},\\qquad m = p\\, S_{ap} S_{an}.

A step uses the same directions as :mod:`dml.gradients.surgery` (``projection=False`` by default, as the notebook
does: the step acts on the unit vectors, which are then re-normalised):

* cosine: ``f_a += lr (w_ap f_p - w_an f_n)``, ``f_p += lr w_ap f_a``, ``f_n -= lr w_an f_a``;
* euclidean: the same with unit vectors ``(f_p - f_a)/D_ap`` and ``(f_a - f_n)/D_an`` instead of ``f_p``, ``f_n``.

The notebook (commit f5f392377fd0) draws three maps, available by its names through :func:`notebook_rule`:
``Triplet_Map_std`` is :func:`euclidean_triplet_rule`, ``Triplet_Map_1st`` is :func:`nca_rule` with
``temperature=1`` and ``Triplet_Map_2nd`` is :func:`second_order_nca_rule`, NCA on the second-order similarities
``g(S_ap) = S_ap - S_ap²/2`` and ``h(S_an) = S_an²/2``, whose weights ``w_ap = (1 - S_ap) P_an`` and
``w_an = S_an P_an`` fade as the positive closes in and as the negative moves away. :func:`sct_rule` (the SCT loss's
split into a hard branch that only pushes the negative and NCA elsewhere) is not one of the notebook's maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dml.utils.checks import check_choice

__all__ = [
    "TripletField",
    "UpdateRule",
    "collapse_share",
    "entangle",
    "euclidean_triplet_rule",
    "nca_rule",
    "notebook_rule",
    "one_step",
    "sct_rule",
    "second_order_nca_rule",
    "triplet_field",
    "triplet_trajectory",
    "triplet_vectors",
]

Weights = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class UpdateRule:
    """Pull / push weights ``(w_ap, w_an) = weights(S_ap, S_an)`` (arrays, >= 0) and the step's direction."""

    name: str
    weights: Weights
    direction: str = "cosine"

    def __post_init__(self) -> None:
        check_choice(self.direction, ("cosine", "euclidean"), name="direction")


def _softmax_negative(s_ap: np.ndarray, s_an: np.ndarray, temperature: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((s_ap - s_an) / temperature))  # P_an of the two-way softmax, overflow-safe


def euclidean_triplet_rule() -> UpdateRule:
    """Squared-distance triplet loss ``D_ap^2 - D_an^2 (+ m)`` in its active region: ``w = -dL/dD = 2D``."""

    def weights(s_ap: np.ndarray, s_an: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 2.0 * np.sqrt(np.clip(2.0 - 2.0 * s_ap, 0.0, None)), 2.0 * np.sqrt(np.clip(2.0 - 2.0 * s_an, 0.0, None))

    return UpdateRule("Euclidean triplet", weights, direction="euclidean")


def nca_rule(temperature: float = 1.0) -> UpdateRule:
    """NCA on the pair ``-log softmax(S_ap/τ, S_an/τ)[0]``: ``w_ap = w_an = P_an / τ`` (cosine direction)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")

    def weights(s_ap: np.ndarray, s_an: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = _softmax_negative(s_ap, s_an, temperature) / temperature
        return w, w

    return UpdateRule(f"NCA (τ={temperature:g})", weights)


def second_order_nca_rule() -> UpdateRule:
    """The notebook's ``Triplet_Map_2nd``: NCA ``-log softmax(g(S_ap), h(S_an))[0]`` with ``g(s) = s - s²/2`` and
    ``h(s) = s²/2``, i.e. ``w_ap = (1 - S_ap) P_an`` and ``w_an = S_an P_an`` with
    ``P_an = e^{h(S_an)} / (e^{g(S_ap)} + e^{h(S_an)})`` (cosine direction)."""

    def weights(s_ap: np.ndarray, s_an: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_an = _softmax_negative(s_ap - 0.5 * s_ap**2, 0.5 * s_an**2, 1.0)
        return (1.0 - s_ap) * p_an, s_an * p_an

    return UpdateRule("second-order NCA", weights)


#: The maps of the released notebook ``triplet_gradient_simulation.ipynb``, by their function names there.
NOTEBOOK_RULES: dict[str, Callable[[], UpdateRule]] = {
    "Triplet_Map_std": euclidean_triplet_rule,
    "Triplet_Map_1st": lambda: nca_rule(1.0),
    "Triplet_Map_2nd": second_order_nca_rule,
}


def notebook_rule(name: str) -> UpdateRule:
    """The update rule of the released notebook's map ``name`` (a key of :data:`NOTEBOOK_RULES`)."""
    check_choice(name, NOTEBOOK_RULES, name="notebook map")
    return NOTEBOOK_RULES[name]()


def sct_rule(temperature: float = 1.0, lam: float = 1.0) -> UpdateRule:
    """Selectively contrastive triplet: ``λ S_an`` on hard triplets (``S_an > S_ap``), NCA on the others.

    The hard branch only pushes the negative: ``(w_ap, w_an) = (0, λ)``.
    """
    nca = nca_rule(temperature)

    def weights(s_ap: np.ndarray, s_an: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w_ap, w_an = nca.weights(s_ap, s_an)
        hard = s_an > s_ap
        return np.where(hard, 0.0, w_ap), np.where(hard, lam, w_an)

    return UpdateRule(f"SCT (τ={temperature:g}, λ={lam:g})", weights)


def triplet_vectors(
    s_ap: np.ndarray | float, s_an: np.ndarray | float, coplanarity: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors ``(f_a, f_p, f_n)``, each of shape ``(*s.shape, 3)``, with the given similarities."""
    s_ap, s_an = np.broadcast_arrays(np.asarray(s_ap, dtype=float), np.asarray(s_an, dtype=float))
    if np.any(np.abs(s_ap) > 1) or np.any(np.abs(s_an) > 1):
        raise ValueError("similarities must lie in [-1, 1].")
    if not -1.0 <= coplanarity <= 1.0:
        raise ValueError(f"coplanarity is a cosine and must lie in [-1, 1]; got {coplanarity}.")
    zeros, ones = np.zeros_like(s_ap), np.ones_like(s_ap)
    sin_p, sin_n = np.sqrt(1.0 - s_ap**2), np.sqrt(1.0 - s_an**2)
    f_a = np.stack([ones, zeros, zeros], axis=-1)
    f_p = np.stack([s_ap, sin_p, zeros], axis=-1)
    f_n = np.stack([s_an, sin_n * coplanarity, sin_n * np.sqrt(1.0 - coplanarity**2)], axis=-1)
    return f_a, f_p, f_n


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def one_step(
    rule: UpdateRule,
    s_ap: np.ndarray | float,
    s_an: np.ndarray | float,
    *,
    lr: float = 0.1,
    coplanarity: float = 0.0,
    projection: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(dS_ap, dS_an)`` after one step of ``rule`` on the triplet :func:`triplet_vectors` (no entanglement).

    ``projection=True`` removes each vector's radial component from its step before re-normalising (the exact
    chain rule through the normalisation); the released notebook does not.
    """
    s_ap, s_an = np.broadcast_arrays(np.asarray(s_ap, dtype=float), np.asarray(s_an, dtype=float))
    f_a, f_p, f_n = triplet_vectors(s_ap, s_an, coplanarity)
    w_ap, w_an = (np.broadcast_to(np.asarray(w, dtype=float), s_ap.shape)[..., None] for w in rule.weights(s_ap, s_an))
    if rule.direction == "cosine":
        to_p, from_n = f_p, -f_n  # the anchor's directions towards p and away from n
        move_p, move_n = f_a, -f_a
    else:
        to_p = _safe_unit(f_p - f_a)
        from_n = _safe_unit(f_a - f_n)
        move_p, move_n = -to_p, -from_n
    steps = (lr * (w_ap * to_p + w_an * from_n), lr * w_ap * move_p, lr * w_an * move_n)
    if projection:
        steps = tuple(s - (s * f).sum(-1, keepdims=True) * f for s, f in zip(steps, (f_a, f_p, f_n)))
    a, p, n = (_unit(f + s) for f, s in zip((f_a, f_p, f_n), steps))
    return (a * p).sum(-1) - s_ap, (a * n).sum(-1) - s_an


def _safe_unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def entangle(
    d_ap: np.ndarray, d_an: np.ndarray, s_ap: np.ndarray, s_an: np.ndarray, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(dS_ap + m dS_an, dS_an + m dS_ap)`` with ``m = p S_ap S_an``: shared network weights drag neighbours along."""
    if p < 0:
        raise ValueError(f"the entanglement strength p must be >= 0; got {p}.")
    m = p * np.asarray(s_ap) * np.asarray(s_an)
    return d_ap + m * d_an, d_an + m * d_ap


@dataclass(frozen=True)
class TripletField:
    """The one-step field on a grid: ``s_ap``, ``s_an`` (meshgrid, ``s_ap`` along columns) and the total changes."""

    rule: str
    s_ap: np.ndarray
    s_an: np.ndarray
    d_ap: np.ndarray
    d_an: np.ndarray
    p: float
    lr: float


def triplet_field(
    rule: UpdateRule,
    grid: np.ndarray | None = None,
    *,
    lr: float = 0.1,
    p: float = 0.0,
    coplanarity: float = 0.0,
    projection: bool = False,
) -> TripletField:
    """:func:`one_step` plus :func:`entangle` on every point of ``grid x grid`` (default 19 points in [0.05, 0.95])."""
    grid = np.linspace(0.05, 0.95, 19) if grid is None else np.asarray(grid, dtype=float)
    s_ap, s_an = np.meshgrid(grid, grid)
    d_ap, d_an = one_step(rule, s_ap, s_an, lr=lr, coplanarity=coplanarity, projection=projection)
    d_ap, d_an = entangle(d_ap, d_an, s_ap, s_an, p)
    return TripletField(rule.name, s_ap, s_an, d_ap, d_an, p, lr)


def collapse_share(field: TripletField) -> float:
    """Share of the hard cells (``S_an > S_ap``) where the step *raises* ``S_an``: the drift towards collapse."""
    hard = field.s_an > field.s_ap
    if not hard.any():
        raise ValueError("the grid has no hard cell (S_an > S_ap); use a grid that spans the diagonal.")
    return float((field.d_an[hard] > 0).mean())


def triplet_trajectory(
    rule: UpdateRule,
    start: tuple[float, float],
    *,
    steps: int = 200,
    lr: float = 0.1,
    p: float = 0.0,
    coplanarity: float = 0.0,
) -> np.ndarray:
    """Follow the entangled field from ``start = (S_ap, S_an)`` for ``steps`` steps; an array ``(steps + 1, 2)``.

    Each step re-creates the triplet from the current similarities (the field is a function of (S_ap, S_an) only);
    the path is clipped to the square [-1, 1]^2.
    """
    point = np.array(start, dtype=float)
    if point.shape != (2,) or np.any(np.abs(point) > 1):
        raise ValueError(f"start must be a pair (S_ap, S_an) in [-1, 1]; got {start!r}.")
    path = [point.copy()]
    for _ in range(steps):
        d_ap, d_an = one_step(rule, point[0], point[1], lr=lr, coplanarity=coplanarity)
        d_ap, d_an = entangle(d_ap, d_an, point[0], point[1], p)
        point = np.clip(point + np.array([float(d_ap), float(d_an)]), -1.0, 1.0)
        path.append(point.copy())
    return np.stack(path)
