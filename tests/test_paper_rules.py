"""Paper trading follows the exchange: once per bar, never on the creation bar, the market's rules.

Two halves. The first runs plain backtrader with a feed that behaves like a live one (it has no
bar for a while between bars, so cerebro calls the broker in between): backtrader's own
BackBroker then fills limit, stop and bracket orders on the bar that created them, and
:class:`ExchangeBackBroker` does not. The second runs paper trading on live bars from the
emulator, replaying candles with deep wicks (every bar that creates an order would fill it if
it were allowed to), and compares it with a backtest given the market's rules: the same orders,
fills, refusals and final value.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timezone
from decimal import Decimal

import backtrader as bt
import pytest
from livetest import MINUTE, NO_THROTTLE, Driver, MemoryFeed, candles, last_closed_open, streaming

from realtrade_core import ConfigurationError
from realtrade_core.backtest import ExchangeBackBroker, ExchangeCommission, SpotCommission
from realtrade_core.emulator.server import Emulator
from realtrade_core.rules import MarketRules
from realtrade_core.store import get_store

MARKET = {
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "spot": True,
    "precision": {"amount": 1e-05, "price": 0.01},
    "limits": {"amount": {"min": 1e-05, "max": 9000.0}, "cost": {"min": 5.0}},
    "taker": 0.001,
    "maker": 0.001,
    "feeSide": "get",
}
KINDS = ["limit", "stop", "stoplimit", "trail", "bracket", "oco", "target"]


def wicked_rows(count: int, seed: int, start_ms: int = 1_700_000_040_000, price: float = 60_000.0) -> list[tuple]:
    """Candles whose wicks reach 0.1-0.4 % beyond the body on both sides: an order priced near
    the close of the bar that creates it would fill within that same bar if it were tried there."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        o = price
        c = round(o * (1 + rng.gauss(0, 0.0015)), 2)
        h = round(max(o, c) * (1 + rng.uniform(0.001, 0.004)), 2)
        low = round(min(o, c) * (1 - rng.uniform(0.001, 0.004)), 2)
        rows.append((start_ms + i * MINUTE, o, h, low, c, round(rng.uniform(1, 5), 5)))
        price = c
    return rows


class IdleFeed(MemoryFeed):
    """MemoryFeed that, like a live feed, has no bar ``idle`` times between two bars."""

    params = (("idle", 0),)

    def islive(self) -> bool:
        return self.p.idle > 0

    def start(self) -> None:
        super().start()
        self._waits = 0

    def _load(self):
        if self._waits:
            self._waits -= 1
            return None  # cerebro goes round its loop, calling broker.next(), without a bar
        self._waits = self.p.idle
        return super()._load()


class Orders(bt.Strategy):
    """Places one kind of order near the close of each bar; records every order's outcome."""

    params = (("kind", "limit"), ("live_only", False), ("from_bar", 0))

    def __init__(self) -> None:
        self.done: list[tuple] = []
        self.created: list[tuple] = []  # (kind, side, price, the creation bar's low and high)
        self.trades: list[tuple] = []
        self.bars = 0
        self.is_live = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.is_live = data._getstatusname(status) == "LIVE"

    def notify_order(self, order) -> None:
        if order.alive():
            return
        ex = order.executed
        self.done.append((
            order.getstatusname(), order.ordtypename(), order.getordername(), round(ex.size, 8),
            round(ex.price or 0.0, 6), round(ex.comm, 8), bt.num2date(ex.dt) if ex.dt else None,
            order.info.get("reject_reason"), order.info.get("sent"),
        ))  # fmt: skip

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.trades.append((round(trade.pnl, 6), round(trade.pnlcomm, 6), trade.barlen))

    def prenext(self) -> None:
        self.bars += 1

    def next(self) -> None:
        self.trade()
        self.bars += 1  # last: a driver waiting on it then sees this bar's orders

    def order(self, method, **kwargs) -> None:
        order = method(**kwargs)
        for o in order if isinstance(order, list) else [order]:
            if o is not None:
                self.created.append((o.getordername(), o.ordtypename(), o.created.price, self.data.low[0],
                                     self.data.high[0]))  # fmt: skip

    def trade(self) -> None:
        if (self.p.live_only and not self.is_live) or self.bars < self.p.from_bar:
            return  # history bars never trade (a backtest skips as many)
        kind, close = self.p.kind, self.data.close[0]
        flat, busy = not self.position, bool(self.broker.get_orders_open())
        size = 0.01
        if kind == "target":
            self.order(self.order_target_size, target=size if (len(self) // 4) % 2 == 0 else 0.0)
        elif busy:
            return
        elif kind == "limit":
            if flat:
                self.order(self.buy, size=size, exectype=bt.Order.Limit, price=round(close * 0.9995, 2))
            else:
                self.order(self.sell, size=self.position.size, exectype=bt.Order.Limit,
                           price=round(close * 1.0005, 2))  # fmt: skip
        elif kind == "stop":
            if flat:
                self.order(self.buy, size=size, exectype=bt.Order.Stop, price=round(close * 1.0005, 2))
            else:
                self.order(self.sell, size=self.position.size, exectype=bt.Order.Stop, price=round(close * 0.9995, 2))
        elif kind == "stoplimit":
            if flat:
                self.order(self.buy, size=size, exectype=bt.Order.StopLimit, price=round(close * 1.0005, 2),
                           plimit=round(close * 1.002, 2))  # fmt: skip
            else:
                self.order(self.close)
        elif kind == "trail":
            if flat:
                self.order(self.buy, size=size)
            else:
                self.order(self.sell, size=self.position.size, exectype=bt.Order.StopTrail, trailpercent=0.0005)
        elif kind == "bracket" and flat:
            self.order(self.buy_bracket, size=size, price=round(close * 0.9995, 2),
                       stopprice=round(close * 0.997, 2), limitprice=round(close * 1.002, 2))  # fmt: skip
        elif kind == "oco":
            if flat:
                dip = self.buy(size=size, exectype=bt.Order.Limit, price=round(close * 0.9993, 2))
                self.buy(size=size, exectype=bt.Order.Stop, price=round(close * 1.0007, 2), oco=dip)
            else:
                self.order(self.close)


def backtest(rows, kind: str, broker: bt.BrokerBase, idle: int = 0, from_bar: int = 0) -> Orders:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(IdleFeed(rows=rows, idle=idle), name="BTC/USDT")
    cerebro.broker = broker
    broker.setcash(10_000.0)
    cerebro.addstrategy(Orders, kind=kind, from_bar=from_bar)
    (strategy,) = cerebro.run()
    strategy.final_value = broker.getvalue()
    return strategy


def creation_bar_could_fill(strategy: Orders) -> bool:
    """Some order was created on a bar whose range reached its price."""
    return any(low <= price <= high for _, _, price, low, high in strategy.created if price == price)


# --- (a) once per bar, never on the creation bar ------------------------------------------------------


@pytest.mark.parametrize("kind", ["limit", "stop", "bracket"])
def test_backtraders_backbroker_fills_on_the_creation_bar_when_called_between_bars(kind):
    """Why the guard exists: BackBroker tries resting orders again on every call, and a live
    cerebro calls it while it waits for the next bar."""
    rows = wicked_rows(80, seed=1)
    once = backtest(rows, kind, bt.brokers.BackBroker())
    between = backtest(rows, kind, bt.brokers.BackBroker(), idle=2)
    assert creation_bar_could_fill(once)
    assert between.done != once.done


@pytest.mark.parametrize("kind", KINDS)
def test_exchange_broker_fills_once_per_bar_however_often_it_is_called(kind):
    """Without rules it is exactly BackBroker in a backtest; with idle calls between bars
    nothing changes; with rules the idle calls change nothing either."""
    rows = wicked_rows(120, seed=2)
    plain = backtest(rows, kind, bt.brokers.BackBroker())
    assert plain.done and creation_bar_could_fill(plain)
    for idle in (0, 1, 5):
        gated = backtest(rows, kind, ExchangeBackBroker(), idle=idle)
        assert gated.done == plain.done and gated.trades == plain.trades
        assert gated.final_value == pytest.approx(plain.final_value, abs=1e-9)
    ruled = backtest(rows, kind, ExchangeBackBroker.from_market(MARKET))
    ruled_idle = backtest(rows, kind, ExchangeBackBroker.from_market(MARKET), idle=3)
    assert ruled_idle.done == ruled.done and ruled_idle.trades == ruled.trades
    assert ruled_idle.final_value == ruled.final_value


def test_no_order_is_tried_on_its_creation_bar_even_on_another_datas_bar():
    """Two datas: an order on the slow one is not tried when only the fast one has a new bar."""
    fast = wicked_rows(60, seed=3)
    slow = [r for i, r in enumerate(wicked_rows(60, seed=4)) if i % 3 == 0]

    class OnSlow(bt.Strategy):
        def __init__(self) -> None:
            self.fills: list[tuple] = []
            self.placed = False

        def notify_order(self, order) -> None:
            if order.status == order.Completed:
                self.fills.append((bt.num2date(order.executed.dt), bt.num2date(order.created.dt)))

        def next(self) -> None:
            slow_data = self.datas[1]
            if len(slow_data) and not self.broker.get_orders_open() and not self.getposition(slow_data):
                # far below the close: only a bar of its own with a deep low reaches it
                self.buy(data=slow_data, size=0.01, exectype=bt.Order.Limit, price=slow_data.low[0] + 0.01)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(MemoryFeed(rows=fast), name="fast")
    cerebro.adddata(MemoryFeed(rows=slow, tf_ms=3 * MINUTE), name="slow")
    cerebro.broker = ExchangeBackBroker()
    cerebro.addstrategy(OnSlow)
    (strategy,) = cerebro.run()
    assert strategy.fills
    assert all(filled > created for filled, created in strategy.fills)


# --- (b) the market's rules in a backtest ----------------------------------------------------------------


class Script(bt.Strategy):
    """Places the orders of ``plan`` (bar number -> list of (method, kwargs)); records outcomes."""

    params = (("plan", None),)

    def __init__(self) -> None:
        self.orders: list[bt.Order] = []
        self.seen: list[bt.Order] = []

    def notify_order(self, order) -> None:
        if not order.alive():
            self.seen.append(order)

    def next(self) -> None:
        for method, kwargs in (self.p.plan or {}).get(len(self), []):
            result = getattr(self, method)(**kwargs)
            self.orders.extend(result if isinstance(result, list) else [result])


def run_script(plan, rows=None, broker=None) -> Script:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(MemoryFeed(rows=rows or wicked_rows(30, seed=5)), name="BTC/USDT")
    cerebro.broker = broker or ExchangeBackBroker.from_market(MARKET)
    cerebro.broker.setcash(10_000.0)
    cerebro.addstrategy(Script, plan=plan)
    (strategy,) = cerebro.run()
    strategy.final_value = cerebro.broker.getvalue()
    if isinstance(cerebro.broker, ExchangeBackBroker):
        strategy.held = cerebro.broker.held(cerebro.datas[0])
    return strategy


def test_sizes_are_rounded_down_to_the_lot_step_and_prices_to_the_tick():
    s = run_script({2: [("buy", {"size": 0.0123456, "exectype": bt.Order.Limit, "price": 70_000.004})]})
    (order,) = s.orders
    assert order.status == order.Completed
    assert order.executed.size == pytest.approx(0.01234, abs=1e-12)
    assert order.created.price == 70_000.0
    assert order.info.requested_size == 0.0123456


def test_orders_the_exchange_would_refuse_are_rejected_with_its_reason():
    s = run_script({
        2: [("buy", {"size": 0.00005})],  # about 3 USDT: below the 5 USDT minimum notional
        3: [("buy", {"size": 0.000004})],  # below the lot step: rounds down to nothing
    })  # fmt: skip
    small, dust = s.orders
    assert small.status == small.Rejected
    assert small.info.reject_reason.startswith("buy value ")
    assert "is below BTC/USDT's minimum notional 5 USDT" in small.info.reject_reason
    assert "0.00005 BTC at" in small.info.reject_reason
    assert dust.status == dust.Rejected
    assert dust.info.reject_reason == "buy size 0.000004 BTC rounds down to 0 at BTC/USDT's lot step 0.00001 BTC"
    assert s.final_value == 10_000.0


def test_a_spot_sell_of_coins_not_held_ends_margin_with_the_reason():
    s = run_script({2: [("sell", {"size": 0.01})]})
    (order,) = s.orders
    assert order.status == order.Margin
    assert order.info.reject_reason == (
        "selling 0.01 BTC would sell coins this strategy did not buy: its position holds no BTC "
        "(spot: no short selling)"
    )
    assert s.final_value == 10_000.0


def test_a_buy_pays_its_fee_in_the_coin_and_the_exit_sells_what_is_held():
    rows = wicked_rows(30, seed=6)
    s = run_script({2: [("buy", {"size": 0.01})], 5: [("close", {})]}, rows=rows)
    buy, sell = s.orders
    assert buy.status == sell.status == bt.Order.Completed
    # The position counts what was bought, as a backtest does; the fee (0.00001 BTC) is commission.
    assert buy.executed.size == 0.01
    assert buy.executed.comm == pytest.approx(0.00001 * buy.executed.price, rel=1e-12)
    # The exit closes the position by selling what is held, and pays the sell fee on that.
    assert sell.executed.size == -0.01
    assert sell.info.fee_adjusted and (sell.info.asked, sell.info.sent) == (0.01, 0.00999)
    assert sell.info.note == (
        "sent 0.00999 of the 0.01 BTC asked: the exchange took 0.00001 BTC of the position as fees; "
        "it closes the position"
    )
    # (in USDT, rounded down to 8 decimals as the exchange does)
    assert sell.executed.comm == pytest.approx(0.00999 * sell.executed.price * 0.001, abs=1e-8)
    assert s.held == 0
    cash = 10_000 - 0.01 * buy.executed.price - buy.executed.comm + 0.01 * sell.executed.price - sell.executed.comm
    assert s.final_value == pytest.approx(cash, abs=1e-9)


def test_an_exit_of_all_that_is_held_closes_the_position():
    s = run_script({2: [("buy", {"size": 0.01})], 4: [("sell", {"size": 0.00999})]})
    _buy, sell = s.orders
    assert sell.status == sell.Completed
    assert sell.executed.size == -0.01  # the rest of the position went in fees
    assert s.position.size == 0 and s.held == 0


def test_a_partial_exit_leaves_the_rest_of_the_position():
    s = run_script({2: [("buy", {"size": 0.01})], 4: [("sell", {"size": 0.005})], 6: [("close", {})]})
    _buy, part, rest = s.orders
    assert part.executed.size == -0.005 and "fee_adjusted" not in part.info
    assert rest.executed.size == -0.005 and (rest.info.asked, rest.info.sent) == (0.005, 0.00499)
    assert s.position.size == 0 and s.held == 0


def test_a_sell_beyond_the_position_ends_margin():
    s = run_script({2: [("buy", {"size": 0.01})], 4: [("sell", {"size": 0.02})]})
    buy, sell = s.orders
    assert buy.status == buy.Completed and sell.status == sell.Margin
    assert sell.info.reject_reason == (
        "selling 0.02 BTC would sell coins this strategy did not buy: its position holds 0.01 BTC "
        "(spot: no short selling)"
    )


def test_what_the_lot_step_leaves_behind_is_dust_not_a_position():
    broker = ExchangeBackBroker.from_market(MARKET, commission=0.00075)  # 0.0000075 BTC on 0.01
    s = run_script({2: [("buy", {"size": 0.01})], 4: [("close", {})]}, broker=broker)
    _buy, sell = s.orders
    assert sell.info.sent == 0.00999 and sell.executed.size == -0.01
    assert s.position.size == 0
    assert sell.info.dust == pytest.approx(0.0000025, abs=1e-15)
    assert s.held == Decimal("0.0000025")


def test_a_refused_bracket_member_takes_the_whole_bracket_with_it():
    close = wicked_rows(30, seed=5)[1][4]
    s = run_script({2: [("buy_bracket", {"size": 0.01, "price": round(close * 0.999, 2),
                                         "stopprice": round(close * 0.99, 2), "limitprice": 0.5})]})  # fmt: skip
    assert [o.status for o in s.orders] == [bt.Order.Rejected] * 3
    take_profit = s.orders[2]
    assert "is below BTC/USDT's minimum notional" in take_profit.info.reject_reason
    assert s.orders[0].info.reject_reason.startswith("another order of its bracket was refused: sell value")
    assert not s.orders[0].alive() and not s.broker.get_orders_open()


def test_exchange_commission_on_backtraders_own_broker_charges_the_exchange_fee():
    rules = MarketRules.from_ccxt_market(MARKET)
    broker = bt.brokers.BackBroker()
    broker.addcommissioninfo(ExchangeCommission(rules=rules, commission=0.002))
    s = run_script({2: [("buy", {"size": 0.01})]}, broker=broker)
    (buy,) = s.orders
    assert buy.executed.comm == pytest.approx(0.00002 * buy.executed.price, rel=1e-12)  # 0.2 % in BTC


@pytest.mark.parametrize("method, target", [("order_target_value", 1_000.0), ("order_target_percent", 0.1)])
def test_target_value_and_percent_are_sized_in_lot_steps_not_whole_coins(method, target):
    # backtrader sizes these in whole units: 1,000 USDT of a coin worth ~60,000 would be 0 coins.
    s = run_script({2: [(method, {"target": target})]})
    (order,) = s.orders
    assert order is not None and order.status == order.Completed
    price = s.data.close[-len(s) + 2]  # the close of the bar that sized it (bar 2)
    expected = (Decimal(str(1_000.0)) / Decimal(str(price))).quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    assert order.executed.size == pytest.approx(float(expected), abs=1e-12)
    plain = bt.brokers.BackBroker()
    plain.setcommission(commission=0.001)
    assert run_script({2: [(method, {"target": target})]}, broker=plain).orders == [None]


def test_spot_commission_sizes_in_its_lot_step():
    assert SpotCommission(commission=0.001, step="0.001").getsize(60_000.0, 1_000.0) == 0.016
    assert SpotCommission(commission=0.001).getsize(50_000.0, 1_000.0) == pytest.approx(0.02)
    assert SpotCommission(step="0.001").getsize(0.0, 1_000.0) == 0.0  # no price, no size
    assert SpotCommission(step="0.001").getsize(60_000.0, -5.0) == 0.0


def test_exchange_commission_needs_rules():
    with pytest.raises(TypeError, match="ExchangeCommission needs rules=MarketRules"):
        ExchangeCommission()
    with pytest.raises(TypeError, match="rules must be a MarketRules"):
        ExchangeBackBroker(rules={"symbol": "BTC/USDT"}.items())


# --- paper trading on the emulator against the backtest with rules ---------------------------------------

BACKFILL = 20
LIVE = 60


def write_csv(path, rows) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for row in rows:
            out.writerow(row)


def paper_run(exchange: str, kind: str, tmp_path, *, seed: int = 7) -> tuple[Orders, list, ExchangeBackBroker]:
    """``Orders(kind)`` paper trading on stepped live bars of wicked candles; returns it, the
    candles it traded on and a backtest broker with the store's rules for the market."""
    path = tmp_path / "wicked.csv"
    write_csv(path, wicked_rows(300, seed=seed))
    with Emulator(exchange, symbols=("BTC/USDT",), data=str(path), speed=None, history=200) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        broker = store.getbroker(cash=10_000.0)
        start = last_closed_open(emulator) - (BACKFILL - 1) * MINUTE
        fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.02))
        cerebro.setbroker(broker)
        cerebro.addstrategy(Orders, kind=kind, live_only=True)

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
        backtest_broker = store.backtest_broker("BTC/USDT")
        store.stop()
    assert len(rows) == BACKFILL + LIVE == paper.bars
    return paper, rows, backtest_broker


@pytest.mark.parametrize("kind", ["limit", "bracket", "target"])
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_trading_gives_the_orders_fills_and_value_of_a_backtest_with_the_markets_rules(exchange, kind, tmp_path):
    paper, rows, backtest_broker = paper_run(exchange, kind, tmp_path)
    ruled = backtest(rows, kind, backtest_broker, from_bar=BACKFILL)
    assert creation_bar_could_fill(ruled), "the candles must tempt a creation-bar fill to mean anything"
    assert any(e[0] == "Completed" and e[1] == "Sell" for e in ruled.done), "the strategy must exit"
    assert any(e[8] for e in ruled.done), "an exit must be sized down to what is held"
    assert paper.done == ruled.done
    assert paper.trades == ruled.trades
    assert paper.final_value == pytest.approx(ruled.final_value, abs=1e-6)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_refuses_what_the_exchange_would_with_its_reasons(exchange, tmp_path):
    """A strategy that sells coins it does not hold and buys below the minimum notional: paper
    trading refuses both as the backtest with the market's rules does, with the same reasons."""

    class Refused(Orders):
        def trade(self) -> None:
            if self.bars == BACKFILL:  # the first live bar
                self.sell(size=0.01)
                self.buy(size=0.00001)

    path = tmp_path / "c.csv"
    write_csv(path, wicked_rows(300, seed=9))
    with Emulator(exchange, symbols=("BTC/USDT",), data=str(path), speed=None, history=200) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        start = last_closed_open(emulator) - (BACKFILL - 1) * MINUTE
        fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.02))
        cerebro.setbroker(store.getbroker(cash=10_000.0))
        cerebro.addstrategy(Refused)

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.bars >= BACKFILL, "backfill")
            d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
            for i in range(3):
                emulator.step(1)
                d.wait(lambda n=BACKFILL + i + 1: strategy.bars >= n, f"live bar {i}")

        driver = Driver(cerebro, script, deadline=60)
        driver.start()
        (paper,) = cerebro.run()
        driver.check()
        rows = candles(emulator, "BTC/USDT", start, start + (BACKFILL + 2) * MINUTE)
        market = store.market("BTC/USDT")
        store.stop()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(MemoryFeed(rows=rows), name="BTC/USDT")
    cerebro.broker = ExchangeBackBroker.from_market(market, cash=10_000.0)
    cerebro.addstrategy(Refused)
    (ruled,) = cerebro.run()
    assert [e[0] for e in paper.done] == ["Margin", "Rejected"]
    assert paper.done[0][7].startswith("selling 0.01 BTC would sell coins this strategy did not buy")
    assert "is below BTC/USDT's minimum notional 5 USDT" in paper.done[1][7]
    assert paper.done == ruled.done


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_store_gives_a_backtest_broker_with_its_markets_rules(exchange):
    with Emulator(exchange, symbols=("BTC/USDT", "ETH/USDT"), speed=None, history=50) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        one = store.backtest_broker("BTC/USDT", cash=5_000.0)
        both = store.backtest_broker(["BTC/USDT", "ETH/USDT"], commission=0.002)
        spec = emulator.engine.market("BTCUSDT")
        store.stop()
    rules = one.p.rules
    assert (rules.symbol, rules.amount_step, rules.price_tick) == ("BTC/USDT", spec.step_size, spec.tick_size)
    assert (rules.min_amount, rules.min_notional, rules.taker) == (spec.min_amount, spec.min_notional, spec.taker_fee)
    assert one.getcash() == 5_000.0
    assert set(both.p.rules) == {"BTC/USDT", "ETH/USDT"} and both.p.commission == 0.002
    with pytest.raises(ConfigurationError, match="backtest_broker needs a symbol"):
        store.backtest_broker([])


def test_rules_by_data_name_leave_other_datas_without_rules():
    rules = MarketRules.from_ccxt_market(MARKET)
    broker = ExchangeBackBroker(rules={"BTC/USDT": rules})
    assert broker.rules_for(type("Data", (), {"_name": "BTC/USDT"})()) is rules
    assert broker.rules_for(type("Data", (), {"_name": "ETH/USDT"})()) is None
    with pytest.raises(TypeError, match="are not MarketRules"):
        ExchangeBackBroker(rules={"BTC/USDT": MARKET})
