"""The contract between the emulator's server and an exchange plugin's wire dialect.

The core owns the engine, the HTTP/WebSocket server, the admin endpoint and fault injection. A
plugin owns its dialect: REST routes, payload shapes, error codes, signing rules and stream
messages. A dialect is a subclass of :class:`EmulatorDialect`:

======================  ========  ==============================================================
member                  required  what it does
======================  ========  ==============================================================
``name``                yes       exchange name (``"binance"``)
``routes()``            yes       aiohttp route definitions for REST and WebSocket endpoints
``urls(base)``          yes       the URLs a client uses (``rest``, ``ws_public``, ...)
``ccxt_urls(base)``     yes       the value to put in ``ccxt_exchange.urls["api"]``
``order_paths``         yes       (method, path) pairs that create orders (timeout-after-accept)
``error_body(...)``     yes       body + status for an injected 429/418/5xx answer
``on_event(event)``     no        turn engine events into stream messages (default: ignore)
``default_markets()``   no        MarketSpecs for symbols given without a spec
``close()``             no        release resources when the server stops
======================  ========  ==============================================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # aiohttp is imported only where a server actually runs
    from aiohttp import web

    from .engine import Engine
    from .faults import Faults
    from .hub import ConnectionHub
    from .model import EngineEvent, MarketSpec


class EmulatorDialect:
    """Base class of an exchange's emulator dialect. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    #: (HTTP method, path) pairs that place orders; the "accept then time out" fault applies there.
    order_paths: ClassVar[frozenset[tuple[str, str]]] = frozenset()

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        self.engine = engine
        self.hub = hub
        self.faults = faults
        self.settings = settings  # e.g. {"ping_interval": 20.0, "pong_timeout": 60.0, "idle_timeout": 600.0}

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError(f"{type(self).__name__} must implement routes()")

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        """Client-facing URLs, e.g. ``{"rest": ..., "ws_public": ..., "ws_private": ...}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement urls()")

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        """The dict to assign to ``exchange.urls["api"]`` so unmodified ccxt talks to us."""
        raise NotImplementedError(f"{type(self).__name__} must implement ccxt_urls()")

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, dict]:
        """(HTTP status, JSON body) the exchange would send for an injected ``status``."""
        raise NotImplementedError(f"{type(self).__name__} must implement error_body()")

    def server_time(self) -> int:
        """What the exchange's time endpoints report: wall-clock ms plus injected skew.

        Clients sign requests with their wall clock and may sync it to this endpoint, whatever
        the replay speed or date, so time endpoints and signature checks use the wall clock.
        The market itself (candles, orders, fills, stream timestamps) runs on
        :meth:`market_time`; realtrade's stores read that from the emulator directly.
        """
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    def auth_time(self) -> int:
        """The clock signed-request timestamps are checked against (same as :meth:`server_time`)."""
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    def market_time(self) -> int:
        """The emulated market clock in epoch ms (replay speed, manual steps, CSV dates)."""
        return self.engine.now()

    def on_event(self, event: EngineEvent) -> None:
        """Called under the engine lock for every engine event: translate and ``hub.publish``."""

    def default_market(self, symbol: str) -> MarketSpec | None:
        """A spec for a bare symbol (``BTCUSDT``), or None to let the core derive one."""
        return None

    def close(self) -> None:
        """Called once when the server stops."""
