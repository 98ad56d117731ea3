"""dml.models.local: grid pooling, the local embeddings' relation to the global one, the diml head's output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dml.models
from dml.models.local import DIMLHead, grid_pool, local_embeddings


def test_grid_pool_divisible_is_block_averaging() -> None:
    local = torch.randn(2, 8 * 8, 3)
    pooled = grid_pool(local, 8, 8, grid=4)
    blocks = local.view(2, 4, 2, 4, 2, 3).mean(dim=(2, 4)).reshape(2, 16, 3)
    torch.testing.assert_close(pooled, blocks)


def test_grid_pool_of_a_7x7_map_resizes_like_the_release() -> None:
    local = torch.randn(1, 49, 2)
    pooled = grid_pool(local, 7, 7, grid=4)
    x = F.interpolate(local.transpose(1, 2).reshape(1, 2, 7, 7), size=(16, 16), mode="bilinear")
    torch.testing.assert_close(pooled, F.avg_pool2d(x, 4).flatten(2).transpose(1, 2))


def test_mean_of_the_cells_is_the_average_pooled_embedding() -> None:
    torch.manual_seed(0)
    model = dml.models.build("small_cnn", embedding_dim=5, backbone_kwargs={"widths": [4, 8]}).eval()
    images = torch.randn(3, 3, 32, 32)  # an 16 x 16 map, divisible by 4
    with torch.no_grad():
        global_, local = local_embeddings(model, images)
        features = model.backbone(images)
        raw = grid_pool(model.head.local(features), 16, 16).mean(1)
    torch.testing.assert_close(F.normalize(raw, dim=1), global_, atol=1e-6, rtol=1e-5)
    assert local.shape == (3, 16, 5)


def test_diml_head_packs_the_grid_in_training_only() -> None:
    head = DIMLHead(4, embedding_dim=3, grid=2)
    x = torch.rand(2, 4, 4, 4)
    packed = head.train()(x)
    assert packed.shape == (2, 3 * (1 + 4))
    torch.testing.assert_close(head.eval()(x), packed[:, :3])
    torch.testing.assert_close(packed[:, 3:].reshape(2, 4, 3).norm(dim=2), torch.ones(2, 4))


def test_non_linear_heads_are_refused() -> None:
    model = dml.models.build("small_cnn", embedding_dim=6, head="cgd", backbone_kwargs={"widths": [4]})
    with pytest.raises(ValueError, match="linear embedding head"):
        local_embeddings(model, torch.randn(1, 3, 8, 8))
