"""Bars through realtrade's live path, beside backtrader fed the same bars from memory.

1. Throughput: the emulator's manual clock is stepped as fast as the feed consumes, and every
   closed candle travels the whole live path (engine -> exchange WebSocket dialect -> socket ->
   BaseWebSocket parser -> store -> feed worker -> cerebro ``_load``) into a no-op strategy.
   Baselines, same run: plain backtrader iterating the same candles from a Python list, and
   plain backtrader handed each candle by another thread as it takes the previous one (what
   any feed whose bars arrive one at a time on a network thread pays: the live path's ceiling).
   Run twice: with the emulator in this process (its work shares the interpreter lock with the
   live path's) and in a process of its own, as an exchange is.
2. Latency: with the clock running at 600x (a 1-minute candle every 100 ms), the time from the
   engine emitting a candle's close to ``strategy.next()`` seeing that bar: p50 and p99, over the
   candles that close once every feed is LIVE (its history loaded). Beside it, in the same run
   on the same candles: a bare websocket-client loop subscribed to the same emulator's kline
   streams (the ceiling: engine -> socket -> ``recv()`` -> ``json.loads``), timed when it has
   the minute's closed candle of every symbol, which a strategy of several datas waits for. The first live bar
   after history is the first sample of each. Candles that close while the feeds start (the
   emulator's clock runs before cerebro does) reach ``next()`` with the history: they are
   reported apart, as the start's cost.

    python bench/bench_feed.py [--exchange binance|bybit] [--bars 2000] [--symbols 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import statistics
import threading
import time
from datetime import datetime, timezone

import backtrader as bt
import websocket

from realtrade_core.emulator.model import KlineEvent
from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

MINUTE = 60_000


def symbol_list(count: int) -> tuple[str, ...]:
    """``count`` spot symbols: BTC/USDT first, then synthetic markets the emulator makes up."""
    return ("BTC/USDT", *(f"S{i:02d}/USDT" for i in range(1, count)))[:count]


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
        self.live_datas: set[int] = set()
        self.live_at = None  # perf_counter when every data had reported LIVE: history is in

    def notify_data(self, data, status, *args, **kwargs):
        self.live = data._getstatusname(status) == "LIVE"
        if self.live and self.live_at is None:
            self.live_datas.add(id(data))
            if len(self.live_datas) == len(self.datas):
                self.live_at = time.perf_counter()

    def next(self):
        if self.p.seen is not None:
            self.p.seen(self.data.datetime.datetime(0))
        if self.live:
            if self.first_live is None:
                self.first_live = time.perf_counter()
            self.count += 1
            if self.count >= self.p.target:
                self.env.runstop()


class _LocalMarket:
    """The emulator in this process: its clock is stepped from the driver thread."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def store_options(self) -> dict:
        return {"emulator": self.emulator}

    def step(self, candles: int) -> None:
        self.emulator.step(candles)

    def streaming(self, symbols: tuple[str, ...]) -> bool:
        return all(self.emulator.streams_candles(symbol) for symbol in symbols)

    def rows(self, symbol: str, limit: int) -> list:
        candles = self.emulator.engine.candles(symbol.replace("/", ""), MINUTE, limit=limit)
        return [(c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
                for c in candles]  # fmt: skip


def _serve(conn, options: dict) -> None:
    """A child process's emulator, stepped over ``conn`` (see :class:`_RemoteMarket`)."""
    with Emulator(**options) as emulator:
        market = _LocalMarket(emulator)
        conn.send(emulator.base_http)
        while True:
            what, *args = conn.recv()
            if what == "stop":
                return
            conn.send(getattr(market, what)(*args))


class _RemoteMarket:
    """The emulator in a process of its own, as an exchange is: only the live path's own work
    is in this process (and its interpreter lock)."""

    def __init__(self, options: dict) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, options), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 60
        while not self.conn.poll(0.1):
            if not self.process.is_alive() or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"the emulator's process did not start (exit code {self.process.exitcode})")
        self.url = self.conn.recv()

    def store_options(self) -> dict:
        return {"emulator_url": self.url}

    def step(self, candles: int) -> None:
        self.conn.send(("step", candles))
        self.conn.recv()

    def rows(self, symbol: str, limit: int) -> list:
        self.conn.send(("rows", symbol, limit))
        return self.conn.recv()

    def streaming(self, symbols: tuple[str, ...]) -> bool:
        self.conn.send(("streaming", symbols))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(("stop",))
        self.process.join(10)


def live_throughput(
    exchange: str,
    bars: int,
    symbols: int = 1,
    ccxt_config: dict | None = None,
    remote: bool = False,
    deadline: float = 300.0,
) -> tuple[float, list]:
    """Bars/s (bars of every symbol counted) from the first live bar to ``bars`` live steps;
    and the candles of the first symbol, for the memory baseline. ``remote``: the emulator runs
    in a process of its own (stepped over a pipe, ten candles at a time), not in this one."""
    names = symbol_list(symbols)
    # The emulator makes a fixed number of future candles (1,440 for a manual clock): ask for
    # plenty (bars stepped while the strategy does not count them need candles too).
    future = 2 * bars + 200
    options = {"exchange": exchange, "symbols": names, "speed": None, "history": 50, "seed": 5, "future": future}
    if remote:
        market = _RemoteMarket(options)
        emulator = None
    else:
        emulator = Emulator(**options).start()
        market = _LocalMarket(emulator)
    chunk = 10 if remote else 1
    try:
        store = get_store(
            exchange, "emulator", ccxt_config=ccxt_config or {"enableRateLimit": False}, **market.store_options()
        )
        cerebro = bt.Cerebro(stdstats=False)
        for name in names:
            cerebro.adddata(store.getdata(dataname=name, timeframe="1m", backfill_bars=1, qcheck=0.01))
        cerebro.addstrategy(Counter, target=bars)
        done = threading.Event()
        failed: list[BaseException] = []

        def drive():
            # Keep a small lead over the consumer so the path is always busy but never floods.
            stepped = 0
            streaming = False
            try:
                while not done.is_set():
                    strategies = getattr(cerebro, "runningstrats", None)
                    strategy = strategies[0] if strategies else None
                    # A feed is LIVE once it has sent its subscriptions; a candle closing before
                    # the exchange has them reaches it only with the next (a gap filled over
                    # REST), which a driver keeping a bounded lead would never step.
                    streaming = streaming or (strategy is not None and market.streaming(names))
                    if strategy is None or not strategy.live or not streaming:
                        time.sleep(0.001)
                        continue
                    if stepped - strategy.count < 20 and stepped + chunk <= future:
                        market.step(chunk)
                        stepped += chunk
                    else:
                        time.sleep(0.0002)
            except BaseException as exc:  # the emulator gone: end the run with the reason
                failed.append(exc)
                cerebro.runstop()

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        # A run that cannot end (no candle left to step) ends here, with a clear error.
        watchdog = threading.Timer(deadline, cerebro.runstop)
        watchdog.daemon = True
        watchdog.start()
        (strategy,) = cerebro.run()
        watchdog.cancel()
        elapsed = time.perf_counter() - (strategy.first_live or time.perf_counter())
        done.set()
        driver.join(10)  # its step is answered first
        if failed:
            raise RuntimeError(f"{exchange}: the emulator's driver failed: {failed[0]!r}") from failed[0]
        if strategy.count < bars:
            raise RuntimeError(f"{exchange}: {strategy.count} of {bars} live bars within {deadline:.0f} s")
        rows = market.rows(names[0], bars)
        store.stop()
    finally:
        if remote:
            market.close()
        else:
            emulator.stop()
    return strategy.count * len(names) / elapsed, rows


def memory_throughput(rows: list, repeat: int, symbols: int = 1) -> float:
    """Bars/s of plain backtrader fed ``rows`` (``repeat`` times over) from memory, as many
    datas as ``symbols``, same no-op strategy, no preload (one bar at a time, as live)."""
    rows = rows * repeat
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    for _ in range(symbols):
        cerebro.adddata(MemoryFeed(rows=rows))
    cerebro.addstrategy(Counter, target=10**12)
    start = time.perf_counter()
    cerebro.run()
    return len(rows) * symbols / (time.perf_counter() - start)


class HandedFeed(MemoryFeed):
    """The same candles, each handed over by another thread as the previous one is taken: what
    any live feed pays, whose bars arrive on a network thread one at a time."""

    params = (("inbox", None),)

    def start(self):
        bt.feed.DataBase.start(self)

    def islive(self):
        return True

    def _load(self):
        row = self.p.inbox.get()
        if row is None:
            return False
        self._iter = iter((row,))
        return super()._load()


def handoff_throughput(rows: list, repeat: int, symbols: int = 1) -> float:
    """Bars/s of plain backtrader whose feeds get each candle from a producer thread, one at a
    time (a queue of one): the ceiling of a live path whose candles come from a socket thread."""
    rows = rows * repeat
    cerebro = bt.Cerebro(stdstats=False)
    inboxes = [queue.Queue(maxsize=1) for _ in range(symbols)]
    for inbox in inboxes:
        cerebro.adddata(HandedFeed(inbox=inbox))
    cerebro.addstrategy(Counter, target=10**12)

    def produce():
        for row in rows:
            for inbox in inboxes:
                inbox.put(row)
        for inbox in inboxes:
            inbox.put(None)

    threading.Thread(target=produce, daemon=True).start()
    start = time.perf_counter()
    cerebro.run()
    return len(rows) * symbols / (time.perf_counter() - start)


#: How a bare client subscribes to the emulator's 1m klines, and reads a closed candle's open time.
RAW_STREAMS = {
    "binance": (
        "ws_market",
        lambda symbols: {"method": "SUBSCRIBE", "params": [f"{s.replace('/', '').lower()}@kline_1m" for s in symbols],
                         "id": 1},
        lambda d: d["k"]["t"] if d.get("e") == "kline" and d["k"]["x"] else None,
    ),
    "bybit": (
        "ws_public",
        lambda symbols: {"op": "subscribe", "args": [f"kline.1.{s.replace('/', '')}" for s in symbols]},
        lambda d: d["data"][0]["start"]
        if d.get("topic", "").startswith("kline.1.") and d["data"][0]["confirm"] else None,
    ),
}  # fmt: skip


class RawClient:
    """The ceiling: a bare websocket-client ``recv()`` + ``json.loads`` loop on the same stream.
    ``seen[open_ms]``: when it had that minute's closed candle of every symbol (what a strategy
    of several datas waits for before its ``next()``, as in a backtest)."""

    def __init__(self, exchange: str, emulator: Emulator, symbols: tuple[str, ...]) -> None:
        key, subscribe, self._closed_open = RAW_STREAMS[exchange]
        self.seen: dict[int, float] = {}
        self._symbols = len(symbols)
        self._closed: dict[int, int] = {}
        self._ws = websocket.create_connection(emulator.urls[key], skip_utf8_validation=True)
        self._ws.send(json.dumps(subscribe(symbols)))
        self._ws.recv()  # the subscription's answer
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                message = self._ws.recv()
                now = time.perf_counter()
                if not message:
                    return
                open_ms = self._closed_open(json.loads(message))
                if open_ms is not None:
                    count = self._closed[open_ms] = self._closed.get(open_ms, 0) + 1
                    if count == self._symbols:
                        self.seen.setdefault(open_ms, now)
        except (websocket.WebSocketException, OSError):
            return

    def close(self) -> None:
        self._ws.close()
        self._thread.join(5)


def latency(
    exchange: str, bars: int, symbols: int = 1, history: int = 50
) -> tuple[list[float], list[float], list[float]]:
    """Milliseconds from the engine closing a BTC/USDT candle to ``next()`` seeing it, and to a
    bare websocket-client loop receiving it, for the same candles in order (first live bar first):
    the candles that closed once every feed was LIVE (its history loaded and seen by the
    strategy). Third, the same figure for the candles that closed while the feeds started
    (before LIVE: they reach ``next()`` with the history, so they measure the start, not the
    live path)."""
    names = symbol_list(symbols)
    closes: dict[int, float] = {}
    nexts: dict[int, float] = {}

    def on_event(event):
        if isinstance(event, KlineEvent) and event.closed and event.symbol == "BTCUSDT":
            closes.setdefault(event.candle.open_time, time.perf_counter())

    def on_bar(close_dt):
        now = time.perf_counter()
        open_ms = int(close_dt.replace(tzinfo=timezone.utc).timestamp() * 1000) - MINUTE
        nexts.setdefault(open_ms, now)

    with Emulator(exchange, symbols=names, speed=600.0, history=history, seed=9, future=bars + 200) as emulator:
        emulator.engine.subscribe(on_event)
        raw = RawClient(exchange, emulator, names)
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config={"enableRateLimit": False})
        cerebro = bt.Cerebro(stdstats=False)
        for name in names:
            cerebro.adddata(store.getdata(dataname=name, timeframe="1m", backfill_bars=history, qcheck=0.05))
        cerebro.addstrategy(Counter, target=bars, seen=on_bar)
        (strategy,) = cerebro.run()
        store.stop()
        raw.close()
    live_at = strategy.live_at
    live = [t for t in sorted(closes) if t in nexts and closes[t] > live_at]
    starting = [t for t in sorted(closes) if t in nexts and closes[t] <= live_at]
    ours = [(nexts[t] - closes[t]) * 1000 for t in live]
    bare = [(raw.seen[t] - closes[t]) * 1000 for t in live if t in raw.seen]
    return ours, bare, [(nexts[t] - closes[t]) * 1000 for t in starting]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="binance")
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--latency-bars", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=1)
    args = parser.parse_args()

    live_rate, rows = live_throughput(args.exchange, args.bars, args.symbols)
    apart_rate, _ = live_throughput(args.exchange, args.bars, args.symbols, remote=True)
    repeat = max(1, 20_000 // max(1, len(rows) * args.symbols))
    memory_rate = memory_throughput(rows, repeat=repeat, symbols=args.symbols)
    handed_rate = handoff_throughput(rows, repeat=repeat, symbols=args.symbols)
    print(f"{args.exchange}: bars/s into a no-op strategy")
    print(f"  realtrade live path (emulator -> WebSocket -> feed) {live_rate:12,.0f}")
    print(f"  backtrader from memory (baseline)                   {memory_rate:12,.0f}")
    print(f"  ratio                                                {live_rate / memory_rate:12.2%}")
    print(f"  the same, the emulator in a process of its own      {apart_rate:12,.0f}")
    print(f"  backtrader handed each bar by a thread (ceiling)    {handed_rate:12,.0f}")
    print(f"  ratio (emulator apart / ceiling)                     {apart_rate / handed_rate:12.2%}")

    lat, bare, starting = latency(args.exchange, args.latency_bars, args.symbols)
    print(f"{args.exchange}: candle close at the emulator -> strategy.next(), {len(lat)} bars at 600x")
    print(f"  p50 {pct(lat, 0.50):7.2f} ms   p99 {pct(lat, 0.99):7.2f} ms   mean {statistics.fmean(lat):7.2f} ms")
    print(f"  bare websocket-client loop: p50 {pct(bare, 0.50):7.2f} ms   p99 {pct(bare, 0.99):7.2f} ms")
    print(f"  first live bar after history: {lat[0]:.2f} ms (bare loop {bare[0]:.2f} ms)")
    if starting:
        print(f"  {len(starting)} candles closed while the feeds started: next() {max(starting):.2f} ms later at most")


if __name__ == "__main__":
    main()
