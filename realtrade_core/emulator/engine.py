"""The exchange-neutral matching engine: replayed markets, accounts, orders and fills.

Thread-safe: every public method takes one re-entrant lock, and subscribers are called
synchronously while it is held, in the thread that caused the change (the driver thread, an
aiohttp handler, or a test stepping the clock). Subscribers must therefore only enqueue.

Time. The engine's clock is emulated epoch milliseconds (:class:`~.clock.EmulatedClock`). At
start the clock stands at the open time of candle number ``history`` of every symbol: candles
before it are the past (served by REST), the rest are released as the clock advances.

Price path. Each candle is walked through ``steps_per_candle`` points (default 4) at evenly
spaced times: open -> low -> high -> close when the candle closes at or above its open, and
open -> high -> low -> close otherwise. At every point the engine prints one public trade,
updates the forming candle (a KlineEvent with ``closed`` False), moves the one-level book
(bid = price - tick, ask = price + tick) and matches orders. When the clock reaches the candle's
end, one KlineEvent with ``closed`` True carries the candle exactly as the source had it.

Matching rules (documented for users in the emulator's docstring and the README):
- MARKET fills completely at once at the last price (taker fee).
- LIMIT: if marketable on arrival (buy price >= last, sell price <= last) it fills at once at the
  last price as taker; otherwise it rests and fills at its own limit price as maker at the first
  path step whose price reaches it (buy: step price <= limit; sell: step price >= limit), at most
  ``MarketSpec.max_fill_per_step`` per step (partial fills).
- IOC: whatever does not fill on arrival expires. FOK: fills completely on arrival or expires.
- STOP_MARKET / STOP_LIMIT trigger when a path step crosses ``stop_price`` (buy: price >=
  stop, sell: price <= stop), then behave as MARKET / LIMIT at ``price``. A stop whose trigger is
  already crossed on arrival is rejected with WOULD_TRIGGER_IMMEDIATELY.
- Fees are charged in the asset received: base on buys, quote on sells.
- Funds are locked on acceptance: quote ``amount * price`` for buys (last price for market and
  stop-market buys, with ``market_buy_margin`` headroom), base ``amount`` for sells; an order the
  free balance cannot cover is rejected with INSUFFICIENT_BALANCE.
- Validation order: symbol, parameters, price precision, amount precision, min/max amount,
  min notional, balance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from .clock import EmulatedClock
from .model import (
    AccountConfig,
    Balance,
    Candle,
    EngineEvent,
    Fill,
    MarketSpec,
    Order,
    OrderType,
    Side,
    TimeInForce,
)

Subscriber = Callable[[EngineEvent], None]


class Engine:
    """Markets, accounts and the order book of one emulated exchange.

    ``markets`` maps each symbol to its spec and its full candle list (past and future, all of
    the same interval, sorted, with holes allowed where the source has them). ``history`` is the
    number of candles already in the past at start.
    """

    def __init__(
        self,
        markets: Sequence[tuple[MarketSpec, Sequence[Candle]]],
        *,
        history: int = 500,
        clock: EmulatedClock | None = None,
        accounts: Iterable[AccountConfig] = (),
        steps_per_candle: int = 4,
        market_buy_margin: Decimal = Decimal("1.05"),
    ) -> None:
        self._lock = threading.RLock()
        raise NotImplementedError

    # --- subscription ---------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns a function that unsubscribes."""
        raise NotImplementedError

    # --- time -------------------------------------------------------------------------------

    @property
    def clock(self) -> EmulatedClock:
        raise NotImplementedError

    def now(self) -> int:
        """Emulated epoch ms (the market clock; fault-injected skew is applied by dialects)."""
        raise NotImplementedError

    def advance_to(self, time_ms: int) -> None:
        """Process every path step and candle close up to ``time_ms``, emitting events in order."""
        raise NotImplementedError

    def step_candles(self, count: int = 1) -> None:
        """Advance a manual clock by exactly ``count`` candle intervals (of the shortest interval)."""
        raise NotImplementedError

    # --- market data ------------------------------------------------------------------------

    @property
    def markets(self) -> dict[str, MarketSpec]:
        raise NotImplementedError

    def market(self, symbol: str) -> MarketSpec:
        """The spec of ``symbol``; raises EngineError(UNKNOWN_SYMBOL)."""
        raise NotImplementedError

    def interval_ms(self, symbol: str) -> int:
        raise NotImplementedError

    def candles(
        self,
        symbol: str,
        interval_ms: int,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Candles whose open time lies in [start, end] and is not in the future, oldest first.

        ``interval_ms`` may be any whole multiple of the source interval: candles are then
        aggregated from the source (open of first, max high, min low, close of last, summed
        volume), aligned to multiples of ``interval_ms`` since the epoch. The candle still
        forming is included, with its values so far, as real exchanges do. Without ``start``
        the *latest* ``limit`` candles are returned.
        """
        raise NotImplementedError

    def last_price(self, symbol: str) -> Decimal:
        raise NotImplementedError

    def book(self, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """``(bid, bid_amount, ask, ask_amount)`` now."""
        raise NotImplementedError

    def ticker_24h(self, symbol: str) -> dict[str, Decimal]:
        """open, high, low, last, volume, quote_volume over the last 24 emulated hours."""
        raise NotImplementedError

    def public_trades(self, symbol: str, limit: int = 500) -> list:
        """Recent TradeEvents, oldest first."""
        raise NotImplementedError

    # --- accounts -----------------------------------------------------------------------------

    def add_account(self, account: AccountConfig) -> None:
        raise NotImplementedError

    def secret_for(self, api_key: str) -> str | None:
        """The HMAC secret of ``api_key``, or None for an unknown key."""
        raise NotImplementedError

    def balances(self, api_key: str) -> list[Balance]:
        raise NotImplementedError

    def set_balance(self, api_key: str, asset: str, free: Decimal) -> None:
        """Test helper: set an asset's free balance (emits a BalanceEvent)."""
        raise NotImplementedError

    # --- orders ---------------------------------------------------------------------------------

    def place_order(
        self,
        api_key: str,
        symbol: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        *,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        client_order_id: str | None = None,
    ) -> Order:
        """Validate, accept and immediately match an order; returns its snapshot after matching.

        Raises EngineError on any rejection, before anything changed. A missing
        ``client_order_id`` gets a generated one. A client id already used by an *open* order of
        the account is DUPLICATE_CLIENT_ORDER_ID.
        """
        raise NotImplementedError

    def cancel_order(
        self, api_key: str, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order; raises ORDER_NOT_FOUND or ORDER_NOT_CANCELABLE."""
        raise NotImplementedError

    def get_order(
        self, api_key: str, symbol: str | None = None, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """Any order of the account, open or closed; raises ORDER_NOT_FOUND."""
        raise NotImplementedError

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        raise NotImplementedError

    def all_orders(
        self, api_key: str, symbol: str | None = None, *, start: int | None = None, end: int | None = None, limit: int = 500
    ) -> list[Order]:
        """Every order of the account, oldest first."""
        raise NotImplementedError

    def fills(
        self,
        api_key: str,
        symbol: str | None = None,
        *,
        order_id: int | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
    ) -> list[Fill]:
        """The account's trades, oldest first."""
        raise NotImplementedError
