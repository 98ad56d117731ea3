"""dml.diagnostics.similarity_histograms and per_epoch: S_ap/S_an histograms, the EPHN "Margin", the epoch hook."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import dml.data
from dml.diagnostics import (
    diagnostics_callback,
    embedding_diagnostics,
    epoch_diagnostics,
    histogram_edges,
    histograms_from_history,
    plot_epoch_curves,
    plot_epoch_diagnostics,
    plot_similarity_histograms,
    similarity_histograms,
    spectral_decay,
    triplet_space,
)
from dml.train import config as train_config
from dml.train import train


def _brute_force_pairs(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    positives, negatives = [], []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            (positives if labels[i] == labels[j] else negatives).append(float(unit[i] @ unit[j]))
    return np.array(positives), np.array(negatives)


def test_all_pairs_histograms_match_a_double_loop_for_any_chunk_size() -> None:
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(37, 5)), rng.integers(0, 4, size=37)
    positives, negatives = _brute_force_pairs(x, labels)
    edges = histogram_edges(16)
    for chunk_size in (1, 5, 2048):
        hist = similarity_histograms(x, labels, pairs="all", bins=16, chunk_size=chunk_size)
        np.testing.assert_array_equal(hist.positive_counts, np.histogram(positives, bins=edges)[0])
        np.testing.assert_array_equal(hist.negative_counts, np.histogram(negatives, bins=edges)[0])
        assert hist.mean_positive == pytest.approx(positives.mean(), rel=1e-12)
        assert hist.margin == pytest.approx(positives.mean() - negatives.mean(), rel=1e-12)
    counts = np.bincount(labels)
    assert hist.positive_counts.sum() == np.sum(counts * (counts - 1) // 2)
    assert hist.positive_counts.sum() + hist.negative_counts.sum() == 37 * 36 // 2
    as_tensor = similarity_histograms(torch.tensor(x, dtype=torch.float32), torch.tensor(labels), pairs="all", bins=16)
    assert as_tensor.mean_negative == pytest.approx(negatives.mean(), abs=1e-6)


def test_anchor_histograms_are_the_triplet_space_values() -> None:
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(40, 6)), np.repeat(np.arange(8), 5)
    hist = similarity_histograms(x, labels, bins=20)
    space = triplet_space(x, labels)
    edges = histogram_edges(20)
    np.testing.assert_array_equal(hist.positive_counts, np.histogram(space.s_ap, bins=edges)[0])
    np.testing.assert_array_equal(hist.negative_counts, np.histogram(space.s_an, bins=edges)[0])
    assert hist.margin == pytest.approx(np.mean(space.s_ap) - np.mean(space.s_an), rel=1e-6)
    assert hist.margin == pytest.approx(space.margin, rel=1e-6)  # every anchor is valid here
    assert hist.pairs == "anchor" and hist.positive_counts.sum() == 40
    named = similarity_histograms(x, np.array([f"class {c}" for c in labels]), bins=20)
    assert np.array_equal(named.negative_counts, hist.negative_counts) and named.margin == hist.margin
    np.testing.assert_allclose(np.sum(hist.density("positive") * np.diff(hist.edges)), 1.0)


def test_fixed_bins_catch_the_extremes_and_duplicates_follow_the_threshold() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    labels = [0, 0, 1, 1]
    hist = similarity_histograms(x, labels, pairs="all", bins=4)
    assert hist.positive_counts.tolist() == [0, 0, 1, 1]  # S = 1 in the last bin, S = 0 on an edge: right
    assert hist.negative_counts.tolist() == [2, 0, 2, 0]  # S = -1 in the first bin
    skipped = similarity_histograms(x, labels, bins=4)  # the duplicate is not a positive (S > 0.9999)
    kept = similarity_histograms(x, labels, bins=4, duplicate_threshold=None)
    assert skipped.positive_counts.tolist() == [0, 0, 2, 0]
    assert kept.positive_counts.tolist() == [0, 0, 2, 2]
    assert np.array_equal(skipped.edges, similarity_histograms(3 * x + 1, labels, bins=4).edges)


def test_embedding_diagnostics_gives_strict_json_and_the_same_numbers_as_each_function() -> None:
    rng = np.random.default_rng(2)
    x, labels = rng.normal(size=(24, 4)), np.repeat(np.arange(6), 4)
    out = embedding_diagnostics(x, labels, prefix="train_", bins=10, spectrum_ks=(1, 3))
    assert set(out) == {
        f"train_{key}"
        for key in (
            "hard_ratio",
            "margin",
            "mean_s_ap",
            "mean_s_an",
            "s_ap_hist",
            "s_an_hist",
            "rho@1",
            "rho@3",
            "pi_intra",
            "pi_inter",
            "pi_ratio",
            "mean_similarity",
        )
    }
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosines = xn @ xn.T
    assert out["train_mean_similarity"] == pytest.approx(cosines[~np.eye(24, dtype=bool)].mean())  # the slow way
    assert out["train_rho@3"] == pytest.approx(spectral_decay(x, k=3).rho)
    assert out["train_hard_ratio"] == pytest.approx(triplet_space(x, labels).hard_ratio)
    assert sum(out["train_s_ap_hist"]) == 24 and len(out["train_s_an_hist"]) == 10
    json.dumps(out, allow_nan=False)
    # identical vectors in class 0 are near-duplicates, so no anchor has a positive: NaN becomes None
    degenerate = embedding_diagnostics(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), [0, 0, 1], bins=4)
    assert degenerate["hard_ratio"] is None and degenerate["mean_s_ap"] is None and degenerate["margin"] is None
    json.dumps(degenerate, allow_nan=False)
    named = embedding_diagnostics(x, np.array(list("abcdef"))[labels], prefix="train_", bins=10, spectrum_ks=(1, 3))
    assert named == out  # string labels work the same
    all_pairs = embedding_diagnostics(x, labels, pairs="all", histograms=False, spectrum_ks=(), density=False)
    assert set(all_pairs) == {"hard_ratio", "margin", "mean_s_ap", "mean_s_an", "mean_similarity"}
    assert degenerate["mean_similarity"] == pytest.approx(1 / 3)  # pairs: 1, 0, 0 (each counted twice)


def test_max_points_subsamples_with_a_seeded_generator() -> None:
    rng = np.random.default_rng(3)
    x, labels = rng.normal(size=(60, 4)), np.repeat(np.arange(10), 6)
    first = embedding_diagnostics(x, labels, max_points=30, seed=1, bins=8)
    assert first == embedding_diagnostics(x, labels, max_points=30, seed=1, bins=8)
    assert sum(first["s_ap_hist"]) + sum(first["s_an_hist"]) <= 60
    assert first != embedding_diagnostics(x, labels, bins=8)


def test_epoch_diagnostics_embeds_a_dataset_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Dropout(0.5))
    model.train()
    inputs, labels = torch.randn(20, 5), torch.arange(20) % 4
    out = epoch_diagnostics(model, TensorDataset(inputs, labels), batch_size=7, prefix="val_", bins=6)
    with torch.no_grad():
        expected = embedding_diagnostics(model[0](inputs), labels, prefix="val_", bins=6)
    assert out.keys() == expected.keys()
    for key, value in expected.items():
        assert out[key] == (value if isinstance(value, list) else pytest.approx(value, rel=1e-5))
    assert model.training  # the mode is restored


def test_callback_in_a_training_run_and_the_plots_over_epochs(tmp_path: Path) -> None:
    """The end-to-end check of the hook: a tiny run of two epochs (about 2 s), then its metrics.json plotted."""
    data = {
        "num_classes": 6,
        "images_per_class": 4,
        "modes_per_class": 1,
        "image_size": 8,
        "seed": 2,
        "root": str(tmp_path / "data"),
    }
    config = train_config.from_dict(
        {
            "seed": 0,
            "deterministic": False,
            "device": "cpu",
            "output_dir": str(tmp_path / "run"),
            "data": {
                "name": "synthetic",
                "kwargs": {k: v for k, v in data.items() if k != "root"},
                "root": data["root"],
                "sampler": {"variant": "filled", "p": 2, "k": 2},
            },
            "model": {"backbone": "small_cnn", "embedding_dim": 4, "backbone_kwargs": {"widths": [4]}},
            "loss": {"name": "triplet", "kwargs": {"margin": 0.2}},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 2, "log_every": 100},
            "eval": {"every": 0},
        }
    )
    (tmp_path / "data").mkdir()
    splits = {split: dml.data.build("synthetic", split=split, **data) for split in ("train", "test")}
    train(config, on_epoch_end=diagnostics_callback(splits, bins=8, spectrum_ks=(1, 2)))
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert [record["epoch"] for record in history] == [1, 2]
    assert all(isinstance(record["test_rho@2"], float) and len(record["train_s_ap_hist"]) == 8 for record in history)
    hists = histograms_from_history(history, prefix="test_")
    assert sorted(hists) == [1, 2] and hists[2].margin == pytest.approx(history[1]["test_margin"])
    axes = plot_epoch_diagnostics(history, prefix="train_")
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["epoch 1", "epoch 2"]
    assert len(axes[1].get_lines()) == 2  # hard ratio and margin
    overlay = plot_similarity_histograms(hists, style="overlay")
    assert len(overlay.get_lines()) == 4
    with pytest.raises(ValueError, match="prefix"):
        histograms_from_history(history, prefix="val_")
    with pytest.raises(ValueError, match="prefix"):
        diagnostics_callback(splits, prefix="x_")


def test_bad_input_fails_with_a_clear_message() -> None:
    x, labels = np.random.default_rng(0).normal(size=(6, 3)), [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="pairs"):
        similarity_histograms(x, labels, pairs="hardest")
    with pytest.raises(ValueError, match="bins"):
        similarity_histograms(x, labels, bins=0)
    with pytest.raises(ValueError, match="chunk_size"):
        similarity_histograms(x, labels, pairs="all", chunk_size=0)
    with pytest.raises(ValueError, match="different lengths"):
        similarity_histograms(x, labels[:4], pairs="all")
    with pytest.raises(ValueError, match="NaN"):
        embedding_diagnostics(np.r_[x[:5], [[np.nan, 0, 0]]], labels)
    with pytest.raises(ValueError, match="out of range"):
        embedding_diagnostics(x, labels, spectrum_ks=(4,))
    with pytest.raises(ValueError, match="style"):
        plot_similarity_histograms(similarity_histograms(x, labels), style="violin")
    with pytest.raises(ValueError, match="history"):
        plot_epoch_curves([{"epoch": 1, "loss": 0.3}], keys=("hard_ratio",))
