"""One strategy, three modes: run it as a backtest, paper trading and live trading on the emulator.

The candles are real (``tests/fixtures/*-1h.csv``, see the README there). A run on the emulator
replays them: the first ``HISTORY`` candles are history (REST backfill, DELAYED bars that warm
indicators up and never trade), the rest close live one by one. Two ways to move the market:

- ``"step"``: a manual clock stepped by the test through each step of a candle's path and its
  close, kept still until every order and fill is applied and answered (:func:`settled`, asked
  on cerebro's thread: :func:`on_cerebro`);
- ``"lockstep"``: ``Emulator(lockstep=True, speed=...)`` replays at full speed and the broker
  acknowledges each candle close itself (see :mod:`realtrade_core.emulator.lockstep`).

A recording strategy (:class:`Recording`) keeps every order's last state by reference (creation
order), every closed trade and the bar each was learned on, so the runs can be compared field
by field; :func:`table` prints the comparison.
"""

from __future__ import annotations

import csv
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import backtrader as bt
from livetest import NO_THROTTLE, Driver, MemoryFeed, streaming

from realtrade_core.backtest import ExchangeBackBroker
from realtrade_core.emulator.server import STEPS_PER_CANDLE, Emulator
from realtrade_core.store import get_store

FIXTURES = Path(__file__).parent / "fixtures"
HOUR = 3_600_000
CASH = 10_000.0
HISTORY = 30  # candles of history: indicators warm up on them
FROM_BAR = HISTORY + 1  # the first bar any mode trades on (a live run's first LIVE bar is at most this)
LOCKSTEP_SPEED = 1e9  # a 1h candle in 3.6 microseconds: the replay waits only for the broker
FINAL = ("Completed", "Canceled", "Expired", "Margin", "Rejected")


def fixture_path(symbol: str) -> Path:
    """The candles of ``symbol``'s market (a perpetual contract ``BTC/USDT:USDT`` replays BTC/USDT's)."""
    return FIXTURES / f"{symbol.split(':')[0].replace('/', '')}-1h.csv"


@contextmanager
def perpetual_replay(exchange: str, history: int = 30, **options: Any) -> Iterator[tuple[Emulator, Any]]:
    """The BTC/USDT fixture's hourly candles replayed as the USDT perpetual ``BTC/USDT:USDT`` on a
    manual clock, and a perpetual store on it (ccxt's throttle off): ``(emulator, store)``, the
    store stopped at the end."""
    data = {"BTC/USDT:USDT": str(fixture_path("BTC/USDT"))}
    with Emulator(exchange, symbols=("BTC/USDT:USDT",), data=data, interval="1h", speed=None, history=history,
                  **options) as emulator:  # fmt: skip
        store = get_store(exchange, "emulator", market_type="perpetual", emulator=emulator, ccxt_config=NO_THROTTLE)
        try:
            yield emulator, store
        finally:
            store.stop()


def fixture_rows(symbol: str) -> list[tuple]:
    """The fixture's candles as (open_ms, open, high, low, close, volume)."""
    with fixture_path(symbol).open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]


def ms_of(num: float) -> int:
    """Epoch ms of a backtrader date number (naive UTC)."""
    return round(bt.num2date(num).replace(tzinfo=timezone.utc).timestamp() * 1000)


@dataclass
class OrderRecord:
    """An order's last known state, as the strategy was told."""

    ref: int
    data: str
    side: str
    type: str
    status: str = "Created"
    size: float = 0.0  # executed, signed
    price: float = 0.0
    comm: float = 0.0
    bar: int | None = None  # the strategy's bar when it learned the last status
    dt_ms: int | None = None  # when it executed (a fill's exchange time, or the backtest's bar)
    fee_adjusted: bool = False
    sent: float | None = None  # an exit sized to what is held: the amount sent
    reason: str | None = None

    def key(self) -> tuple:
        """What must match across modes, sizes and prices aside."""
        return (self.data, self.side, self.type, self.status, self.bar)


class Recording(bt.Strategy):
    """Base of the parity cases: records orders and trades, trades from ``from_bar`` on (and,
    on the emulator, only once every data is LIVE), stops after ``stop_at`` bars."""

    params = (("from_bar", FROM_BAR), ("stop_at", None), ("need_live", False))

    def __init__(self) -> None:
        self.bars = 0
        self.orders: dict[int, OrderRecord] = {}
        self.trades: list[tuple] = []
        self.live: set[str] = set()
        self.first_live: int | None = None  # the bar of the first LIVE data notification
        self.cross = {d._name: bt.ind.CrossOver(bt.ind.SMA(d, period=4), bt.ind.SMA(d, period=12)) for d in self.datas}
        self.done = False
        self._last_dt: float | None = None

    # --- recording -------------------------------------------------------------------------

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if data._getstatusname(status) == "LIVE":
            self.live.add(data._name)
            if self.first_live is None:
                self.first_live = self.bars

    def notify_order(self, order) -> None:
        rec = self.orders.get(order.ref)
        if rec is None:
            rec = self.orders[order.ref] = OrderRecord(order.ref, order.data._name, order.ordtypename(),
                                                       order.getordername())  # fmt: skip
        ex = order.executed
        rec.status = order.getstatusname()
        rec.size, rec.price, rec.comm = round(ex.size, 8), round(ex.price or 0.0, 6), round(ex.comm, 8)
        rec.bar = self.bars
        rec.dt_ms = ms_of(ex.dt) if ex.dt else None
        rec.fee_adjusted = bool(order.info.get("fee_adjusted"))
        rec.sent = order.info.get("sent")
        rec.reason = order.info.get("reject_reason")
        if order.status == order.Completed:
            self.filled(order)

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.trades.append((trade.data._name, round(trade.pnl, 6), round(trade.pnlcomm, 6), trade.barlen))

    def filled(self, order) -> None:
        """A case's hook: ``order`` has completed."""

    # --- the bar loop ----------------------------------------------------------------------

    def aligned(self) -> bool:
        """Every data is at the same new bar. Live, the candles of several symbols that close
        together reach cerebro one by one, and it calls next() for each: a strategy of several
        datas acts once they are all in, as a backtest has them."""
        try:
            dt = self.datas[0].datetime[0]
            if any(d.datetime[0] != dt for d in self.datas[1:]) or dt == self._last_dt:
                return False
        except IndexError:  # a data without its first bar yet
            return False
        self._last_dt = dt
        return True

    def prenext(self) -> None:
        if self.aligned():
            self.bars += 1

    def next(self) -> None:
        if not self.aligned():
            return
        may_trade = self.bars >= self.p.from_bar and (not self.p.need_live or len(self.live) == len(self.datas))
        last = self.p.stop_at is not None and self.bars >= self.p.stop_at - 2
        if may_trade and not last:  # no new orders on the last bars: nothing could fill them
            self.act()
        self.bars += 1  # counted last: a driver waiting on it then sees this bar's orders
        if self.p.stop_at is not None and self.bars >= self.p.stop_at:
            self.done = True
            self.env.runstop()

    def act(self) -> None:
        raise NotImplementedError

    # --- helpers for the cases --------------------------------------------------------------

    def crossed_up(self, data=None) -> bool:
        return self.cross[(data or self.data)._name][0] > 0

    def crossed_down(self, data=None) -> bool:
        return self.cross[(data or self.data)._name][0] < 0

    def busy(self, data=None) -> bool:
        """An order of ``data`` is still open."""
        data = data or self.data
        return any(o.alive() and o.data is data for o in self.broker.get_orders_open())

    def records(self) -> list[OrderRecord]:
        return [self.orders[ref] for ref in sorted(self.orders)]


@dataclass
class Case:
    """One parity case: a strategy, its symbols and what cerebro needs besides."""

    name: str
    strategy: type[Recording]
    symbols: tuple[str, ...] = ("BTC/USDT",)
    setup: Callable[[bt.Cerebro], None] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Brackets: live, the exits rest from the moment the entry fills and may fill within its
    #: bar; backtrader activates them on its next pass, the next bar (see AsTheExchange).
    exits_at_entry: bool = False
    #: What makes the backtest differ from the exchange on these candles (None: nothing).
    differs: str | None = None
    #: What makes backtrader's own BackBroker order differently on these candles (None: nothing).
    plain_differs: str | None = None


class AsTheExchange(ExchangeBackBroker):
    """ExchangeBackBroker that decides what a bar cannot tell as the exchange (and the
    emulator) does, to predict a live run on the same candles:

    - within a bar, orders are tried in the order the price reaches them along the emulator's
      path (open, low, high, close for a candle closing at or above its open, else open, high,
      low, close), not in the order they were created: when one bar reaches two orders of an
      OCO group, or both exits of a bracket, the one reached first fills;
    - with ``exits_at_entry``, a bracket's exits are active from the moment its entry fills, as
      they rest on the exchange then; backtrader activates them on its next pass (the next bar).
    """

    params = (("exits_at_entry", False),)

    def _process_order_history(self) -> None:
        # BackBroker.next calls this once the orders submitted since the last bar are pending,
        # right before it tries them: the order they are tried in.
        super()._process_order_history()
        self.pending = deque(sorted(self.pending, key=_reached_at))  # stable: ties keep their order

    def _bracketize(self, order, cancel=False):
        entry = not cancel and getattr(order.parent, "ref", order.ref) == order.ref
        super()._bracketize(order, cancel=cancel)
        if entry and self.p.exits_at_entry:
            while self._toactivate:  # behind the entry in this pass: tried within its bar
                self._toactivate.popleft().activate()


def _reached_at(order: bt.Order) -> float:
    """Where along its bar's path the price first reaches ``order`` (0: at the open; inf: not
    in this bar), for the orders a bar can fill."""
    data = order.data
    try:
        o, h, low, c = data.open[0], data.high[0], data.low[0], data.close[0]
    except IndexError:
        return math.inf
    if order.exectype in (bt.Order.Market, bt.Order.Close):
        return 0.0
    price = order.created.price
    if price is None:
        return math.inf
    limit = order.exectype == bt.Order.Limit
    # A buy limit and a sell stop wait for the price to fall to them; the others for a rise.
    falling = order.isbuy() == limit
    path = (o, low, h, c) if c >= o else (o, h, low, c)
    if (path[0] <= price) if falling else (path[0] >= price):
        return 0.0
    for k in range(3):
        a, b = path[k], path[k + 1]
        if min(a, b) <= price <= max(a, b) and a != b:
            return k + abs(price - a) / abs(b - a)
    return math.inf


@dataclass
class Result:
    """A run: its strategy's records and the account as it ended."""

    mode: str  # "backtest", "plain", "paper", "live"
    strategy: Recording
    value: float
    rows: dict[str, list[tuple]]
    balances: dict[str, Decimal] = field(default_factory=dict)  # live: the account at the end
    last: dict[str, float] = field(default_factory=dict)  # each data's last close

    @property
    def records(self) -> list[OrderRecord]:
        return self.strategy.records()


def backtest(case: Case, rows: dict[str, list[tuple]], broker: bt.BrokerBase | None, mode: str = "backtest",
             stop_at: int | None = None) -> Result:  # fmt: skip
    """``case`` as a plain backtest on ``rows`` (per symbol); ``broker`` None is backtrader's own
    BackBroker charging ``fee`` on every fill."""
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in case.symbols:
        cerebro.adddata(MemoryFeed(rows=rows[symbol], tf_ms=HOUR), name=symbol)
    if broker is not None:
        cerebro.broker = broker
    cerebro.broker.setcash(CASH)
    if case.setup is not None:
        case.setup(cerebro)
    cerebro.addstrategy(case.strategy, stop_at=stop_at, **case.kwargs)
    (strategy,) = cerebro.run()
    last = {d._name: d.close[0] for d in strategy.datas}
    return Result(mode, strategy, cerebro.broker.getvalue(), rows, last=last)


def emulated(exchange: str, case: Case, mode: str, drive: str, *, bars: int, balances: dict[str, float] | None = None,
             journal: str | None = None, market_type: str = "spot",
             **settings: Any) -> tuple[Result, Callable[..., Any]]:  # fmt: skip
    """``case`` paper trading (``mode="paper"``) or live trading (``"live"``) on the emulator
    for ``bars`` bars in all (history included), the market moved by ``drive`` ("step" or
    "lockstep"). Returns the result and a backtest broker with the store's rules. On a
    perpetual store (``market_type="perpetual"``) broker ``settings`` (``leverage=``) go to
    both brokers, and the backtest's funding is the rates the emulator settled."""
    lockstep = drive == "lockstep"
    data = {s: str(fixture_path(s)) for s in case.symbols}
    account = balances if balances is not None else {"USDT": CASH}
    with Emulator(exchange, symbols=case.symbols, data=data, history=HISTORY, interval="1h", balances=account,
                  speed=LOCKSTEP_SPEED if lockstep else None, lockstep=lockstep) as emulator:  # fmt: skip
        # ccxt's own throttle (Bybit: 50 ms an order) only slows the replay: the emulator
        # enforces no rate here, and a lockstep replay waits for every answer anyway.
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config={"enableRateLimit": False},
                          market_type=market_type)  # fmt: skip
        if mode == "paper":
            broker = store.getbroker(cash=CASH, **settings)
        else:
            broker = store.getbroker(mode="live", journal=journal, **settings)  # its cash: what the account holds
        first = fixture_rows(case.symbols[0])[0][0]
        fromdate = datetime.fromtimestamp(first / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro(stdstats=False)
        for symbol in case.symbols:
            cerebro.adddata(store.getdata(dataname=symbol, timeframe="1h", fromdate=fromdate,
                                          qcheck=0.001), name=symbol)  # fmt: skip
        cerebro.setbroker(broker)
        if case.setup is not None:
            case.setup(cerebro)
        cerebro.addstrategy(case.strategy, stop_at=bars, need_live=True, **case.kwargs)

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.bars >= HISTORY, "the history bars")
            # Step once every feed takes its candles from the stream (see livetest.streaming).
            d.wait(streaming(emulator, *case.symbols, feeds=d.cerebro.datas), "the candle streams")
            if lockstep:
                d.wait(lambda: strategy.done, f"{bars} bars (at {strategy.bars})")
                return
            session = strategy.broker.live
            ask = on_cerebro(broker, d.cerebro_done)

            def calm() -> bool:
                return ask(lambda: settled(emulator, session))

            for i in range(HISTORY, bars):
                if session is None:
                    emulator.step(1)
                else:  # each step of the candle's path, then its close, once the account settled
                    for k in range(STEPS_PER_CANDLE):
                        d.wait(calm, f"candle {i}, step {k}: orders to settle")
                        emulator.advance(HOUR // STEPS_PER_CANDLE)
                d.wait(lambda n=i + 1: strategy.bars >= n, f"bar {i} (at {strategy.bars})")
            if session is not None:
                d.wait(calm, "the last orders to settle")

        driver = Driver(cerebro, script, deadline=120)
        driver.start()
        (strategy,) = cerebro.run()
        driver.check()
        value = broker.getvalue()
        # What the strategy's positions hold on the account (live: less the fees taken in the coin).
        strategy.positions_held = sum((b.held for b in broker.live.books.values()), Decimal(0)) if broker.live else None
        end = fixture_rows(case.symbols[0])[bars - 1][0]
        rows = {s: [r for r in fixture_rows(s) if r[0] <= end] for s in case.symbols}
        held = {a: b.free + b.locked for a, b in emulator.balances().items()}
        if market_type == "perpetual":
            settings["funding"] = store.funding_rates(case.symbols[0], first)
        rules_broker = store.backtest_broker(list(case.symbols), cash=CASH, **settings)
        markets = {s: store.market(s) for s in case.symbols}
        store.stop()
    assert strategy.bars == bars, (strategy.bars, bars)
    assert strategy.first_live is not None and strategy.first_live <= FROM_BAR, strategy.first_live
    last = {s: rows[s][-1][4] for s in case.symbols}
    result = Result(mode, strategy, value, rows, balances=held if mode == "live" else {}, last=last)
    result.markets = markets  # type: ignore[attr-defined]
    return result, rules_broker


def on_cerebro(broker: Any, finished: threading.Event) -> Callable[[Callable[[], bool]], bool]:
    """A way to ask a question on cerebro's own thread, right after one of the broker's passes
    (cerebro calls ``broker.next()`` between live bars as well). The session changes its records
    on that thread only, a fill and its consequences (a bracket's exits sent, an OCO sibling's
    cancel) in one pass: asked from there, :func:`settled` never sees a fill applied whose
    consequences are still to come. Once cerebro has ``finished``, nothing changes them: the
    question is answered where it is asked."""
    asks: queue.SimpleQueue = queue.SimpleQueue()
    inner = broker.next

    def next_then_answer() -> None:
        inner()
        while True:
            try:
                question, answer, answered = asks.get_nowait()
            except queue.Empty:
                return
            answer.append(question())
            answered.set()

    broker.next = next_then_answer

    def ask(question: Callable[[], bool]) -> bool:
        answer: list[bool] = []
        answered = threading.Event()
        asks.put((question, answer, answered))
        for _ in range(100):  # 5 s: the caller's own deadline then decides
            if answered.wait(0.05):
                return answer[0]
            if finished.is_set():
                return question()
        return False

    return ask


def settled(emulator: Emulator, session: Any) -> bool:
    """Every fill and final status of the engine is applied, every sent order acknowledged and
    every cancel answered, and no triggered bracket stop waits to be sent: the market may move
    on. (Only the session's own records are read here: a feed's lines may be mid-update.)"""
    try:
        tracked = dict(session.orders)
        brackets = list(session.brackets.values())
        for o in emulator.engine.all_orders(emulator.api_key):
            t = tracked.get(o.client_order_id)
            if t is None:
                return False  # the create's answer is not applied yet
            final = o.status.value in ("filled", "canceled", "rejected", "expired")
            if (final and not t.done and t.final is None) or t.executed < o.filled:
                return False
        if any(not (t.acked or t.done) for t in tracked.values()):
            return False
        if any(t.cancelling and not t.done and t.final is None for t in tracked.values()):
            return False  # a cancel (e.g. at the end of an order's validity) must land first
        for b in brackets:
            # A bracket exit that filled cancels its sibling: that must be under way too.
            children = [(c, tracked.get(c.info.get("client_order_id"))) for c in b.children]
            if (
                any(c.status == c.Completed for c, _ in children)
                and any(c.alive() and (t is None or not (t.cancelling or t.final is not None)) for c, t in children)
                and not b.native_oco
            ):
                return False
        return not any(c.alive() and c.info.get("client_order_id") not in tracked
                       for b in brackets for c in b.triggered)  # fmt: skip
    except RuntimeError:  # changed while read from this thread: look again
        return False


# --- comparing runs -------------------------------------------------------------------------


def coin_fee_drift(result: Result, fee: float) -> float:
    """How much a live account's value differs from a backtest ledger's on the same fills.

    The exchange takes a buy's fee in the coin; the backtest's ledger counts those coins as
    commission valued at the buy's price, while the account simply does not have them: it ends
    ``fee coins x (price they would have been sold at - buy price)`` lower, where that price is
    the exit that sold the position (fee-adjusted), or the last close for a position still held.
    The lot step's dust such an exit leaves on the account (or sweeps from it: earlier dust is
    the strategy's too) is the account's, valued at the last close rather than the exit's price.
    """
    drift = 0.0
    pending: dict[str, list[tuple[float, float, float]]] = {}  # data -> [(fee coins, buy price, size)]
    for rec in result.records:
        if rec.status not in ("Completed", "Partial") or not rec.size:
            continue
        if rec.size > 0:
            pending.setdefault(rec.data, []).append((rec.size * fee, rec.price, rec.size))
        elif rec.fee_adjusted:
            held = 0.0
            for coins, price, size in pending.pop(rec.data, []):
                drift -= coins * (rec.price - price)
                held += size - coins
            dust = held + rec.size  # what the exit left of what was held (negative: dust it swept)
            drift += dust * (result.last[rec.data] - rec.price)
    for data, items in pending.items():
        for coins, price, _ in items:
            drift -= coins * (result.last[data] - price)
    return drift


def summary(result: Result) -> str:
    recs = result.records
    filled = sum(r.status == "Completed" for r in recs)
    trades = len(result.strategy.trades)
    return f"{len(recs):3d} orders ({filled:3d} filled), {trades:2d} trades, value {result.value:,.4f}"


def table(title: str, results: list[tuple[str, Result]]) -> str:
    lines = [f"parity {title}"]
    for label, result in results:
        lines.append(f"  {label:<22} {summary(result)}")
    return "\n".join(lines)


def assert_no_silent_refusals(result: Result) -> None:
    silent = [r for r in result.records if r.status in ("Margin", "Rejected") and not r.reason]
    assert not silent, f"{result.mode}: Margin/Rejected orders without a reason: {silent}"


def isclose(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=tol)
