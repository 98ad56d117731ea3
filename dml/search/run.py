"""A saved run (or a bare checkpoint) as a usable model, and ``dml eval``: its metrics under the dataset's protocol.

:func:`open_run` accepts a run folder written by ``dml train`` or the path of its ``checkpoint.pt``; the checkpoint
is verified against the folder's manifest and read with ``weights_only=True``
(:func:`dml.train.checkpoint.load_checkpoint`), so opening a run from anywhere cannot run code. The model's
fingerprint (:func:`model_fingerprint`) identifies its weights: an index records it and a search refuses a model
whose fingerprint differs.

:func:`evaluate_run` rebuilds the run's evaluation from its config (the dataset's protocol, :mod:`dml.eval.protocol`;
a user's own images with the ``split.csv`` the run saved, so the test images are the ones it never trained on) and
scores the trained model with the run's ``eval`` settings, as the trainer does after its last epoch.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dml.data import loaders
from dml.data.splits import SPLIT_FILE
from dml.data.userdata import USER_DATASETS
from dml.eval.protocol import resolve_protocol
from dml.train.build import build_model, resolve_device
from dml.train.checkpoint import CHECKPOINT, load_checkpoint, verify_checkpoint
from dml.train.config import Config, from_dict
from dml.train.trainer import evaluate
from dml.utils import atomic_save_json, run_info


@dataclass
class SavedRun:
    """A trained model with its ``config``, the ``checkpoint`` it came from (and its ``sha256``), the run
    ``folder``, the ``epoch`` it was saved after, and the weights' ``fingerprint``."""

    folder: Path
    checkpoint: Path
    sha256: str
    config: Config
    model: torch.nn.Module
    epoch: int | None
    fingerprint: str


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state: every entry's name, dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        h.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return "sha256:" + h.hexdigest()


def open_run(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SavedRun:
    """The model of the run folder (or checkpoint file) ``path``, in eval mode on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist. CheckpointError: the checkpoint is missing, unverifiable,
            corrupt or not a dml checkpoint (the message names it and the fix).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Run {path} does not exist; pass a folder written by dml train (or its checkpoint.pt)."
        )
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    sha256 = verify_checkpoint(checkpoint)
    state = load_checkpoint(checkpoint)
    config = from_dict(state["config"])
    config.model.pretrained = False  # the checkpoint holds the weights; download nothing
    model = build_model(config)
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    return SavedRun(checkpoint.parent, checkpoint, sha256, config, model, state.get("epoch"), model_fingerprint(model))


def run_config(run: SavedRun, *, split: str | None = None, cache_dir: str | None = None) -> Config:
    """The run's config for evaluating ``split`` (default its ``eval_split``): a user's images use the run's saved
    ``split.csv``; a split other than ``test`` is evaluated by self-retrieval (the queries of ``query-gallery``
    and ``hotels`` are the test split)."""
    config = copy.deepcopy(run.config)
    d = config.data
    if d.name in USER_DATASETS and (run.folder / SPLIT_FILE).is_file():
        d.kwargs = {**d.kwargs, "split_file": str(run.folder / SPLIT_FILE)}
    d.eval_split = split or d.eval_split
    if d.eval_split != "test":
        config.eval.protocol = "self"
    if cache_dir is not None:
        d.cache_dir = cache_dir
    return config


def evaluate_run(
    path: str | os.PathLike,
    *,
    split: str | None = None,
    device: str = "auto",
    cache_dir: str | None = None,
    out: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], Path]:
    """Score the saved run ``path`` on ``split`` and write the record to ``out`` (default
    ``<run folder>/eval-<split>.json``); returns ``(record, written path)``.

    The record holds ``metrics``, the ``protocol``, the ``split``, the run folder, the checkpoint's SHA-256 and
    epoch, and the provenance (:func:`dml.utils.run_info`).
    """
    run = open_run(path)
    config = run_config(run, split=split, cache_dir=cache_dir)
    target = resolve_device(device)
    protocol = resolve_protocol(config.data.name, config.eval.protocol)
    loaders.check_pipeline(config.data, protocol)
    data = loaders.build_loaders(
        config.data, protocol=protocol, seed=config.seed, eval_batch_size=config.eval.batch_size, device=target
    )
    loaders.check_image_files(data, config.data.name)
    metrics = evaluate(run.model.to(target), data.evaluation, config, target)
    record = {
        "run": str(run.folder),
        "checkpoint_sha256": run.sha256,
        "epoch": run.epoch,
        "dataset": config.data.name,
        "split": config.data.eval_split,
        "protocol": protocol,
        "metrics": metrics,
        "provenance": run_info(seeds={"seed": config.seed}, extra={"device": str(target)}),
    }
    written = Path(out) if out is not None else run.folder / f"eval-{config.data.eval_split}.json"
    atomic_save_json(record, written)
    return record, written
