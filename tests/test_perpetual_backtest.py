"""Backtesting a USDT perpetual: shorts, long/short reversals, margin with leverage, fees and
funding as cash flows at 00/08/16 UTC (realtrade_core.perpetual through ExchangeBackBroker)."""

from __future__ import annotations

from decimal import Decimal

import backtrader as bt
import pytest
from livetest import MemoryFeed

from realtrade_core.backtest import ExchangeBackBroker, PerpetualCommission
from realtrade_core.perpetual import FundingRates, funding_times
from realtrade_core.rules import MarketRules

HOUR = 3_600_000
START = 1_767_225_600_000  # 2026-01-01 00:00 UTC: a funding time
CONTRACT = {
    "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT", "type": "swap",
    "spot": False, "swap": True, "linear": True, "contractSize": 1.0, "taker": 0.0005, "maker": 0.0002,
    "precision": {"amount": 0.001, "price": 0.1}, "limits": {"amount": {"min": 0.001}, "cost": {"min": 5}},
}  # fmt: skip


def rules() -> MarketRules:
    return MarketRules.from_ccxt_market(CONTRACT)


def hourly(prices: list[float]) -> list[tuple]:
    """Flat hourly candles at ``prices`` (open == close), from START."""
    return [(START + i * HOUR, p, p, p, p, 1.0) for i, p in enumerate(prices)]


class Script(bt.Strategy):
    """Orders at given bars: {bar number: size}, positive buys, negative sells."""

    params = (("plan", {}),)

    def __init__(self):
        self.trades: list[tuple[float, float]] = []
        self.fills: list[tuple[float, float]] = []
        self.values: list[float] = []
        self.margin_calls: list[str] = []

    def next(self):
        self.values.append(self.broker.getvalue())
        size = self.p.plan.get(len(self))
        if size:
            (self.buy if size > 0 else self.sell)(size=abs(size))

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((order.executed.size, order.executed.price))
        elif order.status in (order.Margin, order.Rejected):
            self.margin_calls.append(order.getstatusname())

    def notify_trade(self, trade):
        if trade.isclosed:
            self.trades.append((round(trade.pnl, 6), round(trade.pnlcomm, 6)))


def run(prices, plan, **broker):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(MemoryFeed(rows=hourly(prices), tf_ms=HOUR))
    cerebro.broker = ExchangeBackBroker(rules=rules(), cash=10_000, **broker)
    cerebro.addstrategy(Script, plan=plan)
    strategy = cerebro.run()[0]
    return strategy, cerebro.broker


def test_a_perpetual_contract_is_read_from_ccxts_market():
    r = rules()
    assert r.perpetual and not r.spot and r.contract_size == 1 and r.quote == "USDT"
    assert not MarketRules.from_ccxt_market({**CONTRACT, "symbol": "BTC/USDT", "type": "spot", "spot": True,
                                             "swap": False}).perpetual  # fmt: skip


def test_a_short_profits_when_the_price_falls_and_pays_the_taker_fee_each_way():
    # Sell 1 at bar 1 (fills at bar 2's open 100), buy back at bar 3 (fills at bar 4's open 90).
    strategy, broker = run([100, 100, 95, 90, 90, 90], {1: -1, 3: 1}, commission=0.0005)
    assert strategy.fills == [(-1, 100), (1, 90)]
    fees = 100 * 0.0005 + 90 * 0.0005
    assert strategy.trades == [(10.0, round(10.0 - fees, 6))]
    assert broker.getvalue() == pytest.approx(10_000 + 10 - fees)
    assert broker.getcash() == pytest.approx(10_000 + 10 - fees)  # flat: all margin released


def test_a_reversal_goes_from_long_to_short_in_one_order():
    strategy, broker = run([100, 100, 110, 110, 100, 100, 100], {1: 1, 3: -2, 5: 1}, commission=0)
    assert strategy.fills == [(1, 100), (-2, 110), (1, 100)]
    assert strategy.trades == [(10.0, 10.0), (10.0, 10.0)]
    assert broker.getposition(strategy.data).size == 0
    assert broker.getvalue() == pytest.approx(10_020)


def test_margin_is_the_position_value_over_the_leverage_and_value_is_equity():
    strategy, broker = run([100, 100, 100, 120, 120], {1: -10}, leverage=5, commission=0)
    # Short 10 at 100 with 5x: 200 of margin locked; at 120 the short has lost 200.
    assert broker.getposition(strategy.data).size == -10
    assert broker.getvalue() == pytest.approx(10_000 - 200)
    assert broker.getcash() == pytest.approx(10_000 - 200 - 200)
    assert strategy.values[2] == pytest.approx(10_000)  # at 100, just filled: equity unchanged


def test_leverage_lets_the_same_cash_hold_a_larger_position():
    # 10,000 of cash; 150 contracts at 100 is 15,000 of notional: refused at 1x, fine at 2x.
    at_1x, _ = run([100, 100, 100], {1: 150}, commission=0)
    at_2x, _ = run([100, 100, 100], {1: 150}, commission=0, leverage=2)
    assert at_1x.fills == [] and at_1x.margin_calls == ["Margin"]
    assert at_2x.fills == [(150, 100)]


def test_order_target_percent_sizes_contracts_with_leverage_and_the_lot_step():
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(MemoryFeed(rows=hourly([30_000.0] * 4), tf_ms=HOUR))
    cerebro.broker = ExchangeBackBroker(rules=rules(), cash=10_000, leverage=3, commission=0)

    class Target(bt.Strategy):
        def next(self):
            if len(self) == 1:
                self.order_target_percent(target=0.5)

    cerebro.addstrategy(Target)
    cerebro.run()
    # Half of 10,000 as margin at 3x is 15,000 of notional: 0.5 BTC.
    assert cerebro.broker.getposition(cerebro.datas[0]).size == pytest.approx(0.5)


def test_funding_is_paid_by_longs_when_the_rate_is_positive_at_00_08_16_utc():
    # 20 hourly bars from 00:00: fundings at 08:00 and 16:00 fall while the position is held.
    prices = [100.0] * 20
    _, broker = run(prices, {1: 2}, commission=0, funding=0.001)
    payments = broker.funding_payments
    assert [p.time for p in payments] == [START + 8 * HOUR, START + 16 * HOUR]
    assert [p.amount for p in payments] == [pytest.approx(-0.2), pytest.approx(-0.2)]  # 2 * 100 * 0.001
    assert broker.getvalue() == pytest.approx(10_000 - 0.4)


def test_funding_is_received_by_shorts_and_follows_the_series_given():
    series = [(START + 8 * HOUR, 0.0002), (START + 16 * HOUR, -0.0001)]
    _, broker = run([100.0] * 20, {1: -3}, commission=0, funding=series)
    assert [round(p.amount, 9) for p in broker.funding_payments] == [0.06, -0.03]
    assert broker.getvalue() == pytest.approx(10_000 + 0.03)


def test_no_funding_while_flat_and_none_at_the_instant_a_position_opens_after_it():
    # The order made on the bar closing at 08:00 fills after the 08:00 funding: it pays none then.
    strategy, broker = run([100.0] * 12, {8: 1}, commission=0, funding=0.01)
    assert strategy.fills == [(1, 100)]
    assert broker.funding_payments == []


def test_a_position_closed_on_the_bar_after_the_funding_time_pays_it():
    # Bought at bar 1, sold on the bar closing at 08:00 (fills at 08:00's open, after the funding).
    _, broker = run([100.0] * 12, {1: 1, 8: -1}, commission=0, funding=0.01)
    assert [p.time for p in broker.funding_payments] == [START + 8 * HOUR]


def test_funding_times_follow_the_8h_schedule():
    assert funding_times(START - 1, START + 17 * HOUR) == [START, START + 8 * HOUR, START + 16 * HOUR]
    assert funding_times(START + 1, START + 8 * HOUR) == []


def test_ccxt_funding_rate_history_records_are_accepted():
    rates = FundingRates([{"timestamp": START, "fundingRate": 0.0001, "symbol": "BTC/USDT:USDT"}])
    assert rates.due(START, START + 1) == [(START, 0.0001)]


@pytest.mark.parametrize(
    ("funding", "expected"),
    [(0.5 * 3, "fraction below 1"), ("abc", "must be a number"), ([(START,)], "must be \\(ms, rate\\)"),
     (object(), "funding rates must be")],
)  # fmt: skip
def test_bad_funding_rates_say_what_is_wrong(funding, expected):
    with pytest.raises((TypeError, ValueError), match=expected):
        FundingRates(funding)


@pytest.mark.parametrize("leverage", [0, -2, "5", True])
def test_bad_leverage_is_refused(leverage):
    with pytest.raises(ValueError, match="leverage must be a number above 0"):
        PerpetualCommission(rules=rules(), leverage=leverage)


def test_leverage_on_spot_rules_is_refused():
    spot = MarketRules(symbol="BTC/USDT", base="BTC", quote="USDT", amount_step=Decimal("0.001"))
    with pytest.raises(ValueError, match="leverage applies to perpetual markets"):
        ExchangeBackBroker(rules=spot, leverage=3)
