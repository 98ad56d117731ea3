"""Entropic optimal transport between two discrete distributions, solved by Sinkhorn's iterations, batched.

Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013. For a cost matrix
:math:`C \\in \\mathbb{R}^{R \\times R'}` and marginals :math:`u` (sums to 1 over rows) and :math:`v` (over columns),

.. math::
   T^* = \\arg\\min_{T \\ge 0,\\ T 1 = u,\\ T^\\top 1 = v} \\langle T, C \\rangle - \\varepsilon H(T),
   \\qquad H(T) = -\\sum_{ij} T_{ij} (\\log T_{ij} - 1),

whose solution is :math:`T^* = \\operatorname{diag}(r)\\, K \\operatorname{diag}(c)` with the Gibbs kernel
:math:`K = e^{-C/\\varepsilon}`; Sinkhorn alternates :math:`r \\leftarrow u / (K c)` and
:math:`c \\leftarrow v / (K^\\top r)` from :math:`r = c = 1`. As :math:`\\varepsilon \\to 0` the plan tends to an
optimal plan of the unregularised problem. For a small :math:`\\varepsilon`, where :math:`e^{-C/\\varepsilon}`
would underflow, the same iterations run in the log domain.

DIML (Zhao et al., ICCV 2021; github.com/wl-zhao/DIML, ``utilities/diml.py``) uses :math:`\\varepsilon = 0.05`, at
most 100 iterations, and stops once the mean absolute change of :math:`r` falls below 0.1 (``tol=0.1``).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: DIML's released settings.
EPSILON = 0.05
ITERATIONS = 100
RELEASED_TOL = 0.1


def sinkhorn(
    cost: Tensor,
    u: Tensor,
    v: Tensor,
    *,
    epsilon: float = EPSILON,
    iterations: int = ITERATIONS,
    tol: float = RELEASED_TOL,
) -> Tensor:
    """Transport plans ``(B, R, R')`` for costs ``(B, R, R')`` and marginals ``u (B, R)``, ``v (B, R')``.

    Args:
        cost: Batched cost matrices (any device; computed there, e.g. on the GPU).
        u, v: Non-negative marginals; rows of ``u`` and ``v`` should have equal sums (1 for probabilities).
        epsilon: Entropic regularisation :math:`\\varepsilon` (> 0).
        iterations: Maximum number of (row, column) updates.
        tol: Stop when, for every problem of the batch, the mean absolute change of ``r`` in one iteration is
            below ``tol`` (DIML's rule, 0.1); ``tol=0`` always runs ``iterations`` updates.

    After the last update the column marginals hold exactly; the row marginals to the tolerance reached.
    """
    if cost.dim() != 3 or u.shape != cost.shape[:2] or v.shape != (cost.shape[0], cost.shape[2]):
        raise ValueError(
            f"sinkhorn needs cost (B, R, R'), u (B, R), v (B, R'); got {tuple(cost.shape)}, "
            f"{tuple(u.shape)}, {tuple(v.shape)}."
        )
    if epsilon <= 0 or iterations < 1:
        raise ValueError(f"sinkhorn needs epsilon > 0 and iterations >= 1; got {epsilon}, {iterations}.")
    if bool((u < 0).any()) or bool((v < 0).any()):
        raise ValueError("sinkhorn marginals must be non-negative.")
    # The plan does not change when K is scaled, so each problem's cost is shifted to start at 0 (K <= 1).
    shifted = cost - cost.amin(dim=(1, 2), keepdim=True)
    span = float(shifted.amax()) / epsilon
    if span > (80.0 if cost.dtype != torch.float64 else 600.0):  # e^-span would underflow: the log domain
        return _sinkhorn_log(-shifted / epsilon, u, v, iterations=iterations, tol=tol)
    kernel = torch.exp(-shifted / epsilon)
    r = torch.ones_like(u)
    c = torch.ones_like(v)
    for _ in range(iterations):
        previous = r
        r = u / (kernel @ c[:, :, None]).squeeze(2).clamp_min(1e-30)  # a zero marginal gives r = 0, not 0/0
        c = v / (kernel.transpose(1, 2) @ r[:, :, None]).squeeze(2).clamp_min(1e-30)
        if tol > 0 and float((r - previous).abs().mean(dim=1).max()) < tol:
            break
    return r[:, :, None] * kernel * c[:, None, :]


def _sinkhorn_log(log_k: Tensor, u: Tensor, v: Tensor, *, iterations: int, tol: float) -> Tensor:
    """The same iterations on ``log r``, ``log c`` (for a small epsilon, where ``e^{-C/epsilon}`` underflows)."""
    log_u, log_v = u.clamp_min(1e-30).log(), v.clamp_min(1e-30).log()
    log_r = torch.zeros_like(log_u)
    log_c = torch.zeros_like(log_v)
    for _ in range(iterations):
        previous = log_r.exp()
        log_r = log_u - torch.logsumexp(log_k + log_c[:, None, :], dim=2)
        log_c = log_v - torch.logsumexp(log_k + log_r[:, :, None], dim=1)
        if tol > 0 and float((log_r.exp() - previous).abs().mean(dim=1).max()) < tol:
            break
    return (log_r[:, :, None] + log_k + log_c[:, None, :]).exp()
