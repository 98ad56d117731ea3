"""``imagefolder``: a folder of class subfolders (``root/<class>/.../<image>``), the ``ImageFolder`` layout.

Every non-hidden subfolder of ``root`` that holds at least one image file (:data:`~dml.data.userdata.IMAGE_SUFFIXES`,
searched recursively) is a class named after it; a subfolder without images (e.g. a cache another tool left there)
is not a class. Files that are not images, and images directly in ``root``, are left out with one warning that
counts them and names the first. Images may have any size: the ``jpeg`` and ``cached`` pipelines resize them.

    data: {name: imagefolder, root: my_photos, pipeline: jpeg, kwargs: {split_by: class, test_fraction: 0.5}}
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from dml.data.base import Transform
from dml.data.registry import register
from dml.data.userdata import IMAGE_SUFFIXES, UserImageDataset, is_image_file


@register("imagefolder")
def image_folder(
    *,
    split: str = "train",
    root: str | os.PathLike | None = None,
    transform: Transform | None = None,
    split_by: str = "class",
    test_fraction: float = 0.5,
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    skip_corrupt: bool = False,
) -> UserImageDataset:
    """The ``split`` of the image folder ``root`` (see :class:`~dml.data.userdata.UserImageDataset` for the
    split arguments)."""
    if root is None:
        raise ValueError(
            "Dataset 'imagefolder' needs its folder: set data.root to the folder of class subfolders "
            "(root/<class>/<image>.jpg)."
        )
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise FileNotFoundError(
            f"Image folder {base} does not exist (or is not a folder); set data.root to the folder of class subfolders."
        )
    paths, names, ignored = list_folder(base)
    if ignored:
        warnings.warn(
            f"Image folder {base}: left out {len(ignored)} file(s) that are not images in a class "
            f"subfolder, e.g. {ignored[0]} (images are {', '.join(IMAGE_SUFFIXES)} files in "
            "root/<class>/).",
            RuntimeWarning,
            stacklevel=2,
        )
    if not paths:
        raise FileNotFoundError(
            f"Image folder {base} has no class subfolder with images; lay it out as root/<class>/<image>.jpg."
        )
    return UserImageDataset(
        kind="imagefolder",
        split=split,
        base=base,
        paths=paths,
        names=names,
        listed=None,
        split_by=split_by,
        test_fraction=test_fraction,
        seed=seed,
        split_file=split_file,
        transform=transform,
        skip_corrupt=skip_corrupt,
    )


def list_folder(base: Path) -> tuple[list[Path], list[str], list[Path]]:
    """``(image paths, their class names, ignored files)`` of the folder ``base``, in sorted order."""
    paths, names, ignored = [], [], []
    for entry in sorted(base.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            ignored.append(entry)
            continue
        for current, subdirs, files in os.walk(entry):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(current) / name
                if name.startswith("."):
                    continue
                if is_image_file(path):
                    paths.append(path)
                    names.append(entry.name)
                else:
                    ignored.append(path)
    return paths, names, ignored
