"""The loss registry: ``register`` a loss class under a name, ``build`` it from a name and keyword hyperparameters.

Hyperparameters are the keyword-only arguments of the class's ``__init__``; ``build`` checks them against that
signature, so a typo in a config file fails at start-up with the valid names instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from dml.utils.registry import Registry, keyword_names

_LOSSES: Registry[type[nn.Module]] = Registry("loss", keyword_only=True)
L = TypeVar("L", bound=type[nn.Module])


def register(name: str) -> Callable[[L], L]:
    """Class decorator: make ``build(name, **hyperparameters)`` construct this loss."""
    return _LOSSES.register(name)


def available(*, kind: type[nn.Module] | None = None) -> list[str]:
    """Registered loss names; with ``kind`` (e.g. :class:`dml.losses.PairLoss`) only the subclasses of ``kind``."""
    names = _LOSSES.available()
    return names if kind is None else [name for name in names if issubclass(_LOSSES.get(name), kind)]


def loss_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``."""
    return _LOSSES.get(name)


def hyperparameters(name: str) -> dict[str, Any]:
    """The hyperparameters of loss ``name`` with their defaults."""
    import inspect

    cls = _LOSSES.get(name)
    names = keyword_names(cls, keyword_only=True) or []
    params = inspect.signature(cls.__init__).parameters
    return {key: params[key].default for key in names}


def build(name: str, **hyperparameters_: Any) -> nn.Module:
    """Construct the loss registered as ``name``; call the result as ``loss(embeddings, labels)``."""
    return _LOSSES.build(name, **hyperparameters_)
