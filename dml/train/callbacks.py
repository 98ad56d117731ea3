"""Hooks into the training loop: :class:`Callback` (observe) and :class:`Method` (own the step and the embedding).

The loop calls, on every rank unless noted: ``on_loss_built(loss_fn)`` (the run's loss module, its state restored
when resuming), ``on_train_start(model)``, then per epoch ``on_epoch_start(epoch,
model)``, ``on_step_end(epoch, step, loss)`` after each optimiser step, ``on_epoch_end(epoch, model)`` (rank 0,
after the epoch's evaluation; the returned numbers are added to the epoch's record in ``metrics.json`` and the RNG
state is restored around the call, so it never changes what is trained) and ``on_checkpoint(epoch, path)`` (rank 0,
after the epoch's checkpoint is written), then ``should_stop()`` (rank 0; ``True`` ends training after the epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import dml.eval

EpochCallback = Callable[[int, nn.Module], "dict[str, Any] | None"]


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_loss_built(self, loss_fn: nn.Module) -> None:
        """Once, before :meth:`on_train_start`: the loss module the optimiser trains (e.g. the margin loss's β), so
        that a callback can record its parameters at every epoch end."""

    def on_train_start(self, model: nn.Module) -> None:
        """Before the first epoch (after resuming, if any)."""

    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        """Before the epoch's first batch."""

    def on_step_end(self, epoch: int, step: int, loss: torch.Tensor) -> None:
        """After the optimiser step ``step`` (1-based) of ``epoch``."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        """After the epoch's evaluation (rank 0); extra numbers for the epoch's record, or ``None``."""
        return None

    def on_checkpoint(self, epoch: int, path: Path) -> None:
        """After the epoch's checkpoint is written to ``path`` (rank 0)."""

    def should_stop(self) -> bool:
        """After each epoch's checkpoint (rank 0): ``True`` ends training there (early stopping); the run's last
        epoch is then the stopping epoch, and its folder holds the finished run's files."""
        return False


class EpochEndFunction(Callback):
    """Wraps a plain ``on_epoch_end(epoch, model) -> dict | None`` function as a :class:`Callback`."""

    def __init__(self, function: EpochCallback) -> None:
        self.function = function

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        return self.function(epoch, model)


class Method:
    """How a method trains and embeds; the default is plain metric learning.

    Override :meth:`training_step` to own the loss of a batch (e.g. boosting weights, an ensemble's learner
    re-clustering every M epochs together with :meth:`Callback.on_epoch_start`) and :meth:`embed` to own the
    test-time embedding (e.g. a concatenation of learners, re-ranking); :func:`dml.train.train` and
    :func:`dml.eval.evaluate` then use them without any change to the loop.
    """

    def __init__(self) -> None:
        """Plain metric learning has no hyperparameters."""

    def setup(self, *, model: nn.Module, data: Any, config: Any, device: torch.device) -> None:
        """Called once before training (after resuming) with the run's model, data pipeline
        (:class:`dml.data.loaders.Pipeline`, e.g. to replace its batch sampler), config and device."""

    def training_step(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        amp: bool,
        gather: Callable[[torch.Tensor], torch.Tensor],
        gather_labels: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The loss of one batch: ``loss_fn(gather(net(images)), gather_labels(labels))``, the forward pass in
        float16 autocast when ``amp``; ``labels`` are already class indices ``0..C-1``."""
        with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
            embeddings = net(images)
        return loss_fn(gather(embeddings.float()), gather_labels(labels))

    def embed(self, model: nn.Module, data: Any, *, batch_size: int, device: Any) -> tuple[torch.Tensor, np.ndarray]:
        """``(embeddings, labels)`` of ``data`` at test time: :func:`dml.eval.embed`."""
        return dml.eval.embed(model, data, batch_size=batch_size, device=device)
