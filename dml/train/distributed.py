"""Multi-process training on one node (``torchrun --nproc_per_node=N -m dml.cli train CONFIG``).

Each process (rank) embeds its share of the global P×K batch; :func:`gather_with_grad` assembles the global batch
of embeddings on every rank, so a pair- or triplet-based loss sees all ``P×K`` samples (more pairs than any one
shard has) while gradients still flow back into each rank's own embeddings and model replica.

Gradient bookkeeping. Let :math:`\\mathcal{L}(e_1, \\dots, e_W)` be the loss of the global batch, with
:math:`e_r` the embeddings of rank :math:`r` (:math:`W` ranks). Every rank computes the *same* value
:math:`\\mathcal{L}` from the gathered tensor, so the objective summed over ranks is :math:`W\\mathcal{L}`, and
the gradient reaching :math:`e_r` from rank :math:`s`'s copy of the loss is :math:`\\partial\\mathcal{L}/\\partial e_r`
on every :math:`s`. The backward pass of :func:`gather_with_grad` sums (all-reduce) the incoming gradient over the
ranks and keeps rank :math:`r`'s slice, giving :math:`W\\,\\partial\\mathcal{L}/\\partial e_r`: the exact gradient
of :math:`\\sum_s \\mathcal{L}_s`, also correct when ranks compute different losses (e.g. only their own anchors).
DistributedDataParallel then *averages* the parameter gradients over ranks:

.. math::  \\frac{1}{W}\\sum_r W\\,\\frac{\\partial\\mathcal{L}}{\\partial e_r}\\frac{\\partial e_r}{\\partial\\theta}
           = \\sum_r \\frac{\\partial\\mathcal{L}}{\\partial e_r}\\frac{\\partial e_r}{\\partial\\theta}
           = \\frac{\\partial\\mathcal{L}}{\\partial\\theta},

the gradient of a single process computing :math:`\\mathcal{L}` on the whole batch, so the loss is *not* rescaled.
(Keeping only the local slice without the all-reduce would leave
:math:`\\frac{1}{W}\\partial\\mathcal{L}/\\partial\\theta` after DDP's averaging and need ``loss * W``.)

The process group is initialised from the environment that ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) with the ``nccl`` backend on CUDA and ``gloo`` otherwise. Only
rank 0 writes files and evaluates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (defaults: a single process)."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as err:
        raise RuntimeError(
            f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({err}); launch with torchrun, which "
            "sets them, or unset them for a single-process run."
        ) from err
    if world_size < 1 or not 0 <= rank < world_size:
        raise RuntimeError(
            f"Inconsistent distributed environment RANK={rank}, WORLD_SIZE={world_size}; "
            "launch with torchrun or unset both variables."
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process or if already joined).

    ``device_type`` ``"cuda"`` selects the nccl backend (and pins this process to GPU ``LOCAL_RANK``), anything
    else gloo.
    """
    info = env_info()
    if not info.enabled or dist.is_initialized():
        return info
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE={info.world_size} but {var} is not set; launch with "
                "`torchrun --nproc_per_node=N -m dml.cli train CONFIG`, which sets it."
            )
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=info.rank, world_size=info.world_size)
    return info


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_active() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if is_active():
        dist.barrier()


def _sizes(x: Tensor) -> list[int]:
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _all_gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    """Concatenate every rank's ``x`` along dim 0 (shards may differ in length; padded for the collective)."""
    longest = max(sizes)
    if x.shape[0] < longest:
        x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    buffers = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(buffers, x.contiguous())
    return torch.cat([b[:n] for b, n in zip(buffers, sizes, strict=True)])


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all-gather. Backward: all-reduce (sum) the gradient, return this rank's slice."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        sizes = _sizes(x)
        rank = dist.get_rank()
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        return _all_gather_padded(x.detach(), sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop]


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` (N_r, ...) from every rank into (sum_r N_r, ...), rank order, keeping the gradient.

    The backward pass sums the gradient over ranks and hands each rank the rows of its own ``x``; see the module
    docstring for why this, combined with DDP's gradient averaging, reproduces single-process training without
    rescaling the loss. Identity for a single process.
    """
    if not is_active():
        return x
    return _GatherWithGrad.apply(x)


def gather(x: Tensor) -> Tensor:
    """All-gather ``x`` from every rank (rank order) without gradient, e.g. the labels. Identity for one process."""
    if not is_active():
        return x
    return _all_gather_padded(x.detach(), _sizes(x))
