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
- Stops trigger on a rise for buys and on a fall for sells, unless ``trigger_above`` says
  otherwise (a sell stop-limit triggering on a rise is a take-profit). With
  ``lock_on_trigger`` a stop holds no funds until it triggers and is cancelled then if the
  account cannot cover it (Bybit's conditional orders).
- OCO pairs (:meth:`Engine.place_oco`, Binance's order lists): a resting limit order and a
  stop for one amount, funds locked once; one trading or triggering expires the other, and
  cancelling one cancels both.
- STOP_MARKET / STOP_LIMIT trigger when a path step crosses ``stop_price`` (buy: price >=
  stop, sell: price <= stop), then behave as MARKET / LIMIT at ``price``. A stop whose trigger is
  already crossed on arrival is rejected with WOULD_TRIGGER_IMMEDIATELY.
- Fees are charged in the asset received: base on buys, quote on sells.
- Funds are locked on acceptance: quote ``amount * price`` for buys (last price for market and
  stop-market buys, with ``market_buy_margin`` headroom), base ``amount`` for sells; an order the
  free balance cannot cover is rejected with INSUFFICIENT_BALANCE.
- Validation order: symbol, parameters, price precision, amount precision, min/max amount,
  min notional, balance.

Details the rules above leave open, fixed here:

- Clock. Without a ``clock`` the engine makes a real-time one standing at
  :meth:`Engine.start_time_for`. A clock passed in is authoritative: whatever it reads at
  construction is "now", candles that ended before it are the past and a candle it falls inside
  is already formed up to that moment (``history`` is then unused). Public methods that read or
  change market or account state first catch the engine up with the clock, so a running clock needs no
  driver for correctness (a driver calling :meth:`advance_to` just makes streams timely).
  :meth:`advance_to` on a manual clock also moves the clock forward.
- Steps. Step ``k`` of a candle happens at ``open_time + k * interval // steps``; the closed
  kline at ``open_time + interval``, before the next candle's first step at that same time.
  Symbols are processed in global time order (ties: closes first, then symbols in the order
  given). With more than four steps the four anchor prices are spread over the steps and the
  points between them are interpolated linearly, rounded to the tick.
- Forming candles carry the running open/high/low/close of the path so far. Volume, quote
  volume and trade count are split evenly across the steps (intermediate values rounded down
  to 8 decimals, the last step carries the source value), and each step's public trade has the
  volume added at that step, so the trades of a candle add up to its volume.
- Holes in the source are outages: no trades, book moves, klines or matching during them, and
  no candle for them in :meth:`candles`. Orders placed during a hole meet the last price.
  Past the last candle the market stands still at the last close. :meth:`step_candles` steps
  from close to close, so a step across a hole still closes the next candle.
- Lockstep (``lockstep=True``, a manual clock): the replay stops at every candle close, after
  every event at that instant (each symbol's candle closing then, and the first step, the open,
  of each candle opening then) and before the next step, and after any other path step at which
  orders traded (filled, triggered or expired), and stays there (clock included) until
  :meth:`release` (see :mod:`.lockstep`).
- Public trade ids and book update ids are ``candle_index * steps + step + 1`` per symbol, so
  they increase with time and survive holes. Order ids and account trade ids are engine-wide
  counters. Recent public trades are pre-filled from the candles before the start.
- A price on a MARKET / STOP_MARKET order and a stop price on a MARKET / LIMIT order are
  ignored (stored as None), as Bybit does; dialects that must reject them do so themselves.
- Rejections are checked in this order: API key, symbol, parameters (side, type, time in
  force, amount, price, stop price, client order id of at most 36 characters from
  ``[A-Za-z0-9._:/-]``), price precision (price and stop price), amount precision, min/max
  amount, min notional (at the limit price, else the stop price, else the last price),
  WOULD_TRIGGER_IMMEDIATELY, DUPLICATE_CLIENT_ORDER_ID, INSUFFICIENT_BALANCE. A rejection
  changes nothing and emits nothing.
- A stop-market buy locks ``amount * max(last, stop_price) * market_buy_margin``: it can only
  fill at or above its stop. If a fill ever costs more than an order still holds (a gap far
  past the margin), the difference is taken from the free balance, and when that cannot cover
  it either the order expires instead of driving a balance negative.
- Between two steps of a candle the price moves through every price in between, so a stop
  that a step crosses triggers at its own stop price: a STOP_MARKET fills there, a STOP_LIMIT
  arrives there as a limit order. A candle's first step is a jump from the previous close (a
  gap), so a stop it crosses triggers at that open price. This is backtrader's own stop
  model, which makes backtests and emulated live runs comparable fill for fill. A triggered
  STOP_LIMIT that is not marketable at its trigger price rests (GTC) or expires (IOC/FOK).
- Fees are rounded down to 8 decimals. Every change of an account's balances is followed by one
  BalanceEvent holding the changed assets; a fill's OrderEvent comes before its BalanceEvent.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from enum import Enum
from typing import Any, TypeVar

from .clock import EmulatedClock
from .contracts import FUNDING_INTERVAL_MS, ContractBook
from .model import (
    AccountConfig,
    Balance,
    BalanceEvent,
    BookEvent,
    Candle,
    EngineError,
    EngineEvent,
    ExecutionType,
    Fill,
    KlineEvent,
    MarketSpec,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TradeEvent,
)

logger = logging.getLogger(__name__)

Subscriber = Callable[[EngineEvent], None]

_ZERO = Decimal(0)
_EIGHT_DECIMALS = Decimal("1e-8")
_DAY_MS = 86_400_000
_PUBLIC_TRADES_KEPT = 1000
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._:/-]{1,36}")
_STOP_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})
_PRICED_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})

# A candle close sorts before a step at the same instant, so a candle is final before the next
# one opens.
_CLOSE = 0
_STEP = 1
_NEVER = 2**62  # the "next action" time of a market whose candles are used up

_E = TypeVar("_E", bound=Enum)


def _reject(reason: RejectReason, message: str) -> EngineError:
    return EngineError(reason, message)


def _round_down_8(value: Decimal) -> Decimal:
    try:
        return value.quantize(_EIGHT_DECIMALS, rounding=ROUND_DOWN)
    except InvalidOperation:  # more digits than the context holds: leave it exact
        return value


def _is_multiple(value: Decimal, increment: Decimal) -> bool:
    # A wide context: the default 28 digits raise on e.g. 1e30 % 1e-5.
    with localcontext() as ctx:
        ctx.prec = 200
        return value % increment == 0


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool):
        raise _reject(RejectReason.INVALID_PARAMETER, f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, (int, str)):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))
        else:
            raise TypeError
    except (InvalidOperation, TypeError, ValueError):
        raise _reject(RejectReason.INVALID_PARAMETER, f"{name} must be a number, got {value!r}") from None
    if not result.is_finite():
        raise _reject(RejectReason.INVALID_PARAMETER, f"{name} must be finite, got {value!r}")
    return result


def _enum(cls: type[_E], value: Any, name: str) -> _E:
    # Dialects may hand over the wire spelling ("BUY", "gtc"); the members' own case is not theirs.
    candidates = (value, value.lower(), value.upper()) if isinstance(value, str) else (value,)
    for candidate in candidates:
        try:
            return cls(candidate)
        except ValueError:
            pass
    allowed = ", ".join(str(member.value) for member in cls)
    raise _reject(RejectReason.INVALID_PARAMETER, f"{name} must be one of {allowed}, got {value!r}")


def _aggregate(open_time: int, interval_ms: int, rows: Sequence[Candle]) -> Candle:
    return Candle(
        open_time=open_time,
        interval_ms=interval_ms,
        open=rows[0].open,
        high=max(row.high for row in rows),
        low=min(row.low for row in rows),
        close=rows[-1].close,
        volume=sum((row.volume for row in rows), _ZERO),
        quote_volume=sum((row.quote_volume for row in rows), _ZERO),
        trades=sum(row.trades for row in rows),
    )


class _Bal:
    __slots__ = ("free", "locked")

    def __init__(self, free: Decimal = _ZERO, locked: Decimal = _ZERO) -> None:
        self.free = free
        self.locked = locked


class _Account:
    __slots__ = (
        "api_key", "balances", "fills", "incomes", "isolated", "latest_by_client", "leverage", "open_by_client",
        "orders", "positions", "secret",
    )  # fmt: skip

    def __init__(self, config: AccountConfig) -> None:
        self.api_key = config.api_key
        self.secret = config.secret
        self.balances: dict[str, _Bal] = {}
        for asset, amount in config.balances.items():
            free = _decimal(amount, f"initial balance of {asset}")
            if free < 0:
                raise ValueError(f"initial balance of {asset} for an account must not be negative, got {free}")
            self.balances[asset] = _Bal(free)
        self.orders: dict[int, _Working] = {}
        self.open_by_client: dict[str, int] = {}
        self.latest_by_client: dict[str, int] = {}
        self.fills: list[Fill] = []
        # Contracts (see .contracts): positions, leverage and margin mode by symbol, cash flows.
        self.positions: dict[str, Any] = {}
        self.leverage: dict[str, int] = {}
        self.isolated: dict[str, bool] = {}
        self.incomes: list[Any] = []

    def balance(self, asset: str) -> _Bal:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = _Bal()
        return bal

    def snapshot(self, assets: Iterable[str]) -> tuple[Balance, ...]:
        return tuple(Balance(asset, self.balances[asset].free, self.balances[asset].locked) for asset in assets)


class _Working:
    """One order of an account: its latest snapshot and the funds it still holds locked."""

    __slots__ = ("account", "lock_asset", "lock_on_trigger", "locked", "market", "order", "partner")

    def __init__(self, order: Order, account: _Account, market: _Market, locked: Decimal, lock_asset: str) -> None:
        self.order = order
        self.account = account
        self.market = market
        self.partner: _Working | None = None  # the other order of an OCO pair
        self.lock_on_trigger = False  # a stop that takes its funds only when it triggers
        self.locked = locked
        self.lock_asset = lock_asset


class _Market:
    """Replay state of one symbol: where the path stands and the open orders to match."""

    # funding_rate, fundings, holders and mark_override are used by contract markets only.
    __slots__ = (
        "ask", "ask_amount", "bid", "bid_amount", "book_id", "candles", "count", "forming", "fractions",
        "funding_rate", "fundings", "holders", "idx", "index", "interval", "last", "mark_override", "next_kind",
        "next_t", "offsets", "open_orders", "open_times", "plan", "spec", "step", "steps", "symbol", "trades",
    )  # fmt: skip

    def __init__(self, spec: MarketSpec, candles: Sequence[Candle], steps: int, index: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.candles: list[Candle] = list(candles)
        self.count = len(self.candles)
        self.open_times: list[int] = [c.open_time for c in self.candles]
        self.interval = self.candles[0].interval_ms
        self.steps = steps
        self.offsets = [k * self.interval // steps for k in range(steps)]
        # Share of a candle's volume reached after each step but the last (which is exact).
        self.fractions = [Decimal(k + 1) / steps for k in range(steps - 1)]
        self.index = index  # position among the engine's markets: the tie-break between symbols
        self.idx = 0  # the candle forming, or the next one to open
        self.step = 0  # next step of candle ``idx``; ``steps`` means its close is due
        self.next_t = _NEVER  # time of the next step or close
        self.next_kind = _STEP
        self.forming: Candle | None = None
        # Per step of the forming candle: (time, price, amount traded, forming candle so far).
        self.plan: list[tuple[int, Decimal, Decimal, Candle]] = []
        self.last = self.candles[0].open
        self.bid = self.ask = self.last
        self.bid_amount = self.ask_amount = spec.min_amount
        self.book_id = 0
        self.trades: deque[TradeEvent] = deque(maxlen=_PUBLIC_TRADES_KEPT)
        self.open_orders: dict[int, _Working] = {}

    def schedule(self) -> None:
        """Set ``next_t`` / ``next_kind`` from ``idx`` and ``step``."""
        if self.idx >= self.count:
            self.next_t, self.next_kind = _NEVER, _STEP
        elif self.step < self.steps:
            self.next_t, self.next_kind = self.open_times[self.idx] + self.offsets[self.step], _STEP
        else:
            self.next_t, self.next_kind = self.open_times[self.idx] + self.interval, _CLOSE

    def visible(self) -> int:
        """How many source candles have begun: the closed ones plus the forming one."""
        return self.idx + (1 if self.forming is not None else 0)

    def source(self, i: int) -> Candle:
        """Candle ``i`` as a client may see it now (the forming one with its values so far)."""
        if i == self.idx and self.forming is not None:
            return self.forming
        return self.candles[i]

    def walk(self, candle: Candle) -> tuple[list[Decimal], list[Decimal]]:
        """The price path of ``candle`` and its running volume."""
        n = self.steps
        if candle.close >= candle.open:
            anchors = [candle.open, candle.low, candle.high, candle.close]
        else:
            anchors = [candle.open, candle.high, candle.low, candle.close]
        if n == 4:
            path = anchors
        else:
            # Anchor j sits at step round(j * (n - 1) / 3); n >= 4 keeps the four distinct.
            where = [(j * (n - 1) * 2 + 3) // 6 for j in range(4)]
            path = [anchors[0]] * n
            tick = self.spec.tick_size
            for j in range(3):
                a, b, i0, i1 = anchors[j], anchors[j + 1], where[j], where[j + 1]
                path[i0] = a
                low, high = min(a, b), max(a, b)
                for i in range(i0 + 1, i1):
                    value = a + (b - a) * (i - i0) / (i1 - i0)
                    try:
                        value = value.quantize(tick, rounding=ROUND_HALF_EVEN)
                    except InvalidOperation:
                        pass
                    path[i] = min(max(value, low), high)
            path[n - 1] = anchors[3]
        volume = candle.volume
        cum_volume = [_round_down_8(volume * share) for share in self.fractions]
        cum_volume.append(volume)
        return path, cum_volume

    def prepare(self, candle: Candle) -> None:
        """Make ``candle`` the forming one: plan all its steps at once."""
        o, h, low, c = candle.open, candle.high, candle.low, candle.close
        if self.steps == 4 and low <= o <= h and low <= c <= h and candle.interval_ms == self.interval:
            self.plan = self._plan_four(candle, o, h, low, c)
            return
        n = self.steps
        interval = self.interval
        open_time = candle.open_time
        path, cum_volume = self.walk(candle)
        quote, trades = candle.quote_volume, candle.trades
        plan = []
        high = low = o
        previous = _ZERO
        for k in range(n):
            price = path[k]
            if price > high:
                high = price
            elif price < low:
                low = price
            cum = cum_volume[k]
            if k == n - 1:
                cum_quote, cum_trades = quote, trades
            else:
                cum_quote = _round_down_8(quote * self.fractions[k]) if quote else quote
                cum_trades = trades * (k + 1) // n
            forming = Candle(open_time, interval, o, high, low, price, cum, cum_quote, cum_trades)
            plan.append((open_time + self.offsets[k], price, cum - previous, forming))
            previous = cum
        self.plan = plan

    def _plan_four(
        self, candle: Candle, o: Decimal, h: Decimal, low: Decimal, c: Decimal
    ) -> list[tuple[int, Decimal, Decimal, Candle]]:
        """:meth:`prepare` for the default four steps of a well-formed candle, without loops.

        This runs once per candle of every replay, so it is written out by hand; the running
        high/low follow from the path order and the last step is the source candle itself.
        """
        t0 = candle.open_time
        interval = self.interval
        t1, t2, t3 = (t0 + offset for offset in self.offsets[1:])
        volume, quote, trades = candle.volume, candle.quote_volume, candle.trades
        v1, v2, v3 = (_round_down_8(volume * share) for share in self.fractions)
        if quote:
            q1, q2, q3 = (_round_down_8(quote * share) for share in self.fractions)
        else:
            q1 = q2 = q3 = quote
        n1, n2, n3 = trades // 4, trades // 2, trades * 3 // 4
        if c >= o:  # open -> low -> high -> close
            p1, p2 = low, h
            f0 = Candle(t0, interval, o, o, o, o, v1, q1, n1)
            f1 = Candle(t0, interval, o, o, low, low, v2, q2, n2)
            f2 = Candle(t0, interval, o, h, low, h, v3, q3, n3)
        else:  # open -> high -> low -> close
            p1, p2 = h, low
            f0 = Candle(t0, interval, o, o, o, o, v1, q1, n1)
            f1 = Candle(t0, interval, o, h, o, h, v2, q2, n2)
            f2 = Candle(t0, interval, o, h, low, low, v3, q3, n3)
        return [(t0, o, v1, f0), (t1, p1, v2 - v1, f1), (t2, p2, v3 - v2, f2), (t3, c, volume - v3, candle)]

    def move_book(self, price: Decimal, amount: Decimal, update_id: int) -> None:
        tick = self.spec.tick_size
        self.bid = price - tick if price > tick else _ZERO
        self.ask = price + tick
        self.bid_amount = self.ask_amount = amount if amount > 0 else self.spec.min_amount
        self.book_id = update_id


class Engine(ContractBook):
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
        lockstep: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        if steps_per_candle < 4:
            raise ValueError(
                f"steps_per_candle must be at least 4 (open, low/high, high/low, close), got {steps_per_candle}"
            )
        if history < 0:
            raise ValueError(f"history must not be negative, got {history}")
        margin = Decimal(market_buy_margin)
        if margin < 1:
            raise ValueError(f"market_buy_margin must be at least 1, got {market_buy_margin}")
        self._steps = steps_per_candle
        self._margin = margin
        self._markets: dict[str, _Market] = {}
        for spec, candles in markets:
            self._check_market(spec, candles)
            if spec.symbol in self._markets:
                raise ValueError(f"market {spec.symbol} is given twice")
            self._markets[spec.symbol] = _Market(spec, candles, steps_per_candle, len(self._markets))
        if not self._markets:
            raise ValueError("the engine needs at least one market")
        self._market_list = list(self._markets.values())
        self._clock = clock if clock is not None else EmulatedClock(self.start_time_for(markets, history))
        if lockstep and not self._clock.manual:
            raise ValueError("a lockstep engine needs a manual clock (speed=None): its replay is paced from outside")
        self._lockstep = lockstep
        self._held: int | None = None  # lockstep: the instant the replay waits at
        self._held_for: str | None = None  # why: "close" (a candle closed) or "orders" (orders traded)
        self._order_events = 0  # OrderEvents emitted so far
        self._time = self._clock.now()  # everything up to this instant has been replayed
        for market in self._markets.values():
            self._seek(market, self._time)
        self._accounts: dict[str, _Account] = {}
        for account in accounts:
            self.add_account(account)
        self._subscriptions: dict[int, Subscriber] = {}
        self._subscribers: tuple[Subscriber, ...] = ()
        self._tokens = itertools.count(1)
        self._order_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._advancing = False
        self._init_contracts()

    @staticmethod
    def start_time_for(markets: Sequence[tuple[MarketSpec, Sequence[Candle]]], history: int = 500) -> int:
        """Where a clock should start so that every symbol has ``history`` candles in the past.

        The open time of candle number ``history`` (the latest such time across symbols); a
        symbol with fewer candles contributes the end of its last one.
        """
        starts = []
        for _spec, candles in markets:
            if not candles:
                continue
            if history < len(candles):
                starts.append(candles[history].open_time)
            else:
                starts.append(candles[-1].open_time + candles[-1].interval_ms)
        if not starts:
            raise ValueError("no candles to start from")
        return max(starts)

    @staticmethod
    def _check_market(spec: MarketSpec, candles: Sequence[Candle]) -> None:
        symbol = spec.symbol
        if not candles:
            raise ValueError(f"market {symbol}: no candles")
        for name in ("tick_size", "step_size"):
            if getattr(spec, name) <= 0:
                raise ValueError(f"market {symbol}: {name} must be positive")
        for name in ("maker_fee", "taker_fee"):
            fee = getattr(spec, name)
            if not 0 <= fee < 1:
                raise ValueError(f"market {symbol}: {name} must be in [0, 1), got {fee}")
        if spec.max_fill_per_step is not None and spec.max_fill_per_step <= 0:
            raise ValueError(f"market {symbol}: max_fill_per_step must be positive or None")
        interval = candles[0].interval_ms
        if interval <= 0:
            raise ValueError(f"market {symbol}: candle interval must be positive, got {interval}")
        previous = None
        for i, candle in enumerate(candles):
            if candle.interval_ms != interval:
                raise ValueError(
                    f"market {symbol}: candle {i} has interval {candle.interval_ms} ms, the first has {interval} ms"
                )
            if previous is not None and candle.open_time < previous + interval:
                raise ValueError(
                    f"market {symbol}: candle {i} opens at {candle.open_time}, before the previous one "
                    f"(opened {previous}) has ended"
                )
            previous = candle.open_time

    def _seek(self, m: _Market, t: int) -> None:
        """Put ``m`` where the replay stands at ``t`` without emitting anything."""
        i = bisect.bisect_right(m.open_times, t) - 1
        if i < 0:
            m.idx, m.step, m.forming = 0, 0, None
            m.last = m.candles[0].open
        else:
            candle = m.candles[i]
            if t >= candle.open_time + m.interval:
                m.idx, m.step, m.forming = i + 1, 0, None
                m.last = candle.close
            else:
                m.idx = i
                m.prepare(candle)
                k = bisect.bisect_right(m.offsets, t - candle.open_time)
                m.step = k
                _, m.last, _, m.forming = m.plan[k - 1]
        m.schedule()
        self._seed_trades(m)

    def _seed_trades(self, m: _Market) -> None:
        """Fill the recent public trades with the path of the candles just before the start."""
        n = m.steps
        first = max(0, m.idx - _PUBLIC_TRADES_KEPT // n)
        previous_price = m.candles[first].open
        last_amount = m.spec.min_amount
        for i in range(first, m.visible()):
            candle = m.candles[i]
            path, cum_volume = m.walk(candle)
            count = m.step if i == m.idx else n
            previous_cum = _ZERO
            for k in range(count):
                price = path[k]
                last_amount = cum_volume[k] - previous_cum
                previous_cum = cum_volume[k]
                m.trades.append(
                    TradeEvent(
                        m.symbol,
                        i * n + k + 1,
                        price,
                        last_amount,
                        price < previous_price,
                        candle.open_time + m.offsets[k],
                    )
                )
                previous_price = price
        update_id = m.trades[-1].trade_id if m.trades else 0
        m.move_book(m.last, last_amount, update_id)

    # --- subscription ---------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns a function that unsubscribes."""
        with self._lock:
            token = next(self._tokens)
            self._subscriptions[token] = callback
            self._subscribers = tuple(self._subscriptions.values())

        def unsubscribe() -> None:
            with self._lock:
                if self._subscriptions.pop(token, None) is not None:
                    self._subscribers = tuple(self._subscriptions.values())

        return unsubscribe

    def _emit(self, event: EngineEvent) -> None:
        if type(event) is OrderEvent:
            self._order_events += 1  # lockstep: a step that moved an order holds the replay
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                # A broken consumer (one dialect, one test helper) must not stop the market.
                logger.exception("emulator subscriber %r failed on %s", callback, type(event).__name__)

    def _emit_all(self, events: tuple[EngineEvent, ...]) -> None:
        for event in events:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    logger.exception("emulator subscriber %r failed on %s", callback, type(event).__name__)

    # --- time -------------------------------------------------------------------------------

    @property
    def clock(self) -> EmulatedClock:
        return self._clock

    def now(self) -> int:
        """Emulated epoch ms (the market clock; fault-injected skew is applied by dialects)."""
        return self._clock.now()

    def advance_to(self, time_ms: int) -> None:
        """Process every path step and candle close up to ``time_ms``, emitting events in order.

        A lockstep engine stops at the first candle close on the way (and stays there until
        :meth:`release`): the clock then stands at that close, not at ``time_ms``."""
        with self._lock:
            if self._advancing:
                return  # called back from a subscriber: the outer call carries on
            if self._held is not None:
                return  # lockstep: the next candle waits for the client
            if self._clock.manual and time_ms > self._clock.now() and not self._lockstep:
                self._clock.set(time_ms)
            if time_ms <= self._time:
                return
            self._advancing = True
            try:
                # Funding settles between the events of its instant and whatever comes after.
                while self._contract_markets and self._next_funding <= time_ms:
                    funding = self._next_funding
                    self._replay(funding)
                    if self._time < funding:
                        return  # lockstep holds before the funding time
                    self._next_funding = funding + FUNDING_INTERVAL_MS
                    self._settle_funding(funding)
                    if self._held is not None:
                        # Lockstep, held at the close at the funding time: what the client sends
                        # while held comes after that instant, so after its funding, as on an
                        # exchange an order sent once the candle closed fills after the funding.
                        return
                self._replay(time_ms)
            finally:
                self._advancing = False

    def _replay(self, time_ms: int) -> None:
        if time_ms <= self._time:
            return
        if self._lockstep:
            self._replay_lockstep(time_ms)
        else:
            self._replay_until(time_ms)

    @property
    def lockstep(self) -> bool:
        return self._lockstep

    @property
    def held_at(self) -> int | None:
        """Lockstep: the instant (epoch ms) the replay waits at, or None while it runs: a candle
        close, or a step of a candle at which orders traded (see :attr:`held_for`)."""
        with self._lock:
            return self._held

    @property
    def held_for(self) -> str | None:
        """Lockstep: why the replay waits: ``"close"`` (candles closed at :attr:`held_at`),
        ``"orders"`` (a path step filled, triggered or expired orders), or None while it runs."""
        with self._lock:
            return self._held_for if self._held is not None else None

    def release(self, time_ms: int | None = None) -> bool:
        """Lockstep: let the replay go on past the close it waits at. ``time_ms`` is the close
        the client has acted on; an acknowledgement of an earlier close (a late duplicate) does
        not release a later one. Returns whether the replay was released."""
        with self._lock:
            if self._held is None or (time_ms is not None and time_ms < self._held):
                return False
            self._held = self._held_for = None
            return True

    def _move_clock(self, t: int) -> None:
        if t > self._clock.now():
            self._clock.set(t)

    def _replay_lockstep(self, time_ms: int) -> None:
        """:meth:`_replay_until` that stops after the instant at which candles close: their closes
        and the opening step of the candles that open then."""
        markets = self._market_list
        closed_at: int | None = None
        while True:
            t, kind, index = min((m.next_t, m.next_kind, m.index) for m in markets)
            if t > time_ms:
                break
            if closed_at is not None and t > closed_at:
                # Every event of that instant is out: the closes and the opening price of each
                # candle that opens there, as a manual clock stepped to the close shows it (an
                # order placed now meets the next candle's open, where backtrader fills it).
                break
            m = markets[index]
            self._time = t
            self._move_clock(t)
            if kind == _STEP:
                before = self._order_events
                self._step(m)
                if self._order_events != before and closed_at is None:
                    # Orders traded on the way: the client reacts (cancels a sibling, sends a
                    # bracket's exits) before the price moves on, as it would in real time,
                    # where a candle lasts far longer than a round trip.
                    self._held, self._held_for = t, "orders"
                    return
            else:
                self._close(m)
                closed_at = t
        if closed_at is not None:
            self._held, self._held_for = closed_at, "close"
            return
        self._time = time_ms
        self._move_clock(time_ms)

    def _replay_until(self, time_ms: int) -> None:
        markets = self._market_list
        if len(markets) == 1:
            m = markets[0]
            while m.next_t <= time_ms:
                self._time = m.next_t
                if m.next_kind == _STEP:
                    self._step(m)
                else:
                    self._close(m)
        else:
            heap = [(m.next_t, m.next_kind, m.index) for m in markets if m.next_t <= time_ms]
            heapq.heapify(heap)
            while heap:
                t, _, index = heap[0]
                m = markets[index]
                self._time = t
                if m.next_kind == _STEP:
                    self._step(m)
                else:
                    self._close(m)
                if m.next_t <= time_ms:
                    heapq.heapreplace(heap, (m.next_t, m.next_kind, index))
                else:
                    heapq.heappop(heap)
        self._time = time_ms

    def _step(self, m: _Market) -> None:
        k = m.step
        if k == 0:
            m.prepare(m.candles[m.idx])
        t, price, amount, forming = m.plan[k]
        symbol = m.symbol
        previous = m.last
        m.last = price
        m.forming = forming
        update_id = m.idx * m.steps + k + 1
        trade = TradeEvent(symbol, update_id, price, amount, price < previous, t)
        m.trades.append(trade)
        # The one-level book hugs the last price (inlined: this runs for every step).
        tick = m.spec.tick_size
        bid = m.bid = price - tick if price > tick else _ZERO
        ask = m.ask = price + tick
        book_amount = m.bid_amount = m.ask_amount = amount if amount else m.spec.min_amount
        m.book_id = update_id
        k += 1
        m.step = k
        if k < m.steps:
            m.next_t = m.open_times[m.idx] + m.offsets[k]
        else:
            m.next_t, m.next_kind = m.open_times[m.idx] + m.interval, _CLOSE
        if self._subscribers:
            self._emit_all(
                (
                    trade,
                    BookEvent(symbol, update_id, bid, book_amount, ask, book_amount, t),
                    KlineEvent(symbol, forming, False, t),
                )
            )
        if m.open_orders:
            # Within a candle the price moves continuously from step to step, so a stop it
            # crosses is reached at its own price; a candle's first step may gap from the close.
            self._match(m, price, t, gap=k == 1)
        if m.spec.contract:
            self._contract_step(m, t)

    def _close(self, m: _Market) -> None:
        candle = m.candles[m.idx]
        t = m.next_t
        m.forming = None
        m.idx += 1
        m.step = 0
        m.schedule()
        if self._subscribers:
            self._emit(KlineEvent(m.symbol, candle, True, t))

    def _sync(self) -> None:
        """Catch the replay up with the clock before serving a request."""
        if not self._advancing:
            now = self._clock.now()
            if now > self._time:
                self.advance_to(now)

    def next_close(self) -> int | None:
        """When the next candle closes (any symbol; the one forming, else the next after a
        hole), or None once every market has used up its candles."""
        with self._lock:
            closes = [m.open_times[m.idx] + m.interval for m in self._market_list if m.idx < m.count]
            return min(closes) if closes else None

    def step_candles(self, count: int = 1) -> None:
        """Advance a manual clock candle by candle: each step goes to the next candle close, so
        it closes exactly one candle (of each symbol closing then) even across a hole in the
        data. Past the last candle a step is the shortest interval. Releases a lockstep hold."""
        with self._lock:
            if count < 0:
                raise ValueError(f"count must not be negative, got {count}")
            if not self._clock.manual:
                raise RuntimeError("step_candles() needs a manual clock (speed=None)")
            shortest = min(m.interval for m in self._markets.values())
            for _ in range(count):
                self.release()
                target = self.next_close()
                if target is None or target <= self._time:
                    target = max(self._time, self._clock.now()) + shortest  # the market stands still
                self.advance_to(target)

    # --- market data ------------------------------------------------------------------------

    @property
    def markets(self) -> dict[str, MarketSpec]:
        with self._lock:
            return {symbol: m.spec for symbol, m in self._markets.items()}

    def _market(self, symbol: str) -> _Market:
        m = self._markets.get(symbol)
        if m is None:
            raise _reject(RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        return m

    def market(self, symbol: str) -> MarketSpec:
        """The spec of ``symbol``; raises EngineError(UNKNOWN_SYMBOL)."""
        with self._lock:
            return self._market(symbol).spec

    def interval_ms(self, symbol: str) -> int:
        with self._lock:
            return self._market(symbol).interval

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
        with self._lock:
            self._sync()
            m = self._market(symbol)
            source = m.interval
            if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms <= 0:
                raise _reject(
                    RejectReason.INVALID_PARAMETER, f"interval must be a positive number of ms, got {interval_ms!r}"
                )
            if interval_ms % source:
                raise _reject(
                    RejectReason.INVALID_PARAMETER,
                    f"interval {interval_ms} ms of {symbol} is not a whole multiple of its source interval {source} ms",
                )
            if limit < 1:
                raise _reject(RejectReason.INVALID_PARAMETER, f"limit must be at least 1, got {limit}")
            if start is not None and end is not None and end < start:
                return []
            if interval_ms == source:
                return self._source_candles(m, start, end, limit)
            return self._aggregated_candles(m, interval_ms, start, end, limit)

    @staticmethod
    def _source_candles(m: _Market, start: int | None, end: int | None, limit: int) -> list[Candle]:
        hi = m.visible()
        if end is not None:
            hi = min(hi, bisect.bisect_right(m.open_times, end))
        if start is None:
            lo = max(0, hi - limit)
        else:
            lo = bisect.bisect_left(m.open_times, start)
            hi = min(hi, lo + limit)
        rows = m.candles[lo:hi]
        if rows and m.forming is not None and hi - 1 == m.idx:
            rows[-1] = m.forming
        return rows

    @staticmethod
    def _aggregated_candles(m: _Market, interval: int, start: int | None, end: int | None, limit: int) -> list[Candle]:
        ots = m.open_times
        hi = m.visible()
        if end is not None:
            # Every source candle of the bucket holding ``end`` belongs to it.
            hi = min(hi, bisect.bisect_left(ots, end - end % interval + interval))
        groups: list[tuple[int, list[Candle]]] = []
        if start is None:
            i = hi - 1
            while i >= 0:
                bucket = ots[i] - ots[i] % interval
                if len(groups) == limit and bucket != groups[-1][0]:
                    break
                if groups and groups[-1][0] == bucket:
                    groups[-1][1].append(m.source(i))
                else:
                    groups.append((bucket, [m.source(i)]))
                i -= 1
            groups.reverse()
            return [_aggregate(bucket, interval, rows[::-1]) for bucket, rows in groups]
        first_bucket = -(-start // interval) * interval
        i = bisect.bisect_left(ots, first_bucket)
        while i < hi:
            bucket = ots[i] - ots[i] % interval
            if groups and groups[-1][0] == bucket:
                groups[-1][1].append(m.source(i))
            elif len(groups) == limit:
                break
            else:
                groups.append((bucket, [m.source(i)]))
            i += 1
        return [_aggregate(bucket, interval, rows) for bucket, rows in groups]

    def last_price(self, symbol: str) -> Decimal:
        with self._lock:
            self._sync()
            return self._market(symbol).last

    def book(self, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """``(bid, bid_amount, ask, ask_amount)`` now."""
        with self._lock:
            self._sync()
            m = self._market(symbol)
            return m.bid, m.bid_amount, m.ask, m.ask_amount

    def ticker_24h(self, symbol: str) -> dict[str, Decimal]:
        """open, high, low, last, volume, quote_volume over the last 24 emulated hours.

        Built from the source candles that opened within the window (the forming one with its
        values so far), so the window moves in steps of the source interval.
        """
        with self._lock:
            self._sync()
            m = self._market(symbol)
            hi = m.visible()
            lo = bisect.bisect_right(m.open_times, self._time - _DAY_MS, 0, hi)
            last = m.last
            if lo >= hi:
                return {"open": last, "high": last, "low": last, "last": last, "volume": _ZERO, "quote_volume": _ZERO}
            rows = [m.source(i) for i in range(lo, hi)]
            return {
                "open": rows[0].open,
                "high": max(max(row.high for row in rows), last),
                "low": min(min(row.low for row in rows), last),
                "last": last,
                "volume": sum((row.volume for row in rows), _ZERO),
                "quote_volume": sum((row.quote_volume for row in rows), _ZERO),
            }

    def public_trades(self, symbol: str, limit: int = 500) -> list:
        """Recent TradeEvents, oldest first."""
        with self._lock:
            self._sync()
            trades = self._market(symbol).trades
            if limit < 1:
                return []
            if limit >= len(trades):
                return list(trades)
            return list(itertools.islice(trades, len(trades) - limit, None))

    # --- accounts -----------------------------------------------------------------------------

    def _account(self, api_key: str) -> _Account:
        account = self._accounts.get(api_key)
        if account is None:
            shown = api_key[:4] + "..." if isinstance(api_key, str) and len(api_key) > 4 else api_key
            raise _reject(RejectReason.INVALID_PARAMETER, f"unknown API key {shown!r}")
        return account

    def add_account(self, account: AccountConfig) -> None:
        with self._lock:
            if account.api_key in self._accounts:
                raise ValueError(f"an account with API key {account.api_key[:4]}... already exists")
            self._accounts[account.api_key] = _Account(account)

    def rotate_key(self, api_key: str, new_key: str, new_secret: str) -> None:
        """The account of ``api_key`` goes on under ``new_key`` (a rotated key): the old key stops
        working; balances, orders and fills stay the account's."""
        with self._lock:
            account = self._account(api_key)
            if new_key in self._accounts:
                raise ValueError(f"an account with API key {new_key[:4]}... already exists")
            del self._accounts[api_key]
            account.api_key, account.secret = new_key, new_secret
            self._accounts[new_key] = account

    def secret_for(self, api_key: str) -> str | None:
        """The HMAC secret of ``api_key``, or None for an unknown key."""
        with self._lock:
            account = self._accounts.get(api_key)
            return account.secret if account is not None else None

    def balances(self, api_key: str) -> list[Balance]:
        with self._lock:
            self._sync()
            account = self._account(api_key)
            return [Balance(asset, bal.free, bal.locked) for asset, bal in sorted(account.balances.items())]

    def set_balance(self, api_key: str, asset: str, free: Decimal) -> None:
        """Test helper: set an asset's free balance (emits a BalanceEvent)."""
        with self._lock:
            account = self._account(api_key)
            value = _decimal(free, f"balance of {asset}")
            if value < 0:
                raise _reject(RejectReason.INVALID_PARAMETER, f"balance of {asset} must not be negative, got {value}")
            account.balance(asset).free = value
            self._emit(BalanceEvent(account.api_key, account.snapshot((asset,)), self._time))

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
        trigger_above: bool | None = None,
        lock_on_trigger: bool = False,
        reduce_only: bool = False,
    ) -> Order:
        """Validate, accept and immediately match an order; returns its snapshot after matching.

        Raises EngineError on any rejection, before anything changed. A missing
        ``client_order_id`` gets a generated one. A client id already used by an *open* order of
        the account is DUPLICATE_CLIENT_ORDER_ID. A stop triggers when the price rises to
        ``stop_price`` if ``trigger_above`` (default: buys) and when it falls to it otherwise
        (default: sells). ``lock_on_trigger``: a stop takes no funds until it triggers, and is
        cancelled then if the account cannot cover it (Bybit's conditional orders).
        ``reduce_only`` applies to contract markets (see :mod:`.contracts`), whose orders take
        margin instead of funds and whose stops always wait for their trigger to take it.
        """
        with self._lock:
            self._sync()
            account = self._account(api_key)
            m = self._market(symbol)
            checked = self._check_order(
                account, m, side, type, amount, price, stop_price, time_in_force, client_order_id, trigger_above
            )
            if m.spec.contract:
                return self._place_contract(account, m, checked, bool(reduce_only))
            if reduce_only:
                raise _reject(RejectReason.INVALID_PARAMETER, f"{symbol} is spot: reduce-only is for contracts")
            side, order_type, tif, amount, price, stop_price, client_order_id, above = checked
            lock_on_trigger = lock_on_trigger and order_type in _STOP_TYPES
            lock_asset, need = self._need(m, side, amount, price, stop_price)
            if lock_on_trigger:
                need = _ZERO
            else:
                self._check_funds(account, lock_asset, need)
            # Accepted: from here on nothing raises.
            working = self._accept(account, m, side, order_type, tif, amount, price, stop_price, client_order_id,
                                   above, lock_asset, need)  # fmt: skip
            working.lock_on_trigger = lock_on_trigger
            self._emit(OrderEvent(working.order, ExecutionType.NEW, None, self._time))
            if need:
                self._emit(BalanceEvent(account.api_key, account.snapshot((lock_asset,)), self._time))
            if order_type is OrderType.MARKET:
                self._take(working, m.last, self._time)
            elif order_type is OrderType.LIMIT:
                self._arrive_as_limit(working, m.last, self._time)
            return working.order

    def place_oco(
        self,
        api_key: str,
        symbol: str,
        side: Side,
        amount: Decimal,
        *,
        limit_price: Decimal,
        stop_price: Decimal,
        stop_limit_price: Decimal | None = None,
        limit_client_order_id: str | None = None,
        stop_client_order_id: str | None = None,
    ) -> tuple[Order, Order]:
        """An OCO pair for one amount: a limit order that must rest (sell above the last price,
        buy below it) and a stop on the other side (a stop-limit when ``stop_limit_price``).

        The pair locks the funds once, behind the limit order. When the limit order trades
        (even partly) the stop expires; when the stop triggers the limit order expires first
        and the stop takes the funds. Cancelling either cancels both. Returns ``(limit, stop)``.
        """
        with self._lock:
            self._sync()
            account = self._account(api_key)
            m = self._market(symbol)
            if m.spec.contract:
                raise _reject(RejectReason.INVALID_PARAMETER, f"{symbol} is a contract market: OCO pairs are for spot")
            stop_type = OrderType.STOP_MARKET if stop_limit_price is None else OrderType.STOP_LIMIT
            limit = self._check_order(account, m, side, OrderType.LIMIT, amount, limit_price, None, TimeInForce.GTC,
                                      limit_client_order_id, None)  # fmt: skip
            stop = self._check_order(account, m, side, stop_type, amount, stop_limit_price, stop_price,
                                     TimeInForce.GTC, stop_client_order_id, None)  # fmt: skip
            side, amount = limit[0], limit[3]
            if limit[6] is not None and limit[6] == stop[6]:
                raise _reject(
                    RejectReason.DUPLICATE_CLIENT_ORDER_ID, "the two orders of an OCO need different client order ids"
                )
            lp, sp = limit[4], stop[5]
            assert lp is not None and sp is not None
            if (side is Side.SELL and not lp > m.last > sp) or (side is Side.BUY and not lp < m.last < sp):
                rule = "limit price > last price > stop price" if side is Side.SELL else (
                    "limit price < last price < stop price")  # fmt: skip
                raise _reject(RejectReason.INVALID_PARAMETER,
                              f"the relationship of the prices for the orders is not correct: a {side.value} OCO needs "
                              f"{rule} (limit {lp}, last {m.last}, stop {sp})")  # fmt: skip
            lock_asset, need = self._need(m, side, amount, lp, None)
            if side is Side.BUY:
                need = max(need, self._need(m, side, amount, stop[4], sp)[1])
            self._check_funds(account, lock_asset, need)
            list_id = next(self._list_ids)
            t = self._time
            legs = []
            for args, locked in ((limit, need), (stop, _ZERO)):
                working = self._accept(account, m, *args[:7], args[7], lock_asset, locked, list_id=list_id)
                legs.append(working)
            first, second = legs
            first.partner, second.partner = second, first
            second.lock_on_trigger = True
            for working in legs:
                self._emit(OrderEvent(working.order, ExecutionType.NEW, None, t))
            self._emit(BalanceEvent(account.api_key, account.snapshot((lock_asset,)), t))
            return first.order, second.order

    def _check_order(
        self,
        account: _Account,
        m: _Market,
        side: Any,
        type: Any,
        amount: Any,
        price: Any,
        stop_price: Any,
        time_in_force: Any,
        client_order_id: str | None,
        trigger_above: bool | None,
    ) -> tuple[Side, OrderType, TimeInForce, Decimal, Decimal | None, Decimal | None, str | None, bool]:
        """Every check of an order but its funds; its normalised fields (last: trigger direction)."""
        spec = m.spec
        invalid = RejectReason.INVALID_PARAMETER
        side = _enum(Side, side, "side")
        order_type = _enum(OrderType, type, "type")
        tif = _enum(TimeInForce, time_in_force, "time_in_force")
        amount = _decimal(amount, "amount")
        if amount <= 0:
            raise _reject(invalid, f"amount must be positive, got {amount}")
        if order_type in _PRICED_TYPES:
            if price is None:
                raise _reject(invalid, f"a {order_type.value} order needs a price")
            price = _decimal(price, "price")
            if price <= 0:
                raise _reject(invalid, f"price must be positive, got {price}")
        else:
            price = None
        if order_type in _STOP_TYPES:
            if stop_price is None:
                raise _reject(invalid, f"a {order_type.value} order needs a stop price")
            stop_price = _decimal(stop_price, "stop price")
            if stop_price <= 0:
                raise _reject(invalid, f"stop price must be positive, got {stop_price}")
        else:
            stop_price = None
        if client_order_id == "":
            client_order_id = None
        if client_order_id is not None and (
            not isinstance(client_order_id, str) or not _CLIENT_ID_RE.fullmatch(client_order_id)
        ):
            raise _reject(
                invalid,
                f"client order id {client_order_id!r} must be 1 to 36 characters of letters, digits and ._:/-",
            )

        tick = spec.tick_size
        if price is not None and not _is_multiple(price, tick):
            raise _reject(RejectReason.PRICE_PRECISION, f"price {price} is not a multiple of the tick size {tick}")
        if stop_price is not None and not _is_multiple(stop_price, tick):
            raise _reject(
                RejectReason.PRICE_PRECISION, f"stop price {stop_price} is not a multiple of the tick size {tick}"
            )
        if not _is_multiple(amount, spec.step_size):
            raise _reject(
                RejectReason.AMOUNT_PRECISION,
                f"amount {amount} is not a multiple of the step size {spec.step_size}",
            )
        if amount < spec.min_amount:
            raise _reject(RejectReason.MIN_AMOUNT, f"amount {amount} is below the minimum {spec.min_amount}")
        if amount > spec.max_amount:
            raise _reject(RejectReason.MAX_AMOUNT, f"amount {amount} is above the maximum {spec.max_amount}")
        reference = price if price is not None else stop_price if stop_price is not None else m.last
        notional = amount * reference
        if notional < spec.min_notional:
            raise _reject(
                RejectReason.MIN_NOTIONAL,
                f"order value {notional} {spec.quote} is below the minimum {spec.min_notional} {spec.quote}",
            )
        above = side is Side.BUY if trigger_above is None else bool(trigger_above)
        if stop_price is not None:
            crossed = m.last >= stop_price if above else m.last <= stop_price
            if crossed:
                raise _reject(
                    RejectReason.WOULD_TRIGGER_IMMEDIATELY,
                    f"stop price {stop_price} is already crossed by the last price {m.last}",
                )
        if client_order_id is not None and client_order_id in account.open_by_client:
            raise _reject(
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                f"client order id {client_order_id!r} is already used by an open order",
            )
        return side, order_type, tif, amount, price, stop_price, client_order_id, above

    def _need(
        self, m: _Market, side: Side, amount: Decimal, price: Decimal | None, stop_price: Decimal | None
    ) -> tuple[str, Decimal]:
        """The asset and amount an order locks (see the module docstring)."""
        if side is Side.SELL:
            return m.spec.base, amount
        if price is not None:
            return m.spec.quote, amount * price
        if stop_price is not None:
            return m.spec.quote, amount * max(m.last, stop_price) * self._margin
        return m.spec.quote, amount * m.last * self._margin

    @staticmethod
    def _check_funds(account: _Account, asset: str, need: Decimal) -> None:
        held = account.balances.get(asset)
        free = held.free if held is not None else _ZERO
        if free < need:
            raise _reject(
                RejectReason.INSUFFICIENT_BALANCE,
                f"the order needs {need} {asset}, the account has {free} {asset} free",
            )

    def _accept(
        self,
        account: _Account,
        m: _Market,
        side: Side,
        order_type: OrderType,
        tif: TimeInForce,
        amount: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        client_order_id: str | None,
        above: bool,
        lock_asset: str,
        need: Decimal,
        *,
        list_id: int | None = None,
    ) -> _Working:
        """Book a checked order: lock ``need``, list it as open (no event emitted)."""
        order_id = next(self._order_ids)
        if client_order_id is None:
            client_order_id = f"emu-{order_id}"
            while client_order_id in account.open_by_client:
                client_order_id += "x"
        now = self._time
        order = Order(
            order_id=order_id,
            client_order_id=client_order_id,
            account=account.api_key,
            symbol=m.symbol,
            side=side,
            type=order_type,
            time_in_force=tif,
            amount=amount,
            price=price,
            stop_price=stop_price,
            status=OrderStatus.NEW,
            created_time=now,
            updated_time=now,
            trigger_above=above if stop_price is not None else None,
            list_id=list_id,
        )
        if need:
            bal = account.balance(lock_asset)
            bal.free -= need
            bal.locked += need
        working = _Working(order, account, m, need, lock_asset)
        account.orders[order_id] = working
        account.open_by_client[client_order_id] = order_id
        account.latest_by_client[client_order_id] = order_id
        m.open_orders[order_id] = working
        return working

    @staticmethod
    def _marketable(order: Order, price: Decimal) -> bool:
        assert order.price is not None
        return order.price >= price if order.side is Side.BUY else order.price <= price

    def _arrive_as_limit(self, working: _Working, last: Decimal, t: int) -> None:
        """A limit order meets the market: take at ``last`` if it can, else rest or expire."""
        if self._marketable(working.order, last):
            self._take(working, last, t)
        elif working.order.time_in_force is not TimeInForce.GTC:
            self._finish(working, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)

    def _take(self, working: _Working, price: Decimal, t: int) -> None:
        """Fill the whole remainder as taker at ``price`` (expire if funds fall short)."""
        if not self._fill(working, working.order.remaining, price, False, t):
            self._finish(working, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)

    def _match(self, m: _Market, price: Decimal, t: int, *, gap: bool = False) -> None:
        """Match the symbol's open orders against a path step at ``price``; ``gap``: the step
        jumped there (a candle's open) rather than moving through the prices in between."""
        cap = m.spec.max_fill_per_step
        for working in list(m.open_orders.values()):
            order = working.order
            if not order.status.is_open:
                continue  # closed meanwhile by a subscriber calling back into the engine
            if order.type in _STOP_TYPES and not order.triggered:
                assert order.stop_price is not None
                hit = price >= order.stop_price if order.trigger_above else price <= order.stop_price
                if hit:
                    self._trigger(working, price if gap else order.stop_price, t)
                continue
            assert order.price is not None
            reached = price <= order.price if order.side is Side.BUY else price >= order.price
            if reached:
                amount = order.remaining
                if cap is not None and amount > cap:
                    amount = cap
                self._fill(working, amount, order.price, True, t)

    def _trigger(self, working: _Working, price: Decimal, t: int) -> None:
        partner = working.partner
        if partner is not None and partner.order.status.is_open:
            self._finish(partner, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)  # releases the pair's funds
        if working.lock_on_trigger and working.market.spec.contract:
            if not self._contract_trigger_lock(working, price, t):
                return
        elif working.lock_on_trigger:
            order = working.order
            asset, need = self._need(working.market, order.side, order.remaining, order.price, price)
            held = working.account.balance(asset)
            if held.free < need:
                # Bybit: "if the margin is insufficient after the conditional order is triggered,
                # the order will be cancelled".
                self._finish(working, OrderStatus.CANCELED, ExecutionType.CANCELED, t)
                return
            held.free -= need
            held.locked += need
            working.locked, working.lock_asset = need, asset
            working.lock_on_trigger = False
            self._emit(BalanceEvent(working.account.api_key, working.account.snapshot((asset,)), t))
        working.order = replace(working.order, triggered=True, updated_time=t)
        self._emit(OrderEvent(working.order, ExecutionType.TRIGGERED, None, t))
        if working.order.type is OrderType.STOP_MARKET:
            self._take(working, price, t)
        else:
            self._arrive_as_limit(working, price, t)

    def _fill(self, working: _Working, amount: Decimal, price: Decimal, maker: bool, t: int) -> bool:
        """Execute ``amount`` of the order at ``price``; False (and nothing done) if unaffordable."""
        if working.market.spec.contract:
            return self._fill_contract(working, amount, price, maker, t)
        order = working.order
        account = working.account
        spec = working.market.spec
        cost = amount * price
        rate = spec.maker_fee if maker else spec.taker_fee
        quote_bal = account.balance(spec.quote)
        base_bal = account.balance(spec.base)
        if order.side is Side.BUY:
            if cost > working.locked:
                shortfall = cost - working.locked
                if quote_bal.free < shortfall:
                    return False
                quote_bal.free -= shortfall
                quote_bal.locked += shortfall
                working.locked += shortfall
            fee = _round_down_8(amount * rate)
            fee_asset = spec.base
            quote_bal.locked -= cost
            working.locked -= cost
            base_bal.free += amount - fee
        else:
            fee = _round_down_8(cost * rate)
            fee_asset = spec.quote
            base_bal.locked -= amount
            working.locked -= amount
            quote_bal.free += cost - fee
        filled = order.filled + amount
        done = filled >= order.amount
        if done and working.locked:
            # What a buy locked beyond its cost (better price, market margin) goes back.
            held = account.balance(working.lock_asset)
            held.locked -= working.locked
            held.free += working.locked
            working.locked = _ZERO
        fill = Fill(
            trade_id=next(self._trade_ids),
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            amount=amount,
            quote_amount=cost,
            fee=fee,
            fee_asset=fee_asset,
            is_maker=maker,
            time=t,
        )
        working.order = replace(
            order,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            filled=filled,
            cost=order.cost + cost,
            fee=order.fee + fee,
            fee_asset=fee_asset,
            updated_time=t,
            fills=(*order.fills, fill),
        )
        account.fills.append(fill)
        if done:
            self._unlist(working)
        self._emit(OrderEvent(working.order, ExecutionType.TRADE, fill, t))
        self._emit(BalanceEvent(account.api_key, account.snapshot((spec.base, spec.quote)), t))
        partner = working.partner
        if partner is not None and partner.order.status.is_open:
            self._finish(partner, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)  # one of an OCO pair traded
        return True

    def _finish(self, working: _Working, status: OrderStatus, execution: ExecutionType, t: int) -> None:
        """Close an open order without a fill (cancel, expiry), releasing what it still holds."""
        account = working.account
        released = working.locked
        if released:
            held = account.balance(working.lock_asset)
            held.locked -= released
            held.free += released
            working.locked = _ZERO
        working.order = replace(working.order, status=status, updated_time=t)
        self._unlist(working)
        self._emit(OrderEvent(working.order, execution, None, t))
        if released:
            self._emit(BalanceEvent(account.api_key, account.snapshot((working.lock_asset,)), t))

    @staticmethod
    def _unlist(working: _Working) -> None:
        order = working.order
        working.market.open_orders.pop(order.order_id, None)
        open_by_client = working.account.open_by_client
        if open_by_client.get(order.client_order_id) == order.order_id:
            del open_by_client[order.client_order_id]

    def _find(self, account: _Account, order_id: int | None, client_order_id: str | None) -> _Working:
        if order_id is None and not client_order_id:
            raise _reject(RejectReason.INVALID_PARAMETER, "an order id or a client order id is required")
        if order_id is not None:
            try:
                key = int(order_id)
            except (TypeError, ValueError):
                raise _reject(
                    RejectReason.INVALID_PARAMETER, f"order id must be an integer, got {order_id!r}"
                ) from None
            working = account.orders.get(key)
            if working is None or (client_order_id and working.order.client_order_id != client_order_id):
                raise _reject(RejectReason.ORDER_NOT_FOUND, f"order {order_id} does not exist")
            return working
        assert client_order_id is not None
        key = account.open_by_client.get(client_order_id) or account.latest_by_client.get(client_order_id)
        if key is None:
            raise _reject(RejectReason.ORDER_NOT_FOUND, f"no order with client order id {client_order_id!r}")
        return account.orders[key]

    def cancel_order(
        self, api_key: str, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order; raises ORDER_NOT_FOUND or ORDER_NOT_CANCELABLE."""
        with self._lock:
            self._sync()
            account = self._account(api_key)
            self._market(symbol)
            working = self._find(account, order_id, client_order_id)
            if working.order.symbol != symbol:
                raise _reject(
                    RejectReason.ORDER_NOT_FOUND, f"order {working.order.order_id} is not an order of {symbol}"
                )
            if not working.order.status.is_open:
                raise _reject(
                    RejectReason.ORDER_NOT_CANCELABLE,
                    f"order {working.order.order_id} is {working.order.status.value} and cannot be canceled",
                )
            self._finish(working, OrderStatus.CANCELED, ExecutionType.CANCELED, self._time)
            partner = working.partner
            if partner is not None and partner.order.status.is_open:
                self._finish(partner, OrderStatus.CANCELED, ExecutionType.CANCELED, self._time)  # the whole pair
            return working.order

    def get_order(
        self,
        api_key: str,
        symbol: str | None = None,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        """Any order of the account, open or closed; raises ORDER_NOT_FOUND."""
        with self._lock:
            self._sync()
            account = self._account(api_key)
            if symbol is not None:
                self._market(symbol)
            working = self._find(account, order_id, client_order_id)
            if symbol is not None and working.order.symbol != symbol:
                raise _reject(
                    RejectReason.ORDER_NOT_FOUND, f"order {working.order.order_id} is not an order of {symbol}"
                )
            return working.order

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        with self._lock:
            self._sync()
            account = self._account(api_key)
            if symbol is not None:
                self._market(symbol)
            return [
                w.order
                for w in account.orders.values()
                if w.order.status.is_open and (symbol is None or w.order.symbol == symbol)
            ]

    @staticmethod
    def _window(items: list, start: int | None, limit: int) -> list:
        if limit < 1:
            raise _reject(RejectReason.INVALID_PARAMETER, f"limit must be at least 1, got {limit}")
        return items[:limit] if start is not None else items[-limit:]

    def all_orders(
        self,
        api_key: str,
        symbol: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 500,
    ) -> list[Order]:
        """Every order of the account, oldest first."""
        with self._lock:
            self._sync()
            account = self._account(api_key)
            if symbol is not None:
                self._market(symbol)
            orders = [
                w.order
                for w in account.orders.values()
                if (symbol is None or w.order.symbol == symbol)
                and (start is None or w.order.created_time >= start)
                and (end is None or w.order.created_time <= end)
            ]
            return self._window(orders, start, limit)

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
        with self._lock:
            self._sync()
            account = self._account(api_key)
            if symbol is not None:
                self._market(symbol)
            wanted = int(order_id) if order_id is not None else None
            fills = [
                f
                for f in account.fills
                if (symbol is None or f.symbol == symbol)
                and (wanted is None or f.order_id == wanted)
                and (start is None or f.time >= start)
                and (end is None or f.time <= end)
            ]
            return self._window(fills, start, limit)
