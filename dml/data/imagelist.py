"""``imagelist``: a CSV or TSV list of images, one row ``path, label[, split]``.

``root`` is the list file. Paths are relative to the list's folder (or absolute); labels are class names (integers
are kept as class ids, e.g. hotel ids); the optional third column is ``train`` or ``test``. A header row
``path,label[,split]`` is optional. TSV when the file ends in ``.tsv`` or its first line holds a tab, CSV otherwise.
Splits: the list's column when it has one (``split_by: list``, the default then), else by class (zero-shot).

    path,label,split
    rooms/a1.jpg,hotel_17,train
    rooms/a2.jpg,hotel_17,test

A row whose file name does not end in an image suffix, or with a bad split, raises a ``ValueError`` naming the file
and the line; a listed file that is missing is found before training starts (``MissingImageError``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from dml.data.base import Transform
from dml.data.files import read_lines
from dml.data.registry import register
from dml.data.userdata import IMAGE_SUFFIXES, UserImageDataset, is_image_file


@register("imagelist")
def image_list(
    *,
    split: str = "train",
    root: str | os.PathLike | None = None,
    transform: Transform | None = None,
    split_by: str | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    skip_corrupt: bool = False,
) -> UserImageDataset:
    """The ``split`` of the list file ``root``; ``split_by=None`` means ``"list"`` when the list has a split
    column and ``"class"`` otherwise (:class:`~dml.data.userdata.UserImageDataset`)."""
    if root is None:
        raise ValueError(
            "Dataset 'imagelist' needs its list: set data.root to a CSV/TSV file of path,label[,split] rows."
        )
    path = Path(root).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"Image list {path} does not exist (or is a folder); set data.root to a CSV/TSV file "
            "of path,label[,split] rows (for a folder of class subfolders use imagefolder)."
        )
    paths, names, listed = read_list(path)
    if split_by is None:
        split_by = "list" if listed is not None else "class"
    return UserImageDataset(
        kind="imagelist",
        split=split,
        base=_common_base(path.parent, paths),
        paths=paths,
        names=names,
        listed=listed,
        split_by=split_by,
        test_fraction=test_fraction,
        seed=seed,
        split_file=split_file,
        transform=transform,
        skip_corrupt=skip_corrupt,
    )


def read_list(path: Path) -> tuple[list[Path], list[str], list[str] | None]:
    """``(absolute paths, class names, splits or None)`` of the list file ``path`` (module docstring)."""
    lines = read_lines(path)
    text = [line for _, line in lines]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or (text and "\t" in text[0]) else ","
    rows = [
        (n, row) for (n, _), row in zip(lines, csv.reader(text, delimiter=delimiter)) if any(f.strip() for f in row)
    ]
    if rows and [f.strip().lower() for f in rows[0][1][:2]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"Image list {path} lists no image; write one row path,label[,split] per image.")
    width = len(rows[0][1])
    paths, names, splits = [], [], []
    for number, row in rows:
        fields = [f.strip() for f in row]
        if len(fields) != width or width not in (2, 3):
            raise _bad_row(
                path,
                number,
                f"expected {width if width in (2, 3) else '2 or 3'} fields (path,label[,split]), got {len(fields)}",
            )
        if not is_image_file(fields[0]):
            raise _bad_row(
                path, number, f"{fields[0]!r} is not an image file name (known: {', '.join(IMAGE_SUFFIXES)})"
            )
        if width == 3 and fields[2] not in ("train", "test"):
            raise _bad_row(path, number, f"split {fields[2]!r} is not 'train' or 'test'")
        file = Path(fields[0]).expanduser()
        paths.append(file if file.is_absolute() else (path.parent / file).resolve())
        names.append(fields[1])
        splits.append(fields[2] if width == 3 else "")
    return paths, names, splits if width == 3 else None


def _common_base(folder: Path, paths: list[Path]) -> Path:
    """The list's folder, or the common folder of the listed files when some lie outside it."""
    if all(p.is_relative_to(folder) for p in paths):
        return folder
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _bad_row(path: Path, number: int, problem: str) -> ValueError:
    """The error for line ``number`` of the image list ``path``."""
    return ValueError(
        f"Image list {path}, line {number}: {problem}. Fix that row (one row path,label[,split] per image)."
    )
