"""Which images an index holds and a search asks about: a folder, a list, or a registered dataset's split.

:func:`gallery_items` reads ``--images PATH_OR_LIST``:

* a **folder**: every image file under it (:data:`~dml.data.userdata.IMAGE_SUFFIXES`, recursively, hidden entries
  left out), labelled by its first sub-folder (the ``imagefolder`` layout; unlabelled when directly in the folder);
  other files are left out with one warning that counts them and names the first;
* a **list** (``.csv``, ``.tsv``, ``.txt``): rows ``path,label[,split]`` as for ``imagelist``;
* ``NAME:SPLIT``, a registered dataset of image files, e.g. ``hotels50k:train`` (labels are its class ids; its
  ``image_ids`` and ``chain_labels`` are kept, the columns of the Hotels-50K evaluation).

Ids: the item's integer id when every file name is a distinct integer (Hotels-50K names its files
``<image_id>.jpg``), else its row number; these are the ids of ``results.csv`` (:mod:`dml.search.export`).

:func:`query_items` reads the query arguments (files or folders); a file whose name is not an image's is refused
with :class:`UnknownImageFormatError`, naming it and the formats read.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dml.data.folder import list_folder
from dml.data.imagelist import read_list
from dml.data.registry import build as build_dataset
from dml.data.userdata import IMAGE_SUFFIXES, is_image_file

LIST_SUFFIXES = (".csv", ".tsv", ".txt")


class UnknownImageFormatError(ValueError):
    """A file given as an image whose format is not one dml reads (by its name); the message names both."""


@dataclass
class Items:
    """Image files with their ``labels`` (class names, ``""`` when unlabelled), ``ids`` (integers) and optional
    per-item ``extra`` columns (e.g. ``chain``); ``source`` says where they came from."""

    paths: list[Path]
    labels: list[str]
    source: str
    extra: dict[str, list[Any]] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ids:
            self.ids = integer_ids(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> Items:
        """The items where ``keep`` is true (ids kept as they are)."""
        pick = np.flatnonzero(keep).tolist()
        return Items(
            [self.paths[i] for i in pick],
            [self.labels[i] for i in pick],
            self.source,
            {k: [v[i] for i in pick] for k, v in self.extra.items()},
            [self.ids[i] for i in pick],
        )


def integer_ids(paths: Sequence[Path]) -> list[int]:
    """The file names as integers when they all are and are distinct, else ``0..N−1``."""
    try:
        ids = [int(Path(p).stem) for p in paths]
    except ValueError:
        return list(range(len(paths)))
    return ids if len(set(ids)) == len(ids) else list(range(len(paths)))


def gallery_items(spec: str | os.PathLike) -> Items:
    """The items of ``--images`` (module docstring).

    Raises:
        FileNotFoundError: nothing exists at ``spec`` (and it is no ``NAME:SPLIT``). ValueError: a list with a bad
            row, or no image found.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_items(path.resolve())
    if path.is_file():
        if path.suffix.lower() not in LIST_SUFFIXES:
            raise UnknownImageFormatError(
                f"--images {path}: a gallery is a folder of images or a list "
                f"({', '.join(LIST_SUFFIXES)}) of path,label rows, not a {path.suffix} file."
            )
        paths, names, _ = read_list(path.resolve())
        return Items(paths, names, str(path.resolve()))
    name, _, split = str(spec).partition(":")
    if split:
        return _dataset_items(name, split)
    raise FileNotFoundError(
        f"--images {spec}: no such folder or list (or NAME:SPLIT of a registered dataset, e.g. hotels50k:train)."
    )


def _folder_items(folder: Path) -> Items:
    paths, names, ignored = list_folder(folder)
    loose = [p for p in ignored if p.parent == folder and is_image_file(p)]
    ignored = [p for p in ignored if p not in loose]
    if ignored:
        warnings.warn(
            f"{folder}: left out {len(ignored)} file(s) that are not images (by name), e.g. {ignored[0]}; "
            f"images are {', '.join(IMAGE_SUFFIXES)} files.",
            RuntimeWarning,
            stacklevel=3,
        )
    paths, names = loose + paths, [""] * len(loose) + names
    if not paths:
        raise ValueError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
    return Items(paths, names, str(folder))


def _dataset_items(name: str, split: str) -> Items:
    dataset = build_dataset(name, split=split)
    paths = getattr(dataset, "paths", None)
    if paths is None:
        raise ValueError(f"--images {name}:{split}: dataset {name!r} holds no image files; index a folder or a list.")
    extra = {}
    chains = getattr(dataset, "chain_labels", None)
    if chains is not None:
        extra["chain"] = [int(c) for c in chains]
    ids = getattr(dataset, "image_ids", None)
    labels = [str(int(label)) for label in dataset.labels]
    return Items(list(paths), labels, f"{name}:{split}", extra, [] if ids is None else [int(i) for i in ids])


def query_items(specs: Sequence[str | os.PathLike]) -> Items:
    """The query images: each argument an image file or a folder of them (its images, recursively).

    Raises:
        UnknownImageFormatError: a file whose name is not an image's. FileNotFoundError: a path that does not exist.
    """
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            paths += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and is_image_file(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            if not is_image_file(path):
                raise UnknownImageFormatError(
                    f"{path} is not an image format dml reads ({path.suffix or 'no suffix'}); "
                    f"query images are {', '.join(IMAGE_SUFFIXES)} files."
                )
            paths.append(path)
        else:
            raise FileNotFoundError(f"Query image {path} does not exist.")
    if not paths:
        raise ValueError(f"No query image found in {', '.join(map(str, specs))}.")
    paths = [p.resolve() for p in paths]
    return Items(paths, [""] * len(paths), "queries")
