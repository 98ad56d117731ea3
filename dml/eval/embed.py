"""Run a model over a dataset and collect its embeddings and labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader


def embed(
    model: torch.nn.Module,
    dataset_or_loader: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, np.ndarray]:
    """Embed every item of a dataset (in order) with ``model`` in eval mode and without gradients.

    Args:
        model: Maps a batch of inputs to ``(B, D)`` embeddings.
        dataset_or_loader: A dataset returning ``(input, label, ...)`` (the :mod:`dml.data` contract) or a
            ``DataLoader`` yielding such batches, or dicts with ``"image"``/``"input"`` and ``"label"`` keys.
            A dataset is loaded in order (``shuffle=False``); a loader is used as given.
        batch_size, num_workers: For the ``DataLoader`` built around a dataset (ignored for a loader).
        device: Where to run the model; default the device of its first parameter (CPU if it has none).

    Returns:
        ``(embeddings, labels)``: a ``float32`` CPU tensor ``(N, D)`` and a 1-D NumPy array of ``N`` labels.
        The model's previous train/eval mode is restored afterwards, also when an error is raised.
    """
    if isinstance(dataset_or_loader, DataLoader):
        loader = dataset_or_loader
    else:
        loader = DataLoader(dataset_or_loader, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    chunks: list[torch.Tensor] = []
    labels: list[np.ndarray] = []
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, batch_labels = _split_batch(batch)
                out = model(inputs.to(device, non_blocking=True))
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if out.dim() != 2:
                    raise ValueError(
                        f"The model returned an output of shape {tuple(out.shape)} for a batch of "
                        f"{len(inputs)} inputs; embed() needs a (batch, dim) embedding. Flatten it or "
                        "return the embedding head's output."
                    )
                chunks.append(out.detach().to("cpu", torch.float32))
                labels.append(_labels_to_numpy(batch_labels))
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("The dataset or loader is empty; there is nothing to embed.")
    return torch.cat(chunks), np.concatenate(labels)


def _split_batch(batch: Any) -> tuple[torch.Tensor, Any]:
    if isinstance(batch, dict):
        for key in ("image", "images", "input", "inputs", "x"):
            if key in batch:
                inputs = batch[key]
                break
        else:
            raise ValueError(
                f"Cannot find the inputs in a batch with keys {sorted(batch)}; expected 'image' or 'input'."
            )
        for key in ("label", "labels", "y", "target"):
            if key in batch:
                return inputs, batch[key]
        raise ValueError(f"Cannot find the labels in a batch with keys {sorted(batch)}; expected 'label'.")
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(
        "Each batch must be (inputs, labels, ...) or a dict with 'image' and 'label'; got "
        f"{type(batch).__name__}. Wrap an unlabelled dataset so that it also returns a label."
    )


def _labels_to_numpy(labels: Any) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy().reshape(-1)
    return np.asarray(labels).reshape(-1)
