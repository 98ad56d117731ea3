"""Pair-wise losses through their gradients: pair-weight decomposition, gradient surgery, triplet-space simulation.

* :func:`decompose` — the pair weights ``dL/dS`` of any :class:`~dml.losses.PairLoss` and the gradient rebuilt
  from them (Xuan & Pless, arXiv:2201.11307, 2022).
* :func:`surgery_gradient`, :func:`surgery_loss`, :class:`ExplicitGradientLoss` — updates built from chosen pull /
  push weights, a cosine or Euclidean direction, with or without the normalisation's tangent projection.
* :func:`build_update`, :class:`GradientSurgeryLoss` (loss name ``gradient_surgery``) — an update composed of
  gradient elements (a triplet weight, pull / push pair weights, a direction, the projection on or off), after
  Xuan & Pless 2022 and the GOAL framework of Xuan & Chen, WACV 2023 (:mod:`dml.gradients.elements`).
* :mod:`dml.gradients.simulation` — one step of a single triplet on the sphere, the entanglement term and the
  triplet-space vector fields of Xuan et al., "Hard negative examples are hard, but useful", ECCV 2020.
"""

from dml.gradients.decompose import Decomposition, decompose, gradient_from_weights
from dml.gradients.elements import (
    MINING,
    PAIR_WEIGHTS,
    REDUCTIONS,
    TRIPLET_WEIGHTS,
    GradientSurgeryLoss,
    build_update,
    curl,
)
from dml.gradients.simulation import (
    TripletField,
    UpdateRule,
    collapse_share,
    entangle,
    euclidean_triplet_rule,
    nca_rule,
    notebook_rule,
    one_step,
    sct_rule,
    second_order_nca_rule,
    triplet_field,
    triplet_trajectory,
    triplet_vectors,
)
from dml.gradients.surgery import (
    DIRECTIONS,
    ExplicitGradientLoss,
    LossWeights,
    loss_weights,
    surgery_gradient,
    surgery_loss,
    weights_from_pull_push,
)

__all__ = [
    "DIRECTIONS",
    "MINING",
    "PAIR_WEIGHTS",
    "REDUCTIONS",
    "TRIPLET_WEIGHTS",
    "Decomposition",
    "ExplicitGradientLoss",
    "GradientSurgeryLoss",
    "LossWeights",
    "TripletField",
    "UpdateRule",
    "build_update",
    "collapse_share",
    "curl",
    "decompose",
    "entangle",
    "euclidean_triplet_rule",
    "gradient_from_weights",
    "loss_weights",
    "nca_rule",
    "notebook_rule",
    "one_step",
    "sct_rule",
    "second_order_nca_rule",
    "surgery_gradient",
    "surgery_loss",
    "triplet_field",
    "triplet_trajectory",
    "triplet_vectors",
    "weights_from_pull_push",
]
