"""Helpers for live-mode tests: a recording strategy and a driver that steps the emulator.

Cerebro blocks the thread that runs it, so the emulator's manual clock is stepped from a driver
thread. The driver waits (bounded) for the strategy to have seen each bar before stepping again,
so tests never depend on timing, and it stops cerebro on a deadline so a bug fails instead of
hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timezone

import backtrader as bt

from realtrade_core.testing.live import streaming as streaming  # the wait before moving the market

MINUTE = 60_000

#: ``ccxt_config`` for a store on an in-process emulator in tests that are not about pacing:
#: ccxt's throttle spaces requests 50-100 ms apart for an exchange's limits, which the emulator
#: does not enforce (the rate limits tests are about are its injected 429/418 answers).
NO_THROTTLE = {"enableRateLimit": False}


def bar_row(data: bt.feed.DataBase, tf_ms: int) -> tuple:
    """The candle behind the current bar: (open_ms, o, h, l, c, v)."""
    close = data.datetime.datetime(0).replace(tzinfo=timezone.utc)
    open_ms = int(close.timestamp() * 1000) - tf_ms
    return (open_ms, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])


class Recorder(bt.Strategy):
    """Records every bar of every data and every data notification; stops on request."""

    params = (("tf_ms", 60_000), ("progress", None), ("stop_when", None))

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {d._name: [] for d in self.datas}
        self.states: dict[str, list[str]] = {d._name: [] for d in self.datas}
        self.live_seen = threading.Event()
        self.store_messages: list[str] = []

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(str(msg))

    def notify_data(self, data, status, *args, **kwargs) -> None:
        name = data._getstatusname(status)
        self.states.setdefault(data._name, []).append(name)
        if name == "LIVE":
            self.live_seen.set()

    def next(self) -> None:
        for data in self.datas:
            rows = self.rows[data._name]
            ready = len(data) and data.datetime[0] == data.datetime[0]  # a resampler may show NaN first
            row = bar_row(data, self._tf(data)) if ready else None
            if row is not None and (not rows or rows[-1][0] != row[0]):
                rows.append(row)
        if self.p.progress is not None:
            self.p.progress(self)
        if self.p.stop_when is not None and self.p.stop_when(self):
            self.env.runstop()

    def _tf(self, data) -> int:
        # From backtrader's own view of the data, which a resampler changes.
        unit = {bt.TimeFrame.Minutes: MINUTE, bt.TimeFrame.Days: 86_400_000}.get(data._timeframe)
        return unit * data._compression if unit else self.p.tf_ms


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value.

    The first looks come quickly (what a test waits for, a bar or an answer, usually takes a
    millisecond or two), then every ``interval`` seconds: a flat 10 ms made each of the
    thousands of waits of a run cost 10 ms."""
    deadline = time.monotonic() + timeout
    pause = min(0.0005, interval)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(pause)
        pause = min(pause * 2, interval)
    return predicate()


class Driver(threading.Thread):
    """Runs ``script(driver)`` beside cerebro; stops cerebro when done or on the deadline."""

    def __init__(self, cerebro: bt.Cerebro, script: Callable[[Driver], None], deadline: float = 60.0) -> None:
        super().__init__(daemon=True, name="test-driver")
        self.cerebro = cerebro
        self.script = script
        self.deadline = time.monotonic() + deadline
        self.error: BaseException | None = None
        self.timed_out = False
        self.cerebro_done = threading.Event()

    @property
    def strategy(self) -> bt.Strategy | None:
        """The running strategy, once cerebro has created it."""
        strategies = getattr(self.cerebro, "runningstrats", None)
        return strategies[0] if strategies else None

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        remaining = self.deadline - time.monotonic()
        if not wait_until(predicate, timeout=max(0.0, remaining)):
            self.timed_out = True
            raise TimeoutError(f"timed out waiting for {what}")

    def wait_strategy(self, predicate: Callable[[bt.Strategy], bool], what: str) -> bt.Strategy:
        self.wait(lambda: self.strategy is not None and predicate(self.strategy), what)
        return self.strategy

    def run(self) -> None:
        try:
            self.script(self)
        except BaseException as exc:
            self.error = exc
        finally:
            # cerebro.run() clears a stop requested before it started: insist until it returns.
            while not self.cerebro_done.wait(0.05):
                self.cerebro.runstop()
                if time.monotonic() > self.deadline + 30:
                    break

    def check(self) -> None:
        self.cerebro_done.set()
        self.join(timeout=10)
        if self.error is not None:
            raise AssertionError(f"driver failed: {self.error!r}") from self.error


def candles(emulator, symbol: str, start: int, end: int, interval: int = MINUTE) -> list[tuple]:
    rows = emulator.engine.candles(symbol.replace("/", ""), interval, start, end, limit=100_000)
    return [(c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume)) for c in rows]


def last_closed_open(emulator, interval: int = MINUTE) -> int:
    return (emulator.engine.now() // interval) * interval - interval


class MemoryFeed(bt.feed.DataBase):
    """Candles from a list, stamped at their close like realtrade's feed (backtest baseline)."""

    params = (("rows", ()), ("tf_ms", MINUTE))

    def start(self):
        super().start()
        self._iter = iter(self.p.rows)

    def _load(self):
        from datetime import datetime, timezone

        try:
            open_ms, o, h, low, c, v = next(self._iter)
        except StopIteration:
            return False
        close = datetime.fromtimestamp((open_ms + self.p.tf_ms) / 1000, tz=timezone.utc).replace(tzinfo=None)
        self.lines.datetime[0] = bt.date2num(close)
        self.lines.open[0], self.lines.high[0], self.lines.low[0] = o, h, low
        self.lines.close[0], self.lines.volume[0], self.lines.openinterest[0] = c, v, 0.0
        return True
