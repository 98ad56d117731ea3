"""Metric-learning losses behind one registry.

>>> loss_fn = build("contrastive", pos_margin=1.0, neg_margin=0.5)
>>> loss = loss_fn(embeddings, labels)   # embeddings (N, D), labels (N,)

Add a loss by subclassing :class:`MetricLoss`, implementing ``compute`` and decorating the class with
``@register("name")``; its keyword-only ``__init__`` arguments become its hyperparameters.
"""

from dml.losses.base import (
    MetricLoss,
    PairLoss,
    cosine_similarity_matrix,
    euclidean_from_similarity,
    pair_masks,
    zero_loss,
)
from dml.losses.cgd import CGDLoss
from dml.losses.contrastive import ContrastiveLoss
from dml.losses.diml import DIMLLoss
from dml.losses.ephn import EPHNLoss
from dml.losses.lifted import LiftedStructureLoss
from dml.losses.margin import MarginLoss
from dml.losses.meta_class_softmax import MetaClassSoftmaxLoss
from dml.losses.multi_similarity import MultiSimilarityLoss
from dml.losses.nca import NCALoss
from dml.losses.normalized_softmax import NormalizedSoftmaxLoss
from dml.losses.npair import NPairLoss
from dml.losses.proxy import ProxyAnchorLoss, ProxyLoss, ProxyNCALoss
from dml.losses.registry import available, build, hyperparameters, loss_class, register
from dml.losses.sct import SCTLoss
from dml.losses.triplet import TripletLoss
from dml.losses.vmf import VMFLoss

__all__ = [
    "CGDLoss",
    "ContrastiveLoss",
    "DIMLLoss",
    "EPHNLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MetaClassSoftmaxLoss",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NCALoss",
    "NPairLoss",
    "NormalizedSoftmaxLoss",
    "PairLoss",
    "ProxyAnchorLoss",
    "ProxyLoss",
    "ProxyNCALoss",
    "SCTLoss",
    "TripletLoss",
    "VMFLoss",
    "available",
    "build",
    "cosine_similarity_matrix",
    "euclidean_from_similarity",
    "hyperparameters",
    "loss_class",
    "pair_masks",
    "register",
    "zero_loss",
]
