"""Embedding models: a backbone (feature map) followed by a pooling + projection head.

>>> model = build("small_cnn", embedding_dim=64, pooling="gem")
>>> embeddings = model(images)          # (B, 64), unit length

Backbones: :func:`available_backbones` (``resnet18``, ``resnet50`` with optional ImageNet weights, ``small_cnn``).
"""

from dml.models.batch_norm import FixedBatchNorm2d
from dml.models.cgd import CGDHead  # importing registers the head cgd
from dml.models.embedding import EmbeddingModel, build
from dml.models.ensemble import LearnerEnsemble, build_ensemble, concatenate_learners, split_learners
from dml.models.head import EmbeddingHead
from dml.models.local import DIMLHead, grid_pool, local_embeddings  # registers the head diml
from dml.models.pooling import AvgPool, GeM, MaxPool, available_poolings, build_pooling
from dml.models.registry import (
    available_backbones,
    available_heads,
    build_backbone,
    build_head,
    register_backbone,
    register_head,
)
from dml.models.resnet import ResNetBackbone  # importing registers resnet18 and resnet50
from dml.models.small_cnn import SmallCNN  # importing registers small_cnn
from dml.models.split_head import SplitEmbeddingHead, slice_bounds

__all__ = [
    "AvgPool",
    "CGDHead",
    "DIMLHead",
    "EmbeddingHead",
    "EmbeddingModel",
    "FixedBatchNorm2d",
    "GeM",
    "LearnerEnsemble",
    "MaxPool",
    "ResNetBackbone",
    "SmallCNN",
    "SplitEmbeddingHead",
    "available_backbones",
    "available_heads",
    "available_poolings",
    "build",
    "build_backbone",
    "build_ensemble",
    "build_head",
    "build_pooling",
    "concatenate_learners",
    "grid_pool",
    "local_embeddings",
    "register_backbone",
    "register_head",
    "slice_bounds",
    "split_learners",
]
