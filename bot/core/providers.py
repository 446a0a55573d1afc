"""The open providers, by id: what the core reaches every robo-call API through."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bot.providers.base import Provider


class UnknownProvider(KeyError):
    """No provider with this id is enabled."""


class Providers:
    """Every enabled provider (see `bot/providers/registry.py` for which are)."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        if not providers:
            raise ValueError("at least one provider must be enabled")
        self._by_id = dict(providers)

    def get(self, provider_id: str) -> Provider:
        try:
            return self._by_id[provider_id]
        except KeyError:
            raise UnknownProvider(provider_id) from None

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._by_id

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._by_id.values())

    @property
    def default(self) -> Provider:
        """The first enabled provider (the workflow API when it is enabled)."""
        return next(iter(self._by_id.values()))

    @property
    def sandbox(self) -> bool:
        """True in demo mode: no provider can place a real call."""
        return all(p.sandbox for p in self)
