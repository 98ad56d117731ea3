"""Proxy-based losses: one learnable vector (a *proxy*) per training class; embeddings are compared with proxies.

:class:`ProxyLoss` holds the proxies as an ``nn.Parameter`` of shape ``(num_classes, embedding_dim)``. Its
``compute`` L2-normalises embeddings and proxies, forms the (N, C) embedding–proxy cosine similarities
``s[i, c] = f_i . p_c / ||p_c||`` and calls ``from_similarity(sim_to_proxies, labels)``: like the pair losses of
:class:`~dml.losses.base.PairLoss`, a proxy loss sees the embeddings only through these similarities, so its
gradient is a weighted sum of proxy directions with weights ``dL/ds``.

**Labels are proxy rows.** Label ``y`` selects proxy row ``y``, so labels must be integers in ``0 .. num_classes-1``.
Datasets keep their original class ids (CUB's training classes are 1..100, SOP's ids are large and sparse); map
them once over the *training set* and keep the mapping for the whole run::

    classes, train_labels = torch.unique(torch.as_tensor(train_set.labels), return_inverse=True)
    loss_fn = build("proxy_anchor", num_classes=len(classes), embedding_dim=512)

A label outside the range raises ``ValueError`` naming the range and this recipe.

Losses here: ``proxy_nca`` (Movshovitz-Attias et al. 2017; ProxyNCA++, Teh et al. 2020) and ``proxy_anchor``
(Kim et al. 2020); ``normalized_softmax`` (Zhai & Wu 2019) lives in :mod:`dml.losses.normalized_softmax`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.losses.base import MetricLoss, masked_logsumexp
from dml.losses.registry import register

_REMAP_HINT = (
    "Map the dataset's class ids to 0..C-1 once over the training set, e.g. "
    "`classes, labels = torch.unique(torch.as_tensor(train_set.labels), return_inverse=True)`, and pass "
    "num_classes=len(classes)."
)


def check_class_indices(labels: Tensor, num_classes: int, owner: str) -> None:
    """Raise ``ValueError`` unless every label is a row index ``0 .. num_classes-1``; ``owner`` names the loss."""
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{owner} indexes one learnable vector per class by label, so labels must lie in "
            f"0..{num_classes - 1} (num_classes={num_classes}); got labels in [{low}, {high}]. "
            f"{_REMAP_HINT}"
        )


def _check_sizes(name: str, num_classes: int | None, embedding_dim: int | None) -> tuple[int, int]:
    if num_classes is None or embedding_dim is None:
        raise ValueError(
            f"The {name} loss learns one proxy per training class and needs num_classes= (the number "
            f"of training classes) and embedding_dim= (the model's output size); got "
            f"num_classes={num_classes}, embedding_dim={embedding_dim}. In a config set "
            "loss.kwargs.num_classes and loss.kwargs.embedding_dim."
        )
    for key, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer for the {name} loss; got {value!r}.")
    return num_classes, embedding_dim


class ProxyLoss(MetricLoss):
    """Base class: learnable proxies ``(num_classes, embedding_dim)``; subclasses implement ``from_similarity``.

    Args:
        name: The loss's registry name, used in error messages.
        num_classes: Number of training classes (proxy rows). Labels must lie in ``0 .. num_classes-1``.
        embedding_dim: Embedding size ``D``.
        init: In-place initialiser applied to the ``(num_classes, embedding_dim)`` proxy tensor.
    """

    def __init__(
        self, name: str, num_classes: int | None, embedding_dim: int | None, init: Callable[[Tensor], object]
    ) -> None:
        super().__init__()
        self.loss_name = name
        self.num_classes, self.embedding_dim = _check_sizes(name, num_classes, embedding_dim)
        self.proxies = nn.Parameter(torch.empty(self.num_classes, self.embedding_dim))
        with torch.no_grad():
            init(self.proxies)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"The {self.loss_name} loss was built with embedding_dim={self.embedding_dim} but the "
                f"embeddings have {embeddings.shape[1]} columns; set embedding_dim to the model's "
                "output size."
            )
        check_class_indices(labels, self.num_classes, f"The {self.loss_name} loss")
        return self.from_similarity(self.similarity_to_proxies(embeddings), labels)

    def similarity_to_proxies(self, embeddings: Tensor) -> Tensor:
        """Cosine similarities ``(N, C)`` between the embeddings and the proxies, in the embeddings' dtype."""
        proxies = self.proxies.to(embeddings.dtype)
        # Dividing the (N, C) product by both norms is cheaper than normalising (N, D) and (C, D) when C < D.
        norms = embeddings.norm(dim=1).clamp_min(1e-12)[:, None] * proxies.norm(dim=1).clamp_min(1e-12)[None, :]
        return (embeddings @ proxies.t()) / norms

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement from_similarity(sim (N, C), labels (N,)).")


def _scaled_normal(std: float) -> Callable[[Tensor], object]:
    return lambda tensor: tensor.normal_(0.0, std)


@register("proxy_nca")
class ProxyNCALoss(ProxyLoss):
    """ProxyNCA / ProxyNCA++: softmax over the negative squared distances to all proxies.

    Movshovitz-Attias, Toshev, Leung, Ioffe & Singh, "No Fuss Distance Metric Learning using Proxies", ICCV 2017,
    arXiv:1703.07464; Teh, DeVries & Taylor, "ProxyNCA++: Revisiting and Revitalizing Proxy Neighborhood Component
    Analysis", ECCV 2020, arXiv:2004.01113. With unit embedding :math:`f`, unit proxies :math:`\\hat p_c`,
    :math:`d_c = \\lVert f - \\hat p_c \\rVert^2 = 2 - 2 s_c` and temperature :math:`T`:

    .. math::  \\ell = -\\log \\frac{e^{-d_y / T}}{\\sum_{c \\in A} e^{-d_c / T}}
                    = -\\log \\operatorname{softmax}_c\\big(2 s_c / T\\big)_y ,
               \\qquad \\mathcal L = \\operatorname{mean}_i\\, \\ell_i

    ``include_positive=True`` (default) is ProxyNCA++'s "proxy assignment probability": :math:`A` holds every proxy,
    the positive included, so :math:`\\ell \\ge 0`. ``include_positive=False`` is the original ProxyNCA, whose
    denominator runs over the other classes only (the loss can then be negative).

    Where the sources differ, and what we follow: the ProxyNCA++ code (``loss.py::ProxyNCA_prob``) scales embeddings
    and proxies by 3 before the squared distance, i.e. :math:`T = 1/9`, our default; pytorch-metric-learning's
    ``ProxyNCALoss(softmax_scale=k)`` (squared L2 on normalised vectors, positive included) equals ours with
    ``temperature=1/k`` and defaults to ``k = 1``. ProxyNCA++'s other ingredients (max pooling, layer norm, a proxy
    learning rate 10^5 times the backbone's) belong to the model and the optimiser, not the loss. Proxies start as
    N(0, 1/64) entries, as ``torch.randn(C, D) / 8`` in the ProxyNCA++ code.
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        temperature: float = 1 / 9,
        include_positive: bool = True,
    ) -> None:
        super().__init__("proxy_nca", num_classes, embedding_dim, _scaled_normal(1 / 8))
        if temperature <= 0:
            raise ValueError(f"The proxy_nca temperature must be > 0; got {temperature}.")
        if not include_positive and self.num_classes < 2:
            raise ValueError(
                "include_positive=False (original ProxyNCA) needs num_classes >= 2: its denominator "
                "runs over the other classes."
            )
        self.temperature = temperature
        self.include_positive = include_positive

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        logits = 2.0 * sim / self.temperature  # -d/T up to the constant -2/T, which cancels in the softmax
        if self.include_positive:
            return F.cross_entropy(logits, labels)
        positive = F.one_hot(labels, self.num_classes).bool()
        others = masked_logsumexp(logits, ~positive, dim=1)
        return (others - logits.gather(1, labels[:, None]).squeeze(1)).mean()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, "
            f"temperature={self.temperature}, include_positive={self.include_positive}"
        )


@register("proxy_anchor")
class ProxyAnchorLoss(ProxyLoss):
    """Proxy-Anchor loss: each proxy is an anchor against all batch embeddings.

    Kim, Kim, Cho & Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020, arXiv:2003.13911. With
    :math:`P` all proxies, :math:`P^+` those with at least one positive in the batch, :math:`X_p^+` / :math:`X_p^-`
    the batch embeddings of / not of proxy ``p``'s class, scale :math:`\\alpha` and margin :math:`\\delta`:

    .. math::
        \\mathcal L = \\frac{1}{|P^+|} \\sum_{p \\in P^+}
                      \\log\\Big(1 + \\sum_{x \\in X_p^+} e^{-\\alpha (s(x, p) - \\delta)}\\Big)
                  + \\frac{1}{|P|} \\sum_{p \\in P}
                      \\log\\Big(1 + \\sum_{x \\in X_p^-} e^{\\alpha (s(x, p) + \\delta)}\\Big)

    The released code (``code/losses.py::Proxy_Anchor``), the paper and pytorch-metric-learning's ``ProxyAnchorLoss``
    agree on this form, on :math:`\\alpha = 32, \\delta = 0.1`, on dividing the negative term by the number of all
    classes, and on initialising the proxies with ``kaiming_normal_(mode="fan_out")``, which we follow. The released
    recipe trains the proxies with a learning rate 100 times the backbone's.
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        alpha: float = 32.0,
        margin: float = 0.1,
    ) -> None:
        super().__init__(
            "proxy_anchor", num_classes, embedding_dim, lambda tensor: nn.init.kaiming_normal_(tensor, mode="fan_out")
        )
        if alpha <= 0:
            raise ValueError(f"The proxy_anchor scale alpha must be > 0; got {alpha}.")
        self.alpha = alpha
        self.margin = margin

    def from_similarity(self, sim: Tensor, labels: Tensor) -> Tensor:
        positive = F.one_hot(labels, self.num_classes).bool()
        pos_terms = masked_logsumexp(-self.alpha * (sim - self.margin), positive, dim=0, add_one=True)
        neg_terms = masked_logsumexp(self.alpha * (sim + self.margin), ~positive, dim=0, add_one=True)
        with_positive = max(int(positive.any(dim=0).sum()), 1)
        return pos_terms.sum() / with_positive + neg_terms.sum() / self.num_classes

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, alpha={self.alpha}, "
            f"margin={self.margin}"
        )
