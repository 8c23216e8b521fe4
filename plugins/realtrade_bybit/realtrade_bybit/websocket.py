"""Bybit v5 spot streams on the core :class:`~realtrade_core.websocket.BaseWebSocket`.

A store opens at most two connections, both made by :meth:`BybitWebSocket.for_store`:

* :class:`BybitWebSocket` — public spot data on ``/v5/public/spot``: ``kline.{interval}.{id}``,
  ``publicTrade.{id}`` and ``orderbook.1.{id}`` (best bid and ask).
* :class:`BybitPrivateWebSocket` — ``/v5/private``: ``op: auth`` first, then the topics
  ``order``, ``execution`` and ``wallet``. They are the connection's own streams, so the base
  class sends them after every successful (re-)authentication; the store subscribes nothing.

Bybit wants a client ``{"op": "ping"}`` about every 20 s (``default_config`` sends one) and
answers with a pong, which also feeds the staleness watchdog.

Top of book. Spot ``tickers`` pushes carry no bid or ask (unlike linear ones), so the "book"
stream is ``orderbook.1``; a ``tickers`` push with ``bid1Price``/``ask1Price`` still becomes a
:class:`~realtrade_core.events.BookTop`, one without them yields nothing.
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
    BookTop,
    Event,
    Fill,
    FundingFee,
    OrderStatus,
    OrderUpdate,
    PositionUpdate,
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
    WebSocketConfig,
    connection_for_store,
    venue_stream_urls,
    wall_ms,
)

from .common import ws_auth_signature

__all__ = [
    "LINEAR_PRIVATE_TOPICS",
    "LINEAR_URLS",
    "PRIVATE_TOPICS",
    "URLS",
    "BybitLinearPrivateWebSocket",
    "BybitPrivateWebSocket",
    "BybitWebSocket",
]

logger = logging.getLogger(__name__)

#: Public streams of the linear (USDT perpetual) category.
LINEAR_URLS: dict[str, dict[str, str]] = {
    "mainnet": {"public": "wss://stream.bybit.com/v5/public/linear"},
    "testnet": {"public": "wss://stream-testnet.bybit.com/v5/public/linear"},
}

URLS: dict[str, dict[str, str]] = {
    "mainnet": {"public": "wss://stream.bybit.com/v5/public/spot", "private": "wss://stream.bybit.com/v5/private"},
    "testnet": {
        "public": "wss://stream-testnet.bybit.com/v5/public/spot",
        "private": "wss://stream-testnet.bybit.com/v5/private",
    },
}
#: The account topics every private connection subscribes.
PRIVATE_TOPICS: tuple[str, ...] = ("order", "execution", "wallet")
#: ... and those of a perpetual store's (``category=linear``): its positions besides.
LINEAR_PRIVATE_TOPICS: tuple[str, ...] = ("order", "execution", "position", "wallet")

#: ccxt timeframe -> Bybit kline interval code, and back.
INTERVAL_CODES: dict[str, str] = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W",
}  # fmt: skip
_TIMEFRAMES = {code: tf for tf, code in INTERVAL_CODES.items()} | {"M": "1M"}

_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
_AUTH_VALID_MS = 10_000  # how long an auth request stays valid ("expires")

_ORDER_STATUS = {
    "New": OrderStatus.NEW,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
    # Spot: part filled, the rest cancelled (IOC remainder, a cancelled partial fill).
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Untriggered": OrderStatus.NEW,  # a conditional order waiting for its trigger
    "Triggered": OrderStatus.NEW,  # fired; working from now on
    "Deactivated": OrderStatus.CANCELED,  # a conditional order cancelled before it fired
}
#: Statuses that collapse into another one above; their name is kept as the reason.
_STATUS_AS_REASON = frozenset({"PartiallyFilledCanceled", "Deactivated"})


def _items(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """A push's ``data`` list, each entry an object (anything else cannot be read)."""
    data = msg["data"]
    if type(data) is not list or not all(type(item) is dict for item in data):
        raise TypeError("data must be a list of objects")
    return data


class BybitWebSocket(ExchangeConnection):
    """Bybit v5 spot public streams (kline, publicTrade, orderbook.1, tickers) on one connection.

    ``url`` is the ``/v5/public/spot`` endpoint, ``symbols`` maps Bybit ids (``BTCUSDT``) to
    unified symbols. The parser also understands the private topics (see
    :class:`BybitPrivateWebSocket`).
    """

    exchange = "bybit"
    #: the category whose account pushes this connection reads (its spot or linear markets)
    category: ClassVar[str] = "spot"
    # A pong comes back for every 20 s ping: 50 s without any frame means two went missing.
    default_config = WebSocketConfig(app_ping_interval=20.0, stale_after=50.0)
    venue_urls = URLS
    emulator_urls: ClassVar[Mapping[str, str]] = {"public": "ws_public", "private": "ws_private"}
    stream_names: ClassVar[Mapping[str, str]] = {
        "bar": "kline.{interval}.{id}",  # kline.1.BTCUSDT
        "trade": "publicTrade.{id}",
        "book": "orderbook.1.{id}",
    }
    intervals = INTERVAL_CODES
    streams_per_request = 10  # Bybit spot accepts at most 10 topics per subscribe request
    # Bybit answers each subscribe request ({"success": true, "op": "subscribe", "req_id": ...}).
    subscribe_requires_ack = True
    request_id_field = "req_id"

    def __init__(
        self,
        streams: Iterable[str] = (),
        *,
        url: str = URLS["mainnet"]["public"],
        symbols: Mapping[str, str] | None = None,
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        # orderbook.1 state per market id: [bid, bid size, ask, ask size] (None: not known).
        self._tops: dict[str, list[float | None]] = {}
        # topic prefix -> (kind of event it yields, handler)
        self._handlers: dict[str, tuple[str, Callable[[str, dict[str, Any]], Iterable[Event] | None]]] = {
            "kline": ("bar", self._kline),
            "publicTrade": ("trade", self._trades),
            "orderbook": ("book", self._orderbook),
            "tickers": ("book", self._ticker),
            "order": ("order", self._orders),
            "execution": ("fill", self._executions),
            "wallet": ("balance", self._wallet),
            "position": ("position", self._positions),
        }
        super().__init__(streams, url=url, symbols=symbols, config=config, name=name)

    # ---------------------------------------------------------------- construction for a store

    @classmethod
    def for_store(cls, store: Any, *, private: bool, config: WebSocketConfig | None = None) -> BaseWebSocket:
        """An unstarted connection for ``store``'s venue: public spot data (a perpetual store's:
        the linear category's), or (``private``) the account's orders, executions and wallet
        (a perpetual store's: its positions and funding too) with the store's credentials."""
        if getattr(store, "perpetual", False):
            public = venue_stream_urls(store, "bybit", LINEAR_URLS, {"public": "ws_linear"})["public"]
            private_url = (
                venue_stream_urls(store, "bybit", URLS, {"private": "ws_private"})["private"] if private else ""
            )
            return connection_for_store(
                store, private=private, public_cls=BybitWebSocket, private_cls=BybitLinearPrivateWebSocket,
                config=config, urls={"public": public, "private": private_url},
            )  # fmt: skip
        return connection_for_store(
            store,
            private=private,
            public_cls=BybitWebSocket,
            private_cls=BybitPrivateWebSocket,
            config=config,
            private_stream="private stream",
        )

    # ---------------------------------------------------------------- BaseWebSocket hooks

    def stream_request(self, op: str, streams: list[str]) -> Outgoing:
        return {"req_id": f"rt-{next(self._request_ids)}", "op": op, "args": streams}

    def ping_message(self) -> Outgoing:
        return {"op": "ping"}

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        msg = json.loads(message)
        if not isinstance(msg, dict):
            return None
        topic = msg.get("topic")
        if topic is not None:
            if type(topic) is not str:
                raise MalformedMessage("malformed", f"topic must be a string, got {type(topic).__name__}")
            entry = self._handlers.get(topic.partition(".")[0])
            if entry is None:
                return None
            # Fields go into events as the wire has them where the type is right already
            # (times, "confirm"), so the events' checks refuse a string start or "confirm": "true";
            # a message that cannot be read is quarantined under its kind.
            kind, handler = entry
            return reading(kind, handler, topic, msg)
        op = msg.get("op")
        if op is None:
            return None
        if op == "auth":
            reason = str(msg.get("ret_msg") or "")
            # Bybit answers a login whose expiry has already passed (our clock is behind) "Params Error".
            return (Authenticated(msg.get("success") is True, reason, clock=reason == "Params Error"),)
        if op in ("subscribe", "unsubscribe") and msg.get("success") is False:
            # Nothing will arrive for these topics; a private one means fills would go missing.
            logger.error("%s: %s refused: %s", self.name, op, msg.get("ret_msg"))
        if op == "subscribe":
            return self.answered(msg.get("req_id"), ok=msg.get("success") is True)
        return ()  # other answers and pongs

    # ---------------------------------------------------------------- public topics

    def _kline(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        _, code, market_id = topic.split(".")
        symbol = self._symbol(market_id)
        timeframe = _TIMEFRAMES.get(code)
        if symbol is None or timeframe is None:
            return None
        return tuple(
            Bar(
                "bybit", symbol, timeframe, k["start"],
                number(k["open"]), number(k["high"]), number(k["low"]), number(k["close"]), number(k["volume"]),
                k["confirm"], k.get("timestamp"),
            )
            for k in _items(msg)
        )  # fmt: skip

    def _trades(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        symbol = self._symbol(topic.partition(".")[2])
        if symbol is None:
            return None
        return tuple(
            Trade("bybit", symbol, ident(t["i"]), number(t["p"]), number(t["v"]), _SIDES.get(t.get("S")), t["T"])
            for t in _items(msg)
        )

    def _orderbook(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        _, depth, market_id = topic.split(".")
        symbol = self._symbol(market_id)
        if symbol is None or depth != "1":
            return None  # deeper books need a local order book, which this class does not keep
        data = msg["data"]
        if not isinstance(data, dict):
            raise TypeError("orderbook data must be an object")
        snapshot = msg.get("type") == "snapshot"
        top = self._tops.get(market_id)
        if top is None or snapshot:
            top = self._tops[market_id] = [None, None, None, None]
        # Level 1 holds one level a side; in a delta, size "0" removes a level and an absent
        # side is unchanged.
        for index, levels in ((0, data.get("b") or ()), (2, data.get("a") or ())):
            if not levels and not snapshot:
                continue
            live = [level for level in levels if number(level[1])]
            if live:
                top[index], top[index + 1] = number(live[-1][0]), number(live[-1][1])
            else:
                top[index] = top[index + 1] = None
        if None in top:
            return ()  # one side unknown: nothing trustworthy to report
        bid, bid_size, ask, ask_size = top
        return (BookTop("bybit", symbol, bid, bid_size, ask, ask_size, msg.get("ts")),)  # type: ignore[arg-type]

    def _ticker(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        symbol = self._symbol(topic.partition(".")[2])
        if symbol is None:
            return None
        data = msg["data"]
        if not data.get("bid1Price") or not data.get("ask1Price"):
            return ()  # spot tickers carry no book; subscribe orderbook.1 for BookTop
        return (
            BookTop(
                "bybit", symbol, number(data["bid1Price"]), number(data.get("bid1Size") or 0),
                number(data["ask1Price"]), number(data.get("ask1Size") or 0), msg.get("ts"),
            ),
        )  # fmt: skip

    # ---------------------------------------------------------------- private topics

    def _orders(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        return tuple(u for u in (self._order(item, msg) for item in _items(msg) if self._ours(item)) if u is not None)

    def _order(self, item: dict[str, Any], msg: dict[str, Any]) -> OrderUpdate | None:
        symbol = self._symbol(item["symbol"])
        if symbol is None:
            return None
        raw_status = item["orderStatus"]
        status = known(_ORDER_STATUS, raw_status, "Bybit order status")
        side = known(_SIDES, item["side"], "side")
        market = item.get("orderType") == "Market"
        trigger = optional_decimal(item.get("triggerPrice"))
        stop_type = item.get("stopOrderType") or ""
        kind = "market" if market else "limit"
        if stop_type in ("TakeProfit", "PartialTakeProfit"):
            kind = f"take_profit_{kind}"
        elif trigger is not None:
            kind = f"stop_{kind}"
        filled = decimal_or_zero(item.get("cumExecQty"))
        # A spot market buy's qty is quote coin unless marketUnit says baseCoin (ccxt's rule):
        # the base amount is then what filled plus what is left.
        unit = item.get("marketUnit") or ""
        if market and self.category == "spot" and (unit == "quoteCoin" or (not unit and side is Side.BUY)):
            amount = filled + (decimal_or_zero(item.get("leavesQty")) if status.is_open else Decimal(0))
        else:
            amount = decimal_or_zero(item.get("qty"))
        average = optional_decimal(item.get("avgPrice"))
        if average is None and filled:
            average = decimal_or_zero(item.get("cumExecValue")) / filled
        reason = item.get("rejectReason")
        if reason in (None, "", "EC_NoError"):
            cancel_type = item.get("cancelType")
            if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and cancel_type not in (None, "", "UNKNOWN"):
                reason = cancel_type
            else:
                reason = raw_status if raw_status in _STATUS_AS_REASON else None
        return OrderUpdate(
            "bybit", ident(item["orderId"]), item.get("orderLinkId") or None, symbol, side, kind, status,
            None if market else optional_decimal(item.get("price")), amount, filled, average, reason,
            ms(item.get("updatedTime") or msg.get("creationTime") or 0), trigger,
        )  # fmt: skip

    def _executions(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        fills: list[Event] = []
        for item in _items(msg):
            if not self._ours(item):
                continue
            kind = item.get("execType", "Trade")
            if kind == "Funding" and self.category == "linear":
                fills.extend(self._funding(item))
                continue
            if kind not in ("Trade", "BustTrade"):
                continue  # settlement, ADL: not fills of an order (contracts only)
            symbol = self._symbol(item["symbol"])
            if symbol is None:
                continue
            side = known(_SIDES, item["side"], "side")
            fills.append(
                Fill(
                    "bybit", ident(item["execId"]), ident(item["orderId"]), item.get("orderLinkId") or None, symbol,
                    # A fill without its fee is not a fill of no fee: refused, REST then tells the fee.
                    side, decimal(item["execPrice"]), decimal(item["execQty"]), decimal_or_zero(item["execFee"]),
                    item.get("feeCurrency") or None, item.get("isMaker", False), ms(item["execTime"]),
                )
            )  # fmt: skip
        return tuple(fills)

    def _ours(self, item: dict[str, Any]) -> bool:
        """An account push for this connection: the topics carry every category of a unified
        account, and a perpetual store's connection reads only the linear ones (their symbols
        are the spot markets' ids too)."""
        return self.category != "linear" or item.get("category") in (None, "", "linear")

    def _funding(self, item: dict[str, Any]) -> tuple[Event, ...]:
        """A funding payment (an execution of type Funding): ``execFee`` is what the account
        paid (negative: received), ``execQty`` the position, ``feeRate`` the rate."""
        symbol = self._symbol(item["symbol"])
        if symbol is None:
            return ()
        size = decimal_or_zero(item.get("execQty"))
        if item.get("side") == "Sell":
            size = -size
        return (
            FundingFee(
                "bybit", ident(item["execId"]), symbol, -decimal(item["execFee"]), item.get("feeCurrency") or "USDT",
                size, optional_decimal(item.get("feeRate")), optional_decimal(item.get("execPrice")),
                ms(item["execTime"]),
            ),
        )  # fmt: skip

    def _positions(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        updates = []
        for item in _items(msg):
            if not self._ours(item) or str(item.get("positionIdx", 0)) != "0":
                continue  # another category's, or a hedge-mode side: realtrade trades one-way accounts
            symbol = self._symbol(item["symbol"])
            if symbol is None:
                continue
            size = decimal_or_zero(item.get("size"))
            if item.get("side") == "Sell":
                size = -size
            entry = optional_decimal(item.get("entryPrice") or item.get("avgPrice")) if size else None
            updates.append(
                PositionUpdate(
                    "bybit", symbol, size, entry, decimal_or_zero(item.get("unrealisedPnl")),
                    optional_decimal(item.get("liqPrice")), ms(item.get("updatedTime") or msg.get("creationTime") or 0),
                )
            )  # fmt: skip
        return tuple(updates)

    def _wallet(self, topic: str, msg: dict[str, Any]) -> Iterable[Event] | None:
        balances = []
        for account in _items(msg):
            for coin in account.get("coin") or ():
                total = decimal(coin["walletBalance"])  # required: read as 0 it would empty the ledger
                locked = decimal_or_zero(coin.get("locked"))  # held by open spot orders
                balances.append(AssetBalance(coin["coin"], total - locked, locked))
        if not balances:
            return ()
        return (BalanceUpdate("bybit", tuple(balances), ms(msg.get("creationTime") or wall_ms())),)


class BybitPrivateWebSocket(BybitWebSocket):
    """The account's ``order``, ``execution`` and ``wallet`` topics on ``/v5/private``.

    Every connection authenticates first (``server_time`` gives the exchange clock in ms for
    ``expires``); the topics are this connection's streams, so they are subscribed again after
    every successful authentication.
    """

    def __init__(
        self,
        *,
        url: str = URLS["mainnet"]["private"],
        credentials: Credentials,
        symbols: Mapping[str, str] | None = None,
        server_time: Callable[[], int] = wall_ms,
        topics: Iterable[str] = PRIVATE_TOPICS,
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        if not credentials:
            raise ConfigurationError("the bybit private stream needs an API key and secret")
        self._credentials = credentials
        self._server_time = server_time
        super().__init__(topics, url=url, symbols=symbols, config=config, name=name)
        self.hide_in_logs(credentials.api_key, credentials.secret)

    def auth_messages(self) -> Iterable[Outgoing]:
        # Computed per connection: "expires" must lie in the exchange's future.
        expires = self._server_time() + _AUTH_VALID_MS
        signature = ws_auth_signature(self._credentials.secret or "", expires)
        return [
            {
                "req_id": f"rt-auth-{next(self._request_ids)}",
                "op": "auth",
                "args": [self._credentials.api_key, expires, signature],
            }
        ]


class BybitLinearPrivateWebSocket(BybitPrivateWebSocket):
    """The private connection of a perpetual store: the ``category=linear`` orders, executions
    (fills and funding), positions and wallet."""

    category = "linear"

    def __init__(self, *, topics: Iterable[str] = LINEAR_PRIVATE_TOPICS, **kwargs: Any) -> None:
        super().__init__(topics=topics, **kwargs)
