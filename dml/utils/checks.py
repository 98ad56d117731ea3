"""One validation vocabulary for the package: choice and integer checks, the one "did you mean", and the
embedding/label converters shared by evaluation, losses and diagnostics.

Every error names the problem in one sentence and the fix in another.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_embedding_tensor",
    "as_float64_matrix",
    "as_label_array",
    "check_choice",
    "check_embeddings_and_labels",
    "check_positive_int",
    "closest_match",
    "did_you_mean",
    "encode_labels",
    "unit_rows",
]


def closest_match(word: Any, choices: Iterable[Any]) -> str | None:
    """The closest of ``choices`` to ``word`` (by :func:`difflib.get_close_matches`), or ``None``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return close[0] if close else None


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """``" Did you mean 'x'?"`` for the closest of ``choices``, or ``""`` when nothing is close."""
    close = closest_match(word, choices)
    return f" Did you mean {close!r}?" if close is not None else ""


def check_choice(value: Any, choices: Iterable[Any], *, name: str) -> Any:
    """``value`` if it is one of ``choices``; otherwise ``ValueError`` naming the closest match and the choices."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}.{did_you_mean(value, choices)} Choose one of {choices}.")
    return value


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum``; otherwise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_embeddings_and_labels(embeddings: Any, labels: Any, *, name: str = "embeddings") -> None:
    """Raise ``ValueError`` for the mistakes that otherwise give silently wrong metrics or losses.

    Checks: embeddings are 2-D (N, D); labels are 1-D with N entries; embeddings are finite.
    Works on NumPy arrays and torch tensors (CPU or GPU) without copying the embeddings to the host.
    """
    shape = tuple(embeddings.shape)
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (N, D); got shape {shape}. "
            "Flatten or stack your per-image vectors first."
        )
    label_shape = tuple(labels.shape) if hasattr(labels, "shape") else (len(labels),)
    if len(label_shape) != 1:
        raise ValueError(
            f"labels must be a 1-D array of length N; got shape {label_shape}. "
            "Pass one class id per embedding (labels.ravel() for a column vector)."
        )
    if label_shape[0] != shape[0]:
        raise ValueError(
            f"{name} and labels have different lengths ({shape[0]} and {label_shape[0]}). "
            "Pass one label per embedding, both from the same split in the same order."
        )
    if isinstance(embeddings, torch.Tensor):
        bad = int((~embeddings.isfinite()).any(dim=1).sum())
    else:
        bad = int((~np.isfinite(np.asarray(embeddings))).any(axis=1).sum())
    if bad:
        raise ValueError(
            f"{name} contain NaN or infinite values in {bad} of {shape[0]} rows. Training probably "
            "diverged: lower the learning rate or look for a division by a zero norm."
        )


def as_embedding_tensor(embeddings: Any, labels: Any, *, name: str = "embeddings") -> torch.Tensor:
    """Validate ``(embeddings, labels)`` and return the embeddings as a float tensor on their own device.

    NumPy arrays are wrapped without a copy; ``float64`` is kept, every other dtype becomes ``float32``.
    """
    if not hasattr(embeddings, "shape"):
        embeddings = np.asarray(embeddings)
    if not hasattr(labels, "shape") and not hasattr(labels, "__len__"):
        raise ValueError(
            f"labels must be a 1-D sequence with one class id per row of {name}; got {type(labels).__name__}."
        )
    if not hasattr(labels, "shape"):
        labels = np.asarray(labels)
    check_embeddings_and_labels(embeddings, labels, name=name)
    if embeddings.shape[0] == 0:
        raise ValueError(f"{name} are empty (0 rows); there is nothing to evaluate.")
    if embeddings.shape[1] == 0:
        raise ValueError(f"{name} have 0 dimensions (shape {tuple(embeddings.shape)}); pass (N, D) embeddings, D >= 1.")
    x = embeddings.detach() if isinstance(embeddings, torch.Tensor) else torch.from_numpy(np.asarray(embeddings))
    if x.dtype != torch.float64:
        x = x.to(torch.float32)
    return x


def encode_labels(*label_arrays: np.ndarray) -> list[np.ndarray]:
    """Map arbitrary (possibly string) labels, jointly over all arrays, to integer codes 0..C-1."""
    sizes = [len(a) for a in label_arrays]
    _, codes = np.unique(np.concatenate(label_arrays), return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    return list(np.split(codes, np.cumsum(sizes)[:-1]))


def as_float64_matrix(
    embeddings: Any, labels: Any = None, *, name: str = "embeddings", min_rows: int = 1
) -> np.ndarray:
    """``embeddings`` as an (N, D) ``float64`` NumPy array (checked: 2-D, finite, N labels if given, N >= min_rows)."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(embeddings)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric (N, D) array; got dtype {x.dtype}.")
    row_labels = np.zeros(len(x) if x.ndim else 0) if labels is None else as_label_array(labels)
    check_embeddings_and_labels(x, row_labels, name=name)
    if x.shape[0] < min_rows:
        raise ValueError(
            f"{name} have {x.shape[0]} rows, but this diagnostic needs at least {min_rows}; "
            "pass a larger set of embeddings."
        )
    if x.shape[1] == 0:
        raise ValueError(f"{name} have 0 dimensions (shape {x.shape}); pass (N, D) embeddings with D >= 1.")
    return x.astype(np.float64, copy=False)


def as_label_array(labels: Any) -> np.ndarray:
    """Labels as a NumPy array, copied to the host if they are a tensor (shape checked by the caller)."""
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    if not hasattr(labels, "__len__"):
        raise ValueError(f"labels must be a 1-D sequence with one class id per embedding; got {type(labels).__name__}.")
    return np.asarray(labels)


def unit_rows(x: np.ndarray, *, name: str = "embeddings") -> np.ndarray:
    """Rows divided by their L2 norm; an all-zero row has no direction, so it is an error rather than a NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        raise ValueError(
            f"{name} have {len(zero)} all-zero rows (first at index {zero[0]}); a zero vector has no "
            "direction, so its cosine similarity is undefined. Drop those rows or check the model "
            "for dead outputs."
        )
    return x / norms
