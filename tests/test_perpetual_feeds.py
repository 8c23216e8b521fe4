"""A perpetual's mark-price candles (``price="mark"``) and funding rates (``price="funding"``) as
backtrader feeds next to its trade candles, on the emulator's Binance USDⓈ-M and Bybit linear
dialects through unmodified ccxt; and the settings such feeds refuse."""

from __future__ import annotations

from datetime import datetime, timezone

import backtrader as bt
import pytest
from paritylib import HOUR, perpetual_replay

from realtrade_core.errors import ConfigurationError
from realtrade_core.store import clear_stores, get_store

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(autouse=True)
def _fresh_stores():
    yield
    clear_stores()


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


class Recorder(bt.Strategy):
    def __init__(self) -> None:
        self.seen: dict[str, list[tuple]] = {d._name: [] for d in self.datas}

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for d in self.datas:
            if not len(d):
                continue  # no bar yet
            row = (d.datetime.datetime(0), d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0])
            if not self.seen[d._name] or self.seen[d._name][-1] != row:
                self.seen[d._name].append(row)


def _run(store, other: str = "mark", **span) -> dict[str, list[tuple]]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1h", historical=True, **span), name="trade")
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1h", historical=True, price=other, **span), name=other)
    cerebro.addstrategy(Recorder)
    return cerebro.run()[0].seen


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_mark_price_feed_gives_the_exchanges_mark_candles_next_to_the_trade_candles(exchange):
    with perpetual_replay(exchange) as (emulator, store):
        store.start()
        last_open = (emulator.engine.now() // HOUR) * HOUR - HOUR
        first_open = last_open - 9 * HOUR
        served = store.client.fetch_mark_ohlcv(SYMBOL, "1h", since=first_open, limit=10)  # the dialect's mark candles
        trades = store.client.fetch_ohlcv(SYMBOL, "1h", since=first_open, limit=10)
        seen = _run(store, fromdate=_utc(first_open), todate=_utc(last_open + HOUR))

    assert [r[0] for r in served] == [first_open + i * HOUR for i in range(10)]
    # a bar is stamped at its candle's close; mark candles carry no volume
    expected = [(_utc(r[0] + HOUR), r[1], r[2], r[3], r[4], 0.0) for r in served]
    assert seen["mark"] == expected
    # the emulator's mark price is its trade price: the same prices, the trade feed with volume
    assert [r[:5] for r in seen["trade"]] == [r[:5] for r in expected]
    assert [r[5] for r in seen["trade"]] == [r[5] for r in trades] and any(r[5] > 0 for r in trades)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_funding_feed_gives_a_bar_per_settlement_at_its_time(exchange):
    with perpetual_replay(exchange) as (emulator, store):
        store.start()
        begin = emulator.engine.now()
        emulator.step(8)
        emulator.set_funding_rate(SYMBOL, "-0.0002")  # a negative rate: shorts pay longs
        emulator.step(16)  # a day in all: three funding times
        settled = emulator.engine.funding_history("BTCUSDT")
        end = emulator.engine.now()
        seen = _run(store, "funding", fromdate=_utc(begin), todate=_utc(end))

    assert len(settled) == 3 and {float(rate) for _, rate, _ in settled} == {0.0001, -0.0002}
    assert seen["funding"] == [(_utc(t), float(r), float(r), float(r), float(r), 0.0) for t, r, _ in settled]
    # each settlement arrives with the trade bar that closes at its time
    assert {row[0] for row in seen["funding"]} <= {row[0] for row in seen["trade"]}


@pytest.mark.parametrize("price", ["mark", "funding"])
def test_a_mark_or_funding_feed_on_a_spot_store_says_to_use_a_perpetual_store(price):
    store = get_store("binance", "emulator")
    with pytest.raises(ConfigurationError, match="is for perpetual contracts") as info:
        store.getdata(dataname="BTC/USDT", timeframe="1h", historical=True, price=price)
    assert "market_type='perpetual'" in str(info.value)


@pytest.mark.parametrize("price", ["mark", "funding"])
def test_a_live_mark_or_funding_feed_is_refused_saying_it_is_history_only(price):
    store = get_store("bybit", "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError, match="history only") as info:
        store.getdata(dataname=SYMBOL, timeframe="1h", price=price)
    assert "historical=True" in str(info.value)


def test_an_unknown_feed_price_names_the_ones_there_are():
    store = get_store("binance", "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError, match="price='index' is not a feed price") as info:
        store.getdata(dataname=SYMBOL, timeframe="1h", historical=True, price="index")
    assert "use price='trade' (the default), 'mark' or 'funding'" in str(info.value)
