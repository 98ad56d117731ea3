"""The miner registry: ``build(name, **hyperparameters)`` like :func:`dml.losses.build`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dml.mining.base import Miner
from dml.utils.registry import Registry, did_you_mean, keyword_names

_MINERS: Registry[type[Miner]] = Registry("miner")
M = TypeVar("M", bound=type[Miner])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make ``build(name, **hyperparameters)`` construct this miner."""
    return _MINERS.register(name)


def available() -> list[str]:
    """Registered miner names."""
    return _MINERS.available()


def build(name: str, **hyperparameters: Any) -> Miner:
    """Construct the miner registered as ``name``."""
    cls = _MINERS.get(name)
    valid = keyword_names(cls, keyword_only=True) or []
    for key in hyperparameters:
        if key not in valid:
            raise ValueError(f"Unknown hyperparameter {key!r} for miner {name!r}.{did_you_mean(key, valid)} "
                             f"Valid hyperparameters: {valid}.")
    return cls(**hyperparameters)
