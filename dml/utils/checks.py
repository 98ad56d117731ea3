"""Input validation shared by evaluation, losses and diagnostics: fail loudly, name the problem and the fix."""
from __future__ import annotations

from typing import Any

import numpy as np


def check_embeddings_and_labels(embeddings: Any, labels: Any, *, name: str = "embeddings") -> None:
    """Raise ``ValueError`` for the mistakes that otherwise give silently wrong metrics or losses.

    Checks: embeddings are 2-D (N, D); labels are 1-D with N entries; embeddings are finite.
    Works on NumPy arrays and torch tensors (CPU or GPU) without copying the embeddings to the host.
    """
    shape = tuple(embeddings.shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D); got shape {shape}. "
                         "Flatten or stack your per-image vectors first.")
    label_shape = tuple(labels.shape) if hasattr(labels, "shape") else (len(labels),)
    if len(label_shape) != 1:
        raise ValueError(f"labels must be a 1-D array of length N; got shape {label_shape}. "
                         "Pass one integer class id per embedding (use labels.ravel() for a column vector).")
    if label_shape[0] != shape[0]:
        raise ValueError(f"{name} and labels have different lengths: {shape[0]} embeddings but {label_shape[0]} "
                         "labels. Each embedding needs exactly one label; check that both come from the same "
                         "dataset split and were not shuffled or truncated separately.")
    if hasattr(embeddings, "isfinite"):
        finite = bool(embeddings.isfinite().all())
    else:
        finite = bool(np.isfinite(np.asarray(embeddings)).all())
    if not finite:
        if hasattr(embeddings, "isfinite"):
            bad = int((~embeddings.isfinite()).any(dim=1).sum())
        else:
            bad = int((~np.isfinite(np.asarray(embeddings))).any(axis=1).sum())
        raise ValueError(f"{name} contain NaN or infinite values in {bad} of {shape[0]} rows. This usually means "
                         "training diverged (lower the learning rate, or check for a division by a zero norm); "
                         "the metrics would be meaningless, so none are computed.")
