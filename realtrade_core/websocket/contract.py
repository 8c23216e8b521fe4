"""What a plugin's WebSocket class must give the store, checked when the plugin registers.

The store opens its connections through the class a plugin registers as
``ExchangeSpec.websocket`` (a :class:`~realtrade_core.websocket.BaseWebSocket` subclass) and
calls nothing else on it:

============================================================  ==================================
class member the store calls                                  required
============================================================  ==================================
``for_store(store, *, private, config=None) -> BaseWebSocket``  always: an unstarted connection
                                                              for the store's venue, market data
                                                              or (``private``) the account
``stream_name(kind, market, timeframe=None) -> str``           when ``capabilities.public_stream``:
                                                              the stream of ``kind`` ("bar",
                                                              "trade", "book") for a ccxt market
                                                              (an ExchangeConnection's, from its
                                                              declared ``stream_names``)
============================================================  ==================================

What a connection itself must implement (``url``, ``parse``, the subscribe messages ...) is
:meth:`BaseWebSocket.missing_members`; the registry checks both, so a third-party plugin that
lacks a piece is refused when it loads, with the piece named, not deep inside a live session.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import PluginValidationError
from .config import WebSocketConfig
from .connection import BaseWebSocket
from .exchange import ExchangeConnection

__all__ = ["StoreStreams", "open_connection", "store_contract_problems"]


class StoreStreams(Protocol):
    """The class-level part of a plugin's WebSocket: how the store opens and names streams."""

    @classmethod
    def for_store(cls, store: Any, *, private: bool, config: WebSocketConfig | None = None) -> BaseWebSocket:
        """An unstarted connection for ``store``'s venue (see :mod:`.venue` for helpers)."""
        ...

    @classmethod
    def stream_name(cls, kind: str, market: Mapping[str, Any] | str, timeframe: str | None = None) -> str:
        """The exchange's name of the stream of ``kind`` for ``market`` (ccxt's market dict)."""
        ...


# member -> (how the store calls it, its signature as the error shows it)
_CALLS: dict[str, tuple[tuple[tuple[Any, ...], dict[str, Any]], str]] = {
    "for_store": (((object(),), {"private": True}), "for_store(store, *, private, config=None) -> BaseWebSocket"),
    "stream_name": ((("bar", {"id": "X"}, "1m"), {}), "stream_name(kind, market, timeframe=None) -> str"),
}


def store_contract_problems(cls: type, *, public_stream: bool = True) -> list[str]:
    """What ``cls`` lacks of :class:`StoreStreams`, one line each (empty when it is complete):
    a member missing, not a classmethod, or with a signature the store's call does not fit."""
    needed = ["for_store", "stream_name"] if public_stream else ["for_store"]
    problems = []
    for name in needed:
        (args, kwargs), shown = _CALLS[name]
        member = getattr(cls, name, None)
        if member is None:
            problems.append(f"no {shown} (a classmethod)")
            continue
        if not isinstance(inspect.getattr_static(cls, name), (classmethod, staticmethod)):
            problems.append(f"{name} must be a classmethod {shown} (the store calls it on the class)")
            continue
        try:
            inspect.signature(member).bind(*args, **kwargs)
        except TypeError as exc:
            problems.append(f"{name} cannot be called as {shown} ({exc})")
        except ValueError:  # no signature to read (a builtin): trust it
            pass
    if public_stream and _declared_names_missing(cls):
        problems.append("no stream_names (kind -> name template) for ExchangeConnection.stream_name to fill in")
    return problems


def _declared_names_missing(cls: type) -> bool:
    """``cls`` keeps ExchangeConnection's ``stream_name`` but declares no names for it."""
    inherited = getattr(getattr(cls, "stream_name", None), "__func__", None) is ExchangeConnection.stream_name.__func__
    return inherited and not getattr(cls, "stream_names", None)


def open_connection(cls: type, store: Any, *, private: bool) -> BaseWebSocket:
    """``cls.for_store(store, private=...)``, refused unless it is an unstarted BaseWebSocket."""
    ws = cls.for_store(store, private=private)
    if not isinstance(ws, BaseWebSocket):
        raise PluginValidationError(
            f"{cls.__module__}.{cls.__qualname__}.for_store returned {type(ws).__name__}, not a "
            f"realtrade_core.websocket.BaseWebSocket; fix the {store.exchange} plugin"
        )
    return ws
