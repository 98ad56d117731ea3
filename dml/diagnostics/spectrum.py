"""Spectral decay ρ of an embedding matrix: how far its singular-value spectrum is from flat.

Roth, Milbich, Sinha, Gupta, Ommer & Cohen, "Revisiting Training Strategies and Generalization Performance in Deep
Metric Learning", ICML 2020, arXiv:2002.08473. A few large singular values mean the embeddings use few directions
(a compressed space); a flat spectrum means many directions carry variance. The paper relates ρ to generalisation
and lowers it during training with its ρ-regularisation.

The variant computed here is the one of their released code (``metrics/rho_spectrum.py`` of
github.com/Confusezius/Revisiting_Deep_Metric_Learning_PyTorch), for the metric named ``rho_spectrum@k``:

1. singular values ``σ_1 >= ... >= σ_r`` (``r = min(N, D)``) of the embedding matrix ``Φ`` (N x D) itself,
   **not mean-centred** (a plain SVD, not PCA), taken as given: their default architectures (``*_normalize``)
   already L2-normalise every embedding, as the course's models do by default;
2. drop the ``k - 1`` largest: ``s = (σ_k, ..., σ_r)``, ``n = r - k + 1``, and normalise ``ŝ = s / Σ s``;
3. ``ρ = KL(U || ŝ) = Σ_i (1/n) log((1/n) / ŝ_i)`` with ``U`` uniform over the ``n`` entries, natural logarithm
   (their ``scipy.stats.entropy(uniform, ŝ)``). ``k = 1`` is the metric of the paper; ``k > 1`` ignores the
   ``k - 1`` dominant directions "for a more robust estimate" (their README).

Their ``rho_spectrum@-k`` is the reversed divergence ``KL(ŝ || U) = Σ_i ŝ_i log(n ŝ_i)`` (``reverse=True`` here),
and ``rho_spectrum@0`` returns ``ŝ`` itself (:attr:`SpectralDecay.s_hat`).

The SVD: the released code takes a full SVD (``torch.svd``) only when the features are a tensor
(``--evaluate_on_gpu``); on its default path (NumPy features) it uses scikit-learn's randomised
``TruncatedSVD(n_components=embed_dim - 1, n_iter=7, random_state=42)``, which omits the smallest singular value
(and approximates the others). ``svd="exact"`` (default) takes the exact and complete SVD (LAPACK, ``float64``);
``svd="truncated"`` is the released default path, so ρ values are comparable with the ones it reports (commit
efddbf23ccbe).

Properties: ρ >= 0, with equality iff the kept spectrum is flat; ρ is invariant to scaling ``Φ`` and to rotating
its rows or columns; a (numerically) rank-deficient ``Φ`` has (near-)zero singular values and a large (possibly
infinite) ρ@k with the default direction, while ``reverse=True`` stays finite (``0 log 0 = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.diagnostics._inputs import as_float64_matrix, check_positive_int
from dml.utils.checks import check_choice

__all__ = ["SVD_METHODS", "SpectralDecay", "plot_spectrum", "spectral_decay"]

SVD_METHODS = ("exact", "truncated")


@dataclass(frozen=True)
class SpectralDecay:
    """The spectrum of an embedding matrix and its spectral decay.

    Attributes:
        singular_values: all ``r = min(N, D)`` singular values (``D - 1`` with ``svd="truncated"``), largest
            first (un-normalised).
        s_hat: the kept values ``σ_k .. σ_r`` divided by their sum (length ``r - k + 1``).
        k: how many values were dropped, plus one (``rho_spectrum@k``).
        reverse: whether ``rho`` is ``KL(ŝ || U)`` (``rho_spectrum@-k``) instead of ``KL(U || ŝ)``.
        rho: the spectral decay, in nats.
    """

    singular_values: np.ndarray
    s_hat: np.ndarray
    k: int
    reverse: bool
    rho: float

    @property
    def name(self) -> str:
        """The released code's metric name: ``rho_spectrum@k``, or ``rho_spectrum@-k`` when reversed."""
        return f"rho_spectrum@{-self.k if self.reverse else self.k}"


def spectral_decay(embeddings: Any, *, k: int = 1, reverse: bool = False, svd: str = "exact") -> SpectralDecay:
    """Spectral decay ``ρ@k`` of an (N, D) embedding matrix (see the module docstring for the exact formula).

    Args:
        embeddings: (N, D) array or tensor, used as given (not centred, not re-normalised).
        k: drop the ``k - 1`` largest singular values first; ``1 <= k <= min(N, D)``. With ``k = min(N, D)`` a
            single value is left and ρ is 0 by construction.
        reverse: ``KL(ŝ || U)`` instead of the paper's ``KL(U || ŝ)``.
        svd: ``"exact"`` (all ``min(N, D)`` singular values) or ``"truncated"`` (the released default path: the
            ``D - 1`` values of scikit-learn's seeded randomised ``TruncatedSVD``; needs ``N >= D - 1``, ``D >= 2``).
    """
    check_choice(svd, SVD_METHODS, name="svd method")
    x = as_float64_matrix(embeddings, min_rows=2)
    k = check_positive_int(k, "k")
    sigma = np.linalg.svd(x, compute_uv=False) if svd == "exact" else _released_truncated_svd(x)
    rank_bound = len(sigma)
    if k > rank_bound:
        raise ValueError(
            f"k={k} is out of range: an embedding matrix of shape {x.shape} has only "
            f"{rank_bound} singular values ({'min(N, D)' if svd == 'exact' else 'D - 1, truncated'}), and rho@k "
            "drops the k - 1 largest. "
            f"Use 1 <= k <= {rank_bound}."
        )
    if sigma[0] == 0:
        raise ValueError(
            "embeddings are all zero: every singular value is 0, so the spectrum cannot be "
            "normalised. Check the model for dead outputs."
        )
    kept = sigma[k - 1 :]
    total = kept.sum()
    if total == 0:
        raise ValueError(
            f"The singular values from the {k}-th on are all 0 (the embedding matrix has rank "
            f"{int(np.sum(sigma > 0))} < k = {k}); use a smaller k."
        )
    s_hat = kept / total
    n = len(s_hat)
    if reverse:
        positive = s_hat > 0
        rho = float(np.sum(s_hat[positive] * np.log(n * s_hat[positive])))
    else:
        with np.errstate(divide="ignore"):
            rho = float(-np.log(n) - np.mean(np.log(s_hat)))
    return SpectralDecay(singular_values=sigma, s_hat=s_hat, k=k, reverse=bool(reverse), rho=rho if rho > 0 else 0.0)


def _released_truncated_svd(x: np.ndarray) -> np.ndarray:
    """The ``D - 1`` singular values of ``TruncatedSVD(n_components=D - 1, n_iter=7, random_state=42)``."""
    from sklearn.decomposition import TruncatedSVD

    n, d = x.shape
    if d < 2 or n < d - 1:
        raise ValueError(
            f"svd='truncated' keeps D - 1 = {d - 1} components, which needs D >= 2 and at least D - 1 "
            f"embeddings; got shape {x.shape}. Use svd='exact' or more embeddings."
        )
    return TruncatedSVD(n_components=d - 1, n_iter=7, random_state=42).fit(x).singular_values_


def plot_spectrum(
    decays: SpectralDecay | dict[str, SpectralDecay], *, ax: Any = None, log: bool = True, show_uniform: bool = True
) -> Any:
    """Draw the normalised kept spectrum ``ŝ`` against the singular-value index (one line per entry of a dict).

    The index starts at ``k`` (the values ρ@k compares with the uniform spectrum); a dashed line marks the flat
    spectrum ``1/n`` of each entry when ``show_uniform``. The legend gives each ρ. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if isinstance(decays, SpectralDecay):
        decays = {"": decays}
    if not decays:
        raise ValueError("decays is empty; pass a SpectralDecay or a dict of them.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.4))
    for name, decay in decays.items():
        index = np.arange(decay.k, decay.k + len(decay.s_hat))
        label = f"{name + ': ' if name else ''}ρ@{-decay.k if decay.reverse else decay.k} = {decay.rho:.3g}"
        (line,) = ax.plot(index, decay.s_hat, marker="o", markersize=2.5, lw=1.2, label=label)
        if show_uniform:
            ax.hlines(
                1.0 / len(decay.s_hat), index[0], index[-1], colors=line.get_color(), linestyles="--", lw=0.8, alpha=0.7
            )
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="singular value index", ylabel=r"normalised singular value $\hat{s}_i$")
    ax.legend(fontsize=8, frameon=False)
    return ax
