"""Datasets, the data folder, image loading and P×K batch sampling.

``build(name, split=...)`` constructs any registered dataset; ``available()`` lists them. Every dataset returns
``(float32 C×H×W image in [0, 1], int label)`` and exposes ``labels`` (original class ids) and ``num_classes``;
the built-in ``synthetic`` and ``digits`` sets also expose ``images`` (``uint8`` N×H×W×3). Train and test splits
hold disjoint classes (zero-shot retrieval).
"""
from dml.data.base import SPLITS, DMLDataset, InMemoryDataset, check_split
from dml.data.digits import DigitsDataset
from dml.data.images import CorruptImageError, find_corrupt_images, load_image
from dml.data.registry import UnknownDatasetError, available, build, register
from dml.data.root import data_root
from dml.data.samplers import PKSampler
from dml.data.synthetic import SyntheticDataset, SyntheticSpec

__all__ = [
    "SPLITS",
    "CorruptImageError",
    "DMLDataset",
    "DigitsDataset",
    "InMemoryDataset",
    "PKSampler",
    "SyntheticDataset",
    "SyntheticSpec",
    "UnknownDatasetError",
    "available",
    "build",
    "check_split",
    "data_root",
    "find_corrupt_images",
    "load_image",
    "register",
]
