"""The vMF loss: normalized softmax at temperature 1/kappa over the same directions; its two centre estimators
against a brute-force class mean; the full-pass update through the trainer's hooks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dml.data
import dml.eval
import dml.losses as losses
from dml.train import from_dict, train
from dml.train.class_means import ClassMeans, class_means_for
from tests.train.test_resume import TINY


def _batch(seed: int = 0, n: int = 20, classes: int = 5, dim: int = 8, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return torch.randn(n, dim, generator=generator, dtype=dtype), labels


def brute_force_mean(x: torch.Tensor, y: torch.Tensor, c: int) -> torch.Tensor:
    """The normalised sum of the unit embeddings of class c, by a loop."""
    total = torch.zeros(x.shape[1], dtype=x.dtype)
    for i in range(len(y)):
        if int(y[i]) == c:
            total = total + x[i] / x[i].norm()
    return total / total.norm()


@pytest.mark.parametrize("kappa", [1.0, 16.0, 30.0])
def test_value_and_gradient_equal_normalized_softmax_with_temperature_one_over_kappa(kappa: float) -> None:
    x, y = _batch()
    vmf = losses.build("vmf", num_classes=5, embedding_dim=8, kappa=kappa).double().eval()
    softmax = losses.build("normalized_softmax", num_classes=5, embedding_dim=8, temperature=1 / kappa).double()
    with torch.no_grad():
        softmax.proxies.copy_(vmf.proxies)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    value, reference = vmf(a, y), softmax(b, y)
    value.backward()
    reference.backward()
    assert torch.allclose(value, reference, atol=1e-12)
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert vmf.proxies.grad is None  # the directions are not SGD parameters


def test_full_update_equals_brute_force_class_mean_and_absent_classes_keep_their_direction() -> None:
    x, y = _batch(seed=1)
    y[y == 3] = 0  # class 3 absent
    vmf = losses.build("vmf", num_classes=5, embedding_dim=8).double()
    before = vmf.proxies.detach().clone()
    vmf.update_from_data(x, y)
    for c in (0, 1, 2, 4):
        assert torch.allclose(vmf.proxies[c], brute_force_mean(x, y, c), atol=1e-12)
    assert torch.equal(vmf.proxies[3], before[3])


def test_running_average_blends_the_batch_class_means_every_update_every_steps() -> None:
    momentum = 0.8
    vmf = losses.build(
        "vmf",
        num_classes=4,
        embedding_dim=8,
        estimator="running",
        update_unit="step",
        update_every=2,
        momentum=momentum,
    ).double()
    batches = [_batch(seed=s, n=12, classes=4) for s in range(4)]
    start = vmf.proxies.detach().clone()
    vmf(*batches[0])
    assert torch.equal(vmf.proxies, start)  # nothing yet after one of two steps
    vmf(*batches[1])
    x01 = torch.cat([batches[0][0], batches[1][0]])
    y01 = torch.cat([batches[0][1], batches[1][1]])
    first = torch.stack([brute_force_mean(x01, y01, c) for c in range(4)])
    assert torch.allclose(vmf.proxies, first, atol=1e-12)  # first update: the class means themselves
    vmf(*batches[2])
    vmf(*batches[3])
    x23 = torch.cat([batches[2][0], batches[3][0]])
    y23 = torch.cat([batches[2][1], batches[3][1]])
    fresh = torch.stack([brute_force_mean(x23, y23, c) for c in range(4)])
    expected = F.normalize(momentum * first + (1 - momentum) * fresh, dim=1)
    assert torch.allclose(vmf.proxies, expected, atol=1e-12)
    vmf.eval()
    vmf(*batches[0])
    vmf(*batches[1])
    assert torch.allclose(vmf.proxies, expected, atol=1e-12)  # evaluation does not move the centres


def test_learned_kappa_gets_a_gradient_and_bad_settings_fail_loudly() -> None:
    x, y = _batch()
    vmf = losses.build("vmf", num_classes=5, embedding_dim=8, learn_kappa=True).double()
    vmf(x, y).backward()
    assert vmf.log_kappa.grad is not None and vmf.log_kappa.grad.abs() > 0
    with pytest.raises(ValueError, match="update_unit='step'"):
        losses.build("vmf", num_classes=5, embedding_dim=8, estimator="running")
    with pytest.raises(ValueError, match="kappa"):
        losses.build("vmf", num_classes=5, embedding_dim=8, kappa=0.0)
    with pytest.raises(ValueError, match="estimator"):
        losses.build("vmf", num_classes=5, embedding_dim=8, estimator="sgd")


def _vmf_config(tmp_path: Path, name: str, **kwargs) -> dict:
    config = copy.deepcopy(TINY)
    (tmp_path / "data").mkdir(exist_ok=True)
    config["data"]["root"] = str(tmp_path / "data")
    config["loss"] = {"name": "vmf", "kwargs": {"kappa": 8.0, **kwargs}}
    config["output_dir"] = str(tmp_path / name)
    return config


def test_the_trainer_refreshes_the_centres_from_the_training_set_at_the_scheduled_epochs(tmp_path: Path) -> None:
    config = from_dict(_vmf_config(tmp_path, "full", update_every=2))
    hook = class_means_for(config)
    assert isinstance(hook, ClassMeans)
    train(config, method=hook)
    assert hook.refreshes == [(1, 1), (3, 1)]  # epochs 1 and 3 of 3, before their first step
    state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    # after training, a refresh with the final model gives the brute-force means of its training embeddings
    from dml.train import load_model

    model = load_model(tmp_path / "full")
    data = dml.data.build("synthetic", split="train", root=config.data.root, **config.data.kwargs)
    loss = losses.build("vmf", num_classes=data.num_classes, embedding_dim=16)
    loss.load_state_dict(state["loss"])
    hook.refresh(model, loss, device="cpu")
    x, labels = dml.eval.embed(model, data)
    y = torch.as_tensor(np.searchsorted(np.unique(labels), labels))
    for c in range(data.num_classes):
        assert torch.allclose(loss.proxies[c].double(), brute_force_mean(x.double(), y, c), atol=1e-5)


def test_a_vmf_config_trains_through_dml_train_with_either_estimator(tmp_path: Path) -> None:
    full = train(from_dict(_vmf_config(tmp_path, "auto")))  # train() attaches the hook itself
    running = train(from_dict(_vmf_config(tmp_path, "run", estimator="running", update_unit="step")))
    assert np.isfinite(full["loss"]) and np.isfinite(running["loss"])
    assert full["loss"] != running["loss"]
    assert class_means_for(from_dict(_vmf_config(tmp_path, "x", estimator="running", update_unit="step"))) is None
