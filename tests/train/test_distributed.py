"""Multi-process training on CPU with the gloo backend (2 processes, localhost).

(a) ``gather_with_grad``: every rank sees the global batch, computes the same loss as one process on the
concatenated batch, and, through DistributedDataParallel's gradient averaging, gets the single-process parameter
gradient without rescaling the loss. (b) One epoch of ``dml.train.train`` under DDP ends with the same parameters
as the same epoch in one process.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import dml.losses
from dml.train import build_model, load_config, load_model, train
from dml.train.distributed import gather, gather_with_grad

WORLD_SIZE = 2
SHARDS = {"equal": [6, 6], "unequal": [5, 7]}
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is unavailable"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(12, 10, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 1, 3])
    embeddings = torch.randn(12, 6, generator=generator, dtype=torch.float64)
    return inputs, labels, embeddings


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(10, 6).double()


def _join(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)


def _gather_worker(rank: int, port: int, out: str) -> None:
    _join(rank, port)
    try:
        inputs, labels, embeddings = _global_batch()
        loss_fn = dml.losses.build("triplet", margin=0.3)
        for name, shards in SHARDS.items():
            start, stop = sum(shards[:rank]), sum(shards[: rank + 1])
            # the embeddings themselves: gathered rows, loss and per-sample gradients
            local = embeddings[start:stop].clone().requires_grad_(True)
            gathered, gathered_labels = gather_with_grad(local), gather(labels[start:stop])
            loss = loss_fn(gathered, gathered_labels)
            loss.backward()
            # a DDP model: parameter gradients after DDP's averaging
            ddp = nn.parallel.DistributedDataParallel(_model())
            model_loss = loss_fn(gather_with_grad(ddp(inputs[start:stop])), gathered_labels)
            model_loss.backward()
            torch.save(
                {
                    "gathered": gathered.detach(),
                    "labels": gathered_labels,
                    "loss": loss.detach(),
                    "grad": local.grad,
                    "model_loss": model_loss.detach(),
                    "param_grads": [p.grad for p in ddp.module.parameters()],
                },
                Path(out) / f"{name}{rank}.pt",
            )
    finally:
        dist.destroy_process_group()


def test_gather_with_grad_matches_single_process(tmp_path: Path) -> None:
    mp.spawn(_gather_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    inputs, labels, embeddings = _global_batch()
    loss_fn = dml.losses.build("triplet", margin=0.3)
    reference = embeddings.clone().requires_grad_(True)
    reference_loss = loss_fn(reference, labels)
    reference_loss.backward()
    model = _model()
    reference_model_loss = loss_fn(model(inputs), labels)
    reference_model_loss.backward()
    assert reference_loss > 0

    for (name, shards), rank in itertools.product(SHARDS.items(), range(WORLD_SIZE)):
        result = torch.load(tmp_path / f"{name}{rank}.pt")
        start, stop = sum(shards[:rank]), sum(shards[: rank + 1])
        torch.testing.assert_close(result["gathered"], embeddings, rtol=0, atol=0)
        assert torch.equal(result["labels"], labels)
        torch.testing.assert_close(result["loss"], reference_loss.detach())
        # the all-reduce in backward sums the W identical copies of dL/de: W times the single-process gradient,
        # which DDP's averaging over W ranks turns back into the single-process parameter gradient (below)
        torch.testing.assert_close(result["grad"] / WORLD_SIZE, reference.grad[start:stop])
        torch.testing.assert_close(result["model_loss"], reference_model_loss.detach())
        for got, expected in zip(result["param_grads"], model.parameters(), strict=True):
            torch.testing.assert_close(got, expected.grad)


def test_gather_is_the_identity_without_a_process_group() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x and gather(x) is x


#: A two-epoch run on 8 synthetic classes that two processes (or two nodes, ``test_multinode.py``) share.
TINY_DDP = [
    "device=cpu",
    "seed=5",
    "deterministic=false",
    "data.kwargs={num_classes: 8, images_per_class: 8, modes_per_class: 1, image_size: 16}",
    "data.sampler={variant: filled, p: 4, k: 2}",
    "model.backbone_kwargs={widths: [8, 16], norm: group}",
    "model.embedding_dim=8",
    "loss.name=triplet",
    "loss.kwargs={margin: 0.2}",
    "optim.name=sgd",
    "optim.lr=0.5",
    "optim.momentum=0.9",
    "train.epochs=2",
    "eval.every=0",
    "eval.include=[recall]",
    "eval.ks=[1]",
]


def _config(output_dir: Path, data_root: Path):
    return load_config(None, [f"output_dir={output_dir}", f"data.root={data_root}", *TINY_DDP, "model.pooling=gem"])


def _train_worker(rank: int, port: int, output_dir: str, data_root: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE)
    )
    train(_config(Path(output_dir), Path(data_root)))


def test_ddp_training_matches_single_process_training(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    single = train(_config(tmp_path / "single", data_root))
    mp.spawn(_train_worker, args=(_free_port(), str(tmp_path / "ddp"), str(data_root)), nprocs=WORLD_SIZE, join=True)
    start = load_model(tmp_path / "single").state_dict()
    ddp = load_model(tmp_path / "ddp").state_dict()
    fresh = build_model(_config(tmp_path / "x", data_root)).state_dict()
    assert start.keys() == ddp.keys()
    assert any(not torch.allclose(start[key], fresh[key]) for key in start)  # training moved the weights
    for key in start:
        torch.testing.assert_close(ddp[key], start[key], rtol=1e-5, atol=1e-5, msg=f"parameter {key} differs")
    ddp_metrics = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)["history"]
    single_metrics = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["history"]
    for got, expected in zip(ddp_metrics, single_metrics, strict=True):
        assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert single["epoch"] == 2
