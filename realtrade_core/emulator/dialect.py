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
``api_key_header``      no        header naming the account, and ``client_order_id_params``
                                  the parameters naming an order (for refused-order records)
``error_body(...)``     yes       body + status for an injected 429/418/5xx answer
``error_code(...)``     no        (code, message) inside an error body, for refused orders
``on_event(event)``     no        turn engine events into stream messages (default: ignore)
``default_markets()``   no        MarketSpecs for symbols given without a spec
``close()``             no        release resources when the server stops
======================  ========  ==============================================================

A dialect calls :meth:`EmulatorDialect.record_refusal` whenever it answers an order placement
with an error, with the exchange's own code and message, so that tests can read what was
refused and why (``Emulator.refused_orders()``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .model import RefusedOrder

if TYPE_CHECKING:  # aiohttp is imported only where a server actually runs
    from aiohttp import web

    from .engine import Engine
    from .faults import Faults
    from .hub import ConnectionHub
    from .model import EngineEvent, MarketSpec


#: Refused order requests kept for reading (the oldest are forgotten first).
REFUSALS_KEPT = 10_000
#: Request parameters never kept with a refusal: they authenticate, they do not describe the order.
_UNRECORDED = frozenset({"signature", "timestamp", "recvWindow"})


#: Methods a dialect must write (the server calls them; the base only raises).
_REQUIRED_METHODS = ("routes", "urls", "ccxt_urls", "error_body")


class EmulatorDialect:
    """Base class of an exchange's emulator dialect. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    #: (HTTP method, path) pairs that place orders; the "accept then time out" fault applies there.
    order_paths: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    #: The header carrying the API key (to name the account of a request refused by a fault).
    api_key_header: ClassVar[str] = ""
    #: Request parameters that carry an order's client order id, in order of preference.
    client_order_id_params: ClassVar[tuple[str, ...]] = ()
    #: (maker, taker) fee rates of the perpetuals the core derives from spot markets: the rates
    #: ccxt lists for the exchange's contracts, so paper trading charges what the emulator does
    contract_fees: ClassVar[tuple[str, str]] = ("0.0002", "0.0005")
    #: Perpetuals: the ccxt class that trades them (None: the exchange's own) and the options
    #: ``Emulator.ccxt_client`` gives it.
    ccxt_contract_id: ClassVar[str | None] = None
    ccxt_contract_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        self.engine = engine
        self.hub = hub
        self.faults = faults
        self.settings = settings  # e.g. {"ping_interval": 20.0, "pong_timeout": 60.0, "idle_timeout": 600.0}
        self._refusals: deque[RefusedOrder] = deque(maxlen=REFUSALS_KEPT)
        self._refusals_lock = threading.Lock()

    @classmethod
    def missing_members(cls) -> list[str]:
        """The required members (the table above) this dialect lacks: checked when the plugin
        registers, so a dialect without its routes is refused naming them, not when it serves."""
        missing = [] if isinstance(cls.name, str) and cls.name else ["name"]
        if not cls.order_paths:
            missing.append("order_paths")
        return missing + [n for n in _REQUIRED_METHODS if getattr(cls, n) is getattr(EmulatorDialect, n)]

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

    def error_code(self, status: int, body: Any) -> tuple[int, str]:
        """The exchange's (code, message) inside an error ``body`` answered with HTTP ``status``
        (to record a refused order); by default the HTTP status."""
        return status, f"HTTP {status}"

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

    def default_contract_market(self, symbol: str) -> MarketSpec | None:
        """A spec for the perpetual ``symbol``, or None to let the core derive one."""
        return None

    def close(self) -> None:
        """Called once when the server stops."""

    # --- refused orders ---------------------------------------------------------------------------

    def record_refusal(
        self,
        path: str,
        account: str | None,
        params: Mapping[str, Any],
        code: int,
        reason: str,
        *,
        http_status: int = 200,
        client_order_id: str | None = None,
    ) -> RefusedOrder:
        """Remember an order request answered with the error ``code`` / ``reason``."""
        request = {str(k): str(v) for k, v in params.items() if k not in _UNRECORDED and v is not None}
        symbol = request.get("symbol") or None
        engine = self.engine
        refusal = RefusedOrder(
            time=engine.now() if engine is not None else int(time.time() * 1000),
            account=account or "",
            path=path,
            symbol=symbol,
            client_order_id=client_order_id or None,
            code=int(code),
            reason=str(reason),
            http_status=int(http_status),
            request=request,
        )
        with self._refusals_lock:
            self._refusals.append(refusal)
        return refusal

    def refusals(self, account: str | None = None) -> list[RefusedOrder]:
        """Refused order requests, oldest first: all of them, or those carrying ``account``'s key."""
        with self._refusals_lock:
            kept = list(self._refusals)
        return kept if account is None else [r for r in kept if r.account == account]
