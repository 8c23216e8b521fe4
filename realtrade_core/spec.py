"""Typed records exchanged between the core and plugins: the registration currency.

These records are deliberately free of backtrader and ccxt so that ``import realtrade_core``
stays light; the classes an :class:`ExchangeSpec` names are only imported when a plugin is
loaded by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# The statuses reported by `realtrade exchanges` are defined with the rules that give them.
from .discovery import STATUS_DISABLED as STATUS_DISABLED
from .discovery import STATUS_ERROR as STATUS_ERROR
from .discovery import STATUS_INSTALLED as STATUS_INSTALLED
from .discovery import STATUS_LOADED as STATUS_LOADED
from .discovery import info_dict

if TYPE_CHECKING:
    from .execution import ExecutionDialect


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an exchange plugin supports; the conformance suite skips what is declared absent."""

    market_types: frozenset[str] = frozenset({"spot"})
    timeframes: tuple[str, ...] = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w")
    order_types: frozenset[str] = frozenset({"market", "limit", "stop", "stop_limit"})
    public_stream: bool = True
    private_stream: bool = True
    testnet: bool = True
    emulator: bool = True


def _default_dialect() -> ExecutionDialect:
    # Imported on first use: the dialect brings the retry machinery, which listing exchanges
    # (and ``import realtrade_core``) never needs.
    from .execution import ExecutionDialect

    return ExecutionDialect()


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """What an exchange plugin registers: one record per exchange.

    ``store``, ``broker`` and ``feed`` must subclass :class:`realtrade_core.store.Store`,
    :class:`realtrade_core.broker.Broker` and :class:`realtrade_core.feed.Data` (``broker`` is
    usually the core Broker itself); ``execution`` is an instance of
    :class:`realtrade_core.execution.ExecutionDialect` saying how the exchange wants its orders
    (the default suits a well-behaved ccxt exchange); ``websocket`` a
    :class:`realtrade_core.websocket.BaseWebSocket` (or None for REST-only exchanges);
    ``emulator`` a :class:`realtrade_core.emulator.dialect.EmulatorDialect` (or None).
    ``name`` must equal the entry-point name the plugin is installed under.
    """

    name: str
    store: type
    broker: type
    feed: type
    execution: ExecutionDialect = field(default_factory=_default_dialect)
    websocket: type | None = None
    emulator: type | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    ccxt_id: str | None = None  # defaults to ``name``
    description: str = ""

    @property
    def ccxt_exchange_id(self) -> str:
        return self.ccxt_id or self.name


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """One row of ``realtrade exchanges``: answered from package metadata."""

    name: str
    distribution: str
    version: str
    module: str
    status: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return info_dict(self)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order about to be sent, as pre-trade checks see it (amounts in base, price in quote)."""

    exchange: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit" | "stop" | "stop_limit"
    amount: float
    price: float | None
    client_order_id: str
    venue: str
    paper: bool


@dataclass(frozen=True, slots=True)
class Veto:
    """A pre-trade check's refusal; the order becomes Rejected with this reason."""

    reason: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """A connection change or error of a store, for monitoring and alerting plugins."""

    exchange: str
    venue: str
    kind: str  # "connected" | "disconnected" | "reconnected" | "error"
    message: str = ""
