"""Name -> dataset lookup, so configs and notebooks say ``build("synthetic", split="test")``.

A loader joins the registry with the :func:`register` decorator at import time; :mod:`dml.data` imports every
built-in loader, so ``available()`` is complete as soon as the package is imported. :func:`build` validates the
split and the keyword arguments *before* constructing anything, because a typo in a hyperparameter name would
otherwise surface only after minutes of data generation, or never.
"""
from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Callable, TypeVar

from torch.utils.data import Dataset

from dml.data.base import Transform, check_split

_REGISTRY: dict[str, Callable[..., Dataset]] = {}
_COMMON = ("split", "root", "transform")

F = TypeVar("F", bound=Callable[..., Dataset])


class UnknownDatasetError(KeyError, ValueError):
    """Raised for a dataset name that is not registered; catchable as ``KeyError`` or ``ValueError``."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


def register(name: str) -> Callable[[F], F]:
    """Class or function decorator adding a dataset factory under ``name``.

    The factory is called as ``factory(split=..., root=..., transform=..., **kw)``.
    """
    def decorator(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"Dataset name {name!r} is already registered to {_REGISTRY[name]!r}; "
                             "choose a different name or remove the other registration.")
        _REGISTRY[name] = factory
        return factory
    return decorator


def available() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_REGISTRY)


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
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, available(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDatasetError(f"Unknown dataset {name!r}.{hint} Available: {', '.join(available())}. "
                                  "Real benchmarks register themselves when their module is imported.")
    check_split(split)
    factory = _REGISTRY[name]
    accepted = _accepted_keywords(factory)
    if accepted is not None:
        unknown = sorted(set(kw) - set(accepted))
        if unknown:
            hints = [f"{u!r} -> {m[0]!r}" for u in unknown if (m := difflib.get_close_matches(u, accepted, n=1))]
            hint = f" Closest: {', '.join(hints)}." if hints else ""
            raise TypeError(f"Dataset {name!r} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}."
                            f"{hint} Accepted: {', '.join(accepted) or '(none)'} (plus split, root, transform).")
    return factory(split=split, root=root, transform=transform, **kw)


def _accepted_keywords(factory: Callable[..., Any]) -> list[str] | None:
    """Dataset-specific keyword names of ``factory``, or ``None`` if it takes ``**kwargs`` (cannot check)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            and p.name not in _COMMON]
