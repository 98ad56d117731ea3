"""The multi-learner model: shared or independent backbones, per-learner normalisation, the concatenated
evaluation, and its construction from a config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dml.eval
from dml.models import LearnerEnsemble, build_ensemble, concatenate_learners, split_learners
from dml.train.build import build_loss, build_model
from dml.train.config import ConfigError, from_dict

SMALL = {"widths": [4, 8]}


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shared", [True, False])
def test_shapes_and_parameter_count(shared: bool) -> None:
    torch.manual_seed(0)
    model = build_ensemble("small_cnn", learners=3, embedding_dim=5, shared_backbone=shared, backbone_kwargs=SMALL)
    assert (model.learners, model.learner_dim, model.embedding_dim) == (3, 5, 15)
    assert len(model.backbones) == (1 if shared else 3) and model.shared_backbone == shared
    assert model(_images()).shape == (6, 15)
    one = sum(p.numel() for p in model.backbones[0].parameters())
    heads = sum(p.numel() for p in model.heads.parameters())
    assert sum(p.numel() for p in model.parameters()) == one * (1 if shared else 3) + heads
    assert heads == 3 * (8 * 5 + 5)


def test_independent_backbones_are_independent_learners() -> None:
    """With one backbone per head, learner l's output depends only on learner l's weights (as L separate runs)."""
    torch.manual_seed(0)
    model = build_ensemble("small_cnn", learners=2, embedding_dim=3, shared_backbone=False, backbone_kwargs=SMALL)
    x = _images()
    out = model(x)
    out[:, :3].sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.backbones[1].parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.heads[1].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbones[0].parameters())
    assert not torch.equal(model.heads[0].fc.weight, model.heads[1].fc.weight)  # initialised independently


def test_raw_in_training_and_per_learner_unit_vectors_at_test_time() -> None:
    torch.manual_seed(0)
    model = build_ensemble("small_cnn", learners=4, embedding_dim=3, normalize=False, backbone_kwargs=SMALL)
    x = _images()
    model.train()
    raw = model(x)
    assert not torch.allclose(raw.view(6, 4, 3).norm(dim=2), torch.ones(6, 4))
    model.eval()
    test = model(x)
    torch.testing.assert_close(test.view(6, 4, 3).norm(dim=2), torch.ones(6, 4))
    model.normalize = True
    model.train()
    torch.testing.assert_close(model(x).view(6, 4, 3).norm(dim=2), torch.ones(6, 4))


def test_concatenated_cosine_is_the_mean_of_the_learner_cosines() -> None:
    generator = torch.Generator().manual_seed(1)
    blocks = [torch.randn(7, 4, generator=generator) * (1 + i) for i in range(3)]
    joined = concatenate_learners(blocks)
    assert joined.shape == (7, 12)
    for got, block in zip(split_learners(joined, 3), blocks):
        torch.testing.assert_close(got, F.normalize(block, dim=1))
    cosine = F.normalize(joined, dim=1) @ F.normalize(joined, dim=1).t()
    mean = sum(F.normalize(b, dim=1) @ F.normalize(b, dim=1).t() for b in blocks) / 3
    torch.testing.assert_close(cosine, mean)
    with pytest.raises(ValueError, match="into 5 learners"):
        split_learners(joined, 5)


def test_concatenation_separates_what_no_single_learner_separates() -> None:
    """Two learners each merge a different pair of classes; their concatenation retrieves every class."""
    labels = np.repeat(np.arange(3), 2)
    jitter = 0.01 * torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    a = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2) + jitter  # classes 0 and 1 merged
    b = torch.tensor([[1.0, 0.0]] * 2 + [[0.0, 1.0]] * 4) - jitter  # classes 1 and 2 merged
    r1 = [dml.eval.retrieval_metrics(x, labels, ks=(1,), include=("recall",))["recall@1"] for x in (a, b)]
    both = dml.eval.retrieval_metrics(concatenate_learners([a, b]), labels, ks=(1,), include=("recall",))["recall@1"]
    assert max(r1) < 1.0 and both == 1.0


def test_evaluation_of_a_trained_ensemble_uses_the_concatenation() -> None:
    torch.manual_seed(0)
    model = build_ensemble("small_cnn", learners=3, embedding_dim=4, normalize=False, backbone_kwargs=SMALL)
    x = _images(12)
    labels = np.repeat(np.arange(4), 3)
    data = torch.utils.data.TensorDataset(x, torch.as_tensor(labels))
    embedded, _ = dml.eval.embed(model, data, batch_size=5)
    model.eval()
    with torch.no_grad():
        blocks = split_learners(model(x), 3)
    torch.testing.assert_close(embedded, concatenate_learners(blocks))


def test_config_builds_ensemble_and_loss_sizes() -> None:
    base = {
        "model": {"learners": 3, "embedding_dim": 4, "normalize": False, "backbone_kwargs": SMALL},
        "loss": {"name": "meta_class_softmax", "kwargs": {"variant": "2018", "seed": 5}},
    }
    config = from_dict(base)
    model, loss = build_model(config), build_loss(config, num_classes=10)
    assert isinstance(model, LearnerEnsemble) and model.shared_backbone
    assert (loss.num_classes, loss.embedding_dim, loss.learners, loss.variant) == (10, 4, 3, "2018")
    assert torch.isfinite(loss(model(_images()), torch.arange(6)))
    separate = from_dict({**base, "model": {**base["model"], "shared_backbone": False}})
    assert len(build_model(separate).backbones) == 3
    single = from_dict(
        {
            "model": {"embedding_dim": 10, "normalize": False, "backbone_kwargs": SMALL},
            "loss": {"name": "meta_class_softmax"},
        }
    )
    assert not isinstance(build_model(single), LearnerEnsemble)  # L = 1: the plain model
    assert build_loss(single, num_classes=10).learners == 1
    with pytest.raises(ConfigError, match="model.learners"):
        from_dict({"model": {"learners": 0}})


def test_bad_construction_fails_helpfully() -> None:
    with pytest.raises(ValueError, match="learners must be a positive integer"):
        build_ensemble("small_cnn", learners=0, backbone_kwargs=SMALL)
    model = build_ensemble("small_cnn", learners=2, embedding_dim=3, backbone_kwargs=SMALL)
    with pytest.raises(ValueError, match="one backbone per head"):
        LearnerEnsemble(list(model.backbones) * 3, list(model.heads))
    with pytest.raises(ValueError, match=r"batch of images \(B, C, H, W\)"):
        model(torch.randn(3, 16, 16))


def test_first_learners_of_a_trained_independent_ensemble_are_the_smaller_ensemble(tmp_path) -> None:
    """Learners drawn one by one, a loss that is a sum over learners, the same batches: the first 2 learners of a
    3-learner run end with exactly the weights of a 2-learner run (the page reads r1_by_L off one run)."""
    from dml.train import load_model, train

    (tmp_path / "data").mkdir()

    def run(learners: int):
        config = from_dict(
            {
                "seed": 4,
                "deterministic": False,
                "device": "cpu",
                "output_dir": str(tmp_path / f"L{learners}"),
                "data": {
                    "name": "synthetic",
                    "root": str(tmp_path / "data"),
                    "kwargs": {"num_classes": 12, "images_per_class": 8, "image_size": 16, "seed": 3},
                    "sampler": {"variant": "filled", "p": 3, "k": 4},
                },
                "model": {
                    "embedding_dim": 3,
                    "normalize": False,
                    "backbone_kwargs": SMALL,
                    "learners": learners,
                    "shared_backbone": False,
                },
                "loss": {"name": "meta_class_softmax", "kwargs": {"seed": 1}},
                "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                "train": {"epochs": 2, "log_every": 100},
                "eval": {"every": 0, "ks": [1], "include": ["recall"]},
            }
        )
        train(config)
        return load_model(config.output_dir)

    small, large = run(2), run(3)
    x = _images(5)
    with torch.no_grad():
        torch.testing.assert_close(large(x)[:, :6], small(x), rtol=0, atol=0)
