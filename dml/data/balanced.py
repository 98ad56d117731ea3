"""``source-balanced`` batches: ``p`` classes × ``k`` images, half of each class's images from one image source.

The Hotels-50K baseline (Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset", AAAI 2019; GitHub
GWUvision/Hotels-50K ``baseline_implementation/classfile.py``, ``BatchAllSet.getBatch``, commit 3614e4a5) trains
on batches of 10 hotels × 10 images in which each hotel gives, when it can, 5 TraffickCam photos (the kind of
image the queries are) and 5 travel-website photos; a hotel with too few of one source fills up from the other.
Hotels with fewer than ``k`` images are left out, and every batch draws its ``p`` hotels at random, without
replacement within the batch. The release draws batches for as long as it trains; here an epoch is
``len(labels) // (p k)`` such batches, a function of ``(seed, epoch)``.

Use it from a config as ``data.sampler: {variant: source-balanced, p: 10, k: 10}`` with a dataset that carries
``sources`` (one string per image: :class:`dml.data.Hotels50K`, ``synthetic-hotels``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from dml.data.samplers import PKSampler

#: The source that gets half of each class's images (the release's query-like photos).
BALANCED_SOURCE = "traffickcam"


class SourceBalancedSampler(PKSampler):
    """Batch sampler: ``p`` random classes × ``k`` images, ``k // 2`` of them from ``source`` when the class has
    enough (else as many as it has, the rest from the other sources, and the other way round).

    Args:
        labels: One class id per item. sources: One source name per item (e.g. ``dataset.sources``).
        p, k, seed, rank, world_size: As :class:`~dml.data.PKSampler`.
        source: The source balanced against all the others.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, *, sources: Sequence[str], p: int, k: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, source: str = BALANCED_SOURCE) -> None:
        labels, sources = np.asarray(labels), np.asarray(sources)
        if sources.shape != labels.shape:
            raise ValueError(f"{len(sources)} sources for {len(labels)} labels; pass one source per image "
                             "(dataset.sources).")
        big = np.isin(labels, [c for c, n in zip(*np.unique(labels, return_counts=True)) if n >= k])
        if not big.all():
            warnings.warn(f"source-balanced sampler: {len(np.unique(labels[~big]))} class(es) with fewer than k={k} "
                          "images are left out, as in the released Hotels-50K baseline.", RuntimeWarning,
                          stacklevel=2)
        kept = np.flatnonzero(big)
        if not len(kept):
            raise ValueError(f"No class has k={k} images; lower data.sampler.k.")
        super().__init__(labels[kept], p=p, k=k, variant="sample-repeat", seed=seed, rank=rank,
                         world_size=world_size)
        self.class_indices = [kept[members] for members in self.class_indices]  # back to dataset indices
        self.is_source = [sources[members] == source for members in self.class_indices]
        self.num_items, self.source = len(labels), source

    def __len__(self) -> int:
        return max(1, self.num_items // (self.p * self.k))

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        share = self.p * self.k // self.world_size
        for _ in range(len(self)):
            batch = np.concatenate([self._group(rng, c) for c in rng.choice(len(self.class_indices), self.p,
                                                                              replace=False)])
            yield batch[self.rank * share:(self.rank + 1) * share].tolist()

    def _group(self, rng: np.random.Generator, c: int) -> np.ndarray:
        """``k`` images of class ``c``: ``k // 2`` of the source when both sources have enough (the release)."""
        mine, other = self.class_indices[c][self.is_source[c]], self.class_indices[c][~self.is_source[c]]
        half = self.k // 2
        if len(mine) >= half and len(other) >= half:
            take = half
        elif len(mine) >= half:
            take = self.k - len(other)
        else:
            take = len(mine)
        return np.concatenate([rng.permutation(mine)[:take], rng.permutation(other)[:self.k - take]])
