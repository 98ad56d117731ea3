"""Helpers every executable page uses: the Colab check and the JSON of key numbers the regression tests compare.

Each book page and notebook has a cell tagged ``parameters`` with ``profile = "smoke"`` and ``results_path``.
At its end it calls :func:`save_results`, which writes the page's key numbers, the profile, the seed and the
provenance (commit, date, hardware) atomically to ``results_path``. ``tests/book/test_notebooks.py`` executes the page
with papermill and compares ``numbers`` with ``tests/baselines/<page>.json``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dml.utils import atomic_save_json, run_info
from dml.utils.checks import check_choice

PROFILES = ("smoke", "medium", "full")


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def check_profile(profile: str, allowed: tuple[str, ...] = PROFILES) -> str:
    """Validate a page's ``profile`` parameter, naming the allowed values when it is wrong."""
    check_choice(profile, allowed, name="profile")
    return profile


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("save_results got a non-finite number; a page must not record NaN or inf as a result")
    return value


def save_results(
    path: str | Path | None, numbers: Mapping[str, Any], *, profile: str, seed: int | None = None, **extra: Any
) -> dict[str, Any] | None:
    """Write ``{"numbers": ..., "profile": ..., "seed": ..., "run_info": ...}`` to ``path`` (no-op if ``None``).

    Returns the record so the page can display it.
    """
    record = {
        "numbers": _plain(dict(numbers)),
        "profile": profile,
        "seed": seed,
        "run_info": run_info(seeds=seed),
        **_plain(extra),
    }
    if path is not None:
        atomic_save_json(record, path)
    return record
