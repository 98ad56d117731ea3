"""Batch normalisation with fixed statistics: the "eval-mode" and "frozen" batch norm of many DML releases.

Batch norm (Ioffe & Szegedy, "Batch Normalization", ICML 2015) in training mode standardises every channel over
the batch, with the batch's own mean and variance:

.. math::  y_{bchw} = \\gamma_c\\, \\frac{x_{bchw} - \\mu_c}{\\sqrt{\\sigma_c^2 + \\epsilon}} + \\beta_c,
   \\qquad \\mu_c, \\sigma_c^2 \\text{ over } (b, h, w) \\text{ of this batch.}

With fixed statistics :math:`\\mu_c, \\sigma_c^2` the same formula is a per-channel affine map of each image on its
own, so nothing ties the images of a batch together. Fine-tuning recipes fix them in two ways:

* **eval mode** (statistics fixed, :math:`\\gamma, \\beta` trained): pytorch-metric-learning's trainers with
  ``freeze_trunk_batchnorm=True`` (``BaseTrainer.maybe_freeze_trunk_batchnorm``, v2.9.0), the trainer of the
  "A Metric Learning Reality Check" benchmark (github.com/KevinMusgrave/powerful-benchmarker), and the MS-loss
  release (github.com/msight-tech/research-ms-loss at 8290973, ``ret_benchmark/utils/freeze_bn.py``);
* **frozen** (statistics and :math:`\\gamma, \\beta` fixed): the ``bn_freeze`` option of the Proxy-Anchor release
  (github.com/tjddus9597/Proxy-Anchor-CVPR2020 at 952c5af, ``code/net/resnet.py``).

Those recipes fix the ImageNet statistics of a pretrained backbone. A network trained from scratch has no such
statistics, so :class:`FixedBatchNorm2d` measures them once, on the first batch it sees in training mode (that
batch is normalised exactly as train-mode batch norm would), and never updates them afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FixedBatchNorm2d(nn.Module):
    """Batch norm whose statistics are measured on the first training batch and then fixed.

    Parameters: ``num_features`` (channels C), ``train_affine`` (``True``: eval mode, gamma and beta are trained;
    ``False``: frozen, they stay at 1 and 0) and ``eps``. Before that first training batch (an evaluation of the
    untrained network) each batch is normalised with its own statistics, without storing them. Under
    DistributedDataParallel the statistics are averaged over the processes, so every replica fixes the same ones.
    """

    def __init__(self, num_features: int, *, train_affine: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=train_affine)
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=train_affine)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("calibrated", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        if bool(self.calibrated):
            mean, var = self.running_mean, self.running_var
        else:
            mean, var = _channel_statistics(x.detach(), across_processes=self.training)
            if self.training:
                self.running_mean.copy_(mean)
                self.running_var.copy_(var)
                self.calibrated.fill_(True)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, eps=self.eps)

    def extra_repr(self) -> str:
        trained = "trained" if self.weight.requires_grad else "frozen"
        return f"{self.num_features}, eps={self.eps}, affine {trained}, calibrated={bool(self.calibrated)}"


def _channel_statistics(x: Tensor, *, across_processes: bool) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over (batch, height, width); ``across_processes`` averages the moments
    over the DDP processes (only while training: every process trains, only rank 0 evaluates)."""
    moments = torch.stack([x.mean(dim=(0, 2, 3)), x.pow(2).mean(dim=(0, 2, 3))])
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if across_processes and distributed:
        torch.distributed.all_reduce(moments)
        moments /= torch.distributed.get_world_size()
    mean, mean_square = moments
    return mean, (mean_square - mean.pow(2)).clamp(min=0.0)
