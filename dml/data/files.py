"""Shared machinery of the benchmark loaders that read image files from disk.

:class:`ImageFileDataset` holds ``paths`` (one image file per example), the labels, optional bounding boxes and
any other per-image arrays, decodes with :func:`dml.data.load_image` (full decode, errors that name the file) and
converts to the ``float32`` ``C×H×W`` tensor of the :class:`dml.data.DMLDataset` contract.

``skip_corrupt=True`` decodes every file once at construction with :func:`dml.data.find_corrupt_images`, warns
with the count and the first few files, and drops them (and their rows in every per-image array). It is slow
(a full decode of the dataset), which is why it is off by default: with ``skip_corrupt=False`` nothing is read at
construction and a broken file raises ``CorruptImageError`` / ``FileNotFoundError`` naming it when it is loaded.
``dml data check NAME --decode`` finds the same files up front.

Annotation files are untrusted input too: :func:`read_rows` (typed columns) and :func:`read_lines` name the file
and the line of a malformed value or of bytes that are not UTF-8 text, and :func:`require_rows` /
:func:`empty_annotation` raise :class:`EmptyAnnotationError`, naming the dataset, the split and the file, when a
file lists no image (empty, only its header, or nothing of the requested split).

Where the data lives: :func:`dataset_dir` maps ``(name, root)`` to the dataset's folder. ``root=None`` means
``dml.data.data_root() / name``. An explicit ``root`` is the dataset's own folder, unless it contains a
sub-folder called ``name``, in which case that sub-folder is used; so both ``root="/data/cub200"`` and the shared
``data.root: /data`` of a training config find ``/data/cub200``.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dml.data.base import DMLDataset, Transform
from dml.data.images import find_corrupt_images, load_image
from dml.data.root import data_root


class EmptyAnnotationError(ValueError):
    """An annotation file of a benchmark lists no image (empty, header only, or nothing of the requested split).

    The message names the dataset, the split, the file and the fix. Catchable as ``ValueError``, like the other
    problems of an annotation file.
    """


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark's folder or one of its annotation files is missing.

    The message names the missing path, the expected layout and how to get the data (``dml data download NAME``
    or the manual steps). Catchable as ``FileNotFoundError``.
    """


def dataset_dir(name: str, root: str | os.PathLike | None) -> Path:
    """The folder holding dataset ``name``: ``data_root()/name``, ``root/name`` if that exists, else ``root``.

    The folder is not required to exist; the loaders raise :class:`DatasetNotFoundError` when it does not.
    """
    if root is None:
        return data_root() / name
    root = Path(root).expanduser().resolve()
    return root / name if (root / name).is_dir() else root


def not_found(name: str, directory: Path, missing: Path | str, detail: str = "") -> DatasetNotFoundError:
    """Build the error raised when ``missing`` (a file or folder of dataset ``name`` in ``directory``) is absent."""
    from dml.data.catalog import dataset_info

    info = dataset_info(name)
    where = "does not exist" if not directory.exists() else "exists but is incomplete"
    return DatasetNotFoundError(
        f"{info.title} not found: {missing} is missing ({directory} {where}).{' ' + detail if detail else ''}\n"
        f"Expected layout:\n{info.layout.replace('<root>', str(directory))}\n"
        f"How to get it: {info.how_to_get(str(directory))}\n"
        f"Then verify with `dml data check {name} --root {directory}`.")


def empty_annotation(name: str, split: str, directory: Path, files: Path | Sequence[Path],
                     problem: str = "is empty (it lists no image)") -> EmptyAnnotationError:
    """Build the error raised when annotation ``files`` of dataset ``name`` give no image for ``split``."""
    shown = " and ".join(str(path) for path in ([files] if isinstance(files, Path) else files))
    return EmptyAnnotationError(
        f"Dataset {name!r}, split {split!r}: {shown} {problem}. The file is truncated or not the official one: "
        f"re-extract the dataset (`dml data download {name}` fetches it or prints the manual steps), then verify "
        f"with `dml data check {name} --root {directory}`.")


def require_rows(rows: list, *, name: str, split: str, directory: Path, path: Path,
                 problem: str = "is empty (it lists no image)") -> list:
    """``rows`` read from annotation file ``path``, or :func:`empty_annotation` when there are none."""
    if not rows:
        raise empty_annotation(name, split, directory, path, problem)
    return rows


def locate_folder(name: str, directory: Path, candidates: Sequence[str]) -> Path:
    """The folder holding the first of ``directory / c`` that exists; otherwise :func:`not_found` naming the first
    candidate (the official layout)."""
    found = first_existing(directory, candidates)
    if found is None:
        raise not_found(name, directory, directory / candidates[0])
    return found.parent


def first_existing(directory: Path, candidates: Sequence[str]) -> Path | None:
    """The first of ``directory / c`` that exists, or ``None``."""
    for candidate in candidates:
        path = directory / candidate
        if path.exists():
            return path
    return None


def read_rows(path: Path, *, columns: int, skip: int = 0, types: Sequence[type] | None = None) -> list[list]:
    """Whitespace-separated rows of a text annotation file, the last column keeping any inner spaces.

    Blank lines are ignored. ``types`` (one per column, e.g. ``(int, str)``) converts the fields. A line with fewer
    than ``columns`` fields, a field that is not of its type, or bytes that are not UTF-8 text raise a
    ``ValueError`` naming the file and the line number.
    """
    rows = []
    for number, line in read_lines(path):
        if number <= skip or not line.strip():
            continue
        fields = [field.strip() for field in line.split(maxsplit=columns - 1)]
        if len(fields) < columns:
            raise damaged(path, number, f"expected {columns} whitespace-separated fields, got {line.rstrip()!r}")
        if types is not None:
            fields = convert_fields(fields, types, path, number)
        rows.append(fields)
    return rows


def read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 text file; other bytes raise a ``ValueError`` naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return list(enumerate(handle, start=1))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); the file is damaged or "
                         "not the official one. Re-extract the dataset.") from None


def convert_fields(fields: Sequence[str], types: Sequence[type], path: Path, number: int) -> list:
    """``fields`` converted by ``types`` (one per field); a bad field raises :func:`damaged` for line ``number``."""
    converted = []
    for kind, field in zip(types, fields):
        try:
            converted.append(kind(field))
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
            raise damaged(path, number, f"{field!r} is not {what} (in {' '.join(fields)!r})") from None
    return converted + list(fields[len(types):])


def damaged(path: Path, number: int, problem: str) -> ValueError:
    """The error for line ``number`` of annotation file ``path``: what is wrong and that the file is damaged."""
    return ValueError(f"{path}, line {number}: {problem}. The file is truncated or not the official one; "
                      "re-extract the dataset.")


class ImageFileDataset(DMLDataset):
    """A :class:`DMLDataset` over image files: ``paths``, ``labels``, optional ``boxes`` and per-image ``extras``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        paths: One image file per example.
        labels: One integer class id per example.
        transform: Applied to the ``float32`` ``C×H×W`` tensor.
        boxes: ``(N, 4)`` float array ``(left, top, right, bottom)`` in pixel coordinates (PIL's crop
            convention, right/bottom exclusive), or ``None`` for whole images. The box is clipped to the image,
            rounded outwards to whole pixels, and an empty box falls back to the whole image.
        extras: Other per-image arrays (e.g. ``super_labels``), set as attributes of the same names and filtered
            together with ``paths`` when corrupt files are skipped.
        skip_corrupt: Decode every file now and drop the unreadable ones with a warning (slow).
        root: The dataset folder, stored as ``self.root``.
    """

    def __init__(self, *, split: str, paths: Sequence[str | os.PathLike], labels: np.ndarray,
                 transform: Transform | None = None, boxes: np.ndarray | None = None,
                 extras: dict[str, np.ndarray] | None = None, skip_corrupt: bool = False,
                 root: Path | None = None) -> None:
        paths = [Path(p) for p in paths]
        labels = np.asarray(labels, dtype=np.int64)
        extras = {key: np.asarray(value) for key, value in (extras or {}).items()}
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for what, array in [("labels", labels), ("boxes", boxes), *extras.items()]:
            if array is not None and len(array) != len(paths):
                raise ValueError(f"{len(paths)} paths but {len(array)} {what}; they must match one to one.")
        if skip_corrupt and paths:
            bad = find_corrupt_images(paths)
            if bad:
                shown = "; ".join(f"{path} ({reason.split('. ')[0]})" for path, reason in bad[:3])
                warnings.warn(f"Skipping {len(bad)} unreadable image file(s) of {len(paths)}: {shown}"
                              f"{' ...' if len(bad) > 3 else ''}. Re-download or re-extract the dataset to "
                              "get them back.", RuntimeWarning, stacklevel=3)
                dropped = {path for path, _ in bad}
                keep = np.array([path not in dropped for path in paths], dtype=bool)
                paths = [path for path, k in zip(paths, keep) if k]
                labels = labels[keep]
                boxes = None if boxes is None else boxes[keep]
                extras = {key: value[keep] for key, value in extras.items()}
            self.skipped = [path for path, _ in bad]
        else:
            self.skipped = []
        super().__init__(split=split, labels=labels, transform=transform)
        self.paths = paths
        self.boxes = boxes
        self.root = root
        for key, value in extras.items():
            setattr(self, key, value)

    def load(self, index: int) -> torch.Tensor:
        image = load_image(self.paths[index])
        if self.boxes is not None:
            image = image.crop(pixel_box(self.boxes[index], image.size))
        pixels = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


def pixel_box(box: Sequence[float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` (x1, y1, x2, y2) clipped to an image of ``size`` and rounded outwards; the whole image when empty."""
    width, height = size
    left, top = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    right, bottom = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if right <= left or bottom <= top:
        return 0, 0, width, height
    return left, top, right, bottom
