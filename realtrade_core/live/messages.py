"""Typed records passed between cerebro's thread and the live broker's worker threads."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..events import OrderUpdate


@dataclass(frozen=True, slots=True)
class Ack:
    """The exchange has the order (its create answered, or a lookup found it)."""

    client_order_id: str
    order_id: str
    update: OrderUpdate | None = None  # the order's state, when the answer carried one


@dataclass(frozen=True, slots=True)
class SubmitFailed:
    """The order is not on the exchange: it refused it, or it could be confirmed absent."""

    client_order_id: str
    reason: str
    margin: bool = False  # refused for want of funds: backtrader's Margin status


@dataclass(frozen=True, slots=True)
class CancelFailed:
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """Absolute balances of every asset from a REST refresh: ``asset -> (free, locked)``."""

    balances: dict[str, tuple[Decimal, Decimal]]
    time: int
    asked: float = 0.0  # time.monotonic() when it was asked for: it shows no fill applied after


@dataclass(frozen=True, slots=True)
class AuditDone:
    pass


@dataclass(frozen=True, slots=True)
class StoreMessage:
    """Something the strategy should hear about through ``notify_store``."""

    message: str


@dataclass(frozen=True, slots=True)
class CreateRequest:
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit" | "stop" | "stop_limit"
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    created_ms: int
    trigger_above: bool | None = None  # a stop firing on a rise (None: buys rise, sells fall)
    reduce_only: bool = False  # a contract order that may only reduce the position

    @property
    def fires_on_rise(self) -> bool:
        return self.side == "buy" if self.trigger_above is None else self.trigger_above


@dataclass(frozen=True, slots=True)
class OcoRequest:
    """A bracket's two exits as one exchange OCO order list: a limit order and a stop."""

    limit: CreateRequest
    stop: CreateRequest


@dataclass(frozen=True, slots=True)
class OcoRefused:
    """The exchange refused an OCO list (nothing was placed): ``reason`` says why."""

    request: OcoRequest
    reason: str


@dataclass(frozen=True, slots=True)
class CancelRequest:
    client_order_id: str
    symbol: str
    type: str
    order_id: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """Check these orders over REST: ``(client_order_id, order_id, symbol, created_ms)``."""

    orders: tuple[tuple[str, str | None, str, int], ...]
    fetch_balance: bool = False
