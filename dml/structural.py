"""DIML's structural similarity: an optimal-transport matching between the parts of two images.

Zhao, Rao, Wang, Lu & Zhou, "Towards Interpretable Deep Metric Learning with Structural Matching", ICCV 2021
(arXiv:2108.05889; released code github.com/wl-zhao/DIML, ``utilities/diml.py``). Image ``x`` has unit local
embeddings :math:`z^x_1, \\dots, z^x_R` (the grid cells of :func:`dml.models.local_embeddings`) and the unit global
embedding :math:`\\bar g^x`; with :math:`s_{ij} = z^{x\\top}_i z^y_j` and the cost :math:`c_{ij} = 1 - s_{ij}`,

.. math::
   u_i = \\frac{[z^{x\\top}_i \\bar g^y]_+}{\\sum_k [z^{x\\top}_k \\bar g^y]_+ + 10^{-5}}, \\quad
   v_j = \\frac{[z^{y\\top}_j \\bar g^x]_+}{\\sum_k [z^{y\\top}_k \\bar g^x]_+ + 10^{-5}}, \\quad
   S_\\text{struct}(x, y) = \\sum_{ij} T^*_{ij} s_{ij},

:math:`T^*` the entropic transport plan between :math:`u` and :math:`v` (:func:`dml.sinkhorn.sinkhorn`). The
*cross-correlation* marginals weight each part of one image by how well it matches the other image as a whole;
``marginals="uniform"`` gives every part :math:`1/R` (the release's ``--use_uniform``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.sinkhorn import EPSILON, ITERATIONS, RELEASED_TOL, sinkhorn
from dml.utils.checks import check_choice

MARGINALS = ("cross-correlation", "uniform")


def cross_correlation_marginals(local: Tensor, other_global: Tensor) -> Tensor:
    """``(P, R)`` masses of the ``R`` parts of ``local (P, R, D)`` against the paired ``other_global (P, D)``."""
    weight = torch.einsum("prd,pd->pr", local, other_global).clamp_min(0.0)
    return weight / (weight.sum(dim=1, keepdim=True) + 1e-5)


def structural_similarity(
    local_x: Tensor,
    global_x: Tensor,
    local_y: Tensor,
    global_y: Tensor,
    *,
    marginals: str = "cross-correlation",
    epsilon: float = EPSILON,
    iterations: int = ITERATIONS,
    tol: float = RELEASED_TOL,
    return_plan: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """``S_struct`` of ``P`` pairs, row ``p`` of the ``x`` tensors against row ``p`` of the ``y`` tensors.

    Args:
        local_x, local_y: ``(P, R, D)`` unit local embeddings. global_x, global_y: ``(P, D)`` unit embeddings.
        marginals: ``"cross-correlation"`` (DIML's) or ``"uniform"``.
        epsilon, iterations, tol: Sinkhorn's settings (DIML's released ones by default).
        return_plan: Also return the plans ``T (P, R, R)`` and the part similarities ``s (P, R, R)``.

    Returns ``S_struct (P,)`` (and ``T``, ``s``). No gradient flows through ``T``'s computation when the inputs
    need none; the DIML training losses detach ``T`` explicitly.
    """
    check_choice(marginals, MARGINALS, name="marginals")
    if local_x.dim() != 3 or local_x.shape[0] != local_y.shape[0] or local_x.shape[2] != local_y.shape[2]:
        raise ValueError(
            f"local_x and local_y must be (P, R, D) with the same P and D; got {tuple(local_x.shape)} and "
            f"{tuple(local_y.shape)}."
        )
    s = local_x @ local_y.transpose(1, 2)
    if marginals == "uniform":
        u = torch.full(s.shape[:2], 1.0 / s.shape[1], dtype=s.dtype, device=s.device)
        v = torch.full((s.shape[0], s.shape[2]), 1.0 / s.shape[2], dtype=s.dtype, device=s.device)
    else:
        u = cross_correlation_marginals(local_x, global_y)
        v = cross_correlation_marginals(local_y, global_x)
    plan = sinkhorn(1.0 - s, u, v, epsilon=epsilon, iterations=iterations, tol=tol)
    score = (plan * s).sum(dim=(1, 2))
    return (score, plan, s) if return_plan else score
