"""The method registry: ``register_method`` a :class:`~dml.train.callbacks.Method` under a name, ``build_method``
it from a name and keyword hyperparameters, as a config's ``method: {name, kwargs}`` does for ``dml train``.

``"metric"`` is plain metric learning (:class:`~dml.train.callbacks.Method`, the default). A method that is also a
:class:`~dml.train.callbacks.Callback` receives the loop's hooks as well (e.g. re-clustering before an epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from dml.train.callbacks import Method
from dml.train.config import ConfigError
from dml.utils.registry import Registry

_METHODS: Registry[type[Method]] = Registry(
    "method", unknown_error=ConfigError, keyword_error=ConfigError, keyword_only=True
)
M = TypeVar("M", bound=type[Method])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: make ``build_method(name, **hyperparameters)`` construct this method."""
    return _METHODS.register(name)


def available_methods() -> list[str]:
    """Registered method names."""
    return _METHODS.available()


def check_method(name: str, keywords: Iterable[str]) -> None:
    """``ConfigError`` for an unknown method or a keyword it does not take (config key ``method``)."""
    _METHODS.check_keywords(name, keywords, extra_hint=" (config key method.name)")


def build_method(name: str, **hyperparameters: Any) -> Method:
    """Construct the method registered as ``name``."""
    return _METHODS.build(name, **hyperparameters)


register_method("metric")(Method)
