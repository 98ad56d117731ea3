"""Argument checks shared by the diagnostics: one place that says what is wrong and how to fix it."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dml.utils import check_embeddings_and_labels


def as_float64_matrix(embeddings: Any, labels: Any = None, *, name: str = "embeddings",
                      min_rows: int = 1) -> np.ndarray:
    """``embeddings`` as an (N, D) ``float64`` NumPy array (checked: 2-D, finite, N labels if given, N >= min_rows)."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(embeddings)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric (N, D) array; got dtype {x.dtype}.")
    if labels is not None:
        check_embeddings_and_labels(x, as_label_array(labels), name=name)
    elif x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D); got shape {x.shape}. "
                         "Flatten or stack your per-image vectors first.")
    elif not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{name} contain NaN or infinite values in {bad} of {x.shape[0]} rows (training "
                         "diverged?); the diagnostic would be meaningless, so it is not computed.")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} have {x.shape[0]} rows, but this diagnostic needs at least {min_rows}; "
                         "pass a larger set of embeddings.")
    if x.shape[1] == 0:
        raise ValueError(f"{name} have 0 dimensions (shape {x.shape}); pass (N, D) embeddings with D >= 1.")
    return x.astype(np.float64, copy=False)


def as_label_array(labels: Any) -> np.ndarray:
    """Labels as a NumPy array, copied to the host if they are a tensor (shape checked by the caller)."""
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    if not hasattr(labels, "__len__"):
        raise ValueError(f"labels must be a 1-D sequence with one class id per embedding; "
                         f"got {type(labels).__name__}.")
    return np.asarray(labels)


def unit_rows(x: np.ndarray, *, name: str = "embeddings") -> np.ndarray:
    """Rows divided by their L2 norm; an all-zero row has no direction, so it is an error rather than a NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        raise ValueError(f"{name} have {len(zero)} all-zero rows (first at index {zero[0]}); a zero vector has no "
                         "direction, so its cosine similarity is undefined. Drop those rows or check the model "
                         "for dead outputs.")
    return x / norms


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
