"""Per-cluster batch streams: every batch comes from one cluster of the training images, clusters in turn.

Divide and conquer (Sanakoyeu et al., CVPR 2019) gives each of K clusters of the training data its own data loader
and interleaves them: round r takes the r-th batch of cluster 0, then of cluster 1, ..., cluster K-1, for as many
rounds as the largest cluster has batches; a cluster that runs out starts a new pass (released code
github.com/CompVis/metric-learning-divide-and-conquer, commit 1766c2c, ``lib/data/loader/utils.py::merge``).
Within a cluster a batch holds ``p`` classes of ``k`` images (the release: 20 classes x 4 = 80), and a cluster
of ``n_c`` images has ``max(1, n_c // (p k))`` batches per pass (``ClassBalancedSampler.__len__``).

How a batch is drawn, modelled on the released ``ClassBalancedSampler`` (``lib/data/loader/sampler.py``): ``p``
random classes of the cluster (with replacement only when the cluster has fewer than ``p`` classes); each class
hands out its images from a shuffled queue, ``k`` at a time, and is reshuffled when fewer than ``k`` are left; a
class with fewer than ``k`` images in the cluster gives ``k`` draws with replacement. Images assigned to cluster
``-1`` (a class alone in its cluster, :func:`dml.train.data_clusters.prune_singletons`) are not used.

Determinism: the batches depend only on ``(seed, epoch)`` and the assignment (the release draws from NumPy's global
state). The cluster of every batch yielded is queued; :meth:`ClusterBatchSampler.pop_cluster` returns them in
order, so the training step learns which cluster a batch came from even when a ``DataLoader`` prefetches batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class ClusterBatchSampler(Sampler[list[int]]):
    """Batch sampler over K clusters of a dataset (module docstring); one cluster of everything until
    :meth:`set_clusters` is called.

    Args:
        labels: One class id per dataset item.
        p: Classes per batch.
        k: Images per class in a batch.
        seed: Base seed; batches are a function of ``(seed, epoch)`` and the assignment.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, *, p: int, k: int, seed: int = 0) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D integer array; got shape {labels.shape}.")
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive; got p={p}, k={k}.")
        self.labels, self.p, self.k, self.seed, self.epoch = labels, p, k, seed, 0
        self.pending: deque[int] = deque()
        self.set_clusters(np.zeros(len(labels), dtype=np.int64))

    def set_clusters(self, assignment: Sequence[int] | np.ndarray) -> None:
        """Use ``assignment`` (one cluster id ``0..K-1`` per item, ``-1`` = unused) from the next iteration on."""
        assignment = np.asarray(assignment)
        if assignment.shape != self.labels.shape or not np.issubdtype(assignment.dtype, np.integer):
            raise ValueError(
                f"assignment must hold one integer cluster id per item ({len(self.labels)}); got shape "
                f"{assignment.shape}, dtype {assignment.dtype}."
            )
        if assignment.min() < -1:
            raise ValueError(f"cluster ids are 0..K-1, or -1 for unused items; got {assignment.min()}.")
        self.assignment = assignment.astype(np.int64)
        self.num_clusters = int(assignment.max()) + 1
        self.members = [np.flatnonzero(self.assignment == c) for c in range(self.num_clusters)]
        self.per_pass = [self._batches_per_pass(m) for m in self.members]

    def _batches_per_pass(self, members: np.ndarray) -> int:
        """``max(1, n_c // (p k))``, or 0 for a cluster without a class of two images (it cannot train)."""
        if members.size == 0 or np.bincount(np.unique(self.labels[members], return_inverse=True)[1]).max() < 2:
            return 0
        return max(1, members.size // (self.p * self.k))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        rounds = max(self.per_pass, default=0)
        return rounds * sum(1 for n in self.per_pass if n > 0)

    def pop_cluster(self) -> int:
        """The cluster of the oldest batch yielded and not yet popped (one call per training step)."""
        if not self.pending:
            raise RuntimeError("pop_cluster() was called more often than the sampler yielded batches.")
        return self.pending.popleft()

    def __iter__(self) -> Iterator[list[int]]:
        self.pending.clear()
        streams = {c: self._stream(c) for c, n in enumerate(self.per_pass) if n > 0}
        for _ in range(max(self.per_pass, default=0)):
            for cluster, stream in streams.items():
                self.pending.append(cluster)
                yield next(stream)

    def _stream(self, cluster: int) -> Iterator[list[int]]:
        """Cluster ``cluster``'s batches, pass after pass (each pass ``per_pass[cluster]`` batches)."""
        members = self.members[cluster]
        classes, inverse = np.unique(self.labels[members], return_inverse=True)
        by_class = [members[inverse == i] for i in range(len(classes))]
        for passes in range(1 << 62):
            rng = np.random.default_rng([self.seed, self.epoch, cluster, passes])
            queues = [deque(rng.permutation(m)) for m in by_class]
            for _ in range(self.per_pass[cluster]):
                chosen = rng.choice(len(by_class), self.p, replace=len(by_class) < self.p)
                yield [int(i) for c in chosen for i in self._take(rng, queues, by_class, int(c))]

    def _take(self, rng: np.random.Generator, queues: list[deque], by_class: list[np.ndarray], c: int) -> list[int]:
        """``k`` images of class ``c``: the next ``k`` of its queue (reshuffled when short), or ``k`` draws with
        replacement from a class with fewer than ``k`` images."""
        if len(by_class[c]) < self.k:
            return rng.choice(by_class[c], self.k, replace=True).tolist()
        if len(queues[c]) < self.k:
            queues[c] = deque(rng.permutation(by_class[c]))
        return [queues[c].popleft() for _ in range(self.k)]
