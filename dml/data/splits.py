"""Train/test splits of a user's own images: given by their list, class-disjoint (zero-shot) or per class.

Three ways to split ``N`` labelled images (``split_by``):

* ``"class"`` (default): a seeded random ``test_fraction`` of the **classes** is the test split, the others train;
  no class is in both, the zero-shot protocol of CUB-200-2011, Cars196 and SOP (Oh Song et al., "Deep Metric
  Learning via Lifted Structured Feature Embedding", CVPR 2016). With ``C`` classes, ``round(C · test_fraction)``
  of them (at least one, at most ``C − 1``) are test classes: the first ones of ``permutation(C)`` drawn by
  ``numpy.random.default_rng(seed)``.
* ``"image"``: every class is in both splits, a seeded ``test_fraction`` of **each class's** images is test
  (``round(n_c · test_fraction)``, at least one and at most ``n_c − 1``, so a class needs two images): searching a
  gallery of known classes with new photos of them, as Hotels-50K does.
* ``"list"``: the ``split`` column of the user's list (``train`` or ``test`` on every row).

The assignment is saved with the run (``split.csv``: ``path, label, split``, paths relative to the data folder,
:func:`write_split_file`) and read back with ``split_file=`` (:func:`read_split_file`), so ``dml eval`` scores exactly
the test images the run never trained on, even if the folder has grown since.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dml.utils.checks import check_choice

SPLIT_BY = ("class", "image", "list")
SPLIT_FILE = "split.csv"


def assign_splits(
    labels: Sequence[int] | np.ndarray,
    *,
    split_by: str = "class",
    test_fraction: float = 0.5,
    seed: int = 0,
    listed: Sequence[str] | None = None,
) -> np.ndarray:
    """``"train"`` or ``"test"`` for every image (a NumPy array of ``str``), by ``split_by`` (module docstring).

    ``listed`` is the list's own split column, needed by ``split_by="list"``.

    Raises:
        ValueError: an unknown ``split_by``, a ``test_fraction`` outside (0, 1), fewer than two classes for
            ``"class"``, a class with one image for ``"image"``, or no ``listed`` column for ``"list"``.
    """
    check_choice(split_by, SPLIT_BY, name="split_by")
    labels = np.asarray(labels, dtype=np.int64)
    if split_by == "list":
        if listed is None:
            raise ValueError(
                "split_by='list' needs a split column in the list (train or test on every row); add "
                "one, or split with split_by='class' (zero-shot) or split_by='image' (per class)."
            )
        return np.asarray(listed, dtype=str)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1; got {test_fraction!r}.")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    out = np.full(len(labels), "train", dtype="<U5")
    if split_by == "class":
        if classes.size < 2:
            raise ValueError(
                f"A class-disjoint split needs at least two classes; the images hold {classes.size}. "
                "Add classes, or use split_by='image' (every class in both splits)."
            )
        n_test = min(max(round(classes.size * test_fraction), 1), classes.size - 1)
        test_classes = classes[rng.permutation(classes.size)[:n_test]]
        out[np.isin(labels, test_classes)] = "test"
        return out
    for c in classes:
        members = np.flatnonzero(labels == c)
        if members.size < 2:
            raise ValueError(
                f"split_by='image' puts every class in both splits, but class {int(c)} has one image; "
                "give every class at least two images, or use split_by='class'."
            )
        n_test = min(max(round(members.size * test_fraction), 1), members.size - 1)
        out[rng.permutation(members)[:n_test]] = "test"
    return out


def write_split_file(path: str | os.PathLike, rows: Sequence[tuple[str, str, str]]) -> None:
    """Write ``(relative path, class name, split)`` rows as ``split.csv`` (header ``path,label,split``)."""
    from dml.utils import atomic_write

    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """``relative path -> split`` from a ``split.csv`` written by :func:`write_split_file`.

    Raises:
        FileNotFoundError: the file is missing. ValueError: it lacks the columns or has a split other than
            train/test (the message names the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Split file {path} does not exist; pass the split.csv of a run folder.")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "split"} <= set(reader.fieldnames or []):
            raise ValueError(f"{path} has columns {reader.fieldnames}; a split file has 'path,label,split'.")
        out = {}
        for row in reader:
            if row["split"] not in ("train", "test"):
                raise ValueError(f"{path}, line {reader.line_num}: split {row['split']!r} is not train or test.")
            out[row["path"]] = row["split"]
    return out
