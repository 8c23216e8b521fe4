"""Typed events that exchange plugins hand to the core.

A plugin's WebSocket parser turns each exchange message into zero or more of these records; the
core routes them to listeners by their ``EVENT`` name (see
:class:`realtrade_core.websocket.BaseWebSocket`). Everything here is a frozen dataclass with
slots: cheap to build on the socket thread, safe to pass to cerebro's thread without copying,
and impossible to mutate by accident on the way.

Numbers
-------
* **Market data** (:class:`Bar`, :class:`Trade`, :class:`BookTop`) uses ``float``. backtrader
  stores every line as a float anyway, these events arrive by the thousand per second on the
  socket thread (``float(str)`` is several times cheaper than ``Decimal(str)``), and nothing
  adds them up.
* **Orders, fills and balances** (:class:`OrderUpdate`, :class:`Fill`, :class:`BalanceUpdate`)
  use :class:`~decimal.Decimal`. They are low-rate and they *are* added up: cumulative filled
  amounts are compared with the order amount, fees charged in the base asset are subtracted
  from positions, balances must reconcile with the exchange and the order journal. Exchanges
  send these as decimal strings, so ``Decimal(text)`` keeps them exact. The broker converts to
  float only at the backtrader boundary.

Times are integer epoch milliseconds as the exchanges send them (``None`` where an exchange
does not send one). Symbols are unified ccxt symbols (``"BTC/USDT"``), never exchange ids.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple, TypeVar

from .validation import (
    MAX_TIME_MS,
    bad_bool,
    bad_decimal,
    bad_float,
    bad_member,
    bad_text,
    bad_time,
    candle_ok,
    candle_problem,
    first,
)

__all__ = [
    "DATA_EVENTS",
    "AssetBalance",
    "BalanceUpdate",
    "Bar",
    "BookTop",
    "ConnectionEvent",
    "ConnectionState",
    "ErrorEvent",
    "Event",
    "Fill",
    "FundingFee",
    "OrderStatus",
    "OrderUpdate",
    "PositionUpdate",
    "Side",
    "Trade",
]


_T = TypeVar("_T")
_INF = float("inf")


def _fast_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass a faster ``__init__`` with the same signature.

    The generated frozen ``__init__`` assigns each field through ``object.__setattr__``; this one
    writes the slots through their member descriptors, which is about twice as fast (a ``Bar``
    goes from ~3.3 to ~1.8 us). Equality, hashing, repr, immutability and pickling are the
    dataclass's own.
    """
    params: list[str] = []
    body: list[str] = []
    namespace: dict[str, Any] = {}
    if hasattr(cls, "__post_init__"):
        return cls  # the generated __init__ would skip it: keep the dataclass's own
    for f in fields(cls):  # type: ignore[arg-type]
        if not f.init or f.default_factory is not MISSING:
            return cls  # not a shape this handles: keep the dataclass's own __init__
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    exec(f"def __init__(self, {', '.join(params)}):\n{''.join(body)}", namespace)
    init = namespace["__init__"]
    original = cls.__init__
    init.__qualname__ = original.__qualname__
    init.__annotations__ = original.__annotations__
    init.__doc__ = original.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls


class Event:
    """Base of every event. ``EVENT`` is the name listeners subscribe to with ``on(name, cb)``."""

    __slots__ = ()
    EVENT: ClassVar[str] = ""
    uses_clock: ClassVar[bool] = False  # problem() wants the exchange clock (``now_ms``)

    def problem(self, now_ms: int | None = None) -> str | None:
        """What makes this event invalid (wrong types, impossible values), or None.

        A WebSocket connection asks every event a parser built and drops the whole message when
        one answers (see ``BaseWebSocket.quarantined``), so listeners only ever get valid events.
        ``now_ms`` is the exchange clock when the connection knows it. Plugin-defined events may
        override this; the default finds nothing wrong.
        """
        return None


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(str, enum.Enum):
    """Exchange-neutral order status (Binance ``X``, Bybit ``orderStatus`` map onto these)."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self is OrderStatus.NEW or self is OrderStatus.PARTIALLY_FILLED

    @property
    def is_final(self) -> bool:
        """True once the exchange will send no further updates for the order."""
        return not self.is_open


class ConnectionState(str, enum.Enum):
    """State of one WebSocket connection (see ``BaseWebSocket.state``)."""

    IDLE = "idle"  # created, not started
    CONNECTING = "connecting"  # opening the socket (first time or after a drop)
    AUTHENTICATING = "authenticating"  # socket open, waiting for the auth acknowledgement
    CONNECTED = "connected"  # authenticated (if needed) and subscriptions sent
    DISCONNECTED = "disconnected"  # connection lost, waiting out the backoff
    STOPPED = "stopped"  # stop() was called; the thread has ended or is ending
    FAILED = "failed"  # gave up after max_reconnect_attempts; the thread has ended


# --------------------------------------------------------------------------------------------
# Market data (float)


@_fast_init
@dataclass(frozen=True, slots=True)
class Bar(Event):
    """One candle update. ``closed`` is True only for the final update of the candle.

    Intermediate updates repeat the same ``open_time``; only closed bars become backtrader bars.
    """

    EVENT: ClassVar[str] = "bar"
    uses_clock: ClassVar[bool] = True

    exchange: str
    symbol: str
    timeframe: str  # "1m", "5m", "1h", "1d" ... (ccxt timeframe strings)
    open_time: int  # ms, start of the candle
    open: float
    high: float
    low: float
    close: float
    volume: float  # base-asset volume
    closed: bool
    event_time: int | None = None  # ms, when the exchange emitted the update

    def problem(self, now_ms: int | None = None) -> str | None:
        """Types, the candle's shape and open time (see
        :func:`~realtrade_core.validation.candle_problem`), and ``closed`` a real boolean."""
        closed = self.closed
        if (
            candle_ok(
                self.timeframe, self.open_time, self.open, self.high, self.low, self.close, self.volume,
                closed, now_ms,
            )
            and type(self.symbol) is str and self.symbol
            and type(self.exchange) is str and self.exchange
            and (self.event_time is None or (type(self.event_time) is int and 0 <= self.event_time < MAX_TIME_MS))
        ):  # fmt: skip
            return None  # the healthy case, checked fast; anything else is looked at closely
        if type(closed) is not bool:
            return bad_bool(closed, "closed")
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.symbol, "symbol"),
            bad_text(self.timeframe, "timeframe"),
        ) or candle_problem(
            self.timeframe, self.open_time, self.open, self.high, self.low, self.close, self.volume,
            closed=closed, now_ms=now_ms,
        ) or bad_time(self.event_time, "event time", optional=True)  # fmt: skip


@_fast_init
@dataclass(frozen=True, slots=True)
class Trade(Event):
    """One public trade. ``side`` is the taker's side where the exchange says so."""

    EVENT: ClassVar[str] = "trade"

    exchange: str
    symbol: str
    trade_id: str
    price: float
    amount: float
    side: Side | None
    time: int  # ms, trade time

    def problem(self, now_ms: int | None = None) -> str | None:
        price, amount, time = self.price, self.amount, self.time
        if (
            type(price) is float and type(amount) is float and type(time) is int
            and 0.0 <= price < _INF and 0.0 <= amount < _INF and 0 <= time < MAX_TIME_MS
            and (self.side is None or type(self.side) is Side)
            and type(self.trade_id) is str and self.trade_id
            and type(self.symbol) is str and self.symbol and type(self.exchange) is str and self.exchange
        ):  # fmt: skip
            return None  # the healthy case, checked fast
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.symbol, "symbol"),
            bad_text(self.trade_id, "trade id"),
            bad_float(self.price, "price"),
            bad_float(self.amount, "amount"),
            bad_member(self.side, "side", Side, optional=True),
            bad_time(self.time, "time"),
        )


@_fast_init
@dataclass(frozen=True, slots=True)
class BookTop(Event):
    """Best bid and ask."""

    EVENT: ClassVar[str] = "book"

    exchange: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    time: int | None = None  # ms; Binance spot bookTicker carries no time

    def problem(self, now_ms: int | None = None) -> str | None:
        bid, ask, bid_size, ask_size, time = self.bid, self.ask, self.bid_size, self.ask_size, self.time
        if (
            type(bid) is float and type(ask) is float and type(bid_size) is float and type(ask_size) is float
            and 0.0 <= bid < _INF and 0.0 <= ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF
            and (time is None or (type(time) is int and 0 <= time < MAX_TIME_MS))
            and type(self.symbol) is str and self.symbol and type(self.exchange) is str and self.exchange
        ):  # fmt: skip
            return None  # the healthy case, checked fast
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.symbol, "symbol"),
            bad_float(self.bid, "bid"),
            bad_float(self.bid_size, "bid size"),
            bad_float(self.ask, "ask"),
            bad_float(self.ask_size, "ask size"),
            bad_time(self.time, "time", optional=True),
        )


# --------------------------------------------------------------------------------------------
# Account (Decimal)


@_fast_init
@dataclass(frozen=True, slots=True)
class OrderUpdate(Event):
    """State of one of our orders after an exchange push (order-level, cumulative values)."""

    EVENT: ClassVar[str] = "order"

    exchange: str
    order_id: str  # the exchange's order id
    client_order_id: str | None
    symbol: str
    side: Side
    type: str  # "market", "limit", "stop_market", "stop_limit" (ccxt-style, lower case)
    status: OrderStatus
    price: Decimal | None  # limit price; None for market orders
    amount: Decimal  # ordered base amount
    filled: Decimal  # cumulative filled base amount
    average: Decimal | None  # average fill price, None before any fill
    reason: str | None  # reject / cancel / expiry reason as the exchange words it
    time: int  # ms, exchange time of this update
    stop_price: Decimal | None = None

    def problem(self, now_ms: int | None = None) -> str | None:
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.order_id, "order id"),
            bad_text(self.client_order_id, "client order id", optional=True),
            bad_text(self.symbol, "symbol"),
            bad_member(self.side, "side", Side),
            bad_text(self.type, "type"),
            bad_member(self.status, "status", OrderStatus),
            bad_decimal(self.price, "price", optional=True),
            bad_decimal(self.amount, "amount"),
            bad_decimal(self.filled, "filled"),
            bad_decimal(self.average, "average price", optional=True),
            bad_text(self.reason, "reason", optional=True),
            bad_time(self.time, "time"),
            bad_decimal(self.stop_price, "stop price", optional=True),
        )


@_fast_init
@dataclass(frozen=True, slots=True)
class Fill(Event):
    """One execution of one of our orders. May arrive before the REST acknowledgement."""

    EVENT: ClassVar[str] = "fill"

    exchange: str
    trade_id: str
    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal  # base amount of this execution (not cumulative)
    fee: Decimal
    fee_currency: str | None
    is_maker: bool
    time: int  # ms

    def problem(self, now_ms: int | None = None) -> str | None:
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.trade_id, "trade id"),
            bad_text(self.order_id, "order id"),
            bad_text(self.client_order_id, "client order id", optional=True),
            bad_text(self.symbol, "symbol"),
            bad_member(self.side, "side", Side),
            bad_decimal(self.price, "price"),
            bad_decimal(self.amount, "amount"),
            bad_decimal(self.fee, "fee", signed=True),  # a maker rebate is a negative fee
            bad_text(self.fee_currency, "fee currency", optional=True),
            bad_bool(self.is_maker, "is_maker"),
            bad_time(self.time, "time"),
        )


class AssetBalance(NamedTuple):
    """``(asset, free, locked)``; a plain tuple, so it unpacks as one."""

    asset: str
    free: Decimal
    locked: Decimal


@_fast_init
@dataclass(frozen=True, slots=True)
class BalanceUpdate(Event):
    """Absolute balances of the assets that changed (not deltas).

    Exchanges that push deltas (Binance ``balanceUpdate``) follow them with an absolute update
    (``outboundAccountPosition``); plugins emit the absolute one.
    """

    EVENT: ClassVar[str] = "balance"

    exchange: str
    balances: tuple[AssetBalance, ...]
    time: int

    def problem(self, now_ms: int | None = None) -> str | None:
        problem = first(bad_text(self.exchange, "exchange"), bad_time(self.time, "time"))
        if problem is not None:
            return problem
        if type(self.balances) is not tuple:
            return "balances must be a tuple of AssetBalance"
        for entry in self.balances:
            if not isinstance(entry, AssetBalance):
                return "balances must be a tuple of AssetBalance"
            # free may be negative on an account that borrows; what orders hold never is
            problem = first(
                bad_text(entry.asset, "asset"),
                bad_decimal(entry.free, f"{entry.asset} free", signed=True),
                bad_decimal(entry.locked, f"{entry.asset} locked"),
            )
            if problem is not None:
                return problem
        return None


@_fast_init
@dataclass(frozen=True, slots=True)
class PositionUpdate(Event):
    """The account's position in one perpetual contract after an exchange push (one-way mode:
    one signed size per contract, negative when short; 0 when flat)."""

    EVENT: ClassVar[str] = "position"

    exchange: str
    symbol: str
    size: Decimal  # contracts, signed: negative is short
    entry_price: Decimal | None  # None when flat
    unrealized_pnl: Decimal | None
    liquidation_price: Decimal | None  # None when the exchange gives none (flat, or no risk)
    time: int  # ms, exchange time of this update

    def problem(self, now_ms: int | None = None) -> str | None:
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.symbol, "symbol"),
            bad_decimal(self.size, "size", signed=True),
            bad_decimal(self.entry_price, "entry price", optional=True),
            bad_decimal(self.unrealized_pnl, "unrealised profit", optional=True, signed=True),
            bad_decimal(self.liquidation_price, "liquidation price", optional=True),
            bad_time(self.time, "time"),
        )


@_fast_init
@dataclass(frozen=True, slots=True)
class FundingFee(Event):
    """A funding payment the exchange settled on the account's position in a perpetual contract:
    ``amount`` in ``asset``, positive when the account received it, negative when it paid."""

    EVENT: ClassVar[str] = "funding"

    exchange: str
    payment_id: str  # unique per payment (the exchange's id, or one made of symbol and time)
    symbol: str
    amount: Decimal  # signed: received > 0, paid < 0
    asset: str
    position_size: Decimal | None  # the position it was paid on (signed), when the exchange says
    rate: Decimal | None  # the funding rate, when the exchange says
    mark_price: Decimal | None  # the mark price it was computed at, when the exchange says
    time: int  # ms, the funding time

    def problem(self, now_ms: int | None = None) -> str | None:
        return first(
            bad_text(self.exchange, "exchange"),
            bad_text(self.payment_id, "payment id"),
            bad_text(self.symbol, "symbol"),
            bad_decimal(self.amount, "amount", signed=True),
            bad_text(self.asset, "asset"),
            bad_decimal(self.position_size, "position size", optional=True, signed=True),
            bad_decimal(self.rate, "funding rate", optional=True, signed=True),
            bad_decimal(self.mark_price, "mark price", optional=True),
            bad_time(self.time, "time"),
        )


# --------------------------------------------------------------------------------------------
# Connection events (emitted by the WebSocket layer itself, never by parsers)


@_fast_init
@dataclass(frozen=True, slots=True)
class ConnectionEvent(Event):
    """Delivered to ``connected``, ``disconnected`` and ``max_reconnect`` listeners."""

    EVENT: ClassVar[str] = "connection"

    exchange: str
    state: ConnectionState
    reason: str
    attempt: int  # consecutive failed attempts so far (0 after a healthy period)
    time: int  # ms, wall clock


@_fast_init
@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    """Delivered to ``error`` listeners: a failed connect, a lost or stale connection, a
    rejected authentication. Parse and callback errors are only counted and logged.

    ``message`` never contains the connection URL's path or query (it may carry a key).
    """

    EVENT: ClassVar[str] = "error"

    exchange: str
    where: str  # "connect", "recv", "send", "auth", "stale", "hook"
    message: str
    error_type: str  # exception class name, or "" when there is none
    time: int  # ms, wall clock


DATA_EVENTS: frozenset[str] = frozenset(
    cls.EVENT for cls in (Bar, Trade, BookTop, OrderUpdate, Fill, BalanceUpdate, PositionUpdate, FundingFee)
)
"""Names of the built-in data events."""
