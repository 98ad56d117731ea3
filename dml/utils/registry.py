"""One registry mechanism for datasets, backbones and losses: ``name -> factory``, with helpful errors.

Each subpackage keeps its own :class:`Registry` instance and its own ``build`` function (they differ in what they
pass to the factory), but the bookkeeping and the error messages — an unknown name with its closest match, an
unknown keyword with the accepted ones — live here once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from dml.utils.checks import closest_match, did_you_mean  # did_you_mean re-exported: callers import it from here

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """Named factories of one kind (``kind`` is used in messages, e.g. ``"loss"``)."""

    def __init__(
        self,
        kind: str,
        *,
        unknown_error: type[Exception] = ValueError,
        keyword_error: type[Exception] = ValueError,
        keyword_only: bool = False,
        passed: tuple[str, ...] = (),
    ) -> None:
        """``keyword_only``: only keyword-only arguments count as hyperparameters; ``passed``: arguments the
        subpackage's own ``build`` always passes (e.g. ``split``), accepted without being listed."""
        self.kind = kind
        self.unknown_error = unknown_error
        self.keyword_error = keyword_error
        self.keyword_only = keyword_only
        self.passed = passed
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding a factory (class or function) under ``name``."""

        def decorator(factory: F) -> F:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(
                    f"A {self.kind} named {name!r} is already registered "
                    f"({getattr(self._factories[name], '__qualname__', self._factories[name])}); "
                    "pick another name."
                )
            self._factories[name] = factory
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions that register throw-away entries)."""
        self._factories.pop(name, None)

    def available(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def get(self, name: str, *, extra_hint: str = "") -> F:
        """The factory registered as ``name``; an unknown name raises ``unknown_error`` with the closest match."""
        if name not in self._factories:
            raise self.unknown_error(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, self._factories)} "
                f"Choose one of {self.available()}.{extra_hint}"
            )
        return self._factories[name]

    def check_keywords(self, name: str, keywords: Iterable[str], *, extra_hint: str = "") -> F:
        """The factory registered as ``name``, after checking that it accepts every name in ``keywords``.

        An unknown name raises ``unknown_error``; an unknown keyword raises ``keyword_error`` naming the closest
        accepted keyword and all of them. A factory taking ``**kwargs`` accepts anything.
        """
        factory = self.get(name, extra_hint=extra_hint)
        accepted = keyword_names(factory, exclude=self.passed, keyword_only=self.keyword_only)
        if accepted is None:
            return factory
        unknown = sorted(set(keywords) - set(accepted) - set(self.passed))
        if unknown:
            pairs = [f"{u!r} -> {m!r}" for u in unknown if (m := closest_match(u, accepted)) is not None]
            hints = f" Closest: {', '.join(pairs)}." if pairs else ""
            plus = f" (plus {', '.join(self.passed)})" if self.passed else ""
            raise self.keyword_error(
                f"{self.kind.capitalize()} {name!r} got unexpected keyword argument(s) "
                f"{', '.join(map(repr, unknown))}.{hints} Accepted: "
                f"{', '.join(accepted) or '(none)'}{plus}."
            )
        return factory

    def build(self, name: str, /, **kwargs: Any) -> Any:
        """``factory(**kwargs)`` for the factory registered as ``name``, with the checks of :meth:`check_keywords`."""
        return self.check_keywords(name, kwargs)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._factories


def keyword_names(
    factory: Callable[..., Any], *, exclude: Iterable[str] = (), keyword_only: bool = False
) -> list[str] | None:
    """The keyword arguments ``factory`` accepts (minus ``exclude``), or ``None`` if it takes ``**kwargs``."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = [p for p in inspect.signature(target).parameters.values() if p.name not in ("self", *exclude)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    kinds = (
        (inspect.Parameter.KEYWORD_ONLY,)
        if keyword_only
        else (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
    return [p.name for p in params if p.kind in kinds]
