"""The loss registry: ``register`` a loss class under a name, ``build`` it from a name and keyword hyperparameters.

Hyperparameters are the keyword-only arguments of the class's ``__init__``; ``build`` checks them against that
signature, so a typo in a config file fails at start-up with the valid names instead of being silently ignored.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

_LOSSES: dict[str, type[nn.Module]] = {}
L = TypeVar("L", bound=type[nn.Module])


def register(name: str) -> Callable[[L], L]:
    """Class decorator: make ``build(name, **hyperparameters)`` construct this loss."""

    def decorator(cls: L) -> L:
        if name in _LOSSES and _LOSSES[name] is not cls:
            raise ValueError(f"A loss named {name!r} is already registered ({_LOSSES[name].__qualname__}); "
                             "pick another name.")
        _LOSSES[name] = cls
        return cls

    return decorator


def available() -> list[str]:
    """Registered loss names."""
    return sorted(_LOSSES)


def hyperparameters(name: str) -> dict[str, Any]:
    """The hyperparameters of loss ``name`` with their defaults."""
    cls = _get(name)
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build(name: str, **hyperparameters_: Any) -> nn.Module:
    """Construct the loss registered as ``name``; call the result as ``loss(embeddings, labels)``."""
    valid = hyperparameters(name)
    for key in hyperparameters_:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown hyperparameter {key!r} for loss {name!r}.{hint} "
                             f"Valid hyperparameters (with defaults): {valid}.")
    return _LOSSES[name](**hyperparameters_)


def _get(name: str) -> type[nn.Module]:
    if name not in _LOSSES:
        close = difflib.get_close_matches(str(name), _LOSSES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown loss {name!r}.{hint} Choose one of {available()}.")
    return _LOSSES[name]
