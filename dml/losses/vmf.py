"""The von Mises–Fisher (vMF) loss: a cosine softmax over class mean directions re-estimated from the data.

Zhe, Chen & Yan, "Directional statistics-based deep metric learning for image classification and retrieval",
Pattern Recognition 93:113–123, 2019 (arXiv:1802.09662); no released code is known. Each class :math:`c` is a vMF
distribution on the unit sphere with unit mean direction :math:`\\mu_c` and a shared concentration :math:`\\kappa`;
the normalising constant :math:`C_p(\\kappa)` cancels in the class posterior, and the loss is its negative log:

.. math::  p(c \\mid f) = \\frac{e^{\\kappa \\mu_c^\\top f}}{\\sum_j e^{\\kappa \\mu_j^\\top f}}, \\qquad
           \\mathcal L = -\\operatorname{mean}_i \\log p(y_i \\mid f_i)

with :math:`f` the unit embedding. With the same directions this is normalized softmax
(:class:`~dml.losses.normalized_softmax.NormalizedSoftmaxLoss`) at temperature :math:`\\sigma = 1/\\kappa`. What
differs is how the directions are obtained: the journal abstract describes "an alternative learning algorithm by
periodically updating the class centers", so the :math:`\\mu_c` are **not** SGD parameters. The paper's estimator
and schedule are not established from the sources this course has; we take the maximum-likelihood vMF mean
direction, the normalised class sum :math:`\\mu_c = \\sum_{i: y_i = c} f_i / \\lVert \\sum_{i: y_i = c} f_i \\rVert`,
and offer two ways to compute it (``estimator``):

* ``"full"`` (default): every ``update_every`` epochs (``update_unit="epoch"``) or steps (``"step"``) the current
  network embeds the whole training split without gradient and without augmentation, and the directions are set to
  its normalised class sums. The trainer does this through its hooks (:class:`dml.train.class_means.ClassMeans`,
  attached automatically by :func:`dml.train.train` for this loss); a loss used outside the trainer gets its
  directions from :meth:`VMFLoss.set_means`.
* ``"running"``: inside the loss, from the batches alone: the detached unit embeddings of the last
  ``update_every`` training steps are summed per class, and every ``update_every`` steps each seen class moves to
  :math:`\\mu_c \\leftarrow \\operatorname{normalize}(m\\,\\mu_c + (1 - m)\\,\\hat s_c)`, :math:`\\hat s_c` the
  normalised sum and :math:`m` = ``momentum`` (a class seen for the first time takes :math:`\\hat s_c`). The loss
  of a step uses the directions from before the step's update. Steps only (``update_unit="step"``).

Args:
    num_classes, embedding_dim: Number of training classes (labels must be ``0 .. num_classes-1``) and ``D``; the
        trainer fills them in.
    kappa: The concentration :math:`\\kappa > 0` (initial value when learned).
    learn_kappa: Learn :math:`\\log \\kappa` by SGD with the network (it gets the loss-parameter learning rate).
    estimator: ``"full"`` or ``"running"`` (above).
    update_every: Epochs or steps between two updates of the directions.
    update_unit: ``"epoch"`` or ``"step"``.
    momentum: :math:`m` of the running average, in ``[0, 1)``.

Before their first update the directions are random unit vectors (N(0, 1) rows, normalised).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.losses.proxy import ProxyLoss, check_class_indices
from dml.losses.registry import register

ESTIMATORS = ("full", "running")
UNITS = ("epoch", "step")


def class_directions(embeddings: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """``(directions (C, D), present (C,))``: the normalised class sums of the unit ``embeddings``; rows of absent
    classes are zero and ``present`` is ``False`` there."""
    unit = F.normalize(embeddings.detach().float(), dim=1)
    sums = torch.zeros(num_classes, unit.shape[1], dtype=unit.dtype, device=unit.device)
    sums.index_add_(0, labels.to(unit.device), unit)
    present = torch.bincount(labels.to(unit.device), minlength=num_classes) > 0
    return F.normalize(sums, dim=1), present


@register("vmf")
class VMFLoss(ProxyLoss):
    """The vMF loss (Zhe, Chen & Yan 2019); see the module docstring for the equation and the two estimators."""

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        kappa: float = 16.0,
        learn_kappa: bool = False,
        estimator: str = "full",
        update_every: int = 1,
        update_unit: str = "epoch",
        momentum: float = 0.9,
    ) -> None:
        super().__init__("vmf", num_classes, embedding_dim, lambda tensor: tensor.normal_())
        _check(kappa=kappa, estimator=estimator, update_every=update_every, update_unit=update_unit, momentum=momentum)
        self.proxies.requires_grad_(False)  # the mean directions are estimated from the data, not by SGD
        with torch.no_grad():
            self.proxies.copy_(F.normalize(self.proxies, dim=1))
        log_kappa = torch.tensor(math.log(kappa))
        if learn_kappa:
            self.log_kappa = nn.Parameter(log_kappa)
        else:
            self.register_buffer("log_kappa", log_kappa)
        self.learn_kappa, self.estimator = learn_kappa, estimator
        self.update_every, self.update_unit, self.momentum = int(update_every), update_unit, momentum
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("sums", torch.zeros(self.num_classes, self.embedding_dim))
        self.register_buffer("seen", torch.zeros(self.num_classes, dtype=torch.bool))

    @property
    def kappa(self) -> float:
        return float(self.log_kappa.exp())

    def similarity_to_proxies(self, embeddings: Tensor) -> Tensor:
        """Cosine similarities to a snapshot of the directions, which the running update may then change."""
        unit = F.normalize(self.proxies.detach().clone(), dim=1).to(embeddings.dtype)
        return (embeddings @ unit.t()) / embeddings.norm(dim=1).clamp_min(1e-12)[:, None]

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(self.log_kappa.exp() * sim, labels)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        loss = super().compute(embeddings, labels)
        if self.training and self.estimator == "running" and torch.is_grad_enabled():
            self._accumulate(embeddings, labels)
        return loss

    @torch.no_grad()
    def set_means(self, directions: Tensor, present: Tensor | None = None) -> None:
        """Set the mean directions (normalised) of the classes in ``present`` (default: all)."""
        if directions.shape != self.proxies.shape:
            raise ValueError(
                f"set_means needs directions of shape {tuple(self.proxies.shape)} (num_classes, embedding_dim); "
                f"got {tuple(directions.shape)}."
            )
        present = torch.ones(self.num_classes, dtype=torch.bool) if present is None else present
        present = present.to(self.proxies.device)
        unit = F.normalize(directions.to(self.proxies), dim=1)
        self.proxies[present] = unit[present]

    @torch.no_grad()
    def update_from_data(self, embeddings: Tensor, labels: Tensor) -> None:
        """The ``"full"`` update: the directions become the normalised class sums of ``embeddings`` (labels
        ``0 .. num_classes-1``); a class absent from ``labels`` keeps its direction."""
        check_class_indices(labels, self.num_classes, "The vmf loss")
        self.set_means(*class_directions(embeddings, labels, self.num_classes))

    @torch.no_grad()
    def _accumulate(self, embeddings: Tensor, labels: Tensor) -> None:
        """The ``"running"`` update: add the batch's class sums; every ``update_every`` steps blend them in."""
        unit = F.normalize(embeddings.detach().float(), dim=1)
        self.sums.index_add_(0, labels, unit.to(self.sums))
        self.steps += 1
        if int(self.steps) % self.update_every:
            return
        observed = self.sums.norm(dim=1) > 0
        fresh = F.normalize(self.sums, dim=1)
        blended = F.normalize(self.momentum * self.proxies + (1 - self.momentum) * fresh, dim=1)
        new = torch.where(self.seen[:, None], blended, fresh)
        self.proxies[observed] = new[observed]
        self.seen |= observed
        self.sums.zero_()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, kappa={self.kappa:.4g}, "
            f"learn_kappa={self.learn_kappa}, estimator={self.estimator!r}, update_every={self.update_every}, "
            f"update_unit={self.update_unit!r}, momentum={self.momentum}"
        )


def _check(*, kappa: float, estimator: str, update_every: int, update_unit: str, momentum: float) -> None:
    if not kappa > 0 or not math.isfinite(kappa):
        raise ValueError(f"The vmf concentration kappa must be a finite number > 0; got {kappa}.")
    if estimator not in ESTIMATORS:
        raise ValueError(f"vmf estimator must be one of {list(ESTIMATORS)}; got {estimator!r}.")
    if update_unit not in UNITS:
        raise ValueError(f"vmf update_unit must be one of {list(UNITS)}; got {update_unit!r}.")
    if estimator == "running" and update_unit != "step":
        raise ValueError(
            "vmf estimator='running' averages the batches of the last update_every steps, so it needs "
            "update_unit='step'; for updates every few epochs use estimator='full'."
        )
    if isinstance(update_every, bool) or int(update_every) != update_every or update_every < 1:
        raise ValueError(f"vmf update_every must be a positive integer; got {update_every!r}.")
    if not 0 <= momentum < 1:
        raise ValueError(f"vmf momentum must lie in [0, 1); got {momentum}.")
