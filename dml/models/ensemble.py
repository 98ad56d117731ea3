"""A multi-learner embedding: ``L`` heads of ``D`` outputs, on one shared backbone or on ``L`` backbones.

The ensemble of Xuan, Souvenir & Pless, "Deep Randomized Ensembles for Metric Learning" (DREML), ECCV 2018
(arXiv:1808.04469). The released code (github.com/littleredxh/DREML at 24f008b, ``_code/Train.py``) trains ``L``
independent ResNet-18s with a ``Linear(512, D)`` each (``shared_backbone=False``); the course's CPU profiles put the
``L`` heads on one backbone (``shared_backbone=True``), so the ensemble costs little more than one network.

The output is the concatenation :math:`[g(z_1), \\dots, g(z_L)] \\in \\mathbb R^{L D}` of the learners' outputs
:math:`z_l = W_l\\,\\mathrm{pool}(\\phi_l(x)) + b_l`. In training mode :math:`g` is the L2 normalisation when
``normalize`` is true and the identity otherwise (the DREML configs leave the choice to the loss's ``variant``).
In eval mode every learner's output is L2-normalised, the test embedding of both releases: the cosine similarity of
two concatenations is then the mean of the :math:`L` per-learner cosines,

.. math::  \\cos\\big([\\hat z_l]_l, [\\hat z'_l]_l\\big) = \\frac{1}{L} \\sum_{l=1}^{L} \\hat z_l^\\top \\hat z'_l .
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.models.head import EmbeddingHead
from dml.models.registry import build_backbone


class LearnerEnsemble(nn.Module):
    """``backbones`` (one, shared, or one per head) and ``heads`` (``L`` :class:`EmbeddingHead` without
    normalisation); attributes ``learners`` (L), ``learner_dim`` (D) and ``embedding_dim`` (L D)."""

    def __init__(
        self,
        backbones: list[nn.Module],
        heads: list[EmbeddingHead],
        *,
        normalize: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if len(backbones) not in (1, len(heads)) or not heads:
            raise ValueError(
                f"A LearnerEnsemble needs at least one head and one shared backbone or one backbone per head; got "
                f"{len(backbones)} backbones for {len(heads)} heads."
            )
        dims = {head.embedding_dim for head in heads}
        if len(dims) != 1 or any(head.normalize for head in heads):
            raise ValueError("The heads of a LearnerEnsemble must share one embedding_dim and not normalise.")
        self.backbones = nn.ModuleList(backbones)
        self.heads = nn.ModuleList(heads)
        self.normalize = normalize
        self.channels_last = channels_last
        self.learners, self.learner_dim = len(heads), dims.pop()
        self.embedding_dim = self.learners * self.learner_dim

    @property
    def shared_backbone(self) -> bool:
        return len(self.backbones) == 1 and self.learners > 1

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4:
            raise ValueError(
                f"LearnerEnsemble expects a batch of images (B, C, H, W); got shape {tuple(images.shape)}."
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if len(self.backbones) == 1:
            features = self.backbones[0](images)
            outputs = [head(features) for head in self.heads]
        else:
            outputs = [head(backbone(images)) for backbone, head in zip(self.backbones, self.heads)]
        if self.normalize or not self.training:
            outputs = [F.normalize(z, dim=1) for z in outputs]
        return torch.cat(outputs, dim=1)


def split_learners(embeddings: Tensor, learners: int) -> list[Tensor]:
    """The ``learners`` blocks ``(N, D)`` of concatenated embeddings ``(N, L D)``."""
    if embeddings.dim() != 2 or embeddings.shape[1] % learners:
        raise ValueError(
            f"Cannot split embeddings of shape {tuple(embeddings.shape)} into {learners} learners of equal size; "
            "pass the (N, L*D) output of the ensemble and its number of learners."
        )
    return list(embeddings.split(embeddings.shape[1] // learners, dim=1))


def concatenate_learners(blocks: list[Tensor]) -> Tensor:
    """DREML's test embedding: the learners' outputs, each L2-normalised, concatenated ``(N, L D)``."""
    return torch.cat([F.normalize(block, dim=1) for block in blocks], dim=1)


def build_ensemble(
    backbone: str = "small_cnn",
    *,
    learners: int,
    embedding_dim: int = 12,
    shared_backbone: bool = True,
    pooling: str = "avg",
    normalize: bool = True,
    pretrained: bool = False,
    channels_last: bool = False,
    backbone_kwargs: dict[str, Any] | None = None,
) -> LearnerEnsemble:
    """``learners`` heads of ``embedding_dim`` outputs each on one backbone (``shared_backbone``) or on
    ``learners`` independently initialised ones (each ImageNet-initialised when ``pretrained``, as released).

    The modules are drawn learner by learner from torch's generator, so the first ``l`` learners of an ensemble
    start from the same weights whatever ``learners`` is; with independent backbones, a loss that is a sum of
    per-learner terms (``meta_class_softmax``) and the same batches, they also train exactly as an ensemble of ``l``.
    """
    if isinstance(learners, bool) or not isinstance(learners, int) or learners < 1:
        raise ValueError(f"learners must be a positive integer; got {learners!r}.")
    nets: list[nn.Module] = []
    heads: list[EmbeddingHead] = []
    for _ in range(learners):  # learner by learner: learner l starts from the same weights for every L
        if not nets or not shared_backbone:
            nets.append(build_backbone(backbone, pretrained=pretrained, **(backbone_kwargs or {})))
        heads.append(EmbeddingHead(nets[0].out_channels, embedding_dim=embedding_dim, pooling=pooling, normalize=False))
    model = LearnerEnsemble(nets, heads, normalize=normalize, channels_last=channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
