"""``dml index``: a gallery embedded by a trained model, stored with everything a later search must match.

An index folder::

    index.json       format, count, dim, dtype, the model (fingerprint, run, checkpoint SHA-256, epoch), the
                     preprocessing, the search (exact or approximate, with its measured recall), the skipped
                     files and the provenance; written last, so a folder without it is incomplete
    embeddings.npy   (N, D) L2-normalised embeddings, float32 or float16 (half the disk and memory; scores differ
                     by about 1e-3, so near-ties may reorder)
    items.csv        row, id, path, label[, chain] of every gallery image, in the order of the embeddings
    faiss.index      the approximate index, when there is one (:mod:`dml.search.approximate`)

The embedding is resumable (:mod:`dml.search.embedding`, state in ``.building/``); :func:`open_index` refuses an
incomplete or inconsistent folder with :class:`IncompleteIndexError` naming the missing part.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml.search import approximate
from dml.search.embedding import embed_files
from dml.search.exact import exact_topk
from dml.search.images import Items, gallery_items
from dml.search.preprocess import Preprocessing
from dml.search.run import SavedRun, open_run
from dml.train.build import resolve_device
from dml.utils import atomic_save_json, atomic_write, run_info

FORMAT = "dml-index"
FILES = ("index.json", "embeddings.npy", "items.csv")
DTYPES = ("float32", "float16")
SEARCHES = ("auto", "exact", "approximate")
RECALL_QUERIES = 1000


class IncompleteIndexError(ValueError):
    """An index folder misses a file or its files disagree; the message names what and the fix."""


class IndexMismatchError(ValueError):
    """A search's model or preprocessing differs from the index's; the message names the difference."""


@dataclass
class Index:
    """An opened index: its ``folder``, ``manifest`` (``index.json``), ``embeddings`` (memory map) and ``items``."""

    folder: Path
    manifest: dict[str, Any]
    embeddings: np.ndarray
    items: Items

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    def gallery(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The embeddings read into memory as one ``float32`` tensor on ``device`` (no memory map kept)."""
        stored = np.load(self.folder / "embeddings.npy")
        return torch.from_numpy(stored).to(device=device, dtype=torch.float32)

    def approximate_index(self):  # -> faiss.Index | None
        if self.manifest["search"] != "approximate":
            return None
        return approximate.load(self.folder / self.manifest["approximate"]["file"])


def build_index(
    run_path: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    dtype: str = "float32",
    search: str = "auto",
    kind: str = "auto",
    batch_size: int = 64,
    device: str = "auto",
    workers: int = 0,
    progress: bool = False,
    seed: int = 0,
) -> Index:
    """Embed the gallery ``images`` (:func:`dml.search.images.gallery_items`) with the run ``run_path`` into the
    index folder ``out`` (module docstring); an interrupted build of the same job resumes.

    ``search``: ``"exact"``, ``"approximate"`` or ``"auto"`` (approximate from
    :data:`~dml.search.approximate.APPROXIMATE_FROM` items); ``kind``: ``"hnsw"``, ``"ivf"`` or ``"auto"``
    (:func:`~dml.search.approximate.choose_kind`). Unreadable images are skipped with a warning and listed in
    ``index.json`` (``skipped``).
    """
    if dtype not in DTYPES or search not in SEARCHES or kind not in ("auto", *approximate.KINDS):
        raise ValueError(
            f"dtype must be one of {list(DTYPES)}, search one of {list(SEARCHES)} and kind one of "
            f"{['auto', *approximate.KINDS]}; got {dtype!r}, {search!r}, {kind!r}."
        )
    out = Path(out)
    if (out / "index.json").is_file():
        raise ValueError(f"{out} already holds an index; choose another --out, or delete the folder to rebuild it.")
    target = resolve_device(device)
    run = open_run(run_path, device=target)
    pre = Preprocessing.of(run.config)
    items = gallery_items(images)
    listing = hashlib.sha256("\n".join(map(str, items.paths)).encode()).hexdigest()
    plan = {"count": len(items), "files": listing, "model": run.fingerprint, "preprocessing": pre.to_dict()}
    store, failed = embed_files(
        run.model,
        pre,
        items.paths,
        work=out / ".building",
        plan=plan,
        batch_size=batch_size,
        device=target,
        workers=workers,
        progress=progress,
    )
    keep = np.ones(len(items), dtype=bool)
    keep[list(failed)] = False
    skipped = [{"path": str(items.paths[row]), "reason": reason} for row, reason in sorted(failed.items())]
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable image(s) of {len(items)}: "
            + "; ".join(s["reason"] for s in skipped[:3])
            + (" ..." if len(skipped) > 3 else "")
            + f"; all are listed in {out / 'index.json'}.",
            RuntimeWarning,
            stacklevel=2,
        )
    kept = items.subset(keep)
    embeddings = np.asarray(store[keep], dtype=dtype)
    with atomic_write(out / "embeddings.npy") as handle:
        np.save(handle, embeddings)
    _write_items(out / "items.csv", kept)
    use = search == "approximate" or (search == "auto" and len(kept) >= approximate.APPROXIMATE_FROM)
    approx = _build_approximate(embeddings, out, kind, seed) if use else None
    manifest = {
        "format": FORMAT,
        "version": 1,
        "count": len(kept),
        "dim": int(embeddings.shape[1]),
        "dtype": dtype,
        "metric": "cosine",
        "search": "approximate" if use else "exact",
        "approximate": approx,
        "model": _model_record(run),
        "preprocessing": pre.to_dict(),
        "images": items.source,
        "skipped": skipped,
        "created": run_info(seeds={"seed": seed}, extra={"device": str(target)}),
    }
    atomic_save_json(manifest, out / "index.json")
    shutil.rmtree(out / ".building", ignore_errors=True)
    return open_index(out)


def _model_record(run: SavedRun) -> dict[str, Any]:
    return {
        "fingerprint": run.fingerprint,
        "run": str(run.folder.resolve()),
        "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": run.sha256,
        "epoch": run.epoch,
        "dataset": run.config.data.name,
        "backbone": run.config.model.backbone,
        "embedding_dim": run.config.model.embedding_dim,
    }


def _build_approximate(embeddings: np.ndarray, out: Path, kind: str, seed: int) -> dict[str, Any]:
    """Build and save the faiss index; measure its recall@k against exact search on sampled gallery vectors."""
    kind = approximate.choose_kind(len(embeddings)) if kind == "auto" else kind
    started = time.perf_counter()
    index = approximate.build_approximate(embeddings, kind, seed=seed)
    seconds = time.perf_counter() - started
    approximate.save(index, out / "faiss.index")
    rows = np.sort(np.random.default_rng(seed).permutation(len(embeddings))[:RECALL_QUERIES])
    queries = np.asarray(embeddings[rows], dtype=np.float32)
    k = min(100, len(embeddings))
    _, exact = exact_topk(torch.from_numpy(queries), torch.from_numpy(np.asarray(embeddings, dtype=np.float32)), k)
    _, found = approximate.approximate_search(index, queries, k)
    recall = approximate.recall_against_exact(found, exact.numpy())
    return {
        "kind": kind,
        "file": "faiss.index",
        "k": k,
        "recall": recall,
        "recall_queries": len(rows),
        "build_seconds": round(seconds, 2),
    }


def _write_items(path: Path, items: Items) -> None:
    extra = sorted(items.extra)
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["row", "id", "path", "label", *extra])
        for row in range(len(items)):
            writer.writerow(
                [row, items.ids[row], items.paths[row], items.labels[row], *(items.extra[k][row] for k in extra)]
            )


def _read_items(path: Path) -> Items:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    extra = [k for k in (rows[0] if rows else {}) if k not in ("row", "id", "path", "label")]
    return Items(
        [Path(r["path"]) for r in rows],
        [r["label"] for r in rows],
        str(path),
        {k: [int(r[k]) for r in rows] for k in extra},
        [int(r["id"]) for r in rows],
    )


def open_index(folder: str | Path) -> Index:
    """The index in ``folder``; :class:`IncompleteIndexError` when a file is missing or the files disagree."""
    import json

    folder = Path(folder)
    fix = f"build it again: dml index RUN_DIR --images PATH --out {folder} (an interrupted build resumes)"
    if not folder.is_dir():
        raise IncompleteIndexError(f"Index folder {folder} does not exist; {fix}.")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        state = " (.building/ shows an interrupted build)" if (folder / ".building").is_dir() else ""
        raise IncompleteIndexError(f"Index folder {folder} is incomplete: {', '.join(missing)} missing{state}; {fix}.")
    try:
        manifest = json.loads((folder / "index.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError("not a dml index")
        embeddings = np.load(folder / "embeddings.npy", mmap_mode="r")
        items = _read_items(folder / "items.csv")
    except (OSError, ValueError, KeyError) as error:
        raise IncompleteIndexError(f"Index folder {folder} is damaged ({error}); {fix}.") from None
    shape = (manifest["count"], manifest["dim"])
    if embeddings.shape != shape or len(items) != shape[0]:
        raise IncompleteIndexError(
            f"Index folder {folder} is inconsistent: index.json says {shape[0]} × {shape[1]}, "
            f"embeddings.npy holds {embeddings.shape}, items.csv {len(items)} rows; {fix}."
        )
    if manifest["search"] == "approximate" and not (folder / manifest["approximate"]["file"]).is_file():
        raise IncompleteIndexError(
            f"Index folder {folder} is incomplete: {manifest['approximate']['file']} missing; {fix}."
        )
    return Index(folder, manifest, embeddings, items)
