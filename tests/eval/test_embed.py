"""embed(): eval mode, no gradients, order kept, previous mode restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dml.eval import embed


class Recorder(torch.nn.Module):
    """A linear embedding with dropout that records the mode and grad state it was called in."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.dropout = torch.nn.Dropout(0.5)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.dropout(self.linear(x))


def data(n=10):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=gen), torch.arange(n) % 3


@pytest.mark.parametrize("train_mode", [True, False])
def test_eval_mode_no_grad_and_mode_restored(train_mode):
    x, y = data()
    model = Recorder().train(train_mode)
    emb, labels = embed(model, TensorDataset(x, y), batch_size=4)
    assert model.training is train_mode
    assert model.calls and all(call == (False, False) for call in model.calls)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu" and emb.shape == (10, 3)
    assert not emb.requires_grad
    assert isinstance(labels, np.ndarray) and labels.tolist() == y.tolist()
    with torch.no_grad():
        assert torch.allclose(emb, model.eval().linear(x))  # order kept, dropout off


def test_loader_and_dict_batches():
    x, y = data(7)
    model = Recorder()
    emb, labels = embed(model, DataLoader(TensorDataset(x, y), batch_size=3))
    assert emb.shape == (7, 3) and labels.tolist() == y.tolist()

    class Dicts(Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return {"image": x[i], "label": int(y[i])}

    emb2, labels2 = embed(model, Dicts(), batch_size=2, device="cpu")
    assert torch.allclose(emb, emb2) and labels2.tolist() == labels.tolist()


def test_mode_restored_after_error():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1)  # not (batch, dim)

    model = Broken().train()
    x, y = data(4)
    with pytest.raises(ValueError, match="shape"):
        embed(model, TensorDataset(x, y))
    assert model.training


def test_errors():
    model = Recorder()
    with pytest.raises(ValueError, match="empty"):
        embed(model, TensorDataset(torch.zeros(0, 4), torch.zeros(0)))
    with pytest.raises(ValueError, match="inputs, labels"):
        embed(model, TensorDataset(torch.zeros(3, 4)))
