"""Drive a live cerebro run against the emulator from a test: the suite's order-lifecycle harness.

Cerebro blocks the thread that runs it, so it runs in a thread of its own; the test hands actions
to the strategy (run in cerebro's thread at the next bar), steps the emulator's manual clock and
waits, bounded, for what the strategy and the exchange show. Nothing sleeps to synchronise.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import backtrader as bt

from .waiting import wait_until


@dataclass(frozen=True)
class Note:
    """One notify_order call, as the strategy saw it."""

    ref: int
    status: str
    size: float
    price: float
    comm: float
    client_order_id: str | None
    reason: str | None
    reattached: bool


class Trader(bt.Strategy):
    """Runs the actions the test hands over in its next(); records every notification."""

    def __init__(self) -> None:
        self.actions: queue.Queue = queue.Queue()
        self.notes: list[Note] = []
        self.trades: list[tuple[float, float]] = []  # (pnl, pnlcomm) of each closed trade
        self.store_messages: list[str] = []
        self.bars = 0
        self.first_position: float | None = None
        self.first_open: list[Any] | None = None
        self.live = threading.Event()

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        if data._getstatusname(status) == "LIVE":
            self.live.set()

    def notify_order(self, order: Any) -> None:
        self.notes.append(
            Note(
                order.ref,
                order.getstatusname(),
                order.executed.size,
                order.executed.price,
                order.executed.comm,
                order.info.get("client_order_id"),
                order.info.get("reject_reason"),
                bool(order.info.get("reattached")),
            )
        )

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.trades.append((trade.pnl, trade.pnlcomm))

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.store_messages.append(str(msg))

    def next(self) -> None:
        self.bars += 1
        if self.first_position is None:
            self.first_position = self.position.size
            self.first_open = self.broker.get_orders_open()
        while True:
            try:
                action, box, gate = self.actions.get_nowait()
            except queue.Empty:
                return
            gate.wait(10)  # the test's market step is over: the exchange stands still
            try:
                box.append(action(self))
            except BaseException as exc:
                box.append(exc)

    def statuses(self, order: Any) -> list[str]:
        return [n.status for n in self.notes if n.ref == order.ref]

    def last(self, order: Any) -> Note | None:
        notes = [n for n in self.notes if n.ref == order.ref]
        return notes[-1] if notes else None


def streaming(emulator: Any, *symbols: str, feeds: Iterable[Any] = ()) -> Callable[[], bool]:
    """A predicate: the emulator has a subscriber to each of ``symbols``' candle streams, and
    each realtrade feed of ``feeds`` takes its candles from the stream (``Data.streaming``: the
    subscription answered, what closed before it fetched). Move the market only once it holds:
    a candle closed or a fault set earlier would meet the feed's own check after it subscribed."""
    feeds = [f for f in feeds if hasattr(f, "streaming")]
    return lambda: all(emulator.streams_candles(symbol) for symbol in symbols) and all(f.streaming for f in feeds)


class LiveRun:
    """``cerebro.run()`` in a thread with a live broker on ``store``; a context manager.

    ``qcheck`` is the feed's (see :class:`~realtrade_core.feed.Data`), ``quicknotify``
    cerebro's; the other keywords go to ``store.getbroker(mode="live", ...)``."""

    def __init__(self, emulator: Any, store: Any, symbol: str, timeframe: str = "1m", *, qcheck: float = 0.02,
                 quicknotify: bool = False, **broker_options: Any) -> None:  # fmt: skip
        self.emulator = emulator
        self.store = store
        self.symbol = symbol
        self.broker = store.getbroker(mode="live", **broker_options)
        self.cerebro = bt.Cerebro(quicknotify=quicknotify)
        self.cerebro.adddata(store.getdata(dataname=symbol, timeframe=timeframe, backfill_bars=2, qcheck=qcheck))
        self.cerebro.setbroker(self.broker)
        self.cerebro.addstrategy(Trader)
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="test-cerebro")

    def _run(self) -> None:
        try:
            self.cerebro.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def __enter__(self) -> LiveRun:
        self.thread.start()
        self.wait(lambda: getattr(self.cerebro, "runningstrats", None), "the strategy", 30)
        self.strategy: Trader = self.cerebro.runningstrats[0]
        self.wait(lambda: self.strategy.live.is_set() and self.strategy.bars > 0, "the first live bar", 30)
        if self.store.has_stream():
            # Step the market once the feed takes candles from the stream (its subscription
            # answered, what closed before fetched), so a test's fault meets no check of its own.
            market = self.symbol.split(":")[0]
            self.wait(streaming(self.emulator, market, feeds=self.cerebro.datas), "the candle stream")
        return self

    def __exit__(self, *exc_info: object) -> None:
        # runstop() before run() has started is forgotten: insist until cerebro returns.
        deadline = time.monotonic() + 30
        while not self.done.wait(0.05) and time.monotonic() < deadline:
            self.cerebro.runstop()
            for data in self.cerebro.datas:  # cerebro sees the stop after its feed's wait
                data.wake()
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
        """Wait, bounded, for ``predicate``; fail naming ``what``, or with cerebro's own error."""
        wait_until(lambda: bool(predicate()) or self.error is not None, timeout, what)
        if self.error is not None:
            raise AssertionError(f"cerebro failed while waiting for {what}") from self.error

    def placed(self, *orders: Any) -> bool:
        """Whether each of ``orders`` is on the exchange (acknowledged) or a bracket stop armed
        in the broker (sent when a bar crosses it): what a test waits for before it moves the
        market. Read from cerebro's thread's records, which it alone changes."""
        session = self.broker._live
        armed = {ref for bracket in list(session.brackets.values()) for ref in bracket.armed}
        for order in orders:
            tracked = session.orders.get(order.info.get("client_order_id"))
            if order.ref not in armed and (tracked is None or not tracked.acked):
                return False
        return True

    def step(self, candles: int = 1) -> None:
        """Close ``candles`` candles, waiting for the strategy to see each bar."""
        for _ in range(candles):
            bars = self.strategy.bars
            self.emulator.step(1)
            self.wait(lambda b=bars: self.strategy.bars > b, "the next bar")

    def do(self, action: Callable[[Trader], Any]) -> Any:
        """Run ``action(strategy)`` in cerebro's thread at the next bar and wait until every
        order it returns has the exchange's answer (or the broker's refusal): the market moves
        on only then. Returns what ``action`` returned."""
        box: list[Any] = []
        gate = threading.Event()
        self.strategy.actions.put((action, box, gate))
        bars = self.strategy.bars
        self.emulator.step(1)
        gate.set()
        self.wait(lambda: box and self.strategy.bars > bars, "the action to run")
        if isinstance(box[0], BaseException):
            raise box[0]
        result = box[0]
        orders = [o for o in (result if isinstance(result, tuple) else (result,)) if isinstance(o, bt.Order)]
        sent = (bt.Order.Created, bt.Order.Submitted)
        self.wait(lambda: all(o.status not in sent for o in orders), "the exchange's answer")
        return result

    def until(self, predicate: Callable[[], Any], what: str, steps: int = 60) -> None:
        """Step the market until ``predicate`` holds, at most ``steps`` candles."""
        for _ in range(steps):
            if predicate():
                return
            self.step()
        wait_until(predicate, 3, f"{what} within {steps} candles")
