"""The split embedding head of divide and conquer: slices, normalisation, and which weights a learner's loss moves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml.models import SplitEmbeddingHead, build, slice_bounds


def test_slice_bounds_follow_the_release() -> None:
    assert slice_bounds(128, 8) == [(16 * k, 16 * (k + 1)) for k in range(8)]
    assert slice_bounds(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]  # ceil(10 / 4) = 3, the last one cut
    with pytest.raises(ValueError, match="num_slices"):
        slice_bounds(4, 8)
    with pytest.raises(ValueError, match="empty"):
        slice_bounds(10, 7)  # ceil(10 / 7) = 2: five slices fill the 10 neurons, the sixth would be empty


def _head(layout: str, seed: int = 0) -> SplitEmbeddingHead:
    torch.manual_seed(seed)
    return SplitEmbeddingHead(6, embedding_dim=12, num_slices=3, layout=layout)


def test_every_slice_is_unit_length_and_the_full_embedding_is_their_scaled_concatenation() -> None:
    head = _head("shared")
    fmap = torch.randn(5, 6, 2, 2)
    z = head.fc(fmap.mean(dim=(2, 3)))
    slow = torch.cat([F.normalize(z[:, a:b], dim=1) for a, b in head.bounds], dim=1) / math.sqrt(3)
    assert torch.allclose(head(fmap), slow, atol=1e-6)
    assert torch.allclose(head(fmap).norm(dim=1), torch.ones(5), atol=1e-6)
    for k, (a, b) in enumerate(head.bounds):
        assert torch.allclose(head.learner(fmap, k), slow[:, a:b] * math.sqrt(3), atol=1e-6)
    # the full cosine similarity is the mean of the learners' similarities
    full = head(fmap) @ head(fmap).T
    mean = sum(head.learner(fmap, k) @ head.learner(fmap, k).T for k in range(3)) / 3
    assert torch.allclose(full, mean, atol=1e-6)


def test_the_two_layouts_are_the_same_function() -> None:
    shared, separate = _head("shared"), _head("separate")
    for (a, b), layer in zip(shared.bounds, separate.slices):
        layer.weight.data.copy_(shared.fc.weight.data[a:b])
        layer.bias.data.copy_(shared.fc.bias.data[a:b])
    fmap = torch.randn(4, 6, 3, 3)
    assert torch.allclose(shared(fmap), separate(fmap), atol=1e-6)


def test_slices_are_initialised_xavier_normal_each_on_its_own() -> None:
    torch.manual_seed(0)
    head = SplitEmbeddingHead(2048, embedding_dim=128, num_slices=8)
    std = math.sqrt(2.0 / (2048 + 16))  # Xavier-normal of a (16, 2048) slice, gain 1
    for a, b in head.bounds:
        assert head.fc.weight[a:b].std().item() == pytest.approx(std, rel=0.05)


def _slice_rows(head: SplitEmbeddingHead, k: int) -> torch.Tensor:
    if head.layout == "shared":
        a, b = head.bounds[k]
        return head.fc.weight[a:b]
    return head.slices[k].weight


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_a_learners_loss_gives_the_other_slices_no_gradient(layout: str) -> None:
    head = _head(layout)
    fmap = torch.randn(6, 6, 2, 2)
    head.learner(fmap, 1).sum().backward()
    if layout == "shared":
        grad = head.fc.weight.grad
        assert grad[4:8].abs().sum() > 0
        assert torch.equal(grad[:4], torch.zeros_like(grad[:4])) and torch.equal(grad[8:], torch.zeros_like(grad[8:]))
    else:
        assert head.slices[1].weight.grad.abs().sum() > 0
        assert head.slices[0].weight.grad is None and head.slices[2].weight.grad is None


def _adam_steps(layout: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Slice weights before and after a step of learner 1, the optimiser having stepped learner 0 once before."""
    head = _head(layout)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.1, weight_decay=1e-4)
    fmap = torch.randn(6, 6, 2, 2)
    for k in (0, 1):
        if k == 1:
            before = [_slice_rows(head, j).detach().clone() for j in range(3)]
        optimizer.zero_grad(set_to_none=True)
        head.learner(fmap, k).pow(3).sum().backward()
        optimizer.step()
    return before, [_slice_rows(head, j).detach().clone() for j in range(3)]


def test_separate_slices_stay_exactly_unchanged_under_adam() -> None:
    before, after = _adam_steps("separate")
    assert not torch.equal(before[1], after[1])
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])


def test_a_shared_layer_under_adam_still_moves_the_other_slices_as_in_the_release() -> None:
    before, after = _adam_steps("shared")
    assert not torch.equal(before[0], after[0])  # Adam's first moment of learner 0's earlier step
    assert not torch.equal(before[2], after[2])  # weight decay through Adam
    # with plain SGD the zero gradient leaves them alone
    head = _head("shared")
    sgd = torch.optim.SGD(head.parameters(), lr=0.1)
    kept = head.fc.weight.detach().clone()
    head.learner(torch.randn(6, 6, 2, 2), 1).pow(3).sum().backward()
    sgd.step()
    assert torch.equal(kept[:4], head.fc.weight[:4]) and not torch.equal(kept[4:8], head.fc.weight[4:8])


def test_the_model_builder_makes_a_split_head_and_refuses_bad_options() -> None:
    model = build(
        "small_cnn", embedding_dim=8, head="split", head_kwargs={"num_slices": 2}, backbone_kwargs={"widths": [4, 8]}
    )
    assert isinstance(model.head, SplitEmbeddingHead) and model.embedding_dim == 8
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 8)
    with pytest.raises(ValueError, match="Unknown head"):
        build("small_cnn", head="splitt")
    with pytest.raises(ValueError, match="normalize"):
        build("small_cnn", head="split", normalize=False, head_kwargs={"num_slices": 2})
    with pytest.raises(ValueError, match="unexpected keyword.*num_slices"):
        build("small_cnn", head="split", head_kwargs={"slices": 2})
    with pytest.raises(ValueError, match="layout"):
        SplitEmbeddingHead(4, embedding_dim=4, num_slices=2, layout="joint")
    with pytest.raises(IndexError, match="learner 2"):
        SplitEmbeddingHead(4, embedding_dim=4, num_slices=2).learner(torch.randn(1, 4, 1, 1), 2)
