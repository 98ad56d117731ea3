"""``meta_class_softmax``: DREML's softmax over fixed one-hot proxies of random meta-classes, summed over learners.

Xuan, Souvenir & Pless, "Deep Randomized Ensembles for Metric Learning", ECCV 2018 (arXiv:1808.04469); released
code github.com/littleredxh/DREML (``_code/Loss.py::ProxyStatic`` at 59d8d29, 2018; ``ProxyStaticLoss`` at 24f008b,
2020). The embedding of an image is the concatenation of ``L`` learner outputs :math:`z_l \\in \\mathbb R^D`; learner
:math:`l` classifies the meta-class :math:`m_l(y)` of the image's class :math:`y`
(:func:`dml.data.meta_classes.meta_class_maps`) against the fixed one-hot proxies :math:`e_1, \\dots, e_D` (the
identity matrix, never trained), so its logits are its own coordinates:

.. math::  \\mathcal L = \\sum_{l=1}^{L} \\operatorname{mean}_i
           \\Big[-\\log \\operatorname{softmax}\\big(g(z_{l,i})\\big)_{m_l(y_i)}\\Big],
           \\qquad g(z) = \\begin{cases} z / \\lVert z \\rVert & \\text{variant "2018"} \\\\
                                        z & \\text{variant "2020"} \\end{cases}

The 2018 code L2-normalises the output before the softmax (logits are cosines to the proxies, in [-1, 1], with no
temperature: the loss can never fall below :math:`\\log(1 + (D-1) e^{-1})`); the 2020 code uses the raw logits.
The released code trains each learner on its own; summing the learners' losses gives every learner with its own
backbone exactly its released gradient (with a shared backbone the backbone receives the sum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dml.data.meta_classes import meta_class_maps
from dml.losses.base import MetricLoss
from dml.losses.proxy import check_class_indices
from dml.losses.registry import register
from dml.utils.checks import check_choice

VARIANTS = ("2018", "2020")


@register("meta_class_softmax")
class MetaClassSoftmaxLoss(MetricLoss):
    """Softmax cross-entropy of each learner's ``D`` outputs on its meta-class labels, summed over learners.

    Args:
        num_classes: Training classes C (labels must be class indices ``0..C-1``); ``None`` in a config: the
            training split's count.
        embedding_dim: ``D``, each learner's output size and number of meta-classes; ``None`` in a config:
            ``model.embedding_dim``.
        learners: ``L``; the embeddings must have ``L * D`` columns; ``None`` in a config: ``model.learners``.
        variant: ``"2020"`` (raw logits, the latest released code) or ``"2018"`` (L2-normalised outputs).
        seed: Seed of the class -> meta-class maps (a buffer ``maps``, ``(L, C)``, saved with the checkpoint).
    """

    run_sizes = ("num_classes", "embedding_dim", "learners")  # filled from the run by dml.train.build_loss

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        learners: int | None = None,
        variant: str = "2020",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_classes is None or embedding_dim is None or learners is None:
            raise ValueError(
                "The meta_class_softmax loss needs num_classes= (training classes), embedding_dim= (meta-classes "
                f"D per learner) and learners= (L); got num_classes={num_classes}, embedding_dim={embedding_dim}, "
                f"learners={learners}. In a config they default to the run's sizes (leave them unset)."
            )
        variant = str(variant) if isinstance(variant, int) and not isinstance(variant, bool) else variant
        check_choice(variant, VARIANTS, name="variant")  # an override variant=2018 arrives as an integer
        self.num_classes, self.embedding_dim, self.learners = num_classes, embedding_dim, learners
        self.variant, self.seed = variant, seed
        maps = meta_class_maps(num_classes, learners=learners, meta_classes=embedding_dim, seed=seed)
        self.register_buffer("maps", maps)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        width = self.learners * self.embedding_dim
        if embeddings.shape[1] != width:
            raise ValueError(
                f"The meta_class_softmax loss was built for {self.learners} learners of {self.embedding_dim} "
                f"outputs ({width} columns) but the embeddings have {embeddings.shape[1]}; set model.learners and "
                "model.embedding_dim to the loss's learners and embedding_dim."
            )
        check_class_indices(labels, self.num_classes, "The meta_class_softmax loss")
        logits = embeddings.view(len(embeddings), self.learners, self.embedding_dim)
        if self.variant == "2018":
            logits = F.normalize(logits, dim=2)
        targets = self.maps[:, labels].t()  # (N, L) meta-class of each image in each learner
        per_learner = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=0)
        return per_learner.sum()

    def meta_labels(self, labels: Tensor) -> Tensor:
        """``(N, L)``: the meta-class of each class index in each learner."""
        return self.maps[:, torch.as_tensor(labels, device=self.maps.device)].t()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, learners={self.learners}, "
            f"variant={self.variant!r}, seed={self.seed}"
        )
