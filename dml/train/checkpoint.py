"""Checkpoints: what is saved after every epoch, loading it, the check that a run may resume from it, and the
Python/NumPy/torch random-number state."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dml.eval.protocol import resolve_protocol
from dml.train.config import Config, ConfigError, from_dict, to_dict

# Keys that may change between a run and its resumption: they do not change what is trained (the device may change
# the last bits of the numbers, but refusing to resume a CPU run on a GPU would help nobody).
RESUME_MAY_DIFFER = (
    "output_dir",
    "train.epochs",
    "train.log_every",
    "data.num_workers",
    "device",
    "eval.batch_size",
    "data.cache_workers",
)


def checkpoint_state(
    epoch: int,
    config: Config,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "config": to_dict(config),
        "model": model.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": get_rng_state(),
        "history": history,
    }


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # Our own file; it holds NumPy RNG state, which the weights-only unpickler rejects.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(
            f"Could not read the checkpoint {str(path)!r} ({err}). Checkpoints are written atomically, "
            "so it was probably produced by another program or version; start a fresh run without "
            "--resume."
        ) from err


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """``ValueError`` naming every key (outside :data:`RESUME_MAY_DIFFER`) in which the configs differ.
    ``eval.protocol`` is compared resolved (``auto`` on ``cub200`` is ``self``), i.e. by what it evaluates."""
    saved, current = _flatten(saved), _flatten(current)
    for flat in (saved, current):
        if "eval.protocol" in flat and "data.name" in flat:
            flat["eval.protocol"] = resolve_protocol(flat["data.name"], flat["eval.protocol"])
    differences = [
        key
        for key in sorted(set(saved) | set(current))
        if key not in RESUME_MAY_DIFFER and saved.get(key) != current.get(key)
    ]
    if differences:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differences)
        hint = (
            " A checkpoint written before eval.protocol existed was evaluated by self-retrieval; continue it "
            "with --set eval.protocol=self."
            if "eval.protocol" in differences
            else ""
        )
        raise ValueError(
            f"Cannot resume: the config differs from the checkpoint's in {details}. Resume with the "
            "original config (the run folder's config.yaml), or start a fresh run in another folder." + hint
        )


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with the keys added since it was written set to their defaults (which reproduce the
    older behaviour), so older checkpoints stay resumable. ``eval.protocol`` is the exception: before it existed
    every run was evaluated by self-retrieval, so a missing one is ``self`` (which ``auto`` equals for every
    dataset but ``inshop`` and ``hotels50k``)."""
    if isinstance(saved.get("eval"), dict) and "protocol" not in saved["eval"]:
        saved = {**saved, "eval": {**saved["eval"], "protocol": "self"}}
    try:
        return to_dict(from_dict(saved))
    except ConfigError:
        return saved


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("kwargs", "backbone_kwargs"):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def get_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
