"""Gradient surgery: train with explicitly constructed pair weights instead of a closed-form loss.

Xuan & Pless, "Dissecting the impact of different loss functions with gradient surgery", arXiv:2201.11307, 2022.
:mod:`dml.gradients.decompose` shows that a pair loss acts only through the weights ``W = dL/dS``; here the caller
chooses the three ingredients of the update directly:

**Pair weights.** ``w_ap >= 0`` pulls anchor and positive together, ``w_an >= 0`` pushes anchor and negative apart.
They are stored as one matrix ``W = w_an - w_ap`` (the sign convention of ``dL/dS``), zero outside the pairs.
Weights are constants of the update: no gradient flows through them.

**Direction** (the gradient with respect to the unit vectors ``f``, before the normalisation), with
``W~ = W + W^T``:

* ``"cosine"``: the gradient of ``sum_ij W_ij S_ij``, i.e. ``g_i = sum_j W~_ij f_j``. The anchor moves along
  ``+f_p`` (pull) and ``-f_n`` (push), the positive along ``+f_a``, the negative along ``-f_a``. With
  ``W = dL/dS`` this is the chain rule of any cosine loss.
* ``"euclidean"``: the gradient of ``-sum_ij W_ij D_ij`` with ``D_ij = ||f_i - f_j||``, i.e.
  ``g_i = sum_j W~_ij (f_j - f_i) / D_ij``. Each pair now acts along the *unit* vector joining the two points:
  the anchor moves along ``(f_p - f_a)/D_ap`` towards its positive and along ``(f_a - f_n)/D_an`` away from its
  negative; the positive along ``(f_a - f_p)/D_ap``; the negative along ``(f_n - f_a)/D_an``. A weight is then
  "minus dL/dD": a Euclidean loss ``L(D)`` is reproduced by ``W = -dL/dD``. Since ``f_j - f_i`` and ``f_j``
  differ only by the radial ``f_i``, after the projection below the Euclidean direction equals the cosine one
  with weights ``W_ij / D_ij``: this is the "a Euclidean loss rescales the pair weights by 1/D" of the paper
  (on the sphere ``dD/dS = -1/D``).

**Projection.** The exact chain rule through ``f = x/||x||`` maps a gradient ``g`` on ``f`` to
``(1/||x||)(I - f f^T) g`` on ``x``: the radial part is removed and the rest divided by the norm.
``projection=False`` keeps the radial part: the gradient on ``x`` is ``g / ||x||``. We keep the ``1/||x||`` on
purpose: the two variants then differ *only* by the radial component ``(f.g) f / ||x||``, so comparing them
isolates the effect of the projection, not of the step size; in autograd terms the norm is treated as a constant
(``f = x / ||x||.detach()``). If the model itself L2-normalises its output, its own normalisation layer projects
again during back-propagation and ``projection=False`` changes nothing: drop the model's normalisation to study it.

The update is applied through a scalar *surrogate* (:func:`surgery_loss`) whose autograd gradient is exactly the
constructed one, so any optimiser and model work unchanged; its value ``sum W S`` (or ``-sum W D``) is a linear
proxy, not a loss value to monitor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.gradients.decompose import loss_and_pair_weights
from dml.losses.base import PairLoss
from dml.similarity import cosine_similarity_matrix, euclidean_from_similarity, pair_masks
from dml.utils import check_embeddings_and_labels
from dml.utils.checks import check_choice

__all__ = [
    "DIRECTIONS",
    "ExplicitGradientLoss",
    "LossWeights",
    "loss_weights",
    "surgery_gradient",
    "surgery_loss",
    "weights_from_pull_push",
]

DIRECTIONS = ("cosine", "euclidean")
WeightRule = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
_EPS = 1e-12


def _check_direction(direction: str) -> str:
    check_choice(direction, DIRECTIONS, name="direction")
    return direction


def _check_weights(embeddings: Tensor, weights: Tensor) -> None:
    if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
        raise ValueError(f"embeddings must be a (N, D) tensor; got {getattr(embeddings, 'shape', type(embeddings))}.")
    n = embeddings.shape[0]
    if not isinstance(weights, Tensor) or tuple(weights.shape) != (n, n):
        raise ValueError(
            f"weights must be an (N, N) = ({n}, {n}) tensor of pair weights dL/dS matching the "
            f"{n} embeddings; got {getattr(weights, 'shape', type(weights))}. Build it with "
            "weights_from_pull_push(labels, w_ap, w_an)."
        )
    if not bool(embeddings.detach().isfinite().all()) or not bool(weights.detach().isfinite().all()):
        raise ValueError(
            "embeddings and weights must be finite; found NaN or inf. Lower the learning rate or check "
            "the weight rule for a division by zero."
        )


def weights_from_pull_push(labels: Tensor, w_ap: Tensor | float, w_an: Tensor | float) -> Tensor:
    """``W = w_an * [negative pair] - w_ap * [positive pair]``: pull and push weights as one ``dL/dS`` matrix.

    ``w_ap`` and ``w_an`` are (N, N) tensors or scalars; entries outside their pair type are ignored.
    """
    labels = torch.as_tensor(labels)
    positive, negative = pair_masks(labels)
    dtype = next((w.dtype for w in (w_ap, w_an) if isinstance(w, Tensor)), torch.get_default_dtype())
    w_ap = torch.as_tensor(w_ap, dtype=dtype, device=labels.device)
    w_an = torch.as_tensor(w_an, dtype=dtype, device=labels.device)
    return (w_an * negative - w_ap * positive).to(dtype)


def _directional(unit: Tensor, weights: Tensor, direction: str) -> Tensor:
    """The gradient with respect to the unit vectors ``f`` (before any projection)."""
    sym = weights + weights.t()
    if direction == "cosine":
        return sym @ unit
    scaled = sym / euclidean_from_similarity(unit @ unit.t(), _EPS)
    scaled.fill_diagonal_(0)  # f_i - f_i = 0: no self term
    return scaled @ unit - scaled.sum(dim=1, keepdim=True) * unit


def surgery_gradient(
    embeddings: Tensor, weights: Tensor, *, direction: str = "cosine", projection: bool = True
) -> Tensor:
    """The constructed gradient on the embeddings ``x`` (N, D), computed in closed form (no autograd).

    ``weights`` is ``W = dL/dS`` (N, N), e.g. from :func:`weights_from_pull_push` or
    :attr:`dml.gradients.Decomposition.weights`. With ``direction="cosine", projection=True`` and a loss's own
    weights this is that loss's exact gradient.
    """
    _check_direction(direction)
    _check_weights(embeddings, weights)
    x = embeddings.detach()
    norms = x.norm(dim=1, keepdim=True)
    unit = x / norms
    grad_f = _directional(unit, weights.detach().to(x.dtype), direction)
    if projection:
        grad_f = grad_f - (grad_f * unit).sum(dim=1, keepdim=True) * unit
    return grad_f / norms


def surgery_loss(embeddings: Tensor, weights: Tensor, *, direction: str = "cosine", projection: bool = True) -> Tensor:
    """A scalar whose gradient with respect to ``embeddings`` is :func:`surgery_gradient`; call ``.backward()``.

    ``weights`` are treated as constants (detached). The value is the linear surrogate ``sum W S`` (cosine) or
    ``-sum W D`` (Euclidean), not a loss to monitor.
    """
    _check_direction(direction)
    _check_weights(embeddings, weights)
    weights = weights.detach().to(embeddings.dtype)
    if projection:
        unit = F.normalize(embeddings, p=2, dim=1)
    else:
        unit = embeddings / embeddings.norm(dim=1, keepdim=True).detach()
    if direction == "cosine":
        return (weights * (unit @ unit.t())).sum()
    sq_norms = (unit * unit).sum(dim=1)
    squared = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (unit @ unit.t())).clamp_min(_EPS)
    off_diagonal = ~torch.eye(len(unit), dtype=torch.bool, device=unit.device)
    return -(weights * squared.sqrt() * off_diagonal).sum()


class LossWeights:
    """The weight rule of a pair loss: ``(w_ap, w_an) = (-dL/dS, dL/dS)`` at the batch's similarity matrix."""

    def __init__(self, loss: PairLoss) -> None:
        if not isinstance(loss, PairLoss):
            raise TypeError(f"loss_weights needs a dml.losses.PairLoss; got {type(loss).__name__}.")
        self.loss = loss
        self.__name__ = f"weights_of_{type(loss).__name__}"

    def observe(self, embeddings: Tensor) -> None:
        """Show the embeddings to the loss's miner, as the loss's own ``compute`` does."""
        self.loss.observe(embeddings)

    def __call__(self, sim: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        _, weights = loss_and_pair_weights(self.loss, sim, labels)
        return -weights, weights


def loss_weights(loss: PairLoss) -> LossWeights:
    """A weight rule returning a pair loss's own ``(w_ap, w_an)``: surgery with it reproduces the loss's step."""
    return LossWeights(loss)


class ExplicitGradientLoss(nn.Module):
    """Train with constructed pair weights: ``loss_fn(embeddings, labels).backward()`` applies the surgery update.

    Args:
        rule: ``rule(S, labels) -> (w_ap, w_an)``, two (N, N) tensors (or scalars) computed from the detached
            similarity matrix; only their entries on positive / negative pairs are used.
            :func:`loss_weights` turns any :class:`~dml.losses.PairLoss` into such a rule.
        direction: ``"cosine"`` or ``"euclidean"`` (see the module docstring).
        projection: keep the tangent projection of the L2 normalisation (exact chain rule) or drop it.
    """

    def __init__(self, rule: WeightRule, *, direction: str = "cosine", projection: bool = True) -> None:
        super().__init__()
        if not callable(rule):
            raise TypeError(f"rule must be callable as rule(S, labels) -> (w_ap, w_an); got {type(rule).__name__}.")
        self.rule = rule
        self.direction = _check_direction(direction)
        self.projection = bool(projection)

    def forward(self, embeddings: Tensor, labels: Any) -> Tensor:
        labels = torch.as_tensor(labels, device=embeddings.device).long()
        check_embeddings_and_labels(embeddings, labels)
        with torch.no_grad():
            sim = cosine_similarity_matrix(embeddings.detach())
        if hasattr(self.rule, "observe"):
            self.rule.observe(embeddings)
        w_ap, w_an = self.rule(sim, labels)
        weights = weights_from_pull_push(labels, w_ap, w_an).to(embeddings.dtype)
        return surgery_loss(embeddings, weights, direction=self.direction, projection=self.projection)

    def extra_repr(self) -> str:
        return (
            f"rule={getattr(self.rule, '__name__', self.rule)}, direction={self.direction!r}, "
            f"projection={self.projection}"
        )
