"""Reading image files without silent failures.

Benchmark downloads break in ways that surface late: an interrupted transfer leaves a truncated JPEG that PIL
opens happily (``Image.open`` reads only the header) and fails on, or half-decodes, at epoch 7. :func:`load_image`
decodes the whole file immediately and turns every failure into an error that names the file and the fix.
PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left ``False``: a grey-padded half image is a
wrong training example, not a recovered one.

For a ``skip_corrupt`` option, a loader calls :func:`find_corrupt_images` once at construction, warns, and drops
the listed files from its index; the same function backs a whole-dataset integrity check.

Every message is one line, :func:`bad_image_message` followed by :data:`FIX`, so that a caller that knows more
(``dml train`` knows the dataset's name and folder) can swap the generic fix for a precise one.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from PIL import Image, UnidentifiedImageError

#: The generic fix that ends every message of :class:`CorruptImageError` and :class:`MissingImageError`.
FIX = ("Re-download or re-extract the dataset; `dml.data.find_corrupt_images(paths)` lists every unreadable "
       "file of a dataset in one pass.")


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded (truncated, not an image, or damaged)."""


class MissingImageError(FileNotFoundError):
    """An image file listed by a dataset's annotations does not exist."""


def bad_image_message(path: str | os.PathLike, error: BaseException | None = None) -> str:
    """The first sentence of the error for image ``path``: missing (``error=None``) or undecodable (``error``)."""
    if error is None:
        return f"Image file {path} is missing."
    return f"Image file {path} is truncated or corrupt ({type(error).__name__}: {error})."


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and return the image at ``path`` in RGB mode.

    Raises:
        MissingImageError: ``path`` does not exist (a ``FileNotFoundError``).
        CorruptImageError: ``path`` is not a decodable image (e.g. truncated JPEG, garbage bytes, empty file).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingImageError(f"{bad_image_message(path)} {FIX}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"{bad_image_message(path, error)} {FIX}") from error


def find_corrupt_images(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str]]:
    """Try to decode every file; return ``(path, reason)`` for each one that is missing or unreadable."""
    bad = []
    for path in paths:
        try:
            load_image(path)
        except OSError as error:
            bad.append((Path(path), str(error)))
    return bad
