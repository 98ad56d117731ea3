"""Atomic writes: a file either has its old content or its complete new content, never half of it.

Everything is written to a temporary file in the destination folder, flushed and fsync'ed, then moved into place
with :func:`os.replace`, which is atomic on POSIX and Windows when source and destination share a file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", *, before_replace: Callable[[Path], None] | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit move it onto ``path``, on an error delete it.

    ``before_replace(tmp)``, if given, runs once the temporary file is complete and fsync'ed, right before it is
    moved into place (e.g. to record its checksum); an error there leaves ``path`` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save_json(obj: Any, path: str | os.PathLike, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (keys sorted so diffs stay readable)."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=indent, sort_keys=True, default=_json_default)
        handle.write("\n")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")
