"""Bybit v5 dialect of the realtrade exchange emulator (spot category, unified trading account).

Unmodified ``ccxt.bybit`` works against it with only ``urls["api"]`` replaced (see
:meth:`BybitDialect.ccxt_urls`), and so does a plain WebSocket client on
``/v5/public/spot`` and ``/v5/private``. No ccxt option needs changing.

USDT perpetuals (markets given as ``BTC/USDT:USDT``) are served with ``category=linear`` on
the same endpoints, plus ``/v5/position/*``, ``/v5/account/set-margin-mode``,
``/v5/account/transaction-log``, ``/v5/market/funding/history`` and the ``/v5/public/linear``
stream, by :mod:`.linear`; positions, leverage, funding and liquidation are the core engine's
(:mod:`realtrade_core.emulator.contracts`).

Served REST endpoints: ``/v5/market/{time,instruments-info,kline,tickers,orderbook,recent-trade}``,
``/v5/system/status``, ``/v5/account/{wallet-balance,info,fee-rate}``, ``/v5/user/query-api``,
``/v5/asset/coin/query-info``, ``/v5/spot-margin-trade/state``, ``/v5/order/{create,cancel,
cancel-all,realtime,history}`` and ``/v5/execution/list``. The inverse and option categories answer
with empty lists, and so does linear when the emulator trades spot.

How Bybit's order model maps onto the engine:

=============================================  ===============================================
Bybit request                                  engine order
=============================================  ===============================================
``orderType=Market``                           MARKET (reported with ``timeInForce`` IOC)
``orderType=Limit`` (+ GTC / IOC / FOK)        LIMIT with that time in force
``orderType=Limit, timeInForce=PostOnly``      LIMIT GTC, refused (170218) if it would take
``Market`` + ``triggerPrice`` + StopOrder      STOP_MARKET (``orderStatus`` Untriggered first),
                                               funds taken only when it triggers
``Limit`` + ``triggerPrice`` + StopOrder       STOP_LIMIT, funds taken only when it triggers
``triggerPrice`` + tpslOrder                   STOP_MARKET / STOP_LIMIT, funds held from the start
``marketUnit=quoteCoin`` market order          base amount = quote qty / last price (trigger
                                               price for conditional orders), rounded down
=============================================  ===============================================

Spot market orders without ``marketUnit`` use Bybit's defaults: a Buy's ``qty`` is quote coin,
a Sell's base coin. As on Bybit spot, a conditional order fires when the price rises to a trigger
placed above the last price and when it falls to one placed below it (reported as
``triggerDirection`` 1 and 2): a sell limit with its trigger above the market is a take-profit, a
sell market with its trigger below a stop-loss. A trigger at the last price is refused
(110092 / 110093), and so is a ``triggerDirection`` that contradicts the trigger's side (10001).
A StopOrder conditional order holds no funds while it waits, so a take-profit and a stop-loss can
both rest on the same coins; when one triggers and the account can no longer cover it, it is
cancelled (``orderStatus`` Cancelled, ``rejectReason`` EC_Others; ccxt status ``canceled``),
while one the client cancels before it fires is Deactivated.

What ccxt users meet here exactly as on Bybit (none of it needs a ccxt option):

- ``fetch_order`` on a unified account needs ``params={"acknowledged": True}``; or use
  ``fetch_open_order`` / ``fetch_closed_order``.
- An untriggered conditional order is cancelled with ``params={"trigger": True}``
  (``orderFilter=StopOrder``); without it Bybit spot answers "Order does not exist". Likewise
  ``cancel_all_orders(symbol)`` cancels plain orders only, ``params={"trigger": True}`` the
  conditional ones.
- Calls without a symbol (``fetch_open_orders()``, ``fetch_my_trades()``) ask for ccxt's default
  type, swap (``category=linear``), which is empty here; pass the symbol, or create the client
  with ``options={"defaultType": "spot"}``.

Clocks: signatures (REST ``X-BAPI-TIMESTAMP``, stream ``auth`` expiry) are checked against the
wall clock plus injected skew, which is also the time ``/v5/market/time`` and every envelope's
``time`` report: clients sign with the wall clock, while the emulated market clock may run fast
or stand still. Candles, orders, fills and stream ``ts`` are on the emulated market clock.

Streams: ``/v5/public/spot`` serves ``kline.{interval}.{symbol}``, ``publicTrade.{symbol}``,
``tickers.{symbol}`` and ``orderbook.{1,50,200}.{symbol}`` (one level deep); ``/v5/private``
serves ``order``, ``execution``, ``wallet`` (changed coins only) and ``position`` (never pushes)
after ``auth``. A connection that sends nothing for ``settings["idle_timeout"]`` seconds (600 by
default) is closed; any message, a ``ping`` included, resets that timer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .linear import BybitLinear
from .orders import BybitOrders
from .streams import BybitStreams
from .wire import INVALID_API_KEY, IP_RATE_LIMIT, PARAMS_ERROR, TOO_MANY_VISITS

if TYPE_CHECKING:
    from aiohttp import web

    from realtrade_core.emulator.model import EngineEvent

log = logging.getLogger(__name__)


class BybitDialect(BybitOrders, BybitStreams, BybitLinear):
    """Bybit v5 wire protocol over the emulator's engine (see the module docstring)."""

    name: ClassVar[str] = "bybit"
    order_paths: ClassVar[frozenset[tuple[str, str]]] = frozenset({("POST", "/v5/order/create")})
    api_key_header: ClassVar[str] = "X-BAPI-API-KEY"
    client_order_id_params: ClassVar[tuple[str, ...]] = ("orderLinkId",)
    #: ccxt's rates for Bybit's linear contracts (its markets carry no fee of their own)
    contract_fees: ClassVar[tuple[str, str]] = ("0.0001", "0.0006")

    def routes(self) -> list[web.RouteDef]:
        return [*self.rest_routes(), *self.order_routes(), *self.stream_routes(), *self.linear_routes()]

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        urls = {
            "rest": base_http,
            "ws_public": f"{base_ws}/v5/public/spot",
            "ws_private": f"{base_ws}/v5/private",
        }
        # A bare dialect (interlock.emulator_urls, a remote emulator's) names them too: the server
        # it is for decides which markets it has.
        if getattr(self, "_contracts", True):  # USDT perpetuals (category=linear)
            urls["ws_linear"] = f"{base_ws}/v5/public/linear"
        return urls

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        # ccxt.bybit picks its base URL by API name; every one of them is served here.
        return {key: base_http for key in ("spot", "futures", "v2", "public", "private")}

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, Any]:
        """Bybit's answer to an injected HTTP fault.

        429 is Bybit's per-UID limit (retCode 10006, ccxt RateLimitExceeded); 403 (and 418,
        which Bybit does not use) is its IP-wide limit (retCode 10018, RateLimitExceeded); 5xx
        comes from Bybit's gateway as a plain-text page, so it is a JSON *string* here: ccxt
        then maps the HTTP status itself (ExchangeNotAvailable, RequestTimeout for 504).
        """
        if status == 429:
            return 429, self._envelope({}, TOO_MANY_VISITS, "Too many visits!")
        if status in (403, 418):
            return 403, self._envelope({}, IP_RATE_LIMIT, "Your IP is rate limited: too many visits. Retry later.")
        if status >= 500:
            return status, f"{status} gateway error"
        if status == 401:
            return 401, self._envelope({}, INVALID_API_KEY, "API key is invalid.")
        return status, self._envelope({}, PARAMS_ERROR, "params error")

    def error_code(self, status: int, body: Any) -> tuple[int, str]:
        if isinstance(body, dict) and isinstance(body.get("retCode"), int):
            return body["retCode"], str(body.get("retMsg", ""))
        return status, f"HTTP {status}"  # a gateway's plain-text page

    def on_event(self, event: EngineEvent) -> None:
        try:
            if self.linear_event(event):
                return
        except Exception:
            log.exception("bybit emulator: could not translate %s", type(event).__name__)
            return
        BybitStreams.on_event(self, event)
