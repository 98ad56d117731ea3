"""P×K batches: P classes, K images of each, the batch layout that pair- and triplet-based losses need.

A random batch from a dataset with hundreds of classes rarely holds two images of one class, so most anchors have
no positive. :class:`PKSampler` builds every batch from exactly ``p`` distinct classes with ``k`` images each,
laid out class by class: ``[c1 × k, c2 × k, …]``. Two variants follow the code released with
Xuan et al., "Hard negative examples are hard, but useful" (ECCV 2020) and "Improved embeddings with easy positive
triplet mining" (WACV 2020), GitHub littleredxh/HardNegative and littleredxh/EasyPositiveHardNegative, ``_code/``:

``"filled"`` (``BalanceSampler_filled``; CUB-200, Cars196: few classes, many images each)
    Every class is brought to a common length ``len_max`` (default: the largest class size rounded up to a multiple
    of ``k``): smaller classes are padded by resampling *with replacement*, then shuffled, so a padded image can
    appear twice in one epoch and occasionally twice in one group of ``k``; larger classes are subsampled. Round
    ``r`` (of ``len_max / k``) shuffles the classes and cuts them into batches of ``p``, each class contributing its
    ``r``-th group of ``k``. When the number of classes is not a multiple of ``p`` the trailing partial batch of
    each round is dropped; a different set of classes is dropped each round because the order is reshuffled.

``"sample-repeat"`` (``BalanceSampler_sample``; SOP, In-Shop, Hotels-50K: many classes, few images each)
    Each of ``repeat`` passes draws one group of ``k`` random images per class, shuffles the class order and cuts it
    into batches of ``p`` (trailing partial batch dropped). A class with fewer than ``k`` images is padded by
    sampling with replacement, so every group has exactly ``k`` entries. The released code instead takes all of a
    small class's images, which breaks the ``k``-alignment of the following classes; the padding here keeps the
    invariant at the price of duplicate positives for singleton classes.

Determinism: the batches depend only on ``(seed, epoch)``. Call :meth:`PKSampler.set_epoch` before each epoch, as
with ``DistributedSampler``; without it every epoch repeats the same batches.

Distributed training: every rank computes the same global batch of ``p × k`` indices and yields its contiguous
chunk of ``p × k / world_size``. ``p`` must be divisible by ``world_size`` so no class's group of ``k`` is split
across GPUs (a loss computed per rank would otherwise see anchors without positives).
"""
from __future__ import annotations

from typing import Iterator, Literal, Sequence

import numpy as np
from torch.utils.data import Sampler
from dml.utils.checks import check_choice

Variant = Literal["filled", "sample-repeat"]
VARIANTS = ("filled", "sample-repeat")


class PKSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of dataset indices, ``p`` classes × ``k`` images each.

    Use as ``DataLoader(dataset, batch_sampler=PKSampler(dataset.labels, p=8, k=4))``.

    Args:
        labels: One class id per dataset item (any integers).
        p: Classes per global batch.
        k: Images per class in a batch.
        variant: ``"filled"`` or ``"sample-repeat"`` (see the module docstring).
        repeat: Passes over the classes per epoch for ``"sample-repeat"``; must be 1 for ``"filled"``.
        len_max: ``"filled"`` only: images per class per epoch (a multiple of ``k``); default the largest class
            size rounded up to a multiple of ``k``.
        seed: Base seed; batches are a function of ``(seed, epoch)``.
        rank: This process's rank in ``[0, world_size)``.
        world_size: Number of processes sharing each global batch.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, *, p: int, k: int, variant: Variant = "filled",
                 repeat: int = 1, len_max: int | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D integer array; got shape {labels.shape}, dtype "
                             f"{labels.dtype}. Pass dataset.labels.")
        check_choice(variant, VARIANTS, name="variant")
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive; got p={p}, k={k}.")
        classes, inverse = np.unique(labels, return_inverse=True)
        if p > classes.size:
            raise ValueError(f"p={p} classes per batch but the labels hold only {classes.size} classes. "
                             f"Use p <= {classes.size}, or a split with more classes.")
        if repeat < 1 or (variant == "filled" and repeat != 1):
            raise ValueError(f"repeat={repeat} is invalid: it must be >= 1, and 1 for variant='filled' "
                             "(which already covers every image via len_max).")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size}).")
        if p % world_size:
            raise ValueError(f"p={p} classes cannot be shared equally by world_size={world_size} ranks without "
                             f"splitting a class's group of k={k} across GPUs (anchors would lose their positives). "
                             f"Choose p divisible by {world_size}, e.g. p={max(world_size, p - p % world_size)}.")
        order = np.argsort(inverse, kind="stable")
        self.class_indices = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        largest = max(len(c) for c in self.class_indices)
        if len_max is None:
            len_max = -(-largest // k) * k
        if variant == "filled" and (len_max < k or len_max % k):
            raise ValueError(f"len_max={len_max} must be a positive multiple of k={k}.")
        self.p, self.k, self.variant, self.repeat, self.len_max = p, k, variant, repeat, len_max
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        batches_per_pass = len(self.class_indices) // self.p
        passes = self.len_max // self.k if self.variant == "filled" else self.repeat
        return passes * batches_per_pass

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = self._filled(rng) if self.variant == "filled" else self._sample_repeat(rng)
        share = self.p * self.k // self.world_size
        for batch in groups:
            yield batch[self.rank * share:(self.rank + 1) * share].tolist()

    def _batches(self, rng: np.random.Generator, group_of: np.ndarray) -> Iterator[np.ndarray]:
        """Shuffle classes, cut into batches of ``p``; ``group_of[c]`` holds class ``c``'s ``k`` indices."""
        perm = rng.permutation(len(group_of))
        for start in range(0, len(perm) - self.p + 1, self.p):
            yield group_of[perm[start:start + self.p]].reshape(-1)

    def _filled(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        rows = []
        for members in self.class_indices:
            if len(members) >= self.len_max:
                rows.append(rng.permutation(members)[:self.len_max])
            else:
                extra = rng.choice(members, self.len_max - len(members), replace=True)
                rows.append(rng.permutation(np.concatenate([members, extra])))
        table = np.stack(rows).reshape(len(rows), self.len_max // self.k, self.k)
        for r in range(table.shape[1]):
            yield from self._batches(rng, table[:, r])

    def _sample_repeat(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        for _ in range(self.repeat):
            group_of = np.stack([self._group(rng, m) for m in self.class_indices])
            yield from self._batches(rng, group_of)

    def _group(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        if len(members) >= self.k:
            return rng.choice(members, self.k, replace=False)
        return rng.permutation(np.concatenate([members, rng.choice(members, self.k - len(members))]))
