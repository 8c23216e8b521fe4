"""The data feed against the emulator: history, the live splice, reconnects, resampling, errors.

Every test runs real ccxt, real sockets and real threads against an in-process emulator with a
manual clock, for each exchange plugin, and compares what the strategy saw with the candles the
emulator replayed.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import backtrader as bt
import pytest
from livetest import MINUTE, Driver, MemoryFeed, Recorder, candles, last_closed_open, streaming

from realtrade_core import ConfigurationError
from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

EXCHANGES = ["binance", "bybit"]


@pytest.fixture(params=EXCHANGES)
def exchange(request) -> str:
    return request.param


@pytest.fixture
def emulator(exchange):
    with Emulator(exchange, symbols=("BTC/USDT", "ETH/USDT"), speed=None, history=300, seed=7) as emu:
        yield emu


@pytest.fixture
def store(exchange, emulator):
    # A store of its own per test (not the process cache), attached to this test's emulator;
    # ccxt's throttle off (it only spaces requests 50-100 ms apart for limits the emulator does
    # not enforce; the retry tests' rate limits are the emulator's 429/418 answers).
    store = get_store(exchange, "emulator", emulator=emulator, ccxt_config={"enableRateLimit": False})
    yield store
    store.stop()


def run_live(cerebro: bt.Cerebro, script, deadline: float = 60.0) -> Recorder:
    driver = Driver(cerebro, script, deadline)
    driver.start()
    (strategy,) = cerebro.run()
    driver.check()
    return strategy


def test_two_symbols_and_two_timeframes_progress_together(exchange, emulator, store):
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=5, qcheck=0.05))
    cerebro.adddata(store.getdata(dataname="ETH/USDT", timeframe="1m", backfill_bars=5, qcheck=0.05))
    cerebro.addstrategy(Recorder)

    def script(d: Driver) -> None:
        strategy = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
        d.wait(streaming(emulator, "BTC/USDT", "ETH/USDT", feeds=d.cerebro.datas), "the candle streams")
        for _ in range(6):
            emulator.step(1)
            target = last_closed_open(emulator)
            d.wait(lambda t=target: all(r and r[-1][0] == t for r in strategy.rows.values()), f"both at {target}")

    strategy = run_live(cerebro, script)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        got = strategy.rows[symbol]
        assert got == candles(emulator, symbol, got[0][0], last_closed_open(emulator))
        assert len(got) >= 11


@pytest.mark.parametrize("freeze", [True, False], ids=["gc_freeze", "no_gc_freeze"])
def test_a_live_feed_keeps_the_start_out_of_full_collections_until_it_stops(exchange, emulator, store, freeze):
    """With gc_freeze (the default), what was alive when the feed went LIVE is out of the
    cyclic collector's reach while the feed runs, so a full collection walks only what the live
    path made since; the feed gives it back when it stops. gc_freeze=False leaves it alone."""
    import gc

    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=5, gc_freeze=freeze))
    cerebro.addstrategy(Recorder)
    frozen_while_live: list[int] = []

    def script(d: Driver) -> None:
        strategy = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
        d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
        emulator.step(1)
        target = last_closed_open(emulator)
        d.wait(lambda: strategy.rows["BTC/USDT"][-1][0] == target, "a live bar")
        frozen_while_live.append(gc.get_freeze_count())

    strategy = run_live(cerebro, script)
    assert strategy.rows["BTC/USDT"][-1][0] == last_closed_open(emulator)
    assert (frozen_while_live[0] > 0) is freeze
    assert gc.get_freeze_count() == 0  # stopped: everything may be collected again


class FirstBars(bt.Strategy):
    """Records, at each call, the datetime of every data's bar (None where it has none yet)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        self.calls.append(tuple(d.datetime[0] if len(d) else None for d in self.datas))
        if len(self.calls) >= 5:
            self.env.runstop()


def test_live_feeds_start_together_when_one_history_comes_late(exchange, emulator, store):
    """ETH's history arrives after BTC's: the strategy still starts on both datas' first bar, as
    a backtest does (a feed that ran ahead would give it BTC's first bars alone)."""
    eth_history = threading.Event()
    fetch = store.fetch_closed_candles

    def slow_eth(symbol, *args, **kwargs):
        if symbol == "ETH/USDT":
            eth_history.wait(timeout=30)
        return fetch(symbol, *args, **kwargs)

    store.fetch_closed_candles = slow_eth
    cerebro = bt.Cerebro(stdstats=False)
    btc = store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=5, qcheck=0.01)
    cerebro.adddata(btc)
    cerebro.adddata(store.getdata(dataname="ETH/USDT", timeframe="1m", backfill_bars=5, qcheck=0.01))
    cerebro.addstrategy(FirstBars)
    polls = []
    load = btc._load

    def counted_load():
        polls.append(1)
        return load()

    btc._load = counted_load

    def script(d: Driver) -> None:
        # cerebro asks BTC for bars again and again while ETH's history is held back
        d.wait(lambda: len(polls) >= 50, "cerebro polling the BTC feed")
        eth_history.set()

    strategy = run_live(cerebro, script)
    first = strategy.calls[0]
    assert first[0] is not None and first[0] == first[1], strategy.calls[:3]
    assert all(a == b for a, b in strategy.calls), strategy.calls


def test_live_resampling_gives_the_backtest_resampler_bars(exchange, emulator, store):
    # Start on a 5-minute boundary so both runs see whole 5m periods.
    while (last_closed_open(emulator) + MINUTE) % (5 * MINUTE):
        emulator.step(1)
    start = last_closed_open(emulator) + MINUTE - 10 * MINUTE

    fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
    cerebro = bt.Cerebro()
    data = store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.05)
    cerebro.resampledata(data, timeframe=bt.TimeFrame.Minutes, compression=5)
    cerebro.addstrategy(Recorder, tf_ms=5 * MINUTE)

    def script(d: Driver) -> None:
        strategy = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
        d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
        (name,) = strategy.rows
        for _ in range(15):
            emulator.step(1)
        target = last_closed_open(emulator, 5 * MINUTE)
        d.wait(lambda: strategy.rows[name] and strategy.rows[name][-1][0] >= target, "the last 5m bar")

    live = run_live(cerebro, script)
    (live_rows,) = live.rows.values()
    end = last_closed_open(emulator)
    one_minute = candles(emulator, "BTC/USDT", start, end)

    backtest = bt.Cerebro()
    backtest.resampledata(MemoryFeed(rows=one_minute), timeframe=bt.TimeFrame.Minutes, compression=5)
    backtest.addstrategy(Recorder, tf_ms=5 * MINUTE)
    (offline,) = backtest.run()
    (offline_rows,) = offline.rows.values()
    complete = [r for r in offline_rows if r[0] + 5 * MINUTE <= end + MINUTE]
    assert len(complete) == 5
    assert live_rows[: len(complete)] == complete
    # and they are the exchange's own 5m candles
    exchange_5m = candles(emulator, "BTC/USDT", start, end - 4 * MINUTE, 5 * MINUTE)
    assert [r[0] for r in complete] == [r[0] for r in exchange_5m]
    for ours, theirs in zip(complete, exchange_5m, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-12)  # volumes summed as floats vs decimals


def test_live_replay_builds_the_exchange_5m_candles_tick_by_tick(exchange, emulator, store):
    while (last_closed_open(emulator) + MINUTE) % (5 * MINUTE):
        emulator.step(1)
    start = last_closed_open(emulator) + MINUTE - 5 * MINUTE
    fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
    cerebro = bt.Cerebro()
    data = store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.05)
    cerebro.replaydata(data, timeframe=bt.TimeFrame.Minutes, compression=5)
    updates: list[tuple] = []

    class Replayed(Recorder):
        def next(self):
            super().next()
            updates.append((len(self.data), self.data.close[0]))

    cerebro.addstrategy(Replayed, tf_ms=5 * MINUTE)

    def script(d: Driver) -> None:
        d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
        d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
        for i in range(10):
            emulator.step(1)
            d.wait(lambda n=i: len(updates) >= 5 + n + 1, f"replayed update {i}")

    run_live(cerebro, script)
    end = last_closed_open(emulator)
    one_minute = candles(emulator, "BTC/USDT", start, end)
    # every 1m candle updated the forming 5m bar, whose close is always the latest 1m close
    assert [u[1] for u in updates] == [r[4] for r in one_minute]
    assert [u[0] for u in updates] == [1] * 5 + [2] * 5 + [3] * 5


def test_unknown_symbol_is_a_clear_error_when_the_data_is_made(exchange, store):
    with pytest.raises(ConfigurationError, match=r"has no market 'NOPE/USDT'.*It has: BTC/USDT"):
        store.getdata(dataname="NOPE/USDT", timeframe="1m")
    assert store.started is False  # refused before anything started


def test_generic_ccxt_adapter_polls_closed_bars_over_rest(exchange, emulator):
    store = get_store(f"ccxt:{exchange}", "emulator", emulator=emulator)
    assert not store.has_stream()
    cerebro = bt.Cerebro()
    cerebro.adddata(
        store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=3, qcheck=0.05, poll_interval=0.05)
    )
    cerebro.addstrategy(Recorder)

    def script(d: Driver) -> None:
        rows = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE").rows["BTC/USDT"]
        for _ in range(3):
            emulator.step(1)
            target = last_closed_open(emulator)
            d.wait(lambda t=target: rows and rows[-1][0] == t, f"polled bar {target}")

    strategy = run_live(cerebro, script)
    got = strategy.rows["BTC/USDT"]
    assert got == candles(emulator, "BTC/USDT", got[0][0], last_closed_open(emulator))
    assert len(got) == 6
    store.stop()


def test_a_candle_that_closed_before_the_stream_was_subscribed_is_fetched_when_it_is():
    """The backfill ends, a candle closes, and only then is the WebSocket subscription ready:
    the feed fetches that candle over REST at once instead of a bar late (or, on a quiet
    market, never)."""
    import queue
    import threading
    from types import SimpleNamespace

    from realtrade_core.events import ConnectionEvent, ConnectionState
    from realtrade_core.feed import _BAR, _BarPump
    from realtrade_core.timeframes import parse_timeframe

    start = 1_700_000_040_000  # candles are checked: a 1m candle opens on a minute after 2010
    rows = [[start + t * MINUTE, 1.0, 2.0, 0.5, 1.5, 10.0] for t in range(3)]

    class Store:
        def fetch_closed_candles(self, symbol, tf, since, until=None):
            return [r for r in rows if r[0] >= since and (until is None or r[0] <= until)]

        def refresh_time(self):
            pass

    feed = SimpleNamespace(p=SimpleNamespace(store=Store(), dataname="X/Y"), _symbol="X/Y",
                           tf=parse_timeframe("1m"), _outbox=queue.Queue())  # fmt: skip
    pump = _BarPump(feed)
    pump.last_open = rows[1][0]  # the backfill delivered up to candle 1; candle 2 closed since
    loop = threading.Thread(target=pump.loop_stream, daemon=True)
    loop.start()
    pump.inbox.put(ConnectionEvent("x", ConnectionState.CONNECTED, "ready", 0, 0))  # the stream is subscribed
    try:
        assert feed._outbox.get(timeout=10) == (_BAR, tuple(rows[2]))
    finally:
        pump.stop()
        loop.join(timeout=10)
