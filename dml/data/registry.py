"""Name -> dataset lookup, so configs and notebooks say ``build("synthetic", split="test")``.

A loader joins the registry with the :func:`register` decorator at import time; :mod:`dml.data` imports every
built-in loader, so ``available()`` is complete as soon as the package is imported. :func:`build` validates the
split and the keyword arguments *before* constructing anything, because a typo in a hyperparameter name would
otherwise surface only after minutes of data generation, or never.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, TypeVar

from torch.utils.data import Dataset

from dml.data.base import Transform, check_split
from dml.utils.registry import Registry

_COMMON = ("split", "root", "transform")

F = TypeVar("F", bound=Callable[..., Dataset])


class UnknownDatasetError(KeyError, ValueError):
    """Raised for a dataset name that is not registered; catchable as ``KeyError`` or ``ValueError``."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


_REGISTRY: Registry[Callable[..., Dataset]] = Registry("dataset", unknown_error=UnknownDatasetError,
                                                      keyword_error=TypeError, passed=_COMMON)


def register(name: str) -> Callable[[F], F]:
    """Class or function decorator adding a dataset factory under ``name``.

    The factory is called as ``factory(split=..., root=..., transform=..., **kw)``.
    """
    return _REGISTRY.register(name)


def available() -> list[str]:
    """The registered dataset names, sorted."""
    return _REGISTRY.available()


def factory(name: str) -> Callable[..., Dataset]:
    """The factory registered as ``name``; :class:`UnknownDatasetError` for an unregistered name."""
    return _REGISTRY.get(name)


def check_keywords(name: str, kw: Mapping[str, Any]) -> None:
    """``TypeError`` when ``kw`` holds a keyword the dataset ``name`` does not accept (besides ``split``, ``root``
    and ``transform``), naming the closest accepted ones and all of them; nothing when its factory takes any.
    Unknown names raise :class:`UnknownDatasetError`."""
    _REGISTRY.check_keywords(name, kw)


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
    _REGISTRY.get(name, extra_hint=" Real benchmarks register themselves when their module is imported.")
    check_split(split)
    return _REGISTRY.build(name, split=split, root=root, transform=transform, **kw)


def factory(name: str) -> Callable[..., Dataset] | None:
    """The factory registered as ``name`` (a class or function), or ``None`` when there is none."""
    return _REGISTRY.get(name) if name in _REGISTRY else None
