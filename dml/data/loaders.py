"""How the data settings (:class:`~dml.data.settings.DataConfig`) become training batches and evaluation batches:
the ``tensor``, ``jpeg`` and ``cached`` pipelines.

* ``tensor``: the dataset's items are already fixed-size tensors (``synthetic``, ``digits``); a ``DataLoader`` with
  the P×K batch sampler collates them as they are, and evaluation embeds the evaluation split as it is.
* ``jpeg``: the real benchmarks' variable-size image files, transformed one image at a time in the ``DataLoader``
  workers: train ``RandomResizedCrop(size)`` (or ``Resize(resize) → RandomCrop(size)``) ``→`` flip ``→``
  normalise; test ``Resize(test_resize) → CenterCrop(size) →`` normalise (``torchvision.transforms.v2``).
* ``cached``: each split is decoded once into a ``uint8`` cache of side ``cache_size``
  (:func:`dml.data.build_cache`, reused while its source files are unchanged); training batches come from
  :class:`~dml.data.augment.CachedBatchLoader` with :class:`~dml.data.augment.BatchAugment`, evaluation batches
  from the cached evaluation split through the deterministic :class:`~dml.data.augment.CenterCropTransform`.

The released recipe of Xuan et al., "Hard negative examples are hard, but useful", ECCV 2020, arXiv:2007.12749
train ``Resize(281) → RandomCrop(256) → flip → normalise`` and test
``Resize(256) → CenterCrop(256) → normalise``, is ``pipeline: cached``, ``cache_size: 281``,
``augment: {size: 256, crop: random, test_resize: 256, normalize: <dataset>}``: the cache is the ``Resize(281)``
step (shorter side to 281, central square; see :mod:`dml.data.cache` for the one difference), so no resize is
applied to the cached squares before the random crop.

Evaluation protocol (``eval.protocol``, resolved by :func:`dml.eval.resolve_protocol`; described in
:mod:`dml.eval.protocol`): what the :class:`dml.eval.Evaluation` built here holds.

* ``self``: the evaluation split; every image queries all the others (CUB-200-2011, Cars196, SOP).
* ``query-gallery``: the evaluation split with its ``is_query`` mask, embedded once and split by the mask (In-Shop,
  Liu et al., "DeepFashion", CVPR 2016: ``split="test"`` of :class:`dml.data.InShop` is queries then gallery).
* ``hotels``: the test split (TraffickCam photos, the queries) with its ``chain_labels``, and a ``gallery`` of the
  *training* images under the evaluation transform (centre crop; not the random training augmentation), with
  theirs (Hotels-50K, Stylianou et al., AAAI 2019). ``cached`` reuses the training cache for the
  gallery, ``jpeg`` and ``tensor`` a copy of the training dataset with the evaluation transform.

:func:`evaluation_split` serves any one split the way the evaluation sees it (optionally a seeded set of whole
classes, :func:`whole_classes`), for diagnostics such as the per-epoch triplet space of the training images.

Only rank 0 builds evaluation data. Whether the dataset carries the arrays a protocol needs (``is_query``,
``chain_labels``) is checked on the training split by every rank, so a mismatch fails everywhere with a
:class:`~dml.data.settings.ConfigError` instead of leaving the other ranks waiting.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Subset

from dml.data.augment import DATASET_STATS, BatchAugment, CachedBatchLoader, CenterCropTransform
from dml.data.balanced import SourceBalancedSampler
from dml.data.cache import CachedDataset, build_cache, open_cache
from dml.data.catalog import CATALOG
from dml.data.images import FIX, MissingImageError, bad_image_message
from dml.data.occlusion import OccludedBatchAugment
from dml.data.protocol import AUTO_PROTOCOL, PROTOCOL_ARRAY, Evaluation, resolve_protocol
from dml.data.protocol import PROTOCOL_NAMES as _PROTOCOL_NAMES
from dml.data.registry import build as build_dataset
from dml.data.registry import factory
from dml.data.registry import available as available_datasets
from dml.data.files import ImageFileDataset
from dml.data.registry import factory as dataset_factory
from dml.data.samplers import VARIANTS, PKSampler
from dml.data.settings import AugmentConfig, ConfigError, DataConfig
from dml.utils.registry import did_you_mean

Stats = tuple[tuple[float, ...], tuple[float, ...]]

@dataclass
class Pipeline:
    """What the trainer needs from the data: the training split (``labels``, ``num_classes``), its P×K
    ``sampler``, the training ``loader`` of ``(images, labels)`` batches and the ``evaluation`` data
    (``None`` where this process does not evaluate)."""

    train_set: Any
    sampler: PKSampler
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]]
    evaluation: Evaluation | None
    loader_of: Callable[[Any], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None = None

    def use_sampler(self, sampler: Any) -> None:
        """Train from the batches of another batch sampler (an iterable of index lists with ``set_epoch``, e.g.
        :class:`dml.data.cluster_sampler.ClusterBatchSampler`) through the same pipeline."""
        if self.loader_of is None:
            raise ValueError("This pipeline was built without its loader factory (loader_of); build it with "
                             "dml.data.loaders.build_loaders to replace its sampler.")
        self.sampler, self.loader = sampler, self.loader_of(sampler)

    @property
    def eval_data(self) -> Any:
        """The evaluation split for :func:`dml.eval.embed` (a dataset or a ``DataLoader``), or ``None``."""
        return None if self.evaluation is None else self.evaluation.data

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's batches (and, for ``cached``, its augmentation seed)."""
        if isinstance(self.loader, CachedBatchLoader):
            self.loader.set_epoch(epoch)  # forwards to the sampler
        else:
            self.sampler.set_epoch(epoch)


def reads_files(name: str) -> bool:
    """Whether dataset ``name`` reads image files (a :class:`~dml.data.ImageFileDataset` subclass, or a factory
    annotated to return one: the benchmarks, ``imagefolder``, ``imagelist``, a user's own registered loader), which
    the ``jpeg`` and ``cached`` pipelines resize and ``tensor`` cannot batch."""
    import inspect
    import typing

    made = dataset_factory(name)
    if not inspect.isclass(made):
        try:
            made = typing.get_type_hints(made).get("return")
        except (NameError, TypeError):
            return False
    return inspect.isclass(made) and issubclass(made, ImageFileDataset)


def check_pipeline(data: DataConfig, protocol: str = "auto") -> None:
    """Check the pipeline keys (and the evaluation ``protocol``) against the dataset before anything slow happens
    (``ConfigError``)."""
    d, a = data, data.augment
    check_protocol(data, protocol)
    files = d.name in CATALOG or (d.name in available_datasets() and reads_files(d.name))
    if d.pipeline == "tensor" and files:
        raise ConfigError(f"Config key 'data.pipeline': {d.name!r} reads image files of any size, "
                          "which pipeline 'tensor' cannot batch; set data.pipeline=jpeg (per-image transforms) or "
                          "data.pipeline=cached (decode once, then augment whole batches).")
    if d.pipeline == "tensor":
        return
    if d.pipeline == "jpeg" and not files:
        raise ConfigError(f"Config key 'data.pipeline': 'jpeg' reads image files, but the items of {d.name!r} are "
                          f"not files; use data.pipeline=tensor for it (or cached). Datasets of image files: "
                          f"{sorted(n for n in available_datasets() if n in CATALOG or reads_files(n))}.")
    if d.name == "cached":
        raise ConfigError("Config key 'data.name': with data.pipeline='" + d.pipeline + "' name the source dataset "
                          "(e.g. cub200), not 'cached'; the pipeline builds and opens its cache itself.")
    choices = sorted(DATASET_STATS) + (["cache"] if d.pipeline == "cached" else [])
    if a.normalize not in choices:
        extra = (" ('cache' needs data.pipeline=cached)" if a.normalize == "cache" else
                 did_you_mean(a.normalize, choices))
        raise ConfigError(f"Config key 'data.augment.normalize': unknown value {a.normalize!r}{extra}. Choose one of "
                          f"{choices}.")
    if a.crop == "random":
        if d.pipeline == "jpeg" and a.resize is None:
            raise ConfigError("Config key 'data.augment.resize': crop 'random' on image files of different sizes "
                              "needs a resize first so that every crop fits; set data.augment.resize (e.g. 281 for "
                              "size 256, the released recipe) or use crop 'random-resized'.")
        side = a.resize if a.resize is not None else d.cache_size
        if d.pipeline == "cached" and a.size > side:
            raise ConfigError(f"Config key 'data.augment.size': a {a.size}×{a.size} random crop does not fit in the "
                              f"{side}×{side} cached images; raise data.cache_size (or data.augment.resize) or lower "
                              "data.augment.size.")


def check_protocol(data: DataConfig, protocol: str = "auto") -> None:
    """Check ``eval.protocol`` against ``data.name`` and ``data.eval_split`` (``ConfigError``).

    A benchmark of the catalogue has one protocol of its own (:data:`AUTO_PROTOCOL`, else ``self``): naming
    another one except ``self`` is an error. Other datasets are checked when the pipeline is built (they must carry
    :data:`PROTOCOL_ARRAY`'s array). The queries of ``query-gallery`` and ``hotels`` are the test split."""
    d = data
    resolved = resolve_protocol(d.name, protocol)
    if resolved == "self":
        return
    own = AUTO_PROTOCOL.get(d.name, "self")
    if d.name in CATALOG and resolved != own:
        raise ConfigError(f"Config key 'eval.protocol': {protocol!r} is not a protocol of dataset {d.name!r}, "
                          f"whose evaluation is {own!r} ({_PROTOCOL_NAMES[own]}). Set eval.protocol=auto (or "
                          f"self). Protocols by dataset: {AUTO_PROTOCOL}, every other one 'self'.")
    if d.eval_split != "test":
        raise ConfigError(f"Config key 'data.eval_split': protocol {resolved!r} takes its queries from the test "
                          f"split, but data.eval_split is {d.eval_split!r}; set data.eval_split=test (or "
                          "eval.protocol=self to evaluate another split by self-retrieval).")


def check_image_files(data: Pipeline, name: str) -> None:
    """Before training (:mod:`dml.train.trainer`): every image file that the training and evaluation splits list
    exists (a missing test image would otherwise stop the run only at its first evaluation); ``MissingImageError``
    otherwise. Decoding is left to ``dml data check --decode``."""
    splits = [data.train_set]
    if data.evaluation is not None:
        for part in (data.evaluation.data, data.evaluation.gallery):
            splits.append(getattr(part, "dataset", part))
    for split in splits:
        paths = getattr(split, "paths", None)
        if paths is None:
            continue
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise MissingImageError(
                f"{bad_image_message(missing[0])} ({len(missing)} of the {len(paths)} image files of the "
                f"{getattr(split, 'split', '?')!r} split are missing; `dml data check {name}` lists them.) {FIX}"
            )


def save_split(data: DataConfig, folder: str | Path) -> Path | None:
    """Write the train/test assignment of a user's own images (``imagefolder``, ``imagelist``) to
    ``folder/split.csv`` (:func:`dml.data.splits.write_split_file`) and return its path; ``None`` for other
    datasets, whose splits are fixed by their files."""
    from dml.data.splits import SPLIT_FILE, write_split_file
    from dml.data.userdata import USER_DATASETS

    if data.name not in USER_DATASETS:
        return None
    every = build_dataset(data.name, split="all", root=data.root, **data.kwargs)
    rows = [(path, every.class_of[int(label)], split)
            for path, label, split in zip(every.relative_paths, every.labels, every.split_of)]
    write_split_file(Path(folder) / SPLIT_FILE, rows)
    return Path(folder) / SPLIT_FILE


def collate(batch: Sequence[tuple[Any, ...]]) -> Any:
    """``default_collate``, with a one-line ``ValueError`` instead of ``torch.stack``'s when the images of a batch
    differ in size (a dataset of image files needs pipeline ``jpeg`` or ``cached``, which resize them)."""
    from torch.utils.data import default_collate

    shapes = sorted({tuple(item[0].shape) for item in batch if isinstance(item[0], torch.Tensor)})
    if len(shapes) > 1:
        raise ValueError(f"The images of one batch differ in size ({len(shapes)} shapes, e.g. {shapes[0]} and "
                         f"{shapes[-1]}), so they cannot be stacked; set data.pipeline=jpeg (resize and crop each "
                         "image) or data.pipeline=cached (decode once to squares).")
    return default_collate(batch)


def normalization(augment: AugmentConfig, cache: Any = None) -> Stats:
    """``(mean, std)`` named by ``augment.normalize``; ``"cache"`` reads the training cache's measurements."""
    name = augment.normalize
    if name == "cache":
        if cache is None:
            raise ValueError("normalize='cache' needs the training cache; use data.pipeline=cached.")
        return tuple(cache.mean), tuple(cache.std)
    return DATASET_STATS[name]


def image_transforms(augment: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> tuple[Callable, Callable]:
    """The ``jpeg`` pipeline's per-image ``(train, test)`` transforms of a ``float32`` 3×H×W tensor in [0, 1]."""
    from torchvision.transforms import v2

    a = augment
    train: list[Any] = [v2.Resize(a.resize, antialias=True)] if a.resize is not None else []
    if a.crop == "random":
        train.append(v2.RandomCrop(a.size))
    else:
        train.append(v2.RandomResizedCrop(a.size, antialias=True))
    train.append(v2.RandomHorizontalFlip(a.flip))
    occlude = a.occlusion.build()
    train += ([occlude] if occlude is not None else []) + [v2.Normalize(list(mean), list(std))]
    test = [v2.Resize(a.test_resize, antialias=True), v2.CenterCrop(a.size), v2.Normalize(list(mean), list(std))]
    return v2.Compose(train), v2.Compose(test)


def batch_transforms(data: DataConfig, mean: Sequence[float], std: Sequence[float]
                     ) -> tuple[BatchAugment, CenterCropTransform]:
    """The ``cached`` pipeline's ``(train, test)`` transforms of whole ``uint8`` batches of cached squares."""
    a = data.augment
    resize = a.resize if a.resize is not None and a.resize != data.cache_size else None
    train = BatchAugment(size=a.size, crop=a.crop, resize=resize, flip=a.flip, mean=mean, std=std)
    occlude = a.occlusion.build()
    if occlude is not None:
        train = OccludedBatchAugment(train, occlude)
    return train, CenterCropTransform(resize=a.test_resize, size=a.size, mean=mean, std=std)


def build_loaders(data: DataConfig, *, protocol: str = "auto", seed: int = 0, eval_batch_size: int = 256,
                  rank: int = 0, world_size: int = 1, is_main: bool = True, device: torch.device | str = "cpu",
                  barrier: Callable[[], None] = lambda: None) -> Pipeline:
    """The training set, P×K sampler and loader of ``data``, and its :class:`dml.eval.Evaluation` under
    ``protocol`` (built where ``is_main`` only; ``None`` elsewhere).

    ``rank``/``world_size`` split each global batch between processes; ``barrier`` (e.g.
    :func:`dml.train.distributed.barrier`) lets the other ranks wait while the main one decodes the caches.
    ``seed`` seeds the sampler and the cached pipeline's augmentation; ``eval_batch_size`` batches evaluation.
    """
    d, device = data, torch.device(device)
    protocol = resolve_protocol(d.name, protocol)
    if d.pipeline == "cached":
        train_set, evaluation, loader_of = _cached(d, protocol, seed=seed, batch_size=eval_batch_size,
                                                   is_main=is_main, device=device, barrier=barrier)
    else:
        train_set, evaluation, loader_of = _uncached(d, protocol, batch_size=eval_batch_size, is_main=is_main,
                                                     device=device)
    s = d.sampler
    if s.variant == "source-balanced":
        sources = getattr(train_set, "sources", None)
        if sources is None:
            raise ConfigError(f"Config key 'data.sampler.variant': 'source-balanced' needs the per-image array "
                              f"'sources', which dataset {d.name!r} does not have; use variant 'filled' or "
                              "'sample-repeat'.")
        sampler = SourceBalancedSampler(train_set.labels, sources=sources, p=s.p, k=s.k, seed=seed, rank=rank,
                                        world_size=world_size)
    else:
        if s.variant not in VARIANTS:
            raise ConfigError(f"Config key 'data.sampler.variant': unknown value {s.variant!r}"
                              f"{did_you_mean(s.variant, [*VARIANTS, 'source-balanced'])} Choose one of "
                              f"{[*VARIANTS, 'source-balanced']}.")
        sampler = PKSampler(train_set.labels, p=s.p, k=s.k, variant=s.variant, repeat=s.repeat,
                            batching=s.batching, seed=seed, rank=rank, world_size=world_size)
    sampler.set_epoch(1)
    if len(sampler) == 0:
        raise ValueError(f"The P×K sampler yields no batch for dataset {d.name!r} (train split, "
                         f"{len(np.unique(train_set.labels))} classes) with p={s.p}, k={s.k}; lower data.sampler.p "
                         "or use more classes.")
    return Pipeline(train_set=train_set, sampler=sampler, loader=loader_of(sampler), evaluation=evaluation,
                    loader_of=loader_of)


def _uncached(d: DataConfig, protocol: str, *, batch_size: int, is_main: bool, device: torch.device
              ) -> tuple[Any, Evaluation | None, Callable]:
    """The ``tensor`` and ``jpeg`` pipelines: the training set, the evaluation, and the loader of a sampler."""
    train_t = eval_t = None
    if d.pipeline == "jpeg":
        train_t, eval_t = image_transforms(d.augment, *normalization(d.augment))
    else:  # tensor: the items are used as they are, but for the occlusion augmentation (None when off)
        train_t = d.augment.occlusion.build()
    train_set = build_dataset(d.name, split="train", root=d.root, transform=train_t, **d.kwargs)
    _check_arrays(train_set, protocol, d.name)
    evaluation = None
    if is_main:
        eval_set = build_dataset(d.name, split=d.eval_split, root=d.root, transform=eval_t, **d.kwargs)
        gallery = None
        if protocol == "hotels":
            gallery = copy.copy(train_set)  # the same images and arrays, under the evaluation transform
            gallery.transform = eval_t

        def batches(dataset: Any) -> Any:
            if d.pipeline == "tensor":
                return dataset
            return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=d.num_workers,
                              pin_memory=device.type == "cuda")
        evaluation = _evaluation(protocol, d, eval_set, batches(eval_set), gallery,
                                 None if gallery is None else batches(gallery))

    def loader_of(sampler: PKSampler) -> DataLoader:
        return DataLoader(train_set, batch_sampler=sampler, num_workers=d.num_workers, collate_fn=collate,
                          pin_memory=device.type == "cuda")
    return train_set, evaluation, loader_of


def whole_classes(labels: Sequence[int] | np.ndarray, max_items: int | None, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_items`` items made of whole classes, drawn in a seeded random class order
    (a class that no longer fits is skipped), so that every kept item keeps all its positives; every index when
    ``max_items`` is ``None`` or not smaller than ``len(labels)``."""
    labels = np.asarray(labels)
    if max_items is None or len(labels) <= max_items:
        return np.arange(len(labels))
    if max_items < 2:
        raise ValueError(f"max_items={max_items} cannot hold a class with a positive pair; use at least 2 or None.")
    order = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    keep, total = [], 0
    for c in np.random.default_rng(seed).permutation(len(starts)):
        if total + counts[c] <= max_items:
            keep.append(order[starts[c]:starts[c] + counts[c]])
            total += counts[c]
    if not keep:
        raise ValueError(f"max_items={max_items} is smaller than every class (smallest {counts.min()} items); "
                         "raise it.")
    return np.sort(np.concatenate(keep))


def evaluation_split(data: DataConfig, split: str, *, batch_size: int = 256, device: torch.device | str = "cpu",
                     max_items: int | None = None, seed: int = 0) -> tuple[Any, np.ndarray]:
    """One split of ``data`` as the evaluation sees it (no augmentation; ``Resize → CenterCrop`` for image
    files), ready for :func:`dml.eval.embed`, and its labels, in the same order.

    For diagnostics of a run (e.g. the training split's triplet space after every epoch): ``max_items`` keeps a
    seeded random set of whole classes (:func:`whole_classes`), so a million-image split costs what a few thousand
    images do. The cached pipeline reuses (or builds) the split's cache. ``batch_size`` batches image files and
    caches.
    """
    device = torch.device(device)
    if data.pipeline == "cached":
        cache = _split_cache(data, split)
        # the training cache's statistics for normalize: cache (verifying each cache once)
        training = cache if split == "train" or data.augment.normalize != "cache" else _split_cache(data, "train")
        _, test_t = batch_transforms(data, *normalization(data.augment, training))
        labels = np.asarray(cache.labels)
        keep = whole_classes(labels, max_items, seed=seed)
        return _centre_cropped(cache, test_t, device, keep.tolist(), batch_size), labels[keep]
    eval_t = image_transforms(data.augment, *normalization(data.augment))[1] if data.pipeline == "jpeg" else None
    dataset = build_dataset(data.name, split=split, root=data.root, transform=eval_t, **data.kwargs)
    labels = np.asarray(dataset.labels)
    keep = whole_classes(labels, max_items, seed=seed)
    subset = dataset if len(keep) == len(labels) else Subset(dataset, keep.tolist())
    if data.pipeline == "tensor":
        return subset, labels[keep]
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=data.num_workers,
                      pin_memory=device.type == "cuda"), labels[keep]


def _split_cache(d: DataConfig, split: str, *, progress: bool = False) -> Any:
    """The ``CachedDataset`` of one split of ``d``, built (or checked against its files) first."""
    return CachedDataset(build_cache(d.name, split=split, size=d.cache_size, root=d.root, cache_root=d.cache_dir,
                                     workers=d.cache_workers, progress=progress, **split_kwargs(d, split)))


def split_kwargs(d: DataConfig, split: str) -> dict[str, Any]:
    """``d.kwargs`` without the keywords that do not change ``split`` (a dataset's ``TEST_ONLY_KWARGS``, such as
    Hotels-50K's ``occlusion`` for the training split), so that the test sets of one training split share its
    cache instead of each decoding it again."""
    test_only = getattr(factory(d.name), "TEST_ONLY_KWARGS", ()) if split == "train" else ()
    return {k: v for k, v in d.kwargs.items() if k not in test_only}


def _centre_cropped(cache: Any, transform: CenterCropTransform, device: torch.device, indices: Sequence[int],
                    batch_size: int) -> DataLoader:
    """Batches of the cached images at ``indices`` (in that order) under the test ``transform``, with labels."""
    batches = BatchSampler(indices, batch_size, drop_last=False)
    return DataLoader(_CenterCropped(cache, transform, device), sampler=batches, batch_size=None)


def _check_arrays(train_set: Any, protocol: str, name_of_dataset: str) -> None:
    """``ConfigError`` unless the dataset carries the per-image array ``protocol`` needs (checked on the training
    split, which every rank builds; the evaluation split is the same dataset class)."""
    name = PROTOCOL_ARRAY.get(protocol)
    if name is None or getattr(train_set, name, None) is not None:
        return
    raise ConfigError(f"Config key 'eval.protocol': {protocol!r} needs the per-image array {name!r} "
                      f"({_PROTOCOL_NAMES[protocol]}), which dataset {name_of_dataset!r} does not have; set "
                      f"eval.protocol=self (or auto). Protocols by dataset: {AUTO_PROTOCOL}.")


def _evaluation(protocol: str, d: DataConfig, eval_set: Any, data: Any, gallery_set: Any = None,
                gallery: Any = None) -> Evaluation:
    """The :class:`Evaluation` of ``protocol`` with its arrays read from ``eval_set`` (and ``gallery_set``)."""
    if protocol == "self":
        return Evaluation(protocol, data)
    if protocol == "query-gallery":
        is_query = np.asarray(eval_set.is_query, dtype=bool)
        if is_query.all() or not is_query.any():
            raise ValueError(f"Protocol 'query-gallery' needs queries and gallery items in split "
                             f"{d.eval_split!r} of {d.name!r}, but its {len(is_query)} images are "
                             f"{'all' if is_query.all() else 'none of them'} queries; check data.eval_split (the test "
                             "split holds both) and data.kwargs (no 'subset').")
        return Evaluation(protocol, data, is_query=is_query)
    return Evaluation(protocol, data, chain_labels=np.asarray(eval_set.chain_labels, dtype=np.int64), gallery=gallery,
                      gallery_chain_labels=np.asarray(gallery_set.chain_labels, dtype=np.int64))


def _cached(d: DataConfig, protocol: str, *, seed: int, batch_size: int, is_main: bool, device: torch.device,
            barrier: Callable[[], None]) -> tuple[Any, Evaluation | None, Callable]:
    """The ``cached`` pipeline: the training cache, the evaluation, and the loader of a sampler."""
    splits = ["train"] + ([d.eval_split] if is_main and d.eval_split != "train" else [])
    common = dict(size=d.cache_size, root=d.root, cache_root=d.cache_dir)
    caches = {}
    if is_main:  # one process decodes (or checks the existing cache once); the others wait and open it
        for split in splits:
            caches[split] = _split_cache(d, split, progress=sys.stderr.isatty())
    barrier()
    if not is_main:  # rank 0 has just verified the caches against the files
        caches = {split: open_cache(d.name, split=split, verify=False, **common, **split_kwargs(d, split))
                  for split in splits}
    train_set = caches["train"]
    _check_arrays(train_set, protocol, d.name)  # the cache restores the source's per-image arrays
    train_t, eval_t = batch_transforms(d, *normalization(d.augment, train_set))
    evaluation = None
    if is_main:
        def batches(cache: Any) -> DataLoader:
            return _centre_cropped(cache, eval_t, device, range(len(cache)), batch_size)

        cache = caches[d.eval_split]
        gallery = batches(train_set) if protocol == "hotels" else None  # the training squares, centre-cropped
        evaluation = _evaluation(protocol, d, cache, batches(cache), train_set, gallery)

    def loader_of(sampler: PKSampler) -> CachedBatchLoader:
        # The training step is done with a batch before the next-but-one overwrites its buffer, so the loader may
        # reuse two buffers: this saves the page faults of a fresh batch allocation (benchmarks/README.md).
        return CachedBatchLoader(train_set, sampler, train_t, device=device, seed=seed, reuse_buffers=True)
    return train_set, evaluation, loader_of


class _CenterCropped(Dataset):
    """Index with a list of positions: ``(test-transformed uint8 batch, labels)`` of a cache, one fancy index.

    The ``uint8`` batch moves to ``device`` first, so on a GPU the resize and crop run there (and only a quarter of
    the ``float32`` bytes cross the bus)."""

    def __init__(self, cache: Any, transform: CenterCropTransform, device: torch.device) -> None:
        self.cache, self.transform, self.device = cache, transform, device

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        return (self.transform(self.cache.batch(index).to(self.device, non_blocking=True)),
                torch.from_numpy(self.cache.labels[index]))
