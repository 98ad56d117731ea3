"""Metric-learning losses behind one registry.

>>> loss_fn = build("contrastive", pos_margin=1.0, neg_margin=0.5)
>>> loss = loss_fn(embeddings, labels)   # embeddings (N, D), labels (N,)

Add a loss by subclassing :class:`MetricLoss`, implementing ``compute`` and decorating the class with
``@register("name")``; its keyword-only ``__init__`` arguments become its hyperparameters.
"""
from dml.losses.base import (MetricLoss, PairLoss, cosine_similarity_matrix, euclidean_from_similarity, pair_masks,
                             zero_loss)
from dml.losses.contrastive import ContrastiveLoss
from dml.losses.registry import available, build, hyperparameters, register
from dml.losses.triplet import TripletLoss

__all__ = [
    "ContrastiveLoss",
    "MetricLoss",
    "PairLoss",
    "TripletLoss",
    "available",
    "build",
    "cosine_similarity_matrix",
    "euclidean_from_similarity",
    "hyperparameters",
    "pair_masks",
    "register",
    "zero_loss",
]
