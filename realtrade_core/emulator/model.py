"""Exchange-neutral records of the emulator: markets, candles, orders, fills and engine events.

Everything the matching engine hands to an exchange dialect is one of these frozen records, so a
dialect only translates shapes; it never reaches into engine state. Money is ``Decimal``
throughout: the exchanges speak decimal strings and balances must add up exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"  # becomes MARKET when the last price crosses stop_price
    STOP_LIMIT = "stop_limit"  # becomes LIMIT at ``price`` when the last price crosses stop_price


class TimeInForce(str, enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(str, enum.Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"  # IOC/FOK remainder, or a market order that found no liquidity

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class ExecutionType(str, enum.Enum):
    """Why an :class:`OrderEvent` was emitted (Binance's ``x`` field, Bybit's order pushes)."""

    NEW = "new"
    TRADE = "trade"
    CANCELED = "canceled"
    EXPIRED = "expired"
    TRIGGERED = "triggered"  # a stop order's trigger fired; the order is now working


class RejectReason(str, enum.Enum):
    """Exchange-neutral rejection kinds; each dialect maps them to its own error codes."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    INVALID_PARAMETER = "invalid_parameter"  # missing price on a limit, negative amount, ...
    PRICE_PRECISION = "price_precision"  # price not a multiple of the tick size
    AMOUNT_PRECISION = "amount_precision"  # amount not a multiple of the step size
    MIN_AMOUNT = "min_amount"
    MAX_AMOUNT = "max_amount"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    ORDER_NOT_FOUND = "order_not_found"
    ORDER_NOT_CANCELABLE = "order_not_cancelable"  # already filled / canceled
    WOULD_TRIGGER_IMMEDIATELY = "would_trigger_immediately"  # stop price already crossed
    # Perpetual contracts (see :mod:`.contracts`).
    INSUFFICIENT_MARGIN = "insufficient_margin"  # the order's initial margin exceeds what is available
    REDUCE_ONLY_REJECTED = "reduce_only_rejected"  # a reduce-only order that would not reduce the position
    INVALID_LEVERAGE = "invalid_leverage"  # below 1 or above the market's maximum
    NOT_MODIFIED = "not_modified"  # a setting asked for is already in force
    POSITION_EXISTS = "position_exists"  # margin mode cannot change with a position open
    OPEN_ORDERS_EXIST = "open_orders_exist"  # margin mode cannot change with orders open


class EngineError(Exception):
    """An order request the engine refuses. ``reason`` is what a dialect maps to an error code."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One tradable spot market. ``symbol`` is the exchange id without separator (``BTCUSDT``)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")  # price increment
    step_size: Decimal = Decimal("0.00001")  # amount increment
    min_amount: Decimal = Decimal("0.00001")
    max_amount: Decimal = Decimal("9000")
    min_notional: Decimal = Decimal("5")  # price * amount, in quote
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    # Partial-fill rule: a resting (maker) limit order fills at most this much base amount per
    # price-path step that reaches its price; ``None`` means it fills completely at once.
    max_fill_per_step: Decimal | None = None
    # A USDT-margined linear perpetual (ccxt ``BASE/QUOTE:QUOTE``) instead of a spot market:
    # positions, margin and funding are kept in ``quote`` (see :mod:`.contracts`).
    contract: bool = False
    max_leverage: int = 125
    default_leverage: int = 20
    maintenance_margin_rate: Decimal = Decimal("0.004")
    funding_rate: Decimal = Decimal("0.0001")  # the rate in force until set_funding_rate changes it


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle; ``open_time`` in epoch milliseconds, ``interval_ms`` its length."""

    open_time: int
    interval_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal  # base volume
    quote_volume: Decimal = Decimal(0)
    trades: int = 0

    @property
    def close_time(self) -> int:
        """Last millisecond inside the candle, as Binance reports it (``open_time + interval - 1``)."""
        return self.open_time + self.interval_ms - 1


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order (a trade of the account)."""

    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    quote_amount: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    time: int  # emulated epoch ms
    realized_pnl: Decimal = Decimal(0)  # contracts: profit or loss of the part that reduced a position


@dataclass(frozen=True, slots=True)
class Order:
    """An immutable snapshot of an order; the engine replaces it on every change."""

    order_id: int
    client_order_id: str
    account: str  # API key of the owning account
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    amount: Decimal
    price: Decimal | None  # limit price (LIMIT, STOP_LIMIT)
    stop_price: Decimal | None  # trigger (STOP_MARKET, STOP_LIMIT)
    status: OrderStatus
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # cumulative quote amount filled
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    triggered: bool = False
    trigger_above: bool | None = None  # stops: trigger on a rise to stop_price (else on a fall)
    list_id: int | None = None  # the OCO pair the order belongs to
    reduce_only: bool = False  # contracts: may only reduce the position
    created_time: int = 0
    updated_time: int = 0
    fills: tuple[Fill, ...] = ()

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def average_price(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


@dataclass(frozen=True, slots=True)
class RefusedOrder:
    """An order request the emulator answered with an error, as the client saw it.

    ``code`` and ``reason`` are the exchange's own (Binance ``-2010`` and its ``msg``, Bybit
    ``170131`` and its ``retMsg``; an injected HTTP fault records its HTTP status). ``request``
    holds the parameters as sent, without the signature. ``account`` is the API key the request
    carried ("" when it had none); ``time`` is the emulated market clock (epoch ms).
    """

    time: int
    account: str = field(repr=False)
    path: str
    symbol: str | None
    client_order_id: str | None
    code: int
    reason: str
    http_status: int = 200
    request: dict[str, str] = field(default_factory=dict, compare=False)


# --- events the engine emits to subscribers (dialects turn them into stream messages) ---------


@dataclass(frozen=True, slots=True)
class KlineEvent:
    """The forming candle changed (``closed`` False) or the candle just closed (``closed`` True).

    Every candle produces exactly one event with ``closed`` True, after which its values never
    change.
    """

    symbol: str
    candle: Candle  # values so far (high/low/close/volume up to ``time``)
    closed: bool
    time: int  # event time, emulated epoch ms


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """A public trade printed by the replayed market at one price-path step."""

    symbol: str
    trade_id: int
    price: Decimal
    amount: Decimal
    buyer_is_maker: bool
    time: int


@dataclass(frozen=True, slots=True)
class BookEvent:
    """Best bid/ask around the last price (the emulator's book is one level deep)."""

    symbol: str
    update_id: int
    bid: Decimal
    bid_amount: Decimal
    ask: Decimal
    ask_amount: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order of ``order.account`` changed; ``fill`` is set when ``execution`` is TRADE."""

    order: Order
    execution: ExecutionType
    fill: Fill | None
    time: int


@dataclass(frozen=True, slots=True)
class BalanceEvent:
    """Balances of ``account`` changed; ``balances`` holds the assets that changed."""

    account: str
    balances: tuple[Balance, ...]
    time: int


@dataclass(frozen=True, slots=True)
class Position:
    """One contract position of an account (one-way mode: ``size`` is signed, short below 0).

    ``margin`` is what the position holds of the wallet: the isolated margin, or the initial
    margin (``|size| * entry_price / leverage``) of a cross position. ``unrealized_pnl`` and
    ``liquidation_price`` are at ``mark_price``; the liquidation price is 0 when no price
    above zero would liquidate the position.
    """

    account: str = field(repr=False)
    symbol: str
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    liquidation_price: Decimal
    leverage: int
    isolated: bool
    margin: Decimal
    maintenance_margin: Decimal
    realized_pnl: Decimal  # cumulative, since the account first traded the symbol
    updated_time: int

    @property
    def side(self) -> str:
        return "long" if self.size > 0 else "short" if self.size < 0 else "flat"

    @property
    def notional(self) -> Decimal:
        return abs(self.size) * self.mark_price


@dataclass(frozen=True, slots=True)
class Income:
    """One cash flow of a contract account: ``kind`` is ``FUNDING_FEE``, ``REALIZED_PNL``,
    ``COMMISSION`` or ``INSURANCE_CLEAR`` (a liquidation's loss beyond the wallet, written
    off); ``amount`` is signed (received above 0); ``balance`` is the wallet (the asset's total)
    once every cash flow of the same event (a fill's profit and fee) is booked."""

    income_id: int
    account: str = field(repr=False)
    symbol: str
    kind: str
    amount: Decimal
    asset: str
    time: int
    trade_id: int | None = None
    rate: Decimal | None = None  # FUNDING_FEE: the funding rate applied
    balance: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PositionEvent:
    """A contract account changed: ``reason`` is ``order`` (a fill), ``funding_fee``,
    ``liquidation``, ``leverage`` or ``margin_type``. ``positions`` holds the positions that
    changed, ``balances`` the settlement asset after the change, ``income`` the cash flows."""

    account: str
    reason: str
    positions: tuple[Position, ...]
    balances: tuple[Balance, ...]
    time: int
    income: tuple[Income, ...] = ()


@dataclass(frozen=True, slots=True)
class MarkPriceEvent:
    """A contract market's mark price (once per path step, and when set by hand)."""

    symbol: str
    mark_price: Decimal
    index_price: Decimal
    funding_rate: Decimal
    next_funding_time: int
    time: int


@dataclass(frozen=True, slots=True)
class MarginCallEvent:
    """An account's cross margin, or an isolated position, came within reach of liquidation:
    its maintenance margin is at least ``MARGIN_CALL_RATIO`` of its margin balance."""

    account: str
    positions: tuple[Position, ...]
    balances: tuple[Balance, ...]
    time: int


EngineEvent = (
    KlineEvent | TradeEvent | BookEvent | OrderEvent | BalanceEvent | PositionEvent | MarkPriceEvent | MarginCallEvent
)


@dataclass(slots=True)
class AccountConfig:
    api_key: str
    secret: str = field(repr=False)
    balances: dict[str, Decimal] = field(default_factory=dict)
