"""Checkpoints: what is saved after every epoch, writing and verifying it, the check that a run may resume from
it, and the Python/NumPy/torch random-number state.

A checkpoint never runs code when it is opened. It holds tensors and plain data only (dicts, lists, tuples,
strings, numbers; the NumPy RNG state as a tensor, the config as a plain dict), so it is always read with
``torch.load(..., weights_only=True)``, whose unpickler refuses every other Python object: a crafted
``checkpoint.pt`` that would run a command when unpickled is refused with :class:`CheckpointError` instead.

A checkpoint is verified. Each write records the file's SHA-256 in the run's manifest, ``manifest.json`` next to
it; :func:`load_checkpoint` recomputes it and refuses a file whose bytes changed. The write is atomic with the
manifest: the new checkpoint goes to a temporary file, the manifest is rewritten (atomically) with the new
checksum *and* the previous one, and only then is the temporary file moved onto ``checkpoint.pt``. A process
killed between the two steps leaves the previous checkpoint, which the manifest still vouches for.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dml.eval.protocol import resolve_protocol
from dml.train.config import Config, ConfigError, from_dict, to_dict
from dml.utils import atomic_save_json, atomic_write

FORMAT = "dml-checkpoint"
VERSION = 2
MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.pt"
_RETRAIN = "Start a fresh run (dml train CONFIG --overwrite, or another --output-dir) to get a verified checkpoint."
REQUIRED_KEYS = ("epoch", "config", "model", "loss", "optimizer", "scheduler", "scaler", "rng", "history")

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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, corrupt (checksum), unverifiable, unsafe or not dml's."""


def checkpoint_state(
    epoch: int,
    config: Config,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    history: list[dict[str, Any]],
    *,
    evaluated: bool = True,
) -> dict[str, Any]:
    """Everything a run needs to continue after ``epoch``, in a form ``weights_only=True`` loads.

    ``evaluated=False`` marks a checkpoint written right after training, before the epoch's evaluation and
    epoch-end callbacks: a run resumed from it evaluates that epoch first."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "epoch": epoch,
        "evaluated": evaluated,
        "config": plain(to_dict(config), "config"),
        "model": model.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": get_rng_state(),
        "history": plain(history, "history"),
    }


def plain(value: Any, where: str) -> Any:
    """``value`` with NumPy scalars and arrays, 0-d tensors and paths turned into plain Python data (what a
    weights-only checkpoint may hold); ``TypeError`` naming the entry for anything else that is not plain."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass, but pickles as NumPy
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), where)
    if isinstance(value, torch.Tensor):
        return value.item() if value.ndim == 0 else value.detach().cpu()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {key: plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item, f"{where}[{i}]") for i, item in enumerate(value))
    raise TypeError(
        f"Cannot save {where} (a {type(value).__name__}) in a checkpoint, which holds only numbers, strings, "
        "lists, dicts and tensors; return plain numbers from the callback."
    )


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` ``state`` to ``path`` and record its SHA-256 in the manifest next to it, atomically together.

    The file is written to ``.<name>.*.tmp`` and fsync'ed, the manifest is rewritten with the new checksum (keeping
    the current one as ``previous_sha256``), then the file is moved into place: whenever the process dies, the
    ``checkpoint.pt`` on disk is one the manifest vouches for. An error leaves the previous checkpoint untouched."""
    path = Path(path)
    manifest_path = path.parent / MANIFEST
    files = _read_manifest(manifest_path, missing_ok=True, corrupt_ok=True)
    previous = _vouched_digest(path, files.get(path.name))

    def record(tmp: Path) -> None:
        digest, size = _sha256(tmp)
        files[path.name] = {"sha256": digest, "bytes": size, "epoch": state.get("epoch"), "previous_sha256": previous}
        atomic_save_json({"format": "dml-run-manifest", "version": 1, "files": files}, manifest_path)

    with atomic_write(path, "wb", before_replace=record) as handle:
        torch.save(state, handle)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, verified against the manifest's SHA-256 and read with ``weights_only=True``.

    Raises:
        CheckpointError: the manifest is missing or unreadable, the checksum differs (the bytes changed since the
            checkpoint was written), the file holds objects other than tensors and plain data (loading them
            could run code), it is not a torch file, or it is a torch file but not a dml checkpoint.
    """
    path = Path(path)
    verify_checkpoint(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is another program's file
        raise CheckpointError(
            f"Could not read the checkpoint {path}: it is not a torch file (no zip archive) written by dml. Start a "
            "fresh run in another folder (or with --overwrite)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"Refusing to load {path}: it holds Python objects that weights-only loading does not allow "
            f"({_detail(err)}), and unpickling them could run code. dml writes only tensors and plain data, so "
            "this file was not written by dml or was altered; do not open it unless you trust its author."
        ) from None
    except Exception as err:
        raise CheckpointError(
            f"Could not read the checkpoint {path} ({type(err).__name__}: {_detail(err)}); it is not a torch file "
            "written by dml. Start a fresh run in another folder (or with --overwrite)."
        ) from None
    _check_format(state, path)
    return state


def verify_checkpoint(path: str | os.PathLike) -> str:
    """The SHA-256 of the file at ``path``, checked against the one the manifest next to it records
    (:class:`CheckpointError` naming the file when it is missing, unrecorded or different)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"The checkpoint {path} does not exist; point at the folder of a run written by dml train."
        )
    manifest = path.parent / MANIFEST
    entry = _read_manifest(manifest).get(path.name)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise CheckpointError(f"Cannot verify the checkpoint {path}: {manifest} records no SHA-256 for it. {_RETRAIN}")
    digest, _ = _sha256(path)
    if digest not in (entry["sha256"], entry.get("previous_sha256")):
        raise CheckpointError(
            f"The checkpoint {path} is corrupt: its SHA-256 is {digest[:16]}…, but {manifest} records "
            f"{entry['sha256'][:16]}… (its bytes changed after it was written: a disk error, an incomplete copy or "
            "an edit). Restore the run folder from a copy, or start a fresh run (dml train CONFIG --overwrite, or "
            "another --output-dir)."
        )
    return digest


def _read_manifest(path: Path, *, missing_ok: bool = False, corrupt_ok: bool = False) -> dict[str, Any]:
    """The ``files`` table of the manifest at ``path`` (file name -> ``{sha256, bytes, epoch, previous_sha256}``)."""
    if not path.is_file():
        if missing_ok:
            return {}
        raise CheckpointError(
            f"Cannot verify the checkpoint in {path.parent}: there is no {path.name} with its SHA-256 (the checkpoint "
            f"was written by another program, or by a dml from before checkpoints were verified). {_RETRAIN}"
        )
    try:
        record = json.loads(path.read_text())
        files = record["files"]
        if record.get("format") != "dml-run-manifest" or not isinstance(files, dict):
            raise ValueError("not a dml run manifest")
    except (OSError, ValueError, KeyError, TypeError) as err:
        if corrupt_ok:
            return {}
        raise CheckpointError(f"Cannot verify the checkpoint: {path} is unreadable ({err}). {_RETRAIN}") from None
    return dict(files)


def _vouched_digest(path: Path, entry: Any) -> str | None:
    """The SHA-256 of the file now at ``path`` if the manifest ``entry`` vouches for it, else ``None``: what the
    next manifest may keep as ``previous_sha256`` (hashing the file, rather than trusting the entry's ``sha256``,
    keeps a write killed before its rename, then another one, from leaving a checkpoint no manifest accepts)."""
    if not path.is_file() or not isinstance(entry, dict):
        return None
    digest, _ = _sha256(path)
    return digest if digest in (entry.get("sha256"), entry.get("previous_sha256")) else None


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _detail(err: BaseException) -> str:
    """The informative line of a (multi-line) ``torch.load`` error message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line.rstrip(".")
    return (lines[0] if lines else repr(err)).rstrip(".")


def _check_format(state: Any, path: Path) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        keys = sorted(map(str, state))[:6] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is a torch file but not a dml checkpoint (no 'format': {FORMAT!r} entry; it holds {keys}); "
            "point at the checkpoint.pt of a run folder written by dml train."
        )
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise CheckpointError(
            f"{path} is a dml checkpoint of format version {state.get('version')!r}, newer than this dml's "
            f"{VERSION}; upgrade dml to read it."
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete dml checkpoint (no {missing}); it cannot be resumed or loaded.")


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
    """The Python, NumPy (global) and torch (CPU and CUDA) random-number states, as plain data and tensors."""
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    keys = np.asarray(n["keys"].numpy() if isinstance(n["keys"], torch.Tensor) else n["keys"], dtype=np.uint32)
    np.random.set_state((n["bit_generator"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
