"""Name -> dataset lookup, so configs and notebooks say ``build("synthetic", split="test")``.

A loader joins the registry with the :func:`register` decorator at import time; :mod:`dml.data` imports every
built-in loader, so ``available()`` is complete as soon as the package is imported. :func:`build` validates the
split and the keyword arguments *before* constructing anything, because a typo in a hyperparameter name would
otherwise surface only after minutes of data generation, or never.
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Callable, Mapping, TypeVar

from torch.utils.data import Dataset

from dml.data.base import Transform, check_split
from dml.utils.registry import Registry, keyword_names

_COMMON = ("split", "root", "transform")

F = TypeVar("F", bound=Callable[..., Dataset])


class UnknownDatasetError(KeyError, ValueError):
    """Raised for a dataset name that is not registered; catchable as ``KeyError`` or ``ValueError``."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


_REGISTRY: Registry[Callable[..., Dataset]] = Registry("dataset", unknown_error=UnknownDatasetError)


def register(name: str) -> Callable[[F], F]:
    """Class or function decorator adding a dataset factory under ``name``.

    The factory is called as ``factory(split=..., root=..., transform=..., **kw)``.
    """
    return _REGISTRY.register(name)


def available() -> list[str]:
    """The registered dataset names, sorted."""
    return _REGISTRY.available()


def check_keywords(name: str, kw: Mapping[str, Any]) -> None:
    """``TypeError`` when ``kw`` holds a keyword the dataset ``name`` does not accept (besides ``split``, ``root``
    and ``transform``), naming the closest accepted ones and all of them; nothing when its factory takes any.
    Unknown names raise :class:`UnknownDatasetError`."""
    accepted = keyword_names(_REGISTRY.get(name), exclude=_COMMON)
    if accepted is None:
        return
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        pairs = [f"{u!r} -> {m[0]!r}" for u in unknown if (m := difflib.get_close_matches(u, accepted, n=1))]
        hints = f" Closest: {', '.join(pairs)}." if pairs else ""
        raise TypeError(f"Dataset {name!r} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}."
                        f"{hints} Accepted: {', '.join(accepted) or '(none)'} (plus split, root, transform).")


def build(name: str, split: str = "train", root: str | os.PathLike | None = None,
          transform: Transform | None = None, **kw: Any) -> Dataset:
    """Construct the dataset registered as ``name``.

    Args:
        name: A name from :func:`available`.
        split: ``"train"``, ``"test"`` or ``"all"``.
        root: Data folder; see :func:`dml.data.data_root` for the default.
        transform: Applied to each ``float32`` ``C×H×W`` image tensor.
        **kw: Dataset-specific hyperparameters (e.g. ``num_classes`` for ``"synthetic"``).

    Raises:
        UnknownDatasetError: (a ``KeyError`` and a ``ValueError``) for an unregistered name.
        ValueError: for an invalid split.
        TypeError: for a keyword the dataset does not accept; the message lists the accepted ones.
    """
    factory = _REGISTRY.get(name, extra_hint=" Real benchmarks register themselves when their module is imported.")
    check_split(split)
    check_keywords(name, kw)
    return factory(split=split, root=root, transform=transform, **kw)
