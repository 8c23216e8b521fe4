"""The same strategy in a backtest, in paper trading and in live trading on the emulator.

The same strategy runs twice on the same candles: once in a plain backtrader backtest (candles
from memory, BackBroker), once in paper mode on live bars from the emulator (backfill, then
stepped live candles). Every executed order, every closed trade and the final value must match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import backtrader as bt
import pytest
from livetest import MINUTE, NO_THROTTLE, Driver, MemoryFeed, candles, last_closed_open, streaming
from paritylib import on_cerebro, settled

from realtrade_core.backtest import ExchangeBackBroker
from realtrade_core.emulator.model import MarketSpec
from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

BACKFILL = 40
LIVE = 40
VALID = timedelta(minutes=3)  # of the limit kind's entries: three bars to fill, or they expire


class Scripted(bt.Strategy):
    """Trades on simple rules with every order type; records what the broker did."""

    params = (("kind", "market"), ("stop_after", None), ("live_only", False), ("from_bar", 0))

    def __init__(self) -> None:
        self.fast = bt.ind.SMA(period=3)
        self.slow = bt.ind.SMA(period=8)
        self.cross = bt.ind.CrossOver(self.fast, self.slow)
        self.executed: list[tuple] = []
        self.trades: list[tuple] = []
        self.bars = 0

    def notify_order(self, order) -> None:
        if order.status in (order.Completed, order.Canceled, order.Expired, order.Margin, order.Rejected):
            ex = order.executed
            self.executed.append(
                (
                    order.getstatusname(),
                    order.ordtypename(),
                    order.getordername(),
                    round(ex.size, 8),
                    round(ex.price or 0.0, 6),
                    round(ex.comm, 8),
                    bt.num2date(ex.dt) if ex.dt else None,
                )
            )

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.trades.append((round(trade.pnl, 6), round(trade.pnlcomm, 6), trade.barlen))

    def prenext(self) -> None:
        self.bars += 1  # the averages are still warming up

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.is_live = data._getstatusname(status) == "LIVE"

    def next(self) -> None:
        self.trade()
        self.bars += 1  # counted last: a driver waiting on it then sees this bar's orders

    def trade(self) -> None:
        if self.p.live_only and not getattr(self, "is_live", False):
            return  # a live account trades only on live bars
        if self.bars + 1 <= self.p.from_bar:
            return
        size = 0.01
        price = self.data.close[0]
        if self.p.kind == "market":
            if self.cross > 0 and not self.position:
                self.buy(size=size)
            elif self.cross < 0 and self.position:
                self.close()
        elif self.p.kind == "limit":
            if not self.position and not any(o.alive() for o in self.broker.get_orders_open()):
                # A timedelta: backtrader (1.9.78) leaves a plain number unconverted, which
                # expires the order at the next bar before it can fill.
                self.buy(size=size, exectype=bt.Order.Limit, price=round(price * 0.999, 2), valid=VALID)
            elif self.position and self.cross < 0:
                # What the position holds: live, the buy's fee was paid in the base asset.
                self.sell(size=self.position.size, exectype=bt.Order.Limit, price=round(price * 1.0005, 2))
        elif self.p.kind == "stop":
            if not self.position and not self.broker.get_orders_open():
                self.buy(size=size, exectype=bt.Order.Stop, price=round(price * 1.0005, 2))
            elif self.position and not self.broker.get_orders_open():
                self.sell(
                    size=self.position.size,
                    exectype=bt.Order.StopLimit,
                    price=round(price * 0.9995, 2),
                    plimit=round(price * 0.999, 2),
                )
        elif self.p.kind == "bracket":
            if not self.position and not self.broker.get_orders_open():
                self.buy_bracket(
                    size=size,
                    price=round(price * 0.9995, 2),
                    stopprice=round(price * 0.997, 2),
                    limitprice=round(price * 1.003, 2),
                )
        elif self.p.kind == "oco":
            # Enter on a dip or a breakout, whichever comes first; leave on the averages' cross.
            if not self.position and not self.broker.get_orders_open():
                dip = self.buy(size=size, exectype=bt.Order.Limit, price=round(price * 0.9993, 2))
                self.buy(size=size, exectype=bt.Order.Stop, price=round(price * 1.0007, 2), oco=dip)
            elif self.position and self.cross < 0:
                self.close()


def live_cerebro(emulator, store, broker) -> tuple[bt.Cerebro, int]:
    """Cerebro on live 1m BTC/USDT bars with BACKFILL candles of history; returns it and the
    open time of the first candle."""
    start = last_closed_open(emulator) - (BACKFILL - 1) * MINUTE
    fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.001))
    cerebro.setbroker(broker)
    return cerebro, start


def run_backtest(
    rows: list[tuple], kind: str, fee: float, live_only_from: int = 0, market: dict | None = None
) -> Scripted:
    """A plain backtest of ``Scripted``; with ``market`` (a ccxt market) on an
    ExchangeBackBroker with that market's rules, as paper trading applies them."""
    cerebro = bt.Cerebro()
    cerebro.adddata(MemoryFeed(rows=rows), name="BTC/USDT")
    if market is not None:
        cerebro.broker = ExchangeBackBroker.from_market(market, commission=fee)
    else:
        cerebro.broker.setcommission(commission=fee)
    cerebro.broker.setcash(10_000.0)
    cerebro.addstrategy(Scripted, kind=kind, from_bar=live_only_from)
    (strategy,) = cerebro.run()
    strategy.final_value = cerebro.broker.getvalue()
    return strategy


@pytest.mark.parametrize("kind", ["market", "limit", "stop", "bracket", "oco"])
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_trading_matches_the_backtest(exchange, kind):
    paper_matches_backtest(exchange, kind)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_commission_set_by_the_user_replaces_the_exchange_fee(exchange):
    paper = paper_matches_backtest(exchange, "market", commission=0.0025)
    assert all(e[5] > 0 for e in paper.executed)


def paper_matches_backtest(exchange: str, kind: str, commission: float | None = None) -> Scripted:
    """Paper trading on live emulator bars gives the orders, trades and value of a backtest with
    the market's rules (ExchangeBackBroker); the commission is the market's taker fee unless
    ``commission`` sets it.

    Against a plain backtrader backtest the one difference is the exchange's: the buy's fee is
    taken in BTC, so an exit of the whole position sells what is held (the position less that
    fee) and pays the sell fee on that, a little less than on the whole position."""
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=200, seed=11) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        broker = store.getbroker(cash=10_000.0, commission=commission)
        cerebro, start = live_cerebro(emulator, store, broker)
        cerebro.addstrategy(Scripted, kind=kind, live_only=True)  # history bars never trade

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.bars >= BACKFILL, "backfill")
            d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
            for i in range(LIVE):
                emulator.step(1)
                d.wait(lambda n=BACKFILL + i + 1: strategy.bars >= n, f"live bar {i} (at {strategy.bars})")

        driver = Driver(cerebro, script, deadline=90)
        driver.start()
        (paper,) = cerebro.run()
        driver.check()
        paper.final_value = broker.getvalue()
        rows = candles(emulator, "BTC/USDT", start, start + (BACKFILL + LIVE - 1) * MINUTE)
        market = store.market("BTC/USDT")
        fee = float(market["taker"]) if commission is None else commission
        store.stop()

    assert len(rows) == BACKFILL + LIVE and paper.bars == len(rows)
    backtest = run_backtest(rows, kind, fee, live_only_from=BACKFILL, market=market)
    assert backtest.executed, "the strategy must trade for the comparison to mean anything"
    assert paper.executed == backtest.executed
    assert paper.trades == backtest.trades
    assert paper.final_value == pytest.approx(backtest.final_value, abs=1e-6)

    plain = run_backtest(rows, kind, fee, live_only_from=BACKFILL)
    assert [e[:5] + e[6:] for e in paper.executed] == [e[:5] + e[6:] for e in plain.executed]
    coin_fee = 0.01 * fee  # taken from each 0.01 BTC bought
    for ours, theirs in zip(paper.executed, plain.executed, strict=True):
        status, side, price, comm = ours[0], ours[1], ours[4], ours[5]
        if status == "Completed" and side == "Sell":  # sold 0.01 - coin_fee, fee on that only
            assert comm == pytest.approx(theirs[5] - coin_fee * price * fee, abs=2e-8), (ours, theirs)
        else:
            assert comm == pytest.approx(theirs[5], abs=2e-8), (ours, theirs)
    return paper


@dataclass
class LiveResult:
    """A live run's strategy, the candles it traded on and the emulator's market."""

    strategy: Scripted
    rows: list[tuple]
    market: MarketSpec


def run_live(exchange: str, kind: str, bars: int, journal: str, deadline: float = 120) -> LiveResult:
    """``Scripted(kind, live_only=True)`` trading live on the emulator for ``bars`` live bars.

    The market moves only once every order is settled (at the exchange, answered, its fills
    applied), and each candle is traded before it closes: the driver lets the emulator walk
    the candle's path, waits until its fills are applied, then closes it. A fill and the candle
    come on different streams, so without that a fill made while the candle closes could reach
    the strategy a bar later than in a backtest.
    """
    account = {"USDT": 10_000}  # no BTC at start, like the backtest
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=200, seed=11, balances=account) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        cerebro, start = live_cerebro(emulator, store, store.getbroker(mode="live", journal=journal))
        cerebro.addstrategy(Scripted, kind=kind, live_only=True)

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.bars >= BACKFILL, "backfill")
            d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
            session = strategy.broker.live
            ask = on_cerebro(strategy.broker, d.cerebro_done)

            def calm() -> bool:
                return ask(lambda: settled(emulator, session))

            for i in range(bars):
                d.wait(calm, "orders to settle")
                emulator.advance(MINUTE - 1)  # the candle trades...
                d.wait(calm, f"the fills of live candle {i}")
                emulator.advance(1)  # ...and closes
                d.wait(lambda n=BACKFILL + i + 1: strategy.bars >= n, f"live bar {i} (at {strategy.bars})")
            d.wait(calm, "the last orders to settle")

        driver = Driver(cerebro, script, deadline=deadline)
        driver.start()
        (live,) = cerebro.run()
        driver.check()
        rows = candles(emulator, "BTC/USDT", start, start + (BACKFILL + bars - 1) * MINUTE)
        market = emulator.engine.market("BTCUSDT")
        store.stop()
    assert len(rows) == BACKFILL + bars and live.bars == len(rows)
    return LiveResult(live, rows, market)


def held_after_fee(size: float, fee: float) -> float:
    """What the account holds after buying ``size``: the exchange charges the buy's fee in the
    base asset (the position really is smaller), so the exits sell that much."""
    return round(size * (1 - fee), 8)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_trading_on_the_emulator_makes_the_backtest_trades(exchange, tmp_path):
    """Market orders live: same orders, sides and fill prices as the backtest.

    A market order sent after bar i closes fills at the exchange's last price, which is bar i+1's
    open: backtrader's own market fill. Sells are smaller by the buy fee, which the exchange
    charges in the base asset (the position really is smaller), so sizes are compared with that.
    """
    run = run_live(exchange, "market", LIVE, str(tmp_path / "j.db"))
    live, fee = run.strategy, float(run.market.taker_fee)
    backtest = run_backtest(run.rows, "market", fee, live_only_from=BACKFILL)
    assert len(backtest.executed) >= 2, "the strategy must trade live for the comparison to mean anything"
    assert [(e[1], e[4]) for e in live.executed] == [(e[1], e[4]) for e in backtest.executed]  # side, price
    for ours, theirs in zip(live.executed, backtest.executed, strict=True):
        expected = theirs[3] if theirs[1] == "Buy" else theirs[3] * (1 - fee)
        assert ours[3] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["limit", "stop", "oco"])
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_limit_and_stop_trading_on_the_emulator_makes_the_backtest_orders(exchange, kind, tmp_path):
    """Limit, stop and OCO (``oco=``) orders live: exactly the backtest's orders.

    Every executed order has the backtest's status, side, type, price, bar and size, and the
    same trades close. Limit entries are valid for three bars: unfilled, they expire (cancelled
    on the exchange) at the bar the backtest expires them. A resting limit fills at its price as
    maker, a stop at its stop price as taker; the buy's fee is charged in the base asset, so the
    exits (which sell the position) are smaller by it. The backtest charges the fee of the
    entries' kind of fill.
    """
    run = run_live(exchange, kind, LIVE, str(tmp_path / "j.db"))
    live = run.strategy
    fee = float(run.market.maker_fee if kind == "limit" else run.market.taker_fee)
    backtest = run_backtest(run.rows, kind, fee, live_only_from=BACKFILL)
    statuses = {e[0] for e in backtest.executed}
    assert {"Completed"} <= statuses and len(backtest.trades) >= 2, "the strategy must trade live"
    if kind == "limit":
        assert "Expired" in statuses, "an entry must expire for the comparison to mean anything"
    if kind == "oco":
        assert "Canceled" in statuses, "an OCO sibling must be cancelled for the comparison to mean anything"
    assert len(live.executed) == len(backtest.executed), (live.executed, backtest.executed)
    for ours, theirs in zip(live.executed, backtest.executed, strict=True):
        assert ours[:3] == theirs[:3], (ours, theirs)  # status, side, order type
        assert ours[4] == theirs[4], (ours, theirs)  # price
        # The bar: an expiry is stamped with it; a fill (its time on the exchange) and an OCO
        # sibling's cancellation (while the bar trades) fall within it.
        bar = theirs[6]
        within = ours[6] == bar if ours[0] == "Expired" else bar - timedelta(minutes=1) <= ours[6] <= bar
        assert within, (ours, theirs)
        expected = theirs[3] if theirs[1] == "Buy" else -held_after_fee(-theirs[3], fee)
        assert ours[3] == pytest.approx(expected, abs=1e-12), (ours, theirs)
    assert len(live.trades) == len(backtest.trades)
    assert [t[2] for t in live.trades] == [t[2] for t in backtest.trades]  # bars each trade lasted


BRACKET_LIVE = 150  # brackets are slower: enough bars for exits by both legs


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_bracket_trading_on_the_emulator_makes_the_backtest_orders(exchange, tmp_path):
    """Brackets live: exactly the backtest's orders, exits by both legs included.

    Once the entry has filled, both exits rest on the exchange the exchange's own way (Binance:
    one OCO order list; Bybit: two conditional orders that hold no coins until they trigger), so
    the one the market reaches fills at its own price in the bar the backtest fills it, and the
    other ends Canceled, as backtrader reports a bracket sibling. Exits sell what the account
    holds: the entry's fee is charged in the base asset.
    """
    run = run_live(exchange, "bracket", BRACKET_LIVE, str(tmp_path / "j.db"), deadline=180)
    live, fee = run.strategy, float(run.market.taker_fee)
    backtest = run_backtest(run.rows, "bracket", fee, live_only_from=BACKFILL)
    kinds = [e[:3] for e in backtest.executed]
    assert ("Completed", "Sell", "Limit") in kinds and ("Completed", "Sell", "Stop") in kinds, (
        "exits by both legs must happen for the comparison to mean anything"
    )
    assert len(live.executed) == len(backtest.executed), (live.executed, backtest.executed)
    for ours, theirs in zip(live.executed, backtest.executed, strict=True):
        assert ours[:3] == theirs[:3] and ours[4] == theirs[4], (ours, theirs)  # status, side, type, price
        bar = theirs[6]
        assert bar - timedelta(minutes=1) <= ours[6] <= bar, (ours, theirs)  # in the backtest's bar
        expected = theirs[3] if theirs[1] == "Buy" else -held_after_fee(-theirs[3], fee)
        assert ours[3] == pytest.approx(expected, abs=1e-12), (ours, theirs)
    assert [t[2] for t in live.trades] == [t[2] for t in backtest.trades]  # bars each trade lasted
