"""OKX v5 spot streams on the core :class:`~realtrade_core.websocket.ExchangeConnection`.

A store opens at most two connections, both made by :meth:`OkxWebSocket.for_store`:

* :class:`OkxWebSocket` — market data on ``/ws/v5/business``, where OKX serves candles:
  ``candle{bar}`` (``candle1m``, ``candle1H``, ``candle1Dutc`` ...) and ``trades-all``. A
  stream is named ``channel:instId`` (``candle1m:BTC-USDT``); the subscribe request carries it
  as OKX's ``{"channel": ..., "instId": ...}`` argument. OKX's best bid and offer
  (``bbo-tbt``) is on the other public endpoint, ``/ws/v5/public``, so this connection has no
  "book" stream.
* :class:`OkxPrivateWebSocket` — ``/ws/v5/private``: ``op: login`` first, then the channels
  ``orders`` (instType SPOT) and ``account``. They are the connection's own streams, so the
  base class subscribes them again after every successful login. OKX reports fills inside the
  ``orders`` pushes (``tradeId``, ``fillSz``, ``fillPx``, ``fillFee``): each push with a trade
  gives an :class:`~realtrade_core.events.OrderUpdate` and a :class:`~realtrade_core.events.Fill`.

OKX closes a connection that receives nothing for 30 s: the client sends the text ``ping``
every 20 s and OKX answers ``pong``, which also feeds the staleness watchdog.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from realtrade_core.credentials import Credentials
from realtrade_core.errors import ConfigurationError
from realtrade_core.events import (
    AssetBalance,
    BalanceUpdate,
    Bar,
    Event,
    Fill,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
)
from realtrade_core.validation import (
    MalformedMessage,
    decimal,
    decimal_or_zero,
    ident,
    known,
    ms,
    number,
    optional_decimal,
    reading,
)
from realtrade_core.websocket import (
    Authenticated,
    BaseWebSocket,
    ExchangeConnection,
    Outgoing,
    Subscribed,
    WebSocketConfig,
    connection_for_store,
    wall_ms,
)

from .common import login_signature

__all__ = ["INTERVALS", "PRIVATE_CHANNELS", "URLS", "OkxPrivateWebSocket", "OkxWebSocket"]

logger = logging.getLogger(__name__)

URLS: dict[str, dict[str, str]] = {
    "mainnet": {"public": "wss://ws.okx.com:8443/ws/v5/business", "private": "wss://ws.okx.com:8443/ws/v5/private"},
    # OKX's demo trading (ccxt's sandbox mode).
    "testnet": {
        "public": "wss://wspap.okx.com:8443/ws/v5/business",
        "private": "wss://wspap.okx.com:8443/ws/v5/private",
    },
}
#: The account channels every private connection subscribes.
PRIVATE_CHANNELS: tuple[str, ...] = ("orders", "account")

#: ccxt timeframe -> OKX candle bar. From 6h up, the UTC-aligned bars (OKX's plain ``6H``, ``1D``
#: ... open at Hong Kong midnight), as ccxt asks for over REST.
INTERVALS: dict[str, str] = {
    "1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1H", "2h": "2H",
    "4h": "4H", "6h": "6Hutc", "12h": "12Hutc", "1d": "1Dutc", "1w": "1Wutc",
}  # fmt: skip
_TIMEFRAMES = {bar: tf for tf, bar in INTERVALS.items()}

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_CONFIRM = {"0": False, "1": True}
_ORDER_STATUS = {
    "live": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "mmp_canceled": OrderStatus.CANCELED,
}
_LIMIT_TYPES = frozenset({"limit", "post_only", "fok", "ioc"})
#: Login refusals: 60004 invalid timestamp, 60006 timestamp expired (our clock is off), 60005
#: invalid key, 60007 invalid sign, 60008 / 60009 login failed, 60024 wrong passphrase.
_LOGIN_ERRORS = frozenset({"60004", "60005", "60006", "60007", "60008", "60009", "60024"})
_CLOCK_ERRORS = frozenset({"60004", "60006"})


def _rows(msg: dict[str, Any]) -> list[Any]:
    data = msg["data"]
    if type(data) is not list:
        raise TypeError("data must be a list")
    return data


def _objects(msg: dict[str, Any]) -> list[dict[str, Any]]:
    data = _rows(msg)
    if not all(type(item) is dict for item in data):
        raise TypeError("data must be a list of objects")
    return data


class OkxWebSocket(ExchangeConnection):
    """OKX v5 market data on ``/ws/v5/business``: ``candle{bar}`` and ``trades-all``.

    ``url`` is the endpoint, ``symbols`` maps OKX instrument ids (``BTC-USDT``) to unified
    symbols. The parser also reads the private channels (see :class:`OkxPrivateWebSocket`).
    """

    exchange = "okx"
    # A pong answers every 20 s ping: 50 s without any frame means two went missing.
    default_config = WebSocketConfig(app_ping_interval=20.0, stale_after=50.0)
    venue_urls = URLS
    emulator_urls: ClassVar[Mapping[str, str]] = {"public": "ws_business", "private": "ws_private"}
    stream_names: ClassVar[Mapping[str, str]] = {
        "bar": "candle{interval}:{id}",  # candle1m:BTC-USDT
        "trade": "trades-all:{id}",
    }
    intervals = INTERVALS
    streams_per_request = 20
    # OKX answers each channel of a subscribe request ({"event": "subscribe", "arg": {...}}); a
    # refusal ({"event": "error"}) carries the request's id when it had one.
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
    ) -> None:
        super().__init__(streams, url=url, symbols=symbols, config=config, name=name)

    @classmethod
    def for_store(cls, store: Any, *, private: bool, config: WebSocketConfig | None = None) -> BaseWebSocket:
        """An unstarted connection for ``store``'s venue: market data, or (``private``) the
        account's orders and balances, logged in with the store's key, secret and passphrase."""
        ws = connection_for_store(
            store,
            private=private,
            public_cls=OkxWebSocket,
            private_cls=OkxPrivateWebSocket,
            config=config,
            private_stream="private stream",
        )
        if private:
            passphrase = getattr(store, "passphrase", None)
            if not passphrase:
                raise ConfigurationError(
                    f"okx {store.venue}: the private stream needs the API key's passphrase; pass "
                    "passphrase= to the store or set REALTRADE_OKX_PASSPHRASE"
                )
            assert isinstance(ws, OkxPrivateWebSocket)
            ws.passphrase = passphrase
            ws.hide_in_logs(passphrase)
        return ws

    # ---------------------------------------------------------------- BaseWebSocket hooks

    @staticmethod
    def channel_arg(stream: str) -> dict[str, str]:
        """OKX's subscription argument for a stream name: ``candle1m:BTC-USDT`` ->
        ``{"channel": "candle1m", "instId": "BTC-USDT"}``; ``orders`` -> spot orders."""
        channel, _, market_id = stream.partition(":")
        if market_id:
            return {"channel": channel, "instId": market_id}
        if channel == "orders":
            return {"channel": "orders", "instType": "SPOT"}
        return {"channel": channel}

    @staticmethod
    def stream_of(arg: Mapping[str, Any]) -> str:
        """The stream name of a subscription argument (the reverse of :meth:`channel_arg`)."""
        market_id = arg.get("instId")
        return f"{arg['channel']}:{market_id}" if market_id else str(arg["channel"])

    def stream_request(self, op: str, streams: list[str]) -> Outgoing:
        return {"id": f"rt{next(self._request_ids)}", "op": op, "args": [self.channel_arg(s) for s in streams]}

    def ping_message(self) -> Outgoing:
        return "ping"

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        if message in ("pong", b"pong"):
            return ()
        msg = json.loads(message)
        if not isinstance(msg, dict):
            return None
        event = msg.get("event")
        if event is not None:
            return self._event(msg, event)
        arg = msg.get("arg")
        if arg is None or "data" not in msg:
            return None
        if type(arg) is not dict or type(arg.get("channel")) is not str:
            raise MalformedMessage("malformed", "arg must be an object naming its channel")
        channel = arg["channel"]
        if channel.startswith("candle"):
            return reading("bar", self._candles, channel, arg, msg)
        if channel in ("trades-all", "trades"):
            return reading("trade", self._trades, arg, msg)
        if channel == "orders":
            return reading("order", self._orders, msg)
        if channel == "account":
            return reading("balance", self._account, msg)
        return None

    def _event(self, msg: dict[str, Any], event: Any) -> Iterable[Event]:
        code = str(msg.get("code", ""))
        if event == "login":
            ok = code == "0"
            return (Authenticated(ok, "" if ok else str(msg.get("msg") or ""), clock=code in _CLOCK_ERRORS),)
        if event == "error":
            if code in _LOGIN_ERRORS:
                return (Authenticated(False, f"{code} {msg.get('msg')}", clock=code in _CLOCK_ERRORS),)
            # Nothing will arrive for what was refused; a private channel means fills would go missing.
            logger.error("%s: request refused: %s %s", self.name, code, msg.get("msg"))
            return self.answered(msg.get("id"), ok=False)
        if event == "subscribe":
            arg = msg.get("arg")
            if isinstance(arg, dict) and isinstance(arg.get("channel"), str):
                return (Subscribed((self.stream_of(arg),)),)
        return ()  # unsubscribe acks, channel-conn-count notices

    # ---------------------------------------------------------------- market data

    def _candles(self, channel: str, arg: dict[str, Any], msg: dict[str, Any]) -> Iterable[Event] | None:
        symbol = self._symbol(arg["instId"])
        timeframe = _TIMEFRAMES.get(channel[len("candle") :])
        if symbol is None or timeframe is None:
            return None
        bars = []
        for row in _rows(msg):
            if type(row) is not list or len(row) < 9:
                raise TypeError("a candle must be a list of 9 fields")
            bars.append(
                Bar(
                    "okx", symbol, timeframe, ms(row[0]),
                    number(row[1]), number(row[2]), number(row[3]), number(row[4]), number(row[5]),
                    known(_CONFIRM, row[8], "candle confirm"),
                )
            )  # fmt: skip
        return tuple(bars)

    def _trades(self, arg: dict[str, Any], msg: dict[str, Any]) -> Iterable[Event] | None:
        symbol = self._symbol(arg["instId"])
        if symbol is None:
            return None
        return tuple(
            Trade(
                "okx",
                symbol,
                ident(t["tradeId"]),
                number(t["px"]),
                number(t["sz"]),
                _SIDES.get(t.get("side")),
                ms(t["ts"]),
            )
            for t in _objects(msg)
        )

    # ---------------------------------------------------------------- account

    def _orders(self, msg: dict[str, Any]) -> Iterable[Event] | None:
        events: list[Event] = []
        for item in _objects(msg):
            if item.get("instType", "SPOT") != "SPOT":
                continue
            symbol = self._symbol(item["instId"])
            if symbol is None:
                continue
            events.append(self._order(symbol, item))
            fill = self._fill(symbol, item)
            if fill is not None:
                events.append(fill)
        return tuple(events)

    def _order(self, symbol: str, item: dict[str, Any]) -> OrderUpdate:
        status = known(_ORDER_STATUS, item["state"], "OKX order state")
        side = known(_SIDES, item["side"], "side")
        ord_type = item["ordType"]
        market = ord_type == "market"
        if not market and ord_type not in _LIMIT_TYPES:
            raise MalformedMessage("order", f"unknown OKX order type {ord_type!r}")
        filled = decimal_or_zero(item.get("accFillSz"))
        # A spot market buy's sz is quote currency unless tgtCcy says base_ccy: the base amount
        # is then what filled (market orders never rest).
        if market and item.get("tgtCcy") == "quote_ccy":
            amount = filled
        else:
            amount = decimal(item["sz"])
        reason = item.get("cancelSourceReason") or None if status is OrderStatus.CANCELED else None
        return OrderUpdate(
            "okx", ident(item["ordId"]), item.get("clOrdId") or None, symbol, side, "market" if market else "limit",
            status, None if market else optional_decimal(item.get("px")), amount, filled,
            optional_decimal(item.get("avgPx")), reason, ms(item.get("uTime") or item.get("cTime") or 0),
        )  # fmt: skip

    def _fill(self, symbol: str, item: dict[str, Any]) -> Fill | None:
        trade_id = item.get("tradeId")
        if not trade_id or decimal_or_zero(item.get("fillSz")) == 0:
            return None  # an update without a new trade (placed, cancelled)
        # OKX writes a charged fee as a negative number (a rebate as a positive one).
        fee = -decimal(item["fillFee"])
        return Fill(
            "okx", ident(trade_id), ident(item["ordId"]), item.get("clOrdId") or None, symbol,
            known(_SIDES, item["side"], "side"), decimal(item["fillPx"]), decimal(item["fillSz"]),
            fee if fee else Decimal(0), item.get("fillFeeCcy") or None, item.get("execType") == "M",
            ms(item["fillTime"]),
        )  # fmt: skip

    def _account(self, msg: dict[str, Any]) -> Iterable[Event] | None:
        balances = []
        time_ms = 0
        for account in _objects(msg):
            time_ms = max(time_ms, ms(account.get("uTime") or 0))
            for coin in account.get("details") or ():
                # cashBal is required: read as 0 it would empty the ledger.
                total = decimal(coin["cashBal"])
                locked = decimal_or_zero(coin.get("frozenBal"))
                balances.append(AssetBalance(coin["ccy"], total - locked, locked))
        if not balances:
            return ()
        return (BalanceUpdate("okx", tuple(balances), time_ms or wall_ms()),)


class OkxPrivateWebSocket(OkxWebSocket):
    """The account's ``orders`` and ``account`` channels on ``/ws/v5/private``.

    Every connection logs in first, signed with the exchange's clock (``server_time``, ms) as the
    store measured it; the channels are this connection's streams, subscribed again after every
    successful login. ``passphrase`` is set by :meth:`OkxWebSocket.for_store`.
    """

    def __init__(
        self,
        *,
        url: str = URLS["mainnet"]["private"],
        credentials: Credentials,
        symbols: Mapping[str, str] | None = None,
        server_time: Callable[[], int] = wall_ms,
        channels: Iterable[str] = PRIVATE_CHANNELS,
        passphrase: str = "",
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        if not credentials:
            raise ConfigurationError("the okx private stream needs an API key and secret")
        self._credentials = credentials
        self._server_time = server_time
        self.passphrase = passphrase
        super().__init__(channels, url=url, symbols=symbols, config=config, name=name)
        self.hide_in_logs(credentials.api_key, credentials.secret)

    def auth_messages(self) -> Iterable[Outgoing]:
        # Signed per connection: OKX refuses a login timestamp 30 s away from its clock.
        timestamp = str(self._server_time() // 1000)
        return [
            {
                "op": "login",
                "args": [
                    {
                        "apiKey": self._credentials.api_key,
                        "passphrase": self.passphrase,
                        "timestamp": timestamp,
                        "sign": login_signature(self._credentials.secret or "", timestamp),
                    }
                ],
            }
        ]
