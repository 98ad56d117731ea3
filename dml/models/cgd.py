"""CGD's multi-descriptor head: several global descriptors of one feature map, each projected, concatenated.

Jun, Ko, Kim, Kim & Kim, "Combination of Multiple Global Descriptors for Image Retrieval", arXiv:1903.10663, 2019
(official evaluation code github.com/naver/cgd; the training recipe follows the PyTorch re-implementation
github.com/leftthomas/CGD, ``model.py``). With :math:`\\mathcal{X}_c` the activations of channel ``c``:

.. math::
   \\text{SPoC: } g_c = \\frac{1}{|\\mathcal{X}_c|}\\sum_{x \\in \\mathcal{X}_c} x, \\qquad
   \\text{MAC: } g_c = \\max_{x \\in \\mathcal{X}_c} x, \\qquad
   \\text{GeM: } g_c = \\Big(\\frac{1}{|\\mathcal{X}_c|}\\sum_{x \\in \\mathcal{X}_c} x^{p}\\Big)^{1/p}

(GeM with ``p = 3`` fixed, as in the re-implementation). Branch ``i`` maps its descriptor :math:`g^{(i)}` to
:math:`b_i = W_i g^{(i)} / \\lVert W_i g^{(i)} \\rVert` (``Linear(C, k)`` without bias, ``k = D / n``), and the
embedding is :math:`f = [b_1; \\dots; b_n] / \\sqrt{n}`, the L2-normalised concatenation.

The auxiliary classification loss of the paper acts on the **first** descriptor's raw vector :math:`g^{(1)}`
(before its projection). With ``auxiliary=True`` the head returns, in training mode only, ``[f | g^{(1)}]``
(``(B, D + C)``), which the ``cgd`` loss (:mod:`dml.losses.cgd`) splits; in eval mode, and so in
:func:`dml.eval.embed`, it returns ``f`` alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dml.models.pooling import AvgPool, GeM, MaxPool
from dml.models.registry import register_head

DESCRIPTORS = {"S": "SPoC", "M": "MAC", "G": "GeM"}


def _descriptor(letter: str, p: float) -> nn.Module:
    if letter == "S":
        return AvgPool()
    if letter == "M":
        return MaxPool()
    return GeM(p=p, learnable=False)


@register_head("cgd")
class CGDHead(nn.Module):
    """One branch per letter of ``descriptors`` ("S" SPoC, "M" MAC, "G" GeM), e.g. ``"SMG"``, ``"MG"``, ``"G"``.

    Args:
        in_channels: Channels ``C`` of the feature map.
        embedding_dim: ``D``, split evenly over the ``n`` branches (``D`` must be a multiple of ``n``).
        descriptors: The branches in order; the first one feeds the auxiliary classifier.
        p: GeM exponent (fixed, not learned).
        auxiliary: Return ``[f | g^{(1)}]`` in training mode (for the ``cgd`` loss).
        pooling, normalize: Accepted for a uniform config; the descriptors replace the pooling, and the
            output is always unit length (``normalize=False`` is an error).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        embedding_dim: int,
        descriptors: str = "SMG",
        p: float = 3.0,
        auxiliary: bool = False,
        pooling: str = "avg",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        letters = str(descriptors).upper()
        if not letters or any(c not in DESCRIPTORS for c in letters) or len(set(letters)) != len(letters):
            raise ValueError(
                f"descriptors must be distinct letters of 'S' (SPoC), 'M' (MAC), 'G' (GeM), e.g. 'SMG'; "
                f"got {descriptors!r}."
            )
        if embedding_dim < len(letters) or embedding_dim % len(letters):
            raise ValueError(
                f"embedding_dim={embedding_dim} must be a positive multiple of the {len(letters)} descriptors "
                f"{letters!r} (each branch gets embedding_dim / {len(letters)} dimensions)."
            )
        if not normalize:
            raise ValueError("The cgd head always L2-normalises its output; set model.normalize to true.")
        self.descriptors = letters
        self.pools = nn.ModuleList(_descriptor(c, p) for c in letters)
        k = embedding_dim // len(letters)
        self.projections = nn.ModuleList(nn.Linear(in_channels, k, bias=False) for _ in letters)
        self.embedding_dim = embedding_dim
        self.auxiliary = auxiliary
        self.auxiliary_dim = in_channels if auxiliary else 0

    def branches(self, features: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(g1, [b_1, ..., b_n])``: the first raw descriptor and the unit-length branch outputs."""
        raw = [pool(features) for pool in self.pools]
        return raw[0], [F.normalize(fc(g), dim=1) for fc, g in zip(self.projections, raw)]

    def forward(self, features: Tensor) -> Tensor:
        first, parts = self.branches(features)
        embedding = F.normalize(torch.cat(parts, dim=1), dim=1)
        if self.auxiliary and self.training:
            return torch.cat([embedding, first], dim=1)
        return embedding

    def extra_repr(self) -> str:
        names = "+".join(DESCRIPTORS[c] for c in self.descriptors)
        return f"descriptors={self.descriptors} ({names}), embedding_dim={self.embedding_dim}, aux={self.auxiliary}"
