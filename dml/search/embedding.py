"""Embedding image files in batches, resumably, skipping (and listing) the files that cannot be read.

:func:`embed_files` decodes the files with the run's :class:`~dml.search.preprocess.Preprocessing` (in
``workers`` processes), runs the model on ``device`` without gradients, and writes each batch's L2-normalised
embeddings into a memory-mapped ``float32`` array in ``work`` (``embeddings.npy``); ``done.npy`` records the
finished rows after their embeddings are flushed, every few batches. A run killed half-way (Ctrl-C, a lost
machine) resumes from there when called again with the same files, model and preprocessing (``plan.json``);
anything else starts afresh. A file that is missing or cannot be decoded is skipped: its row is left out and its
reason returned, never silently.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dml.search.preprocess import Preprocessing
from dml.utils import atomic_save_json, atomic_write
from dml.utils.progress import tqdm

_SAVE_EVERY = 8  # batches between saves of the done mask


class _Files(Dataset):
    """``(image or None, index, reason)`` of every file: a file that cannot be read gives ``None`` and why."""

    def __init__(self, paths: Sequence[Path], preprocessing: Preprocessing, rows: np.ndarray) -> None:
        self.paths, self.preprocessing, self.rows = paths, preprocessing, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, str]:
        row = int(self.rows[i])
        try:
            return self.preprocessing.load(self.paths[row]), row, ""
        except OSError as error:  # MissingImageError, CorruptImageError
            return None, row, str(error).split(". ")[0]


def _as_list(batch: list) -> list:
    return batch


def embed_files(
    model: torch.nn.Module,
    preprocessing: Preprocessing,
    paths: Sequence[Path],
    *,
    work: Path,
    plan: dict[str, Any],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, dict[int, str]]:
    """``(embeddings (N, D) float32 memory map, {row: reason} of the unreadable files)`` of ``paths``.

    ``work`` is the folder of the resumable state; ``plan`` (JSON) identifies the job (files, model,
    preprocessing): a state of another plan is discarded.
    """
    device = torch.device(device)
    work.mkdir(parents=True, exist_ok=True)
    done, failed = _resume(work, plan)
    todo = np.flatnonzero(~done)
    transform = preprocessing.batch_transform()
    loader = DataLoader(
        _Files(paths, preprocessing, todo), batch_size=batch_size, num_workers=workers, collate_fn=_as_list
    )
    store = None if not (work / "embeddings.npy").is_file() else np.load(work / "embeddings.npy", mmap_mode="r+")
    bar = tqdm(total=len(paths), initial=len(paths) - todo.size, disable=not progress, desc="embedding", leave=False)
    try:
        with torch.no_grad():
            for step, batch in enumerate(loader, 1):
                good = [(image, row) for image, row, reason in batch if image is not None]
                failed.update({row: reason for image, row, reason in batch if image is None})
                if good:
                    out = model(transform([image for image, _ in good]).to(device))
                    out = torch.nn.functional.normalize(out[0] if isinstance(out, (tuple, list)) else out, dim=1)
                    if store is None:
                        store = np.lib.format.open_memmap(
                            work / "embeddings.npy", mode="w+", dtype=np.float32, shape=(len(paths), out.shape[1])
                        )
                    store[[row for _, row in good]] = out.float().cpu().numpy()
                done[[row for _, row, _ in batch]] = True
                bar.update(len(batch))
                if step % _SAVE_EVERY == 0:
                    _save_state(work, store, done, failed)
    finally:
        bar.close()
        _save_state(work, store, done, failed)
    if store is None:
        raise ValueError(f"None of the {len(paths)} images could be read (e.g. {paths[0]}: {failed.get(0, '?')}).")
    return store, failed


def _resume(work: Path, plan: dict[str, Any]) -> tuple[np.ndarray, dict[int, str]]:
    """The done mask and failures of an interrupted job of the same ``plan``, or a fresh state."""
    try:
        if json.loads((work / "plan.json").read_text()) == plan:
            done = np.load(work / "done.npy")
            failed = {int(k): v for k, v in json.loads((work / "failed.json").read_text()).items()}
            if done.shape == (plan["count"],) and (not done.any() or (work / "embeddings.npy").is_file()):
                return done, failed
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    atomic_save_json(plan, work / "plan.json")
    return np.zeros(plan["count"], dtype=bool), {}


def _save_state(work: Path, store: np.ndarray | None, done: np.ndarray, failed: dict[int, str]) -> None:
    if store is not None:
        store.flush()  # the embeddings first: a row is marked done only once its numbers are on disk
    with atomic_write(work / "done.npy") as handle:
        np.save(handle, done)
    atomic_save_json({str(k): v for k, v in failed.items()}, work / "failed.json")
