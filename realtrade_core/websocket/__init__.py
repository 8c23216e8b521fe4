"""WebSocket connections for exchange plugins: one thread per connection, many streams, typed events.

A plugin subclasses :class:`BaseWebSocket` (URL, subscribe/auth messages, a parser) and gives
the store a way to open its connections (``for_store``, ``stream_name``: see :mod:`.contract`).
The core does the rest, in these modules:

* :mod:`.config`: :class:`WebSocketConfig` (backoff, heartbeats, staleness, maximum connection
  age, ...) and :class:`WebSocketStats`;
* :mod:`.connection`: :class:`BaseWebSocket`, its public API and one connection's life, over
  websocket-client;
* :mod:`.messages`: JSON messages out (:data:`Outgoing`) and the control directives a parser
  returns (:class:`Authenticated`, :class:`Reconnect`, :class:`Resubscribe`, :class:`Subscribed`);
* :mod:`.keepalive`: heartbeats, the staleness watchdog, reconnect with backoff;
* :mod:`.frames`: reading frames off the socket (the hot path, measured in ``bench/``);
* :mod:`.dispatch`: events to listeners, bad messages to quarantine (the checks themselves are
  the events' own, on :mod:`realtrade_core.validation`);
* :mod:`.venue`: URLs and credentials of a store's venue, for a plugin's ``for_store``;
* :mod:`.clock`: our clock, the exchange's as the store measured it, the market's;
* :mod:`.exchange`: :class:`ExchangeConnection`, the usual base of a plugin's connection (one
  URL, markets named by the exchange's ids; venue URLs, stream names and subscribe batches
  declared as tables);
* :mod:`.contract`: what a plugin's WebSocket class must provide, checked at registration.
"""

from __future__ import annotations

from ..errors import WebSocketContractError
from .clock import exchange_clock, market_clock, wall_ms
from .config import WebSocketConfig, WebSocketStats
from .connection import BaseWebSocket
from .contract import StoreStreams
from .exchange import ExchangeConnection
from .messages import CONNECTION_EVENTS, Authenticated, Callback, Control, Outgoing, Reconnect, Resubscribe, Subscribed
from .venue import connection_for_store, venue_stream_urls

__all__ = [
    "CONNECTION_EVENTS",
    "Authenticated",
    "BaseWebSocket",
    "Callback",
    "Control",
    "ExchangeConnection",
    "Outgoing",
    "Reconnect",
    "Resubscribe",
    "StoreStreams",
    "Subscribed",
    "WebSocketConfig",
    "WebSocketContractError",
    "WebSocketStats",
    "connection_for_store",
    "exchange_clock",
    "market_clock",
    "venue_stream_urls",
    "wall_ms",
]
