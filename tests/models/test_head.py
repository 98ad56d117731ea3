"""EmbeddingHead.local: the linear head at every cell, whose mean is the average-pooled embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dml.models.head import EmbeddingHead


def test_local_embeddings_are_the_head_at_each_cell_and_average_to_the_pooled_embedding() -> None:
    torch.manual_seed(0)
    head = EmbeddingHead(5, embedding_dim=3, pooling="avg").double()
    features = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    local = head.local(features)
    assert local.shape == (2, 12, 3)
    cell = features[1, :, 2, 1]  # row 2, column 1 -> index 2 * 3 + 1
    torch.testing.assert_close(local[1, 7], head.fc.weight @ cell + head.fc.bias)
    torch.testing.assert_close(F.normalize(local.mean(1), dim=1), head(features))


def test_local_rejects_a_pooled_vector() -> None:
    with pytest.raises(ValueError, match="feature map"):
        EmbeddingHead(5, embedding_dim=3).local(torch.randn(2, 5))
