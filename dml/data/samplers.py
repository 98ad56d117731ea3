"""P×K batches: P classes, K images of each, the batch layout that pair- and triplet-based losses need.

A random batch from a dataset with hundreds of classes rarely holds two images of one class, so most anchors have
no positive. :class:`PKSampler` builds every batch from ``p`` classes with ``k`` images each, laid out class by
class: ``[c1 × k, c2 × k, …]``. Its two variants are modelled on the samplers released with Xuan et al., "Hard
negative examples are hard, but useful" (ECCV 2020) and "Improved embeddings with easy positive triplet mining"
(WACV 2020): ``_code/Sampler.py`` of github.com/littleredxh/HardNegative (commit f5f392377fd0) and
github.com/littleredxh/EasyPositiveHardNegative (commit 22c3d58d56b9), whose training loops (``exp_*/main.py``,
``main.py``) cut the sampler's index stream into ``DataLoader`` batches of ``B = p k``.

``"filled"`` (``BalanceSampler_filled``; CUB-200, Cars196: few classes, many images each)
    Every class is brought to a common length ``len_max``: smaller classes are padded by resampling *with
    replacement*, then shuffled, so a padded image can appear twice in one epoch and, for a class smaller than
    ``k``, twice in one group of ``k``; larger classes are subsampled. Each class then holds ``len_max / k``
    groups of ``k``; round ``r`` takes every class's ``r``-th group.

``"sample-repeat"`` (``BalanceSampler_sample``; SOP, In-Shop, Hotels-50K: many classes, few images each)
    Each of ``repeat`` passes draws one group of ``k`` random images per class (a round). With
    ``batching="per-round"`` a class with fewer than ``k`` images is padded by sampling with replacement, so every
    group has exactly ``k`` entries, at the price of duplicate positives. The released code instead takes all of a
    small class's images, which breaks the ``k``-alignment of the following classes; ``batching="released"`` does
    the same. ``PKSampler`` warns once when a class has fewer than ``k`` images.

How the rounds become batches (``batching``):

``"per-round"`` (default)
    Every round shuffles the class order anew and is cut into batches of ``p`` classes; each round's trailing
    partial batch (``C mod p`` classes) is dropped, so an epoch has ``rounds × ⌊C / p⌋`` batches and no batch ever
    holds a class twice. ``len_max`` defaults to the largest class size rounded up to a multiple of ``k``.
``"released"`` (the released code's epoch)
    The rounds are concatenated into one stream and cut into batches of ``p k`` images straight through, dropping
    only the final partial batch (``exp_*/main.py`` of the SCT release skips a batch shorter than ``B``).
    ``"filled"`` shuffles the class order **once** per epoch and keeps it in every round (so a batch that straddles
    two rounds still holds ``p`` distinct classes): ``⌊rounds × C / p⌋`` batches; its default ``len_max`` follows
    the release: the largest class size rounded to a multiple of ``k``, *down* when the remainder is below
    ``int(0.3 k)``, else up. ``"sample-repeat"`` shuffles each pass's class order and gives all images of a class
    with at most ``k``, as the release does: ``⌊repeat × Σ_c min(n_c, k) / (p k)⌋`` batches, where a batch that
    straddles two passes can hold two groups of one class and, with classes smaller than ``k``, a class's images
    can straddle two batches.

At the released SCT settings (``B = 128``, ``k = 2``) a CUB-like training split (100 classes of at most 60 images)
gives 46 batches per epoch with ``"released"`` and 30 with ``"per-round"``; at 2,000 classes, ``B = 512``,
``k = 2`` and ``repeat = 5``, 39 and 35. Two release details are not reproduced: the EPHN release
(EasyPositiveHardNegative ``main.py``) also trains on the final partial batch, and ``"filled"`` with ``repeat > 1``
(unused by the releases) is refused here.

Determinism: the batches depend only on ``(seed, epoch)``. Call :meth:`PKSampler.set_epoch` before each epoch, as
with ``DistributedSampler``; without it every epoch repeats the same batches.

Distributed training: every rank computes the same global batch of ``p × k`` indices and yields its contiguous
chunk of ``p × k / world_size``. ``p`` must be divisible by ``world_size`` so no class's group of ``k`` is split
across GPUs (a loss computed per rank would otherwise see anchors without positives).
"""
from __future__ import annotations

import warnings
from typing import Iterator, Literal, Sequence

import numpy as np
from torch.utils.data import Sampler
from dml.utils.checks import check_choice

Variant = Literal["filled", "sample-repeat"]
VARIANTS = ("filled", "sample-repeat")
Batching = Literal["per-round", "released"]
BATCHINGS = ("per-round", "released")


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
            size rounded to a multiple of ``k`` (up, or as the release rounds with ``batching="released"``).
        batching: ``"per-round"`` (reshuffle and cut every round) or ``"released"`` (the released code's epoch:
            one stream of rounds cut straight through); see the module docstring.
        seed: Base seed; batches are a function of ``(seed, epoch)``.
        rank: This process's rank in ``[0, world_size)``.
        world_size: Number of processes sharing each global batch.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, *, p: int, k: int, variant: Variant = "filled",
                 repeat: int = 1, len_max: int | None = None, batching: Batching = "per-round", seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D integer array; got shape {labels.shape}, dtype "
                             f"{labels.dtype}. Pass dataset.labels.")
        check_choice(variant, VARIANTS, name="variant")
        check_choice(batching, BATCHINGS, name="batching")
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
        sizes = np.array([len(c) for c in self.class_indices])
        if len_max is None:
            len_max = _released_len_max(int(sizes.max()), k) if batching == "released" else -(-sizes.max() // k) * k
        if variant == "filled" and (len_max < k or len_max % k):
            raise ValueError(f"len_max={len_max} must be a positive multiple of k={k}.")
        pads = not (variant == "sample-repeat" and batching == "released")
        _warn_small_classes(sizes, classes, k, pads=pads)
        self.class_sizes = sizes
        self.p, self.k, self.variant, self.repeat, self.len_max = p, k, variant, repeat, int(len_max)
        self.batching = batching
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        rounds = self.len_max // self.k if self.variant == "filled" else self.repeat
        if self.batching == "released" and self.variant == "sample-repeat":  # a small class gives all it has
            return self.repeat * int(np.minimum(self.class_sizes, self.k).sum()) // (self.p * self.k)
        if self.batching == "released":
            return rounds * len(self.class_indices) // self.p
        return rounds * (len(self.class_indices) // self.p)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.batching == "released":
            groups = self._released_filled(rng) if self.variant == "filled" else self._released_sample_repeat(rng)
        else:
            groups = self._filled(rng) if self.variant == "filled" else self._sample_repeat(rng)
        share = self.p * self.k // self.world_size
        for batch in groups:
            yield batch[self.rank * share:(self.rank + 1) * share].tolist()

    def _batches(self, rng: np.random.Generator, group_of: np.ndarray) -> Iterator[np.ndarray]:
        """Shuffle classes, cut into batches of ``p``; ``group_of[c]`` holds class ``c``'s ``k`` indices."""
        yield from self._cut(group_of[rng.permutation(len(group_of))].reshape(-1))

    def _cut(self, stream: np.ndarray) -> Iterator[np.ndarray]:
        """Consecutive batches of ``p k`` indices of the 1-D ``stream`` (a trailing partial batch is dropped)."""
        size = self.p * self.k
        for start in range(0, len(stream) - size + 1, size):
            yield stream[start:start + size]

    def _table(self, rng: np.random.Generator) -> np.ndarray:
        """``(C, len_max / k, k)``: every class padded (with replacement) or subsampled to ``len_max``, shuffled."""
        rows = []
        for members in self.class_indices:
            if len(members) >= self.len_max:
                rows.append(rng.permutation(members)[:self.len_max])
            else:
                extra = rng.choice(members, self.len_max - len(members), replace=True)
                rows.append(rng.permutation(np.concatenate([members, extra])))
        return np.stack(rows).reshape(len(rows), self.len_max // self.k, self.k)

    def _filled(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        table = self._table(rng)
        for r in range(table.shape[1]):
            yield from self._batches(rng, table[:, r])

    def _released_filled(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        table = self._table(rng)[rng.permutation(len(self.class_indices))]  # one class order for every round
        yield from self._cut(table.transpose(1, 0, 2).reshape(-1))

    def _sample_repeat(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        for _ in range(self.repeat):
            group_of = np.stack([self._group(rng, m) for m in self.class_indices])
            yield from self._batches(rng, group_of)

    def _released_sample_repeat(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """``BalanceSampler_sample``: ``k`` random images of each class (all of a class with at most ``k``) in a
        new class order per pass; the passes' stream is cut into batches of ``p k`` images."""
        stream = []
        for _ in range(self.repeat):
            groups = [m if len(m) <= self.k else rng.choice(m, self.k, replace=False) for m in self.class_indices]
            stream.extend(groups[c] for c in rng.permutation(len(groups)))
        yield from self._cut(np.concatenate(stream))

    def _group(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        if len(members) >= self.k:
            return rng.choice(members, self.k, replace=False)
        return rng.permutation(np.concatenate([members, rng.choice(members, self.k - len(members))]))


def _released_len_max(largest: int, k: int) -> int:
    """``BalanceSampler_filled``'s ``len_max``: ``largest`` rounded down to a multiple of ``k`` when the remainder
    is below ``int(0.3 k)``, else up (never below ``k``)."""
    remainder = largest % k
    if remainder == 0:
        return largest
    rounded = largest - remainder if remainder < int(0.3 * k) else largest - remainder + k
    return max(rounded, k)


def _warn_small_classes(sizes: np.ndarray, classes: np.ndarray, k: int, *, pads: bool) -> None:
    """Warn (once per sampler) about classes smaller than ``k``: padded with repeated images, or (``pads=False``,
    the released ``sample-repeat``) contributing fewer than ``k`` images."""
    small = np.flatnonzero(sizes < k)
    if small.size == 0:
        return
    shown = ", ".join(f"{int(classes[i])}: {int(sizes[i])}" for i in small[:5]) + (", ..." if small.size > 5 else "")
    effect = (f"so each of their groups of {k} repeats images" if pads else
              f"so they give fewer than {k} images to a batch, and batches are not aligned to groups of {k}")
    warnings.warn(f"k={k} images per class, but {small.size} of {sizes.size} classes have fewer (class: images "
                  f"{shown}), {effect}. Lower data.sampler.k (the smallest class has {int(sizes.min())}) to "
                  "avoid it, or accept it.", UserWarning, stacklevel=3)
