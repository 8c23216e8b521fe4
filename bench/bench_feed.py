"""Bars through realtrade's live path, beside backtrader fed the same bars from memory.

1. Throughput: the emulator's manual clock is stepped as fast as the feed consumes, and every
   closed candle travels the whole live path (engine -> exchange WebSocket dialect -> socket ->
   BaseWebSocket parser -> store -> feed worker -> cerebro ``_load``) into a no-op strategy.
   Baseline, same run: plain backtrader iterating the same candles from a Python list.
2. Latency: with the clock running at 600x (a 1-minute candle every 100 ms), the time from the
   engine emitting a candle's close to ``strategy.next()`` seeing that bar: p50 and p99.

    python bench/bench_feed.py [--exchange binance|bybit] [--bars 2000]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import datetime, timezone

import backtrader as bt

from realtrade_core.emulator.model import KlineEvent
from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

MINUTE = 60_000


class MemoryFeed(bt.feed.DataBase):
    params = (("rows", ()),)

    def start(self):
        super().start()
        self._iter = iter(self.p.rows)

    def _load(self):
        try:
            open_ms, o, h, low, c, v = next(self._iter)
        except StopIteration:
            return False
        close = datetime.fromtimestamp((open_ms + MINUTE) / 1000, tz=timezone.utc).replace(tzinfo=None)
        self.lines.datetime[0] = bt.date2num(close)
        self.lines.open[0], self.lines.high[0], self.lines.low[0] = o, h, low
        self.lines.close[0], self.lines.volume[0], self.lines.openinterest[0] = c, v, 0.0
        return True


class Counter(bt.Strategy):
    params = (("target", 0), ("seen", None))

    def __init__(self):
        self.count = 0
        self.live = False
        self.first_live = None

    def notify_data(self, data, status, *args, **kwargs):
        self.live = data._getstatusname(status) == "LIVE"

    def next(self):
        if self.p.seen is not None:
            self.p.seen(self.data.datetime.datetime(0))
        if self.live:
            if self.first_live is None:
                self.first_live = time.perf_counter()
            self.count += 1
            if self.count >= self.p.target:
                self.env.runstop()


def live_throughput(exchange: str, bars: int) -> tuple[float, list]:
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50, seed=5) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=1, qcheck=0.01))
        cerebro.addstrategy(Counter, target=bars)
        done = threading.Event()

        def drive():
            # Keep a small lead over the consumer so the path is always busy but never floods.
            while not done.is_set():
                strategies = getattr(cerebro, "runningstrats", None)
                strategy = strategies[0] if strategies else None
                if strategy is None or not strategy.live:
                    time.sleep(0.001)
                    continue
                if emulator.engine.now() // MINUTE - start_minute - strategy.count < 20:
                    emulator.step(1)
                else:
                    time.sleep(0.0002)

        start_minute = emulator.engine.now() // MINUTE
        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        (strategy,) = cerebro.run()
        done.set()
        elapsed = time.perf_counter() - strategy.first_live
        rows = [
            (c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
            for c in emulator.engine.candles("BTCUSDT", MINUTE, limit=bars)
        ]
        store.stop()
    return strategy.count / elapsed, rows


def memory_throughput(rows: list, repeat: int) -> float:
    rows = rows * repeat
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    cerebro.adddata(MemoryFeed(rows=rows))
    cerebro.addstrategy(Counter, target=10**12)
    start = time.perf_counter()
    cerebro.run()
    return len(rows) / (time.perf_counter() - start)


def latency(exchange: str, bars: int) -> list[float]:
    closes: dict[int, float] = {}
    seen: list[float] = []

    def on_event(event):
        if isinstance(event, KlineEvent) and event.closed:
            closes[event.candle.open_time] = time.perf_counter()

    def on_bar(close_dt):
        now = time.perf_counter()
        open_ms = int(close_dt.replace(tzinfo=timezone.utc).timestamp() * 1000) - MINUTE
        if open_ms in closes:
            seen.append((now - closes[open_ms]) * 1000)

    with Emulator(exchange, symbols=("BTC/USDT",), speed=600.0, history=50, seed=9) as emulator:
        emulator.engine.subscribe(on_event)
        store = get_store(exchange, "emulator", emulator=emulator)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=1, qcheck=0.05))
        cerebro.addstrategy(Counter, target=bars, seen=on_bar)
        cerebro.run()
        store.stop()
    return seen


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="binance")
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--latency-bars", type=int, default=100)
    args = parser.parse_args()

    live_rate, rows = live_throughput(args.exchange, args.bars)
    memory_rate = memory_throughput(rows, repeat=max(1, 20_000 // max(1, len(rows))))
    print(f"{args.exchange}: bars/s into a no-op strategy")
    print(f"  realtrade live path (emulator -> WebSocket -> feed) {live_rate:12,.0f}")
    print(f"  backtrader from memory (baseline)                   {memory_rate:12,.0f}")
    print(f"  ratio                                                {live_rate / memory_rate:12.2%}")

    lat = latency(args.exchange, args.latency_bars)
    print(f"{args.exchange}: candle close at the emulator -> strategy.next(), {len(lat)} bars at 600x")
    print(f"  p50 {pct(lat, 0.50):7.2f} ms   p99 {pct(lat, 0.99):7.2f} ms   mean {statistics.fmean(lat):7.2f} ms")


if __name__ == "__main__":
    main()
