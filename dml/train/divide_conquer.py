"""Divide and conquer the embedding space: K learners, each trained on its own region of the data.

Sanakoyeu, Tschernezki, Büchler & Ommer, "Divide and Conquer the Embedding Space for Metric Learning", CVPR 2019
(arXiv:1906.05990; released code github.com/CompVis/metric-learning-divide-and-conquer, commit 1766c2c,
``train.py``). The model's head is a :class:`~dml.models.split_head.SplitEmbeddingHead` with K slices. Epochs are
numbered from 1 here (the release counts from 0: its epoch e is our epoch e + 1). With the fine-tuning epoch F:

* **Divide** before epoch 1 and before every epoch t with ``(t - 1) % M == 0`` while ``t <= F``: K-means of the
  normalised penultimate features of the training images into K clusters
  (:func:`dml.train.data_clusters.kmeans_partition`), matched to the previous clusters with the Hungarian
  algorithm (:func:`dml.train.cluster_matching.match_clusters`), classes alone in a cluster dropped there.
* **Conquer**: the batches come from the clusters in turn (:class:`dml.data.cluster_sampler.ClusterBatchSampler`)
  and a batch of cluster k trains only learner k: the loss is :math:`L(f^{(k)}(x), y)` on slice k alone, so the
  other slices get no gradient and the backbone is shared by all. The release gives every cluster its own copy of
  the margin loss; with its β fixed (the release never passes the criteria's β to the optimiser) the copies are
  the same function, and one loss module serves all clusters here (a learnable β is shared by the clusters).
* **Fine-tune** from epoch F + 1 on: one cluster of all images and the loss on the full embedding
  :math:`f = [f^{(1)}, \\dots, f^{(K)}] / \\sqrt K`.

``switch`` says when the loss moves to the full embedding: ``"paper"`` with the fine-tuning (t > F);
``"released"`` as ``train_batch`` does, from release epoch ``e >= F * 8 / 19`` (t - 1 >= 80 for F = 190) while the
per-cluster batches and the re-clustering go on until F.

After each re-clustering the epoch's record in ``metrics.json`` gets ``dc_overlap`` (the share of images that keep
their learner, :func:`~dml.train.cluster_matching.matched_overlap`, under this run's ``relabel``),
``dc_overlap_hungarian`` and ``dc_overlap_released`` (under each relabelling), and ``dc_unused`` (the share of
images dropped as alone in their cluster); every epoch gets ``dc_clusters`` (clusters trained), ``dc_full`` (1 when
the loss uses the full embedding) and ``dc_steps`` (its training steps: the clusters in turn for as many rounds as
the largest cluster has batches, so unequal clusters make an epoch longer, as released). The assignments are written
to ``clusters.npz`` in the run folder (:func:`load_clusters`). Resuming re-clusters with the resumed model at the
first resumed epoch (the assignment is not part of the checkpoint), so a resumed run is not bit-identical to an
uninterrupted one, and its ``clusters.npz`` holds the divisions made since the resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import dml.eval
from dml.data.cluster_sampler import ClusterBatchSampler
from dml.data.loaders import evaluation_split
from dml.models.split_head import SplitEmbeddingHead
from dml.train.callbacks import Callback, Method
from dml.train.cluster_matching import match_clusters, matched_overlap
from dml.train.data_clusters import kmeans_partition, prune_singletons
from dml.train.methods import register_method
from dml.utils import atomic_write
from dml.utils.checks import check_choice

SWITCHES = ("paper", "released")
CLUSTERS_FILE = "clusters.npz"


class _Penultimate(nn.Module):
    """The model's normalised pooled features (what D&C clusters), as a module for :func:`dml.eval.embed`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.head.features(self.model.backbone(images))


@register_method("divide_conquer")
class DivideConquer(Method, Callback):
    """Divide and conquer (module docstring). Build it from a config with ``method: {name: divide_conquer,
    kwargs: {...}}`` and ``model: {head: split, head_kwargs: {num_slices: K}}``.

    Args:
        recluster_every: M, epochs between re-clusterings (the release: 2).
        finetune_epoch: F, the epochs trained on clusters before fine-tuning on the full embedding; ``None``: never.
        switch: ``"paper"`` or ``"released"``: when the loss moves to the full embedding (module docstring).
        relabel: ``"hungarian"`` or ``"released"`` (:mod:`dml.train.cluster_matching`).
        kmeans_niter, kmeans_nredo: Lloyd iterations and restarts of K-means (the release: 100 and 5).
        gpu: Run K-means on the GPU when faiss has GPU support.
        prune: Drop the images of a class that is alone in its cluster (as released).
    """

    def __init__(
        self,
        *,
        recluster_every: int = 2,
        finetune_epoch: int | None = None,
        switch: str = "paper",
        relabel: str = "hungarian",
        kmeans_niter: int = 100,
        kmeans_nredo: int = 5,
        gpu: bool = True,
        prune: bool = True,
    ) -> None:
        check_choice(switch, SWITCHES, name="switch")
        check_choice(relabel, ("hungarian", "released"), name="relabel")
        if recluster_every < 1:
            raise ValueError(f"recluster_every must be >= 1 epoch; got {recluster_every}.")
        if finetune_epoch is not None and finetune_epoch < 0:
            raise ValueError(f"finetune_epoch must be >= 0 or null (never fine-tune); got {finetune_epoch}.")
        self.recluster_every, self.finetune_epoch, self.switch, self.relabel = (
            recluster_every,
            finetune_epoch,
            switch,
            relabel,
        )
        self.kmeans = {"niter": kmeans_niter, "nredo": kmeans_nredo, "gpu": gpu}
        self.prune = prune
        self.assignment: np.ndarray | None = None
        self.events: list[tuple[int, np.ndarray]] = []  # (epoch, assignment) of every K-cluster division
        self.epoch, self.record, self.saved = 0, {}, 0

    def setup(self, *, model: nn.Module, data: Any, config: Any, device: torch.device) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and torch.distributed.get_world_size() > 1:
            raise ValueError("method divide_conquer trains in one process; run it without torchrun.")
        if not isinstance(getattr(model, "head", None), SplitEmbeddingHead):
            raise ValueError(
                "method divide_conquer needs the split head: set model.head=split and "
                "model.head_kwargs={num_slices: K} (K learners)."
            )
        self.model, self.config, self.device = model, config, device
        self.num_clusters = model.head.num_slices
        self.labels = np.asarray(data.train_set.labels)
        s = config.data.sampler
        self.sampler = ClusterBatchSampler(self.labels, p=s.p, k=s.k, seed=config.seed)
        data.use_sampler(self.sampler)
        self._images: Any = None

    # -- the schedule (epochs from 1) ------------------------------------------------------------------------
    def fine_tunes(self, epoch: int) -> bool:
        """Epoch ``epoch`` trains one cluster of all images on the full embedding."""
        return self.finetune_epoch is not None and epoch > self.finetune_epoch

    def uses_full_embedding(self, epoch: int) -> bool:
        """The loss of epoch ``epoch`` is on the full embedding (``switch``)."""
        if self.finetune_epoch is None:
            return False
        if self.switch == "released":
            return epoch - 1 >= self.finetune_epoch * 8 / 19
        return epoch > self.finetune_epoch

    def reclusters(self, epoch: int) -> bool:
        """The data are divided anew before epoch ``epoch``."""
        return not self.fine_tunes(epoch) and (epoch == 1 or (epoch - 1) % self.recluster_every == 0)

    # -- hooks -----------------------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        self.epoch, self.record = epoch, {}
        if self.fine_tunes(epoch):
            if self.sampler.num_clusters != 1 or self.assignment is None:
                everything = np.zeros(len(self.labels), dtype=np.int64)
                self.assignment = prune_singletons(everything, self.labels) if self.prune else everything
                self.sampler.set_clusters(self.assignment)
        elif self.reclusters(epoch) or self.assignment is None:
            self._divide(epoch)
        self.record.update(
            dc_clusters=self.sampler.num_clusters,
            dc_full=int(self.uses_full_embedding(epoch)),
            dc_steps=len(self.sampler),
        )

    def _divide(self, epoch: int) -> None:
        features = self.features()
        # one seed for every division, as released (faiss's fixed default seed): K-means starts from the same
        # images each time, so consecutive clusterings tend to come out with similar ids
        fresh = kmeans_partition(features, self.num_clusters, seed=self.config.seed, **self.kmeans)
        previous = self.assignment
        if previous is not None and int(previous.max()) + 1 == self.num_clusters:
            overlaps = {}
            for relabel in ("hungarian", "released"):
                matched = match_clusters(fresh, previous, num_clusters=self.num_clusters, relabel=relabel)
                overlaps[relabel] = matched_overlap(matched, previous)
                if relabel == self.relabel:
                    chosen = matched
            fresh = chosen
            self.record.update(
                dc_overlap=overlaps[self.relabel],
                dc_overlap_hungarian=overlaps["hungarian"],
                dc_overlap_released=overlaps["released"],
            )
        self.assignment = prune_singletons(fresh, self.labels) if self.prune else fresh
        self.record["dc_unused"] = float(np.mean(self.assignment < 0))
        self.sampler.set_clusters(self.assignment)
        self.events.append((epoch, self.assignment.copy()))

    def features(self) -> np.ndarray:
        """The normalised penultimate features of every training image (no augmentation), in dataset order."""
        if self._images is None:
            self._images, labels = evaluation_split(
                self.config.data, "train", batch_size=self.config.eval.batch_size, device=self.device
            )
            if not np.array_equal(np.asarray(labels), self.labels):
                raise RuntimeError("The training split as evaluated is not in the training set's order.")
        x, _ = dml.eval.embed(
            _Penultimate(self.model), self._images, batch_size=self.config.eval.batch_size, device=self.device
        )
        return x.numpy()

    def training_step(self, net, loss_fn, images, labels, *, amp, gather, gather_labels):
        cluster = self.sampler.pop_cluster()
        with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
            if self.uses_full_embedding(self.epoch):
                embeddings = net(images)
            else:
                if self.model.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                embeddings = self.model.head.learner(self.model.backbone(images), cluster)
        return loss_fn(embeddings.float(), labels)

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any]:
        return dict(self.record)

    def on_checkpoint(self, epoch: int, path: Path) -> None:
        if len(self.events) > self.saved:
            epochs = np.array([e for e, _ in self.events], dtype=np.int64)
            assignments = np.stack([a for _, a in self.events]).astype(np.int32)
            with atomic_write(Path(path).parent / CLUSTERS_FILE, "wb") as handle:
                np.savez_compressed(handle, epochs=epochs, assignments=assignments)
            self.saved = len(self.events)


def load_clusters(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, assignments)`` of a divide-and-conquer run: the epoch before which each division was made and
    its cluster ids per training image (``-1``: unused), ``(divisions, N)``; read without pickle."""
    path = Path(run_dir) / CLUSTERS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; is {str(run_dir)!r} a divide_conquer run folder?")
    with np.load(path, allow_pickle=False) as data:
        return data["epochs"], data["assignments"]
