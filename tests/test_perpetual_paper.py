"""Paper trading a USDT perpetual on live emulator bars makes the orders, trades and value of a
backtest with the same contract (ExchangeBackBroker with PerpetualCommission): a short-selling
strategy and a long/short reversal, on Binance USDⓈ-M and Bybit linear, on real hourly candles
(tests/fixtures) replayed by the emulator, so positions are held across funding times: paper
takes the funding rates the exchange settles, the backtest the same rates read afterwards
(store.funding_rates), and both pay them the same way."""

from __future__ import annotations

from datetime import datetime, timezone

import backtrader as bt
import pytest
from livetest import NO_THROTTLE, Driver, MemoryFeed, candles, streaming
from paritylib import HOUR, fixture_rows, perpetual_replay

from realtrade_core.backtest import ExchangeBackBroker
from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

SYMBOL = "BTC/USDT:USDT"
BACKFILL = 30
LIVE = 40
CASH = 1_000.0
LEVERAGE = 3
SIZE = 0.03  # about 1,800 USDT of contracts on 1,000 of cash: needs the leverage


class LongShort(bt.Strategy):
    """``short``: sells SIZE when the fast average falls below the slow one, buys it back when
    it rises above. ``reversal``: always in the market once the averages cross, long SIZE above
    and short SIZE below, reversing with one order of twice the size."""

    params = (("style", "short"), ("live_only", False))

    def __init__(self):
        fast, slow = bt.ind.SMA(period=3), bt.ind.SMA(period=8)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.bars = 0
        self.executed: list[tuple] = []
        self.trades: list[tuple] = []
        self.notes: list[str] = []

    def notify_order(self, order):
        if order.status in (order.Completed, order.Margin, order.Rejected):
            ex = order.executed
            self.executed.append((order.getstatusname(), "buy" if order.isbuy() else "sell", round(ex.size, 8),
                                  round(ex.price, 8), round(ex.comm, 8)))  # fmt: skip

    def notify_trade(self, trade):
        if trade.isclosed:
            self.trades.append((round(trade.pnl, 8), round(trade.pnlcomm, 8)))

    def notify_store(self, msg, *args, **kwargs):
        self.notes.append(str(msg))

    def prenext(self):
        self.bars += 1  # the averages warm up: every bar counts

    def next(self):
        self.bars += 1
        if self.p.live_only and self.data._laststatus != self.data.LIVE:
            return
        if self.p.live_only is False and self.bars <= BACKFILL:
            return
        held = self.position.size
        if self.p.style == "short":
            if self.cross < 0 and held == 0:
                self.sell(size=SIZE)
            elif self.cross > 0 and held < 0:
                self.buy(size=-held)
        elif self.cross > 0 and held <= 0:
            self.buy(size=SIZE - held)
        elif self.cross < 0 and held >= 0:
            self.sell(size=SIZE + held)


def backtest(rows, market, style, funding):
    cerebro = bt.Cerebro()
    cerebro.adddata(MemoryFeed(rows=rows, tf_ms=HOUR), name=SYMBOL)
    cerebro.broker = ExchangeBackBroker.from_market(market, cash=CASH, leverage=LEVERAGE, funding=funding)
    cerebro.addstrategy(LongShort, style=style)
    (strategy,) = cerebro.run()
    strategy.final_value = cerebro.broker.getvalue()
    strategy.funding = cerebro.broker.funding_payments
    return strategy


@pytest.mark.parametrize("style", ["short", "reversal"])
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_trading_a_perpetual_matches_the_backtest(exchange, style):
    with perpetual_replay(exchange, history=BACKFILL) as (emulator, store):
        broker = store.getbroker(cash=CASH, leverage=LEVERAGE)
        start = fixture_rows("BTC/USDT")[0][0]
        fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1h", fromdate=fromdate, qcheck=0.05))
        cerebro.setbroker(broker)
        cerebro.addstrategy(LongShort, style=style, live_only=True)

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.bars >= BACKFILL, "backfill")
            # The hub names the contract's kline topic by its exchange id (btcusdt@kline_1m), as spot's.
            d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
            for i in range(LIVE):
                emulator.step(1)
                d.wait(lambda n=BACKFILL + i + 1: strategy.bars >= n, f"live bar {i} (at {strategy.bars})")

        driver = Driver(cerebro, script, deadline=90)
        driver.start()
        (paper,) = cerebro.run()
        driver.check()
        paper.final_value = broker.getvalue()
        end = start + (BACKFILL + LIVE - 1) * HOUR
        rows = candles(emulator, "BTC/USDT", start, end, interval=HOUR)  # the engine's id of the contract
        market = store.market(SYMBOL)
        funding = store.funding_rates(SYMBOL, start)

    assert len(rows) == BACKFILL + LIVE and paper.bars == len(rows)
    assert len(funding) >= (LIVE // 8) - 1, "the emulator settles funding every 8 hours"
    expected = backtest(rows, market, style, funding)
    assert expected.funding, "a position must be held across a funding time"
    sells = [e for e in expected.executed if e[0] == "Completed" and e[1] == "sell"]
    assert sells and expected.trades, "the strategy must go short for the comparison to mean anything"
    if style == "reversal":
        assert any(abs(e[2]) == pytest.approx(2 * SIZE) for e in expected.executed), "a reversal in one order"
    assert all(e[0] == "Completed" for e in expected.executed)
    assert paper.executed == expected.executed
    assert paper.trades == expected.trades
    assert paper.final_value == pytest.approx(expected.final_value, abs=1e-6)
    assert len([n for n in paper.notes if n.startswith("funding: BTC/USDT:USDT")]) == len(expected.funding)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_the_demo_trades_a_perpetual_long_and_short(exchange, capsys):
    from realtrade_core.cli import main

    assert main(["demo", "--market", "perpetual", "--exchange", exchange, "--bars", "40", "--speed", "3000"]) == 0
    out = capsys.readouterr().out
    assert "BTC/USDT:USDT perpetual, long and short at 2x" in out
    assert "opened long" in out and "opened short" in out
    assert "done    40 live bars" in out


def test_the_demo_refuses_a_market_without_a_usdt_perpetual(capsys):
    from realtrade_core.cli import main

    assert main(["demo", "--market", "perpetual", "--symbol", "ETH/BTC"]) == 2
    err = capsys.readouterr().err
    assert "ETH/BTC has no USDT perpetual contract" in err and "Traceback" not in err


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_mark_price_and_the_next_funding_come_from_the_exchange(exchange):
    with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=50) as emulator:
        store = get_store(exchange, "emulator", market_type="perpetual", emulator=emulator, ccxt_config=NO_THROTTLE)
        emulator.set_mark_price(SYMBOL, "61234.5")
        emulator.set_funding_rate(SYMBOL, "-0.00025")
        info = store.funding_info(SYMBOL)
        now = emulator.engine.now()
        store.stop()
    assert info.symbol == SYMBOL and info.mark_price == 61234.5
    assert info.funding_rate == -0.00025
    assert info.next_funding_time > now and info.next_funding_time % (8 * HOUR) == 0
