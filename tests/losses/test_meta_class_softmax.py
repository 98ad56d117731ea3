"""DREML's fixed-one-hot-proxy softmax on meta-class labels, both released variants, against a slow loop."""

from __future__ import annotations

import math

import pytest
import torch

import dml.losses
from dml.data.meta_classes import meta_class_maps
from dml.losses.meta_class_softmax import MetaClassSoftmaxLoss


def _reference(embeddings: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor, dim: int, variant: str) -> float:
    """sum over learners of the mean over images of -log softmax(g(z_l))[m_l(y)], one number at a time."""
    learners = maps.shape[0]
    total = 0.0
    for learner in range(learners):
        per_image = []
        for z_row, y in zip(embeddings.tolist(), labels.tolist()):
            z = z_row[learner * dim : (learner + 1) * dim]
            if variant == "2018":
                norm = math.sqrt(sum(v * v for v in z))
                z = [v / norm for v in z]
            proxies = [[1.0 if i == j else 0.0 for j in range(dim)] for i in range(dim)]  # fixed one-hot
            logits = [sum(a * b for a, b in zip(z, p)) for p in proxies]
            target = int(maps[learner, y])
            log_norm = math.log(sum(math.exp(v) for v in logits))
            per_image.append(log_norm - logits[target])
        total += sum(per_image) / len(per_image)
    return total


@pytest.mark.parametrize("variant", ["2018", "2020"])
@pytest.mark.parametrize(("learners", "dim"), [(1, 5), (3, 4), (4, 2)])
def test_value_and_gradient_match_the_loop(variant: str, learners: int, dim: int) -> None:
    generator = torch.Generator().manual_seed(learners * 10 + dim)
    labels = torch.randint(0, 10, (8,), generator=generator)
    x = (2 * torch.randn(8, learners * dim, generator=generator, dtype=torch.float64)).requires_grad_()
    loss_fn = dml.losses.build(
        "meta_class_softmax", num_classes=10, embedding_dim=dim, learners=learners, variant=variant, seed=7
    )
    assert torch.equal(loss_fn.maps, meta_class_maps(10, learners=learners, meta_classes=dim, seed=7))
    value = loss_fn(x, labels)
    assert value.item() == pytest.approx(_reference(x.detach(), labels, loss_fn.maps, dim, variant), rel=1e-10)
    (grad,) = torch.autograd.grad(value, x)
    numeric = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            step = torch.zeros_like(x)
            step[i, j] = 1e-6
            up = _reference((x + step).detach(), labels, loss_fn.maps, dim, variant)
            down = _reference((x - step).detach(), labels, loss_fn.maps, dim, variant)
            numeric[i, j] = (up - down) / 2e-6
    torch.testing.assert_close(grad, numeric, atol=1e-6, rtol=1e-5)


def test_the_two_variants_differ_as_released() -> None:
    x = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0])
    kw = {"num_classes": 4, "embedding_dim": 4, "learners": 1, "seed": 0}
    for seed in range(20):  # a seed whose map sends class 0 to meta-class 0
        kw["seed"] = seed
        if int(MetaClassSoftmaxLoss(**kw).maps[0, 0]) == 0:
            break
    raw = MetaClassSoftmaxLoss(variant="2020", **kw)(x, y)
    cosine = MetaClassSoftmaxLoss(variant="2018", **kw)(x, y)
    assert raw.item() == pytest.approx(math.log(1 + 3 * math.exp(-3)))
    # normalised logits lie in [-1, 1]: the loss never falls below log(1 + (D - 1) / e)
    assert cosine.item() == pytest.approx(math.log(1 + 3 * math.exp(-1)))
    assert MetaClassSoftmaxLoss(variant="2018", **kw)(10 * x, y).item() == pytest.approx(cosine.item())
    assert MetaClassSoftmaxLoss(variant="2020", **kw)(10 * x, y).item() < raw.item()


def test_learners_are_independent_terms() -> None:
    """Each learner's block gets the gradient of its own loss: zeroing one block's targets changes only it."""
    loss_fn = MetaClassSoftmaxLoss(num_classes=6, embedding_dim=3, learners=2, seed=0)
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.arange(8) % 6
    (grad,) = torch.autograd.grad(loss_fn(x, y), x)
    single = MetaClassSoftmaxLoss(num_classes=6, embedding_dim=3, learners=1, seed=0)
    single.maps = loss_fn.maps[1:].clone()
    x1 = x[:, 3:].detach().requires_grad_()
    (grad1,) = torch.autograd.grad(single(x1, y), x1)
    torch.testing.assert_close(grad[:, 3:], grad1)


def test_meta_labels() -> None:
    loss_fn = MetaClassSoftmaxLoss(num_classes=6, embedding_dim=2, learners=3, seed=2)
    assert torch.equal(loss_fn.meta_labels(torch.tensor([4, 0])), loss_fn.maps[:, [4, 0]].t())


def test_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="needs num_classes="):
        dml.losses.build("meta_class_softmax")
    loss_fn = MetaClassSoftmaxLoss(num_classes=6, embedding_dim=2, learners=3)
    with pytest.raises(ValueError, match="set model.learners and model.embedding_dim"):
        loss_fn(torch.randn(4, 5), torch.arange(4))
    with pytest.raises(ValueError, match=r"labels must lie in\s+0..5"):
        loss_fn(torch.randn(2, 6), torch.tensor([0, 6]))
    assert MetaClassSoftmaxLoss(num_classes=6, embedding_dim=2, learners=3, variant=2018).variant == "2018"
    with pytest.raises(ValueError, match="variant"):
        MetaClassSoftmaxLoss(num_classes=6, embedding_dim=2, learners=3, variant="2019")
