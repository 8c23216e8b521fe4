"""Binance spot dialect of the realtrade exchange emulator.

Speaks Binance's documented wire format closely enough that unmodified ccxt and a plain
WebSocket client work against the emulator with only the URLs changed:

- REST ``/api/v3`` (:mod:`.rest`, orders in :mod:`.orders`): public market data, SIGNED account
  and order endpoints with Binance's HMAC-SHA256 signature, ``recvWindow`` and timestamp rules, error codes
  and ``X-MBX-USED-WEIGHT-1M`` headers. ``load_markets`` works with ccxt's options untouched: the
  futures ``exchangeInfo`` and the ``sapi`` currency / margin-pair endpoints it also asks answer
  empty.
- Market streams ``/ws/<stream>``, ``/ws`` and ``/stream?streams=...`` and the WebSocket API
  ``/ws-api/v3`` with ``userDataStream.subscribe.signature`` (:mod:`.streams`).

Order types: MARKET (by ``quantity`` or ``quoteOrderQty``), LIMIT (GTC/IOC/FOK), LIMIT_MAKER,
STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT and TAKE_PROFIT_LIMIT (a SELL take-profit fires on a rise to
``stopPrice``, a BUY on a fall; a stop loss the other way round); matching follows the core
engine's rules. ``exchangeInfo`` lists every filter Binance sets on a major spot market, and the
account-state ones are enforced: MAX_NUM_ORDERS (200 open orders per symbol), MAX_NUM_ALGO_ORDERS
(5 waiting stops / take-profits), MAX_NUM_ORDER_LISTS (20 open OCO lists), and
PERCENT_PRICE_BY_SIDE (a price within 0.2x to 5x the average price, here the last price). Icebergs,
trailing stops, order amendment and SOR are not served (``icebergAllowed``, ``allowTrailingStop``,
``amendAllowed`` false, no ``sors``). OCO order lists
(``POST /api/v3/orderList/oco``): a LIMIT_MAKER and a STOP_LOSS or STOP_LOSS_LIMIT (GTC) for one
quantity, the LIMIT_MAKER above the last price for a SELL and below it for a BUY; both orders
carry the list's ``orderListId``. When one trades or triggers the other EXPIRES, and cancelling
either (``DELETE /api/v3/order`` or ``/api/v3/orderList``) cancels both. User data streams a
``listStatus`` event when a list starts and when it is over (ALL_DONE).

USDⓈ-M perpetuals (markets given as ``BTC/USDT:USDT``) are served under ``/fapi`` and
``/fstream`` by :mod:`.futures` for unmodified ``ccxt.binanceusdm`` (``Emulator.ccxt_client``
hands one out): positions, leverage, margin modes, funding and liquidation are the core
engine's (:mod:`realtrade_core.emulator.contracts`). The spot endpoints do not list them.

Clocks. Market data, order and event times are the engine's emulated time. ``GET
/api/v3/time`` and the WebSocket API's ``time`` report :meth:`server_time`, and ``timestamp`` /
``recvWindow`` are checked against :meth:`auth_time`: the wall clock plus any injected skew (the
core's contract), because clients sign with their wall clock while the market clock may be
replayed history or stepped by hand.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .futures import BinanceFutures
from .orders import BinanceOrders
from .streams import BinanceStreams
from .wire import injected_error_body

if TYPE_CHECKING:
    from aiohttp import web

    from realtrade_core.emulator.model import EngineEvent, MarketSpec

__all__ = ["BinanceDialect"]

log = logging.getLogger(__name__)

#: ccxt ``urls["api"]`` sections and the path each one lives under on Binance's hosts.
_CCXT_SECTIONS = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}


class BinanceDialect(BinanceOrders, BinanceStreams, BinanceFutures):
    """The Binance spot wire dialect. Settings (seconds): ``ping_interval`` (20),
    ``pong_timeout`` (60), ``max_lifetime`` (86400) of a WebSocket connection.

    Test hooks beyond the dialect contract: :meth:`terminate_user_data_streams` sends
    ``eventStreamTerminated``; :meth:`send_server_shutdown` sends ``serverShutdown``.
    """

    name: ClassVar[str] = "binance"
    order_paths: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("POST", "/api/v3/order"),
            ("POST", "/api/v3/orderList/oco"),
            ("POST", "/fapi/v1/order"),
            ("POST", "/fapi/v1/algoOrder"),
        }
    )
    api_key_header: ClassVar[str] = "X-MBX-APIKEY"
    client_order_id_params: ClassVar[tuple[str, ...]] = ("newClientOrderId", "listClientOrderId", "clientAlgoId")
    ccxt_contract_id: ClassVar[str | None] = "binanceusdm"

    def routes(self) -> list[web.RouteDef]:
        return [*self.rest_routes(), *self.order_routes(), *self.stream_routes(), *self.futures_routes()]

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        urls = {
            "rest": f"{base_http}/api/v3",
            "ws_market": f"{base_ws}/ws",
            "ws_combined": f"{base_ws}/stream",
            "ws_api": f"{base_ws}/ws-api/v3",
        }
        # A bare dialect (interlock.emulator_urls, a remote emulator's) names them too: the server
        # it is for decides which markets it has.
        if getattr(self, "_contracts", True):  # USDⓈ-M perpetuals: REST and streams (listen key after /ws/)
            urls.update({"fapi": f"{base_http}/fapi/v1", "fstream": f"{base_ws}/fstream/ws"})
        return urls

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        # Every section ccxt knows points here, so no call can reach the real exchange; only
        # what spot needs is served, anything else answers 404.
        return {section: base_http + path for section, path in _CCXT_SECTIONS.items()}

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, dict[str, Any]]:
        return injected_error_body(status, retry_after, self.server_time())

    def error_code(self, status: int, body: Any) -> tuple[int, str]:
        if isinstance(body, dict) and isinstance(body.get("code"), int):
            return body["code"], str(body.get("msg", ""))
        return status, f"HTTP {status}"

    def on_event(self, event: EngineEvent) -> None:
        if not self.futures_event(event):
            BinanceStreams.on_event(self, event)

    def default_market(self, symbol: str) -> MarketSpec | None:
        return None

    def close(self) -> None:
        log.debug("Binance emulator dialect closed")
