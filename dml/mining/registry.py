"""The miner registry: ``build(name, **hyperparameters)`` like :func:`dml.losses.build`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dml.mining.base import Miner
from dml.utils.registry import Registry

_MINERS: Registry[type[Miner]] = Registry("miner", keyword_only=True)
M = TypeVar("M", bound=type[Miner])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make ``build(name, **hyperparameters)`` construct this miner."""
    return _MINERS.register(name)


def available() -> list[str]:
    """Registered miner names."""
    return _MINERS.available()


def build(name: str, **hyperparameters: Any) -> Miner:
    """Construct the miner registered as ``name``."""
    return _MINERS.build(name, **hyperparameters)


def resolve(miner: str | Mapping[str, Any] | Miner | None) -> Miner | None:
    """A loss's ``miner=`` argument as a :class:`Miner`: ``None``, an instance, a registered name, or a mapping
    ``{"name": ..., **hyperparameters}`` (the form a YAML config gives)."""
    if miner is None or isinstance(miner, Miner):
        return miner
    if isinstance(miner, str):
        return build(miner)
    if isinstance(miner, Mapping):
        if "name" not in miner:
            raise ValueError(
                f"A miner given as a mapping needs a 'name' key (one of {available()}); got keys {sorted(miner)}."
            )
        options = {key: value for key, value in miner.items() if key != "name"}
        return build(miner["name"], **options)
    raise TypeError(
        f"miner must be None, a registered miner name ({available()}), a mapping with a 'name' key, "
        f"or a dml.mining.Miner instance; got {type(miner).__name__}."
    )
