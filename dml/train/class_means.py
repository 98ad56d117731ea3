"""Class mean directions re-estimated from the training set during training, through the trainer's hooks.

The vMF loss of Zhe, Chen & Yan (Pattern Recognition 2019; :mod:`dml.losses.vmf`) alternates network updates with
updates of its class mean directions, :math:`\\mu_c = \\sum_{i: y_i = c} f_i / \\lVert \\sum_{i: y_i = c} f_i
\\rVert` over the training set. :class:`ClassMeans` does the ``estimator="full"`` update: it is a
:class:`~dml.train.callbacks.Method` (it reaches the network and the loss in ``training_step``) and a
:class:`~dml.train.callbacks.Callback` (it sees epoch boundaries in ``on_epoch_start``). Before the first step of
every ``every``-th epoch (epochs 1, 1 + every, ...), or at steps 1, 1 + every, ... of every epoch, it embeds the
training split as evaluation sees it (no augmentation, eval mode, no gradient) with the current network and hands
the embeddings to ``loss.update_from_data``. The schedule depends only on the epoch and the step within it, so a
resumed run refreshes at the same points as an uninterrupted one (the directions themselves are loss state, saved
in the checkpoint). :func:`dml.train.train` attaches it for a ``vmf`` loss with ``estimator: full``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dml.train.callbacks import Callback, Method


class ClassMeans(Method, Callback):
    """Refresh ``loss.update_from_data`` from a full pass over ``data`` every ``every`` epochs or steps.

    Args:
        data: The training split as evaluation sees it (a dataset or loader for :func:`dml.eval.embed`), e.g.
            :func:`dml.data.evaluation_split` of the run's data config.
        classes: The sorted training class ids; label ``classes[j]`` is loss row ``j`` (the trainer's mapping).
        every: Epochs or steps between refreshes.
        unit: ``"epoch"`` or ``"step"``.
        batch_size: Embedding batch size.
    """

    def __init__(self, data: Any, *, classes: Any, every: int = 1, unit: str = "epoch", batch_size: int = 256) -> None:
        if unit not in ("epoch", "step"):
            raise ValueError(f"ClassMeans unit must be 'epoch' or 'step'; got {unit!r}.")
        self.data, self.classes = data, np.asarray(classes)
        self.every, self.unit, self.batch_size = int(every), unit, batch_size
        self.refreshes: list[tuple[int, int]] = []  # (epoch, step) of every refresh, for inspection
        self._epoch, self._step, self._due = 0, 0, False

    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        self._epoch, self._step = epoch, 0
        self._due = self.unit == "epoch" and (epoch - 1) % self.every == 0

    def training_step(self, net: nn.Module, loss_fn: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kw: Any):
        self._step += 1
        if self._due or (self.unit == "step" and (self._step - 1) % self.every == 0):
            self.refresh(getattr(net, "module", net), loss_fn, device=images.device)
            self._due = False
        return super().training_step(net, loss_fn, images, labels, **kw)

    def refresh(self, model: nn.Module, loss_fn: nn.Module, *, device: Any) -> None:
        """Embed ``data`` with ``model`` and set the loss's class directions from it."""
        import dml.eval

        embeddings, labels = dml.eval.embed(model, self.data, batch_size=self.batch_size, device=device)
        index = np.searchsorted(self.classes, labels)
        if (index >= len(self.classes)).any() or not np.array_equal(self.classes[index], labels):
            raise ValueError(
                "ClassMeans got training data whose labels are not all training classes of the run; pass the "
                "training split of the same data config."
            )
        loss_fn.update_from_data(embeddings.to(device), torch.as_tensor(index, device=device))
        self.refreshes.append((self._epoch, self._step))


def class_means_for(config: Any) -> ClassMeans | None:
    """The :class:`ClassMeans` hook that a config's loss needs (``vmf`` with ``estimator: full``), else ``None``."""
    if config.loss.name != "vmf":
        return None
    import dml.losses
    from dml.data import evaluation_split

    defaults = dml.losses.hyperparameters("vmf")
    kwargs = {**defaults, **config.loss.kwargs}
    if kwargs["estimator"] != "full":
        return None
    data, labels = evaluation_split(config.data, "train", batch_size=config.eval.batch_size)
    return ClassMeans(
        data,
        classes=np.unique(labels),
        every=kwargs["update_every"],
        unit=kwargs["update_unit"],
        batch_size=config.eval.batch_size,
    )
