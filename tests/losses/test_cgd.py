"""dml.losses.cgd against hand-written references; trained from a dml train config with model.head: cgd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

import dml.losses
from dml.train import load_config, train
from dml.train.build import build_loss
from tests.train.test_resume import TINY


def _batch(seed: int = 0, n: int = 12, d: int = 6, features: int = 5, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n // classes)
    f = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    first = torch.rand(n, features, generator=g, dtype=torch.float64)
    return f, first, labels


def _triplet_by_loops(f, labels, margin):
    total, anchors = 0.0, 0
    for a in range(len(f)):
        pos = [float((f[a] - f[p]).norm()) for p in range(len(f)) if p != a and labels[p] == labels[a]]
        neg = [float((f[a] - f[n]).norm()) for n in range(len(f)) if labels[n] != labels[a]]
        total += max(max(pos) - min(neg) + margin, 0.0)
        anchors += 1
    return total / anchors


def _smoothed_softmax_by_loops(logits, labels, smoothing, temperature):
    total = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        scaled = [z / temperature for z in row]
        top = max(scaled)
        log_norm = top + math.log(sum(math.exp(z - top) for z in scaled))
        log_p = [z - log_norm for z in scaled]
        total += -(1 - smoothing) * log_p[y] - smoothing * sum(log_p) / len(log_p)
    return total / len(labels)


def test_triplet_only_matches_the_loops() -> None:
    f, _, y = _batch()
    loss = dml.losses.build("cgd", auxiliary=False, margin=0.3)(f, y)
    assert float(loss) == pytest.approx(_triplet_by_loops(f, y, 0.3), abs=1e-9)


def test_auxiliary_term_matches_a_hand_written_label_smoothed_softmax() -> None:
    f, first, y = _batch(1)
    torch.manual_seed(0)
    loss_fn = dml.losses.build("cgd", num_classes=4, embedding_dim=6, feature_dim=5).double().train()
    value = loss_fn(torch.cat([f, first], dim=1), y)
    logits = loss_fn.classifier(first).detach()  # BatchNorm1d in training mode: the batch's statistics
    expected = _triplet_by_loops(f, y, 0.1) + _smoothed_softmax_by_loops(logits, y, 0.1, 0.5)
    assert float(value.detach()) == pytest.approx(expected, abs=1e-9)
    value.backward()
    assert loss_fn.classifier[1].weight.grad.abs().sum() > 0


def test_width_and_sizes_are_checked() -> None:
    f, first, y = _batch(2)
    loss_fn = dml.losses.build("cgd", num_classes=4, embedding_dim=6, feature_dim=5)
    with pytest.raises(ValueError, match="head_kwargs"):
        loss_fn(f.float(), y)
    with pytest.raises(ValueError, match="feature_dim"):
        dml.losses.build("cgd", num_classes=4, embedding_dim=6)


def test_dml_train_fills_in_the_sizes_and_trains(tmp_path) -> None:
    overrides = [
        f"data.root={tmp_path}",
        "model.head=cgd",
        "model.head_kwargs={descriptors: SMG, auxiliary: true}",
        "model.embedding_dim=15",
        "loss.name=cgd",
        "loss.kwargs={}",
        "train.epochs=1",
        f"output_dir={tmp_path / 'run'}",
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    config = load_config(path, overrides)
    loss_fn = build_loss(config, num_classes=6, feature_dim=16)
    assert (loss_fn.num_classes, loss_fn.embedding_dim, loss_fn.classifier[0].num_features) == (6, 15, 16)
    final = train(config)
    assert 0.0 <= final["recall@1"] <= 1.0 and math.isfinite(final["loss"])
