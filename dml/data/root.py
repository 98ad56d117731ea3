"""Where datasets and their caches live on disk.

One function, :func:`data_root`, answers "which folder?" with a fixed order of precedence so that a notebook, a
test and a cluster job can each point somewhere else without editing code:

1. the ``root`` argument, when given;
2. the ``DML_DATA`` environment variable, when set and non-empty;
3. the repository's ``data/`` folder (recognised by its ``README.md``), when the package runs from a checkout;
4. ``~/.cache/dml`` otherwise (an installed package has no repository folder), created on first use.

An explicitly requested folder (1 or 2) must already exist: silently creating a typo'd path would scatter
multi-gigabyte downloads around the disk, so the error says which path, where it came from and how to fix it.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DML_DATA"
REPO_DATA = Path(__file__).resolve().parents[2] / "data"
USER_CACHE = Path.home() / ".cache" / "dml"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the data folder: ``root`` > ``$DML_DATA`` > the repository's ``data/`` > ``~/.cache/dml``.

    Args:
        root: An explicit folder. ``None`` falls through to the environment variable and the defaults.

    Returns:
        An absolute path to an existing folder.

    Raises:
        FileNotFoundError: ``root`` or ``$DML_DATA`` names a folder that does not exist.
        NotADirectoryError: ``root`` or ``$DML_DATA`` names a file rather than a folder.
    """
    if root is not None:
        return _existing(Path(root), source="the root= argument",
                         fix="create it (mkdir -p), or pass root=None to use $DML_DATA or the default folder")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return _existing(Path(env), source=f"the {ENV_VAR} environment variable",
                         fix=f"create it (mkdir -p), unset {ENV_VAR} to use the default folder, or pass root=")
    if (REPO_DATA / "README.md").is_file():
        return REPO_DATA
    USER_CACHE.mkdir(parents=True, exist_ok=True)
    return USER_CACHE


def _existing(path: Path, *, source: str, fix: str) -> Path:
    path = path.expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"Data folder {path} (from {source}) does not exist. Fix: {fix}.")
    if not path.is_dir():
        raise NotADirectoryError(f"Data folder {path} (from {source}) is a file, not a folder. Fix: point it at a "
                                 "folder instead.")
    return path
