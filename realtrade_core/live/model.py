"""Records cerebro's thread keeps for live orders, positions and brackets, and small helpers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import backtrader as bt

from ..events import OrderUpdate

ZERO = Decimal(0)


#: backtrader execution type -> realtrade order type (the journal's and OrderRequest's words)
BT_TO_TYPE = {
    bt.Order.Market: "market",
    bt.Order.Close: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.StopTrail: "stop",  # resting at the trail's current price, replaced as it moves
    bt.Order.StopTrailLimit: "stop_limit",
}
#: backtrader execution types whose limit price is ``pricelimit``
STOP_LIMITS = (bt.Order.StopLimit, bt.Order.StopTrailLimit)


TYPE_TO_BT = {
    "market": bt.Order.Market,
    "limit": bt.Order.Limit,
    "stop": bt.Order.Stop,
    "stop_limit": bt.Order.StopLimit,
}


STOP_TYPES = frozenset({"stop", "stop_limit"})


#: a journal order's final status -> backtrader's
FINAL_TO_BT = {
    "filled": bt.Order.Completed,
    "canceled": bt.Order.Canceled,
    "expired": bt.Order.Expired,
    "rejected": bt.Order.Rejected,
}


def triggered_type(kind: str) -> str:
    """The order a stop becomes when it triggers: a market order (a stop-limit: a limit order)."""
    return "limit" if kind == "stop_limit" else "market"


def now_ms() -> int:
    return int(time.time() * 1000)


def dec(value: Any) -> Decimal | None:
    """A Decimal from an exchange or ccxt number (floats through their shortest repr)."""
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def ms_to_num(ms: int | None) -> float:
    """backtrader's float date for epoch milliseconds (naive UTC, like the feed's bars)."""
    if not ms:
        ms = now_ms()
    return bt.date2num(datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None))


def bar_close_ms(data: Any) -> int:
    """Epoch milliseconds of the data's current bar (stamped at its candle's close)."""
    return int(bt.num2date(data.datetime[0]).replace(tzinfo=timezone.utc).timestamp() * 1000)


_BAR_LENGTH = {
    bt.TimeFrame.Seconds: lambda n: timedelta(seconds=n),
    bt.TimeFrame.Minutes: lambda n: timedelta(minutes=n),
    bt.TimeFrame.Days: lambda n: timedelta(days=n),
    bt.TimeFrame.Weeks: lambda n: timedelta(weeks=n),
}


def next_bar_time(data: Any) -> float | None:
    """backtrader's date number of the data's next bar (None before its first bar).

    Bars are stamped at their candle's close, one bar length apart; for other timeframes
    (months, ticks) the last bar's length stands in for the next one's.
    """
    try:
        if not len(data):
            return None
        now = float(data.datetime[0])
        if math.isnan(now):
            return None
        length = _BAR_LENGTH.get(data._timeframe)
        if length is not None:
            return float(bt.date2num(bt.num2date(now) + length(max(int(data._compression), 1))))
        return now + (now - float(data.datetime[-1])) if len(data) > 1 else now
    except (IndexError, TypeError, ValueError, AttributeError):
        return None


@dataclass(eq=False)
class Tracked:
    """One live order as cerebro's thread tracks it."""

    order: bt.Order
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    created_ms: int
    order_id: str | None = None
    executed: Decimal = ZERO  # gross base amount applied to the backtrader order
    acked: bool = False  # the create's answer (or a lookup) has arrived
    exchange_filled: Decimal = ZERO  # cumulative filled the exchange last reported
    final: OrderUpdate | None = None  # a final status waiting for its fills
    waiting_since: float | None = None  # monotonic time fills went missing
    audits: int = 0  # REST audits asked for the missing fills (each waits twice as long)
    done: bool = False
    reattached: bool = False
    held: bool = False  # a bracket child, Accepted before it was sent
    seen: bool = False  # the exchange has shown the order (acknowledgement, update or fill)
    cancelling: bool = False  # a cancel request is on its way (the strategy's, or for validity)
    expiring: float | None = None  # past ``valid``: the datetime of the bar it expires at
    expire_bar: int = 0  # the data's bar count when the expiring cancel was sent
    unsent: bool = False  # expired before it could trade: never sent to the exchange
    waiting_sibling: float | None = None  # an OCO leg's end, held until the other leg's fill
    # A sell sent short of what it asked by the fees the exchange took in the coin: what it
    # closes in the ledger (None: what it sends). Its fills move the ledger pro rata.
    closes: Decimal | None = None
    trail_bar: int | None = None  # a trailing stop: the data's bar count when last trailed
    replacing: bool = False  # a trailing stop whose cancel makes way for it at a new price


@dataclass
class SymbolBook:
    """The ledger's position in one symbol, in Decimal (authoritative), and backtrader's float view.

    ``size`` counts filled amounts as a backtest does; ``coin_fees`` is what the exchange took of
    it as fees in the coin, so the account holds ``size - coin_fees`` for this position.
    """

    symbol: str
    base: str
    quote: str
    size: Decimal = ZERO
    price: Decimal = ZERO
    coin_fees: Decimal = ZERO
    dust: Decimal = ZERO  # below the market's minimum: recorded and reported, never a position
    position: bt.Position = field(default_factory=bt.Position)
    trade_size: float = 0.0  # what the strategy's Trade object has accumulated (float, as it sums)
    data: Any = None
    last: float = 0.0  # the data's last close, read in cerebro's thread
    last_fill: float = 0.0  # monotonic time of the last applied fill

    @property
    def held(self) -> Decimal:
        """What the account holds for this position: its size less the fees taken in the coin."""
        return self.size - self.coin_fees

    def sync(self) -> None:
        self.position.size = float(self.size)
        self.position.price = float(self.price) if self.size else 0.0
        self.position.price_orig = self.position.price


@dataclass(eq=False)
class Bracket:
    """A bracket: the parent, and its children held until the parent has filled."""

    parent: bt.Order
    children: list[bt.Order]
    sent: bool = False  # the children went to the exchange
    amount: Decimal = ZERO  # what the children close (the parent's fill, less a base fee)
    armed: dict[int, int] = field(default_factory=dict)  # stop child ref -> bar count when armed
    triggered: list[bt.Order] = field(default_factory=list)  # armed stops whose price was crossed
    cancelled_for_trigger: set[int] = field(default_factory=set)  # siblings cancelled to make room
    armed_since: dict[int, int] = field(default_factory=dict)  # restored stop ref -> ms it was armed
    native_oco: bool = False  # the exits are an exchange OCO list: the exchange ends the other one


class _Reject(Exception):
    """An order refused before it is sent: Rejected, or Margin when ``margin`` (no funds)."""

    def __init__(self, reason: str, *, margin: bool = False) -> None:
        super().__init__(reason)
        self.margin = margin


#: backtrader's trailing order types, which the broker moves after each closed bar
TRAILING = (bt.Order.StopTrail, bt.Order.StopTrailLimit)


class TrackedOrders(dict):
    """The broker's orders by client order id (finished ones too: a late fill or status still
    finds its order), with those not yet done indexed apart, and the trailing ones among them,
    so the loops of every broker pass run over the orders they concern only, however many a
    long run has made or rest on the book (an order never comes back once done)."""

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, Tracked] = {}
        self._trailing: dict[str, Tracked] = {}

    def __setitem__(self, client_order_id: str, tracked: Tracked) -> None:
        super().__setitem__(client_order_id, tracked)
        self._open[client_order_id] = tracked
        if getattr(tracked.order, "exectype", None) in TRAILING:
            self._trailing[client_order_id] = tracked

    def pop(self, client_order_id: str, *default: Any) -> Any:
        self._open.pop(client_order_id, None)
        self._trailing.pop(client_order_id, None)
        return super().pop(client_order_id, *default)

    def __delitem__(self, client_order_id: str) -> None:
        self._open.pop(client_order_id, None)
        self._trailing.pop(client_order_id, None)
        super().__delitem__(client_order_id)

    @staticmethod
    def _live(index: dict[str, Tracked]) -> list[Tracked]:
        finished = [cid for cid, t in index.items() if t.done]
        for cid in finished:
            del index[cid]
        return list(index.values())

    def open(self) -> list[Tracked]:
        """The orders not done, in the order they were tracked."""
        return self._live(self._open)

    def trailing(self) -> list[Tracked]:
        """The trailing orders not done, in the order they were tracked."""
        return self._live(self._trailing)
