"""Datasets, the data folder, image loading and P×K batch sampling.

``build(name, split=...)`` constructs any registered dataset; ``available()`` lists them. Every dataset returns
``(float32 C×H×W image in [0, 1], int label)`` and exposes ``labels`` (original class ids) and ``num_classes``;
the built-in ``synthetic`` and ``digits`` sets also expose ``images`` (``uint8`` N×H×W×3). Train and test splits
hold disjoint classes (zero-shot retrieval).

The real benchmarks (``cub200``, ``cars196``, ``sop``, ``inshop``, ``hotels50k``) read the official files from
``data_root()/<name>`` and expose ``paths``; a missing folder raises :class:`DatasetNotFoundError` with the layout and
the way to get the data. :func:`download` fetches what has a stable URL, :func:`check` verifies a folder.

A user's own images: ``imagefolder`` (class subfolders, :mod:`dml.data.folder`) and ``imagelist`` (a CSV/TSV of
``path,label[,split]``, :mod:`dml.data.imagelist`), split by class, per class or by the list (:mod:`dml.data.splits`).

For fast epochs on a 2-core machine, :func:`build_cache` decodes a split once into a memory-mapped ``uint8`` array
(``build("cached", source=name)`` or :func:`open_cache` reads it) and :mod:`dml.data.augment` crops, flips and
normalises whole batches as tensors, on the GPU when there is one.
"""
from dml.data.base import SPLITS, DMLDataset, InMemoryDataset, check_split
from dml.data.cache import CachedDataset, CacheMissingError, StaleCacheError, build_cache, open_cache
from dml.data.cars import Cars196
from dml.data.catalog import CATALOG, DatasetInfo, dataset_info
from dml.data.checker import CheckReport, check
from dml.data.cub import CUB200
from dml.data.digits import DigitsDataset
from dml.data.downloader import ChecksumError, DownloadError, LocalWriteError, ManualDownloadRequired, download
from dml.data.extract import UnsafeArchiveError, safe_extract
from dml.data.files import DatasetNotFoundError, EmptyAnnotationError, ImageFileDataset, dataset_dir
from dml.data.folds import class_fold, class_folds
from dml.data.heldout import heldout
from dml.data.hotels import Hotels50K
from dml.data.images import CorruptImageError, MissingImageError, find_corrupt_images, load_image
from dml.data.inshop import InShop
from dml.data.loaders import Pipeline, build_loaders, check_pipeline, evaluation_split, whole_classes
from dml.data.registry import UnknownDatasetError, available, build, register
from dml.data.root import data_root
from dml.data.samplers import PKSampler
from dml.data.settings import AugmentConfig, ConfigError, DataConfig, SamplerConfig
from dml.data.sop import StanfordOnlineProducts
from dml.data.synthetic import SyntheticDataset, SyntheticSpec
from dml.data.synthetic_hotels import SyntheticHotels
from dml.data.folder import image_folder  # noqa: E402  (registers 'imagefolder')
from dml.data.imagelist import image_list  # noqa: E402  (registers 'imagelist')
from dml.data.splits import assign_splits
from dml.data.userdata import USER_DATASETS, UserImageDataset

__all__ = [
    "CATALOG",
    "CUB200",
    "SPLITS",
    "AugmentConfig",
    "CacheMissingError",
    "CachedDataset",
    "Cars196",
    "CheckReport",
    "ChecksumError",
    "ConfigError",
    "CorruptImageError",
    "DMLDataset",
    "DataConfig",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DigitsDataset",
    "DownloadError",
    "EmptyAnnotationError",
    "Hotels50K",
    "ImageFileDataset",
    "InMemoryDataset",
    "InShop",
    "LocalWriteError",
    "ManualDownloadRequired",
    "MissingImageError",
    "PKSampler",
    "Pipeline",
    "SamplerConfig",
    "StaleCacheError",
    "StanfordOnlineProducts",
    "SyntheticDataset",
    "SyntheticHotels",
    "SyntheticSpec",
    "UnknownDatasetError",
    "UnsafeArchiveError",
    "available",
    "build",
    "build_cache",
    "build_loaders",
    "check",
    "check_pipeline",
    "check_split",
    "class_fold",
    "class_folds",
    "data_root",
    "dataset_dir",
    "dataset_info",
    "download",
    "evaluation_split",
    "find_corrupt_images",
    "heldout",
    "load_image",
    "open_cache",
    "register",
    "safe_extract",
    "whole_classes",
    "USER_DATASETS",
    "UserImageDataset",
    "assign_splits",
    "image_folder",
    "image_list",
]
