"""Backend registry: map a URL scheme to the class implementing one backend protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar
from urllib.parse import urlsplit

__all__ = ["BackendRegistry", "UnknownBackendError"]

T = TypeVar("T")


class UnknownBackendError(ValueError):
    """Raised when no implementation is registered for a URL's scheme."""


class BackendRegistry(Generic[T]):
    """Chooses the implementation of one backend kind from a URL scheme.

    Implementations register a factory taking the URL; ``by_url`` builds one.
    Factories may be given as ``"module:attr"`` strings so optional drivers are
    imported only when a URL asks for them (as Faust does for its stores).

    >>> reg: BackendRegistry[str] = BackendRegistry("greeting")
    >>> reg.register("hello", lambda url: "hi " + url)
    >>> reg.by_url("hello://world")
    'hi hello://world'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[[str], T] | str] = {}

    def register(self, scheme: str, factory: Callable[[str], T] | str) -> None:
        self._factories[scheme.lower()] = factory

    @property
    def schemes(self) -> list[str]:
        return sorted(self._factories)

    def resolve(self, url: str) -> Callable[[str], T]:
        scheme = urlsplit(url).scheme.lower()
        try:
            factory = self._factories[scheme]
        except KeyError:
            raise UnknownBackendError(
                f"no {self.kind} backend for URL scheme {scheme!r} in {url!r}; known schemes: {', '.join(self.schemes)}"
            ) from None
        if isinstance(factory, str):
            module_name, _, attr = factory.partition(":")
            module = __import__(module_name, fromlist=[attr])
            loaded: Callable[[str], T] = getattr(module, attr)
            self._factories[scheme] = loaded
            return loaded
        return factory

    def by_url(self, url: str) -> T:
        return self.resolve(url)(url)
