"""Triplet-space diagnostics: where each anchor's easiest positive and hardest negative sit in (S_ap, S_an).

Xuan, Stylianou, Liu & Pless, "Hard negative examples are hard, but useful", ECCV 2020, arXiv:2007.12749. The
released code (github.com/littleredxh/HardNegative) plots, for every image, its largest same-class similarity
against its largest other-class similarity (``triplet_diagram_visualization.ipynb``) and logs ``hn_ratio``, the
fraction of valid anchors whose hardest negative is more similar than their easiest positive (``S_an > S_ap``),
every iteration. Points below the diagonal are *easy* (the nearest neighbour of the anchor is a positive), points
above it are *hard*; a collapsing embedding drifts to the corner (1, 1).

Which anchors count (``validity``): ``"exists"`` (default) keeps every anchor that has a positive (after the
duplicate threshold) and a negative. ``"released"`` is the rule of the released ``SCTLoss`` (``_code/Loss.py``,
commit f5f392377fd0): ``-1 < S_ap < 1`` and ``-1 < S_an < 1``, which also drops an anchor whose easiest positive or
hardest negative has similarity exactly ±1 (for instance a negative that coincides with the anchor in a collapsed
embedding). Similarities are computed in the input's precision, as the released code does: float64 embeddings stay
float64, anything else is computed in float32.

:func:`triplet_space` returns the data and :func:`plot_triplet_space` draws it; both are gradient-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dml.utils import check_embeddings_and_labels
from dml.utils.checks import check_choice

__all__ = ["VALIDITY_RULES", "TripletSpace", "hard_triplet_ratio", "plot_triplet_space", "triplet_space"]

VALIDITY_RULES = ("exists", "released")


@dataclass(frozen=True)
class TripletSpace:
    """Per-anchor triplet-space coordinates (NumPy arrays of length N).

    Attributes:
        s_ap: largest cosine similarity to another image of the same class (the easiest positive; NaN if none).
        s_an: largest cosine similarity to an image of another class (the hardest negative; NaN if none).
        valid: the anchor has both a positive and a negative.
        labels: the anchors' labels.
    """

    s_ap: np.ndarray
    s_an: np.ndarray
    valid: np.ndarray
    labels: np.ndarray

    @property
    def hard(self) -> np.ndarray:
        """Valid anchors whose hardest negative is more similar than their easiest positive (``S_an > S_ap``)."""
        return self.valid & (np.nan_to_num(self.s_an, nan=-np.inf) > np.nan_to_num(self.s_ap, nan=np.inf))

    @property
    def hard_ratio(self) -> float:
        """Fraction of valid anchors that are hard: the released code's ``hn_ratio`` (NaN if no anchor is valid)."""
        count = int(self.valid.sum())
        return float(self.hard.sum() / count) if count else float("nan")

    @property
    def margin(self) -> float:
        """Mean of ``S_ap - S_an`` over valid anchors (NaN if none)."""
        return float(np.mean(self.s_ap[self.valid] - self.s_an[self.valid])) if self.valid.any() else float("nan")


def triplet_space(
    embeddings: Any,
    labels: Any,
    *,
    duplicate_threshold: float | None = 0.9999,
    chunk_size: int = 2048,
    validity: str = "exists",
) -> TripletSpace:
    """Easiest-positive and hardest-negative similarity of every anchor (all images of the set are anchors).

    Args:
        embeddings: (N, D) array or tensor; L2-normalised here (cosine similarity).
        labels: N class ids.
        duplicate_threshold: positives more similar than this are ignored as near-duplicates of the anchor, as
            the released code does (``S > 0.9999``); ``None`` keeps them.
        chunk_size: anchors per block, so memory stays O(chunk_size x N).
        validity: ``"exists"`` (an anchor with a positive and a negative is valid) or ``"released"`` (in addition
            ``-1 < S < 1`` for both, the released ``hn_ratio`` rule); see the module docstring.
    """
    check_choice(validity, VALIDITY_RULES, name="validity rule")
    emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, Tensor) else embeddings)
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels, device=emb.device)
    check_embeddings_and_labels(emb, lab)
    if not emb.is_floating_point():
        raise ValueError(f"embeddings must be floating point; got {emb.dtype}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}.")
    dtype = torch.float64 if emb.dtype == torch.float64 else torch.float32
    unit = F.normalize(emb.detach().to(dtype), p=2, dim=1)
    lab = lab.reshape(-1)
    n = len(unit)
    s_ap = torch.full((n,), float("nan"), dtype=dtype)
    s_an = torch.full((n,), float("nan"), dtype=dtype)
    for start in range(0, n, chunk_size):
        rows = slice(start, min(start + chunk_size, n))
        sim = unit[rows] @ unit.t()
        same = lab[rows, None] == lab[None, :]
        self_mask = torch.zeros_like(same)
        local = torch.arange(sim.shape[0], device=sim.device)
        self_mask[local, local + start] = True
        positive = same & ~self_mask
        if duplicate_threshold is not None:
            positive &= sim <= duplicate_threshold
        s_ap[rows] = _masked_max(sim, positive).cpu()
        s_an[rows] = _masked_max(sim, ~same).cpu()
    s_ap_np, s_an_np = s_ap.numpy(), s_an.numpy()
    valid = ~np.isnan(s_ap_np) & ~np.isnan(s_an_np)
    if validity == "released":
        with np.errstate(invalid="ignore"):
            valid &= (np.abs(s_ap_np) < 1) & (np.abs(s_an_np) < 1)
    return TripletSpace(s_ap=s_ap_np, s_an=s_an_np, valid=valid, labels=lab.cpu().numpy())


def _masked_max(sim: Tensor, mask: Tensor) -> Tensor:
    values = sim.masked_fill(~mask, float("-inf")).max(dim=1).values
    return torch.where(mask.any(dim=1), values, torch.full_like(values, float("nan")))


def hard_triplet_ratio(embeddings: Any, labels: Any, **kwargs: Any) -> float:
    """``hn_ratio``: fraction of valid anchors with ``S_an > S_ap`` (see :func:`triplet_space` for the arguments)."""
    return triplet_space(embeddings, labels, **kwargs).hard_ratio


def plot_triplet_space(
    spaces: TripletSpace | dict[str, TripletSpace],
    *,
    ax: Any = None,
    max_points: int = 3000,
    seed: int = 0,
    alpha: float = 0.4,
    size: float = 8.0,
) -> Any:
    """Scatter ``(S_ap, S_an)`` of one or several :class:`TripletSpace` (a dict gives a legend) with the diagonal.

    The hard region (``S_an > S_ap``) is shaded. At most ``max_points`` random valid anchors per set are drawn.
    Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if isinstance(spaces, TripletSpace):
        spaces = {"": spaces}
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    rng = np.random.default_rng(seed)
    ax.fill_between([-1, 1], [-1, 1], [1, 1], color="tab:red", alpha=0.07, lw=0)
    ax.plot([-1, 1], [-1, 1], color="0.3", lw=1, ls="--")
    for name, space in spaces.items():
        index = np.flatnonzero(space.valid)
        if len(index) > max_points:
            index = rng.choice(index, size=max_points, replace=False)
        label = f"{name} (hard {space.hard_ratio:.0%})" if name else None
        ax.scatter(space.s_ap[index], space.s_an[index], s=size, alpha=alpha, label=label, edgecolors="none")
    low = min(
        [-0.05] + [float(np.nanmin(np.r_[s.s_ap[s.valid], s.s_an[s.valid]])) for s in spaces.values() if s.valid.any()]
    )
    ax.set(
        xlim=(low - 0.05, 1.02),
        ylim=(low - 0.05, 1.02),
        xlabel="$S_{ap}$ (easiest positive)",
        ylabel="$S_{an}$ (hardest negative)",
        aspect="equal",
    )
    ax.text(0.04, 0.96, "hard: $S_{an} > S_{ap}$", transform=ax.transAxes, va="top", fontsize=8, color="tab:red")
    ax.text(0.96, 0.04, "easy", transform=ax.transAxes, ha="right", fontsize=8)
    if any(spaces):
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.08), fontsize=8, frameon=False)
    return ax
