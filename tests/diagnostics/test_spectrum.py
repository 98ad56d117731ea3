"""dml.diagnostics.spectrum: spectral decay ρ (Roth et al., ICML 2020) against hand values and scipy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import scipy.stats
import torch

from dml.diagnostics import plot_spectrum, spectral_decay


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


def test_hand_computed_values_on_an_uncentred_matrix() -> None:
    # X^T X = [[4, 0], [0, 2]]: singular values 2 and sqrt(2). Centring would remove the first column entirely.
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    decay = spectral_decay(x)
    s_hat = np.array([2.0, np.sqrt(2.0)]) / (2.0 + np.sqrt(2.0))
    np.testing.assert_allclose(decay.singular_values, [2.0, np.sqrt(2.0)])
    np.testing.assert_allclose(decay.s_hat, s_hat)
    assert decay.rho == pytest.approx(0.5 * np.log(0.5 / s_hat[0]) + 0.5 * np.log(0.5 / s_hat[1]), rel=1e-12)
    reverse = spectral_decay(x, reverse=True)
    assert reverse.rho == pytest.approx(np.sum(s_hat * np.log(2 * s_hat)), rel=1e-12)
    assert (decay.name, reverse.name) == ("rho_spectrum@1", "rho_spectrum@-1")
    # rho@2 drops the largest value: one value is left, which is trivially uniform
    assert spectral_decay(x, k=2).rho == 0.0 and spectral_decay(x, k=2).s_hat.tolist() == [1.0]


def test_diagonal_matrix_with_three_values() -> None:
    x = np.diag([4.0, 2.0, 1.0, 1.0])[:, :3] @ _orthogonal(3, seed=1)  # rotating the columns keeps the spectrum
    s_hat = np.array([4.0, 2.0, 1.0]) / 7.0
    assert spectral_decay(x).rho == pytest.approx(np.mean(np.log((1 / 3) / s_hat)), rel=1e-10)
    kept = np.array([2.0, 1.0]) / 3.0
    assert spectral_decay(x, k=2).rho == pytest.approx(np.mean(np.log(0.5 / kept)), rel=1e-10)


def test_uniform_spectrum_gives_zero_for_every_k_and_direction() -> None:
    x = 3.0 * _orthogonal(6, seed=0)
    for k in (1, 2, 6):
        assert spectral_decay(x, k=k).rho == pytest.approx(0.0, abs=1e-12)
        assert spectral_decay(x, k=k, reverse=True).rho == pytest.approx(0.0, abs=1e-12)


def test_invariant_to_scale_and_rotation_and_agrees_with_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8)) @ np.diag(np.linspace(3.0, 0.2, 8))
    for k in (1, 2, 5, 8):
        for reverse in (False, True):
            decay = spectral_decay(x, k=k, reverse=reverse)
            s = np.linalg.svd(x, compute_uv=False)[k - 1 :]
            s_hat, uniform = s / s.sum(), np.full(len(s), 1.0 / len(s))
            expected = scipy.stats.entropy(s_hat, uniform) if reverse else scipy.stats.entropy(uniform, s_hat)
            assert decay.rho == pytest.approx(expected, rel=1e-10, abs=1e-14)
            assert spectral_decay(7.5 * x, k=k, reverse=reverse).rho == pytest.approx(decay.rho, rel=1e-10, abs=1e-14)
            rotated = _orthogonal(40, seed=4) @ x @ _orthogonal(8, seed=5)
            assert spectral_decay(rotated, k=k, reverse=reverse).rho == pytest.approx(decay.rho, rel=1e-9, abs=1e-13)
            assert len(decay.s_hat) == 8 - k + 1 and decay.s_hat.sum() == pytest.approx(1.0)
    assert spectral_decay(torch.tensor(x, dtype=torch.float64)).rho == pytest.approx(spectral_decay(x).rho)


def test_a_compressed_embedding_decays_faster_than_a_spread_one() -> None:
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(200, 16))
    compressed = spread @ np.diag([1.0, 1.0] + [0.05] * 14)
    assert spectral_decay(compressed).rho > spectral_decay(spread).rho + 0.5


def test_bad_input_fails_with_a_clear_message() -> None:
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match="out of range"):
        spectral_decay(x, k=4)
    with pytest.raises(ValueError, match="integer >= 1"):
        spectral_decay(x, k=0)
    with pytest.raises(ValueError, match="integer >= 1"):
        spectral_decay(x, k=1.5)
    with pytest.raises(ValueError, match="2-D"):
        spectral_decay(x[0])
    with pytest.raises(ValueError, match="NaN"):
        spectral_decay(np.where(np.eye(5, 3) > 0, np.nan, x))
    with pytest.raises(ValueError, match="at least 2"):
        spectral_decay(x[:1])
    with pytest.raises(ValueError, match="all zero"):
        spectral_decay(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="rank"):
        spectral_decay(np.c_[np.ones(4), np.zeros(4)], k=2)


def test_plot_spectrum_draws_one_line_per_set() -> None:
    rng = np.random.default_rng(0)
    decays = {"spread": spectral_decay(rng.normal(size=(30, 6))), "k=2": spectral_decay(rng.normal(size=(30, 6)), k=2)}
    ax = plot_spectrum(decays)
    assert len(ax.get_lines()) == 2 and ax.get_yscale() == "log"
    assert ax.get_lines()[1].get_xdata()[0] == 2  # rho@2 starts at the second value
    assert "ρ@1" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="empty"):
        plot_spectrum({})
