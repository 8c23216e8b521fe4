"""Binance spot streams on the core :class:`~realtrade_core.websocket.BaseWebSocket`.

A store opens at most two connections, both made by :meth:`BinanceWebSocket.for_store`:

* :class:`BinanceWebSocket` — market data on ``/ws``. Streams are added with ``SUBSCRIBE``
  requests on the open connection, so a new feed never replaces the connection; messages arrive
  unwrapped. The parser also takes the combined-stream envelope ``{"stream", "data"}``.
* :class:`BinanceUserDataWebSocket` — the account's orders, fills and balances over the
  WebSocket API (REST listen keys answer 410 Gone for spot). The signed
  ``userDataStream.subscribe.signature`` request is this connection's auth message: it is sent
  on every (re)connect and its response is the auth acknowledgement, so re-authenticating *is*
  resubscribing and the store never calls ``subscribe()`` on it.

Keepalive. Binance pings every 20 s (the base class answers; the pings also feed the staleness
watchdog), announces maintenance with ``serverShutdown`` (-> :class:`Reconnect`) and cuts every
connection after 24 h. That cut is pre-empted: the connection is replaced after the config's
``max_connection_age`` (23 h 50 m).

Numbers: market data as float, account data as Decimal (see :mod:`realtrade_core.events`).
Symbols are unified ccxt symbols, mapped from Binance ids with the store's markets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from realtrade_core.credentials import Credentials
from realtrade_core.errors import ConfigurationError
from realtrade_core.events import (
    AssetBalance,
    BalanceUpdate,
    Bar,
    BookTop,
    Event,
    Fill,
    OrderUpdate,
    Side,
    Trade,
)
from realtrade_core.validation import decimal, flag, ident, known, number, optional_decimal, reading
from realtrade_core.websocket import (
    Authenticated,
    BaseWebSocket,
    ExchangeConnection,
    Outgoing,
    Reconnect,
    WebSocketConfig,
    connection_for_store,
    market_clock,
    venue_stream_urls,
    wall_ms,
)

from .common import sign
from .stream_words import ORDER_STATUS, SHUTDOWN, SIDES

__all__ = ["URLS", "BinanceUserDataWebSocket", "BinanceWebSocket"]

logger = logging.getLogger(__name__)

#: Real endpoints per venue: "public" market streams, "private" the WebSocket API.
URLS: dict[str, dict[str, str]] = {
    "mainnet": {
        "public": "wss://stream.binance.com:9443/ws",
        "private": "wss://ws-api.binance.com:443/ws-api/v3",
    },
    "testnet": {
        "public": "wss://stream.testnet.binance.vision/ws",
        "private": "wss://ws-api.testnet.binance.vision/ws-api/v3",
    },
}
#: USDⓈ-M futures market streams (klines on the ``/market`` route since April 2026).
FUTURES_URLS: dict[str, dict[str, str]] = {
    "mainnet": {"public": "wss://fstream.binance.com/market/ws"},
    "testnet": {"public": "wss://fstream.binancefuture.com/ws"},
}
#: Kline intervals Binance spot streams (the stream name carries the interval verbatim).
KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
#: Binance cuts every connection after 24 h; replace it 10 minutes earlier, on our terms.
MAX_CONNECTION_AGE = 23 * 3600.0 + 50 * 60.0

_ORDER_TYPE = {
    "MARKET": "market",
    "LIMIT": "limit",
    "LIMIT_MAKER": "limit",
    "STOP_LOSS": "stop_market",
    "STOP_LOSS_LIMIT": "stop_limit",
    "TAKE_PROFIT": "take_profit_market",
    "TAKE_PROFIT_LIMIT": "take_profit_limit",
}
#: User-data events that need no event of their own: ``balanceUpdate`` is a delta followed by
#: an absolute ``outboundAccountPosition``; a ``listStatus``' orders get their own reports.
_QUIET_USER_EVENTS = frozenset({"balanceUpdate", "listStatus", "externalLockUpdate"})


class BinanceWebSocket(ExchangeConnection):
    """Binance spot market streams (kline, trade, aggTrade, bookTicker) on one connection.

    ``url`` is the ``/ws`` endpoint, ``symbols`` maps Binance ids (``BTCUSDT``) to unified
    symbols. ``max_connection_age`` (seconds) overrides the config's: the connection is replaced
    that long after it opened, before Binance's 24-hour cut.
    """

    exchange = "binance"
    # Binance pings every 20 s, so 75 s of silence means three pings went missing.
    default_config = WebSocketConfig(stale_after=75.0, max_connection_age=MAX_CONNECTION_AGE)
    venue_urls = URLS
    emulator_urls: ClassVar[Mapping[str, str]] = {"public": "ws_market", "private": "ws_api"}
    stream_names: ClassVar[Mapping[str, str]] = {
        "bar": "{id_lower}@kline_{interval}",  # btcusdt@kline_1m
        "trade": "{id_lower}@trade",
        "book": "{id_lower}@bookTicker",
    }
    intervals: ClassVar[Mapping[str, str]] = {interval: interval for interval in KLINE_INTERVALS}
    # Binance allows 5 incoming messages per second per connection: one request for many
    # streams, split only to keep each frame modest.
    streams_per_request = 200
    # Binance answers each SUBSCRIBE ({"result": null, "id": ...}) once the streams are on.
    subscribe_requires_ack = True
    request_id_field = "id"

    def __init__(
        self,
        streams: Iterable[str] = (),
        *,
        url: str = URLS["mainnet"]["public"],
        symbols: Mapping[str, str] | None = None,
        config: WebSocketConfig | None = None,
        name: str | None = None,
        max_connection_age: float | None = None,
    ) -> None:
        if max_connection_age is not None:
            config = replace(config or self.default_config, max_connection_age=max_connection_age)
        super().__init__(streams, url=url, symbols=symbols, config=config, name=name)

    # ---------------------------------------------------------------- construction for a store

    @classmethod
    def for_store(cls, store: Any, *, private: bool, config: WebSocketConfig | None = None) -> BaseWebSocket:
        """An unstarted connection for ``store``'s venue: market data, or (``private``) the
        account's user data with the store's credentials. A perpetual store's come from the
        USDⓈ-M futures streams (``fstream``; the account's through a listen key, see
        :mod:`.futures_stream`)."""
        if getattr(store, "perpetual", False):
            if private:
                return _futures_user_data(store, config)
            urls = venue_stream_urls(store, "binance", FUTURES_URLS, {"public": "fstream"})
            return connection_for_store(
                store, private=False, public_cls=BinanceWebSocket, private_cls=BinanceUserDataWebSocket,
                config=config, urls={**urls, "private": ""},
            )  # fmt: skip
        return connection_for_store(
            store,
            private=private,
            public_cls=BinanceWebSocket,
            private_cls=BinanceUserDataWebSocket,
            config=config,
            private_stream="user-data stream",
        )

    # ---------------------------------------------------------------- BaseWebSocket hooks

    def stream_request(self, op: str, streams: list[str]) -> Outgoing:
        return {"method": op.upper(), "params": streams, "id": next(self._request_ids)}

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        return self.parse_payload(json.loads(message))

    def parse_payload(self, msg: Any) -> Iterable[Event] | None:
        """Events of one decoded market-stream payload (see :meth:`parse`).

        Fields go into events as the wire has them where it has the right type already (times,
        ``x``), so the events' own checks refuse a string open time or ``"x": "false"``; a
        message that cannot be read raises :class:`MalformedMessage` (quarantined).
        """
        if not isinstance(msg, dict):
            return None
        kind = msg.get("e")
        if kind == "kline":
            return reading("bar", self._kline, msg)
        if kind == "trade" or kind == "aggTrade":
            return reading("trade", self._trade, msg, kind)
        if kind is None:
            if "stream" in msg and "data" in msg:  # combined-stream envelope
                return self.parse_payload(msg["data"])
            if "u" in msg and "b" in msg and "a" in msg:  # bookTicker (spot sends no "e")
                return reading("book", self._book, msg)
            if "id" in msg and ("result" in msg or "error" in msg):
                return self._response(msg)
            return None
        if kind == "serverShutdown":
            return SHUTDOWN
        return None

    def _kline(self, msg: dict[str, Any]) -> tuple[Bar, ...] | None:
        k = msg["k"]
        symbol = self._symbol(msg["s"])
        if symbol is None:
            return None
        return (
            Bar(
                "binance", symbol, k["i"], k["t"],
                number(k["o"]), number(k["h"]), number(k["l"]), number(k["c"]), number(k["v"]),
                k["x"], msg.get("E"),
            ),
        )  # fmt: skip

    def _trade(self, msg: dict[str, Any], kind: str) -> tuple[Trade, ...] | None:
        symbol = self._symbol(msg["s"])
        if symbol is None:
            return None
        # "m": the buyer is the maker, so the taker sold.
        side = Side.SELL if flag(msg["m"]) else Side.BUY
        trade_id = ident(msg["t"] if kind == "trade" else msg["a"])
        return (Trade("binance", symbol, trade_id, number(msg["p"]), number(msg["q"]), side, msg["T"]),)

    def _book(self, msg: dict[str, Any]) -> tuple[BookTop, ...] | None:
        symbol = self._symbol(msg["s"])
        if symbol is None:
            return None
        return (
            BookTop(
                "binance", symbol, number(msg["b"]), number(msg["B"]), number(msg["a"]), number(msg["A"]),
                msg.get("E"),
            ),
        )  # fmt: skip

    def _response(self, msg: dict[str, Any]) -> Iterable[Event]:
        error = msg.get("error")
        if error:
            # A rejected SUBSCRIBE (unknown stream, too many streams): nothing will arrive for it.
            logger.warning("%s: request %s refused: %s", self.name, msg.get("id"), error)
        return self.answered(msg["id"], ok=not error)


def _futures_user_data(store: Any, config: WebSocketConfig | None) -> BaseWebSocket:
    """The USDⓈ-M futures user-data connection of a perpetual store, its listen key asked for
    through the store's ccxt client."""
    from .futures_stream import FUTURES_USER_URLS, BinanceFuturesUserDataWebSocket

    credentials = store.credentials
    if not credentials:
        raise ConfigurationError(f"binance {store.venue}: the futures user-data stream needs an API key and secret")
    url = venue_stream_urls(store, "binance", FUTURES_USER_URLS, {"private": "fstream"})["private"]
    client = store.client

    def listen_key() -> str:
        return (client.fapiPrivatePostListenKey() or {}).get("listenKey")

    ws = BinanceFuturesUserDataWebSocket(url=url, listen_key=listen_key, symbols=store.symbols_by_id(), config=config)
    ws.hide_in_logs(credentials.api_key, credentials.secret)
    ws.clock = market_clock(store)
    return ws


class BinanceUserDataWebSocket(BinanceWebSocket):
    """The account's user data over the Binance WebSocket API (``/ws-api/v3``).

    Every connection sends a signed ``userDataStream.subscribe.signature`` first and is ready
    once its response arrives. ``eventStreamTerminated`` replaces the connection (see
    :meth:`parse`). ``server_time`` returns the exchange's clock in ms for the signature.
    """

    def __init__(
        self,
        *,
        url: str = URLS["mainnet"]["private"],
        credentials: Credentials,
        symbols: Mapping[str, str] | None = None,
        server_time: Callable[[], int] = wall_ms,
        recv_window: int | None = None,
        config: WebSocketConfig | None = None,
        name: str | None = None,
        max_connection_age: float | None = None,
    ) -> None:
        if not credentials:
            raise ConfigurationError("the binance user-data stream needs an API key and secret")
        self._credentials = credentials
        self._server_time = server_time
        self._recv_window = recv_window
        self._auth_id: str | None = None
        self.subscription_id: int | None = None
        super().__init__((), url=url, symbols=symbols, config=config, name=name, max_connection_age=max_connection_age)
        self.hide_in_logs(credentials.api_key, credentials.secret)

    def subscribe(self, *streams: str) -> None:
        if streams:
            raise ConfigurationError(
                "the binance user-data connection takes no streams: it subscribes the account itself on connect"
            )

    def auth_messages(self) -> Iterable[Outgoing]:
        # Computed per connection: the timestamp must be fresh (recvWindow, 5 s by default).
        params: dict[str, Any] = {"apiKey": self._credentials.api_key, "timestamp": self._server_time()}
        if self._recv_window is not None:
            params["recvWindow"] = self._recv_window
        params["signature"] = sign(self._credentials.secret or "", params)
        self._auth_id = f"realtrade-uds-{next(self._request_ids)}"
        self.subscription_id = None
        return [{"id": self._auth_id, "method": "userDataStream.subscribe.signature", "params": params}]

    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return ()  # the signed auth request is the subscription

    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return ()

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        msg = json.loads(message)
        if not isinstance(msg, dict):
            return None
        event = msg.get("event")
        if isinstance(event, dict):  # {"subscriptionId": N, "event": {...}}
            return self._user_event(event)
        if "status" in msg and "id" in msg:  # a WebSocket API response
            if msg["id"] != self._auth_id:
                return ()
            if msg["status"] == 200:
                self.subscription_id = (msg.get("result") or {}).get("subscriptionId")
                return (Authenticated(),)
            error = msg.get("error") or {}
            # -1021: the signed timestamp is outside the recvWindow (our clock offset is stale)
            return (Authenticated(False, f"{error.get('code')}: {error.get('msg')}", clock=error.get("code") == -1021),)
        if msg.get("e") == "serverShutdown":
            return SHUTDOWN
        return None

    def _user_event(self, event: dict[str, Any]) -> Iterable[Event] | None:
        kind = event.get("e")
        if kind == "executionReport":
            return reading("order", self._execution_report, event)
        if kind == "outboundAccountPosition":
            return reading("balance", self._account_position, event)
        if kind in _QUIET_USER_EVENTS:
            return ()
        if kind == "eventStreamTerminated":
            # The subscription is gone. Resubscribe cannot help: it re-sends stream
            # subscriptions, and here the subscription is the signed auth request. A new
            # connection signs it afresh, and its disconnected/connected pair tells the broker
            # to reconcile whatever happened in between.
            return (Reconnect("eventStreamTerminated: the user data subscription ended"),)
        if kind == "serverShutdown":
            return SHUTDOWN
        return None

    def _account_position(self, event: dict[str, Any]) -> tuple[BalanceUpdate]:
        balances = tuple(AssetBalance(b["a"], decimal(b["f"]), decimal(b["l"])) for b in event["B"])
        return (BalanceUpdate("binance", balances, event["E"]),)

    def _execution_report(self, ev: dict[str, Any]) -> tuple[Event, ...] | None:
        symbol = self._symbol(ev["s"])
        if symbol is None:
            return None
        raw_status = ev["X"]
        status = known(ORDER_STATUS, raw_status, "Binance order status")
        raw_type = ev["o"]
        order_type = _ORDER_TYPE.get(raw_type) or str(raw_type).lower()
        side = known(SIDES, ev["S"], "side")
        order_id = ident(ev["i"])
        # A cancel is reported under the cancel request's id ("c"); "C" is the order's own.
        client_id = ev.get("C") or ev.get("c") or None
        filled = decimal(ev["z"])
        average = decimal(ev["Z"]) / filled if filled else None
        reason = ev.get("r")
        if reason in (None, "", "NONE"):
            reason = raw_status if raw_status == "EXPIRED_IN_MATCH" else None
        when = ev.get("T") or ev["E"]
        update = OrderUpdate(
            "binance", order_id, client_id, symbol, side, order_type, status,
            optional_decimal(ev.get("p")), decimal(ev["q"]), filled, average, reason, when,
            optional_decimal(ev.get("P")),
        )  # fmt: skip
        if ev.get("x") != "TRADE":
            return (update,)
        fill = Fill(
            "binance", ident(ev["t"]), order_id, client_id, symbol, side,
            decimal(ev["L"]), decimal(ev["l"]), decimal(ev["n"] or "0"), ev.get("N"), ev["m"], when,
        )  # fmt: skip
        return (fill, update)  # the fill first: the order's new state already includes it
