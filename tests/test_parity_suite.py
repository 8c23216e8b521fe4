"""Parity: one strategy, three modes (backtest, paper, live), the same trades, on real candles.

Each case is a strategy written the way backtrader users write them; it runs on real BTC/USDT
(and ETH/USDT) 1h candles (``tests/fixtures``) as

- a plain backtest with the market's rules (``ExchangeBackBroker``, as paper trading applies
  them) and, for the differences the README states, with backtrader's own BackBroker;
- paper trading on the emulator (``store.getbroker()``);
- live trading on the emulator (``store.getbroker(mode="live")``) on an account holding exactly
  the backtest's cash.

History bars never trade, so every mode trades from the same bar (``FROM_BAR``, the first bar
after the first LIVE one). Every run must make the same orders in creation order (data, side,
type, status, the bar the strategy learned the status on), the same trades (pnl, pnl after
commission, bars held) and the same final value; a live fill happens within the bar the
backtest fills it. What differs live is the exchange's own accounting, asserted exactly: the
buy's fee is taken in the coin, so an exit of the position sells what is held (reported as
``order.info.fee_adjusted``) and the account ends lower than the ledger by those fee coins
times the price move (:func:`paritylib.coin_fee_drift`).

Every case runs in lockstep at full replay speed and again with a clock the test steps. The
parity table is printed (``pytest -s``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import backtrader as bt
import pytest
from paritylib import (
    CASH,
    HOUR,
    AsTheExchange,
    Case,
    Recording,
    Result,
    assert_no_silent_refusals,
    backtest,
    coin_fee_drift,
    emulated,
    table,
)

BARS = 200  # the whole fixture: 30 history bars, 170 live ones
SIZE = 0.01
VALID = timedelta(hours=3)  # three bars to fill, or the order expires


def px(value: float) -> float:
    return round(value, 2)


# --- the cases: strategies as backtrader users write them ---------------------------------------


class SizerCase(Recording):
    """buy() and close() with a fixed sizer."""

    def act(self) -> None:
        if not self.position and self.crossed_up():
            self.buy()
        elif self.position and self.crossed_down():
            self.close()


def fixed_sizer(cerebro: bt.Cerebro) -> None:
    cerebro.addsizer(bt.sizers.FixedSize, stake=SIZE)


class EntriesCase(Recording):
    """Market, limit, stop and stop-limit entries in turn, each valid three bars; out after
    three bars in the market."""

    def __init__(self) -> None:
        super().__init__()
        self.turn = 0
        self.entered: int | None = None

    def filled(self, order) -> None:
        if order.isbuy():
            self.entered = self.bars

    def act(self) -> None:
        if self.position:
            if self.entered is not None and self.bars - self.entered >= 3 and not self.busy():
                self.close()
            return
        if self.busy():
            return
        c = self.data.close[0]
        kind = self.turn % 4
        self.turn += 1
        if kind == 0:
            self.buy(size=SIZE)
        elif kind == 1:
            self.buy(size=SIZE, exectype=bt.Order.Limit, price=px(c * 0.995), valid=VALID)
        elif kind == 2:
            self.buy(size=SIZE, exectype=bt.Order.Stop, price=px(c * 1.005), valid=VALID)
        else:
            self.buy(size=SIZE, exectype=bt.Order.StopLimit, price=px(c * 1.004), plimit=px(c * 1.008), valid=VALID)


class BracketCase(Recording):
    """Brackets both ways, on a rising average: buy_bracket(), then a parent with
    transmit=False and its two children by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.turn = 0

    def act(self) -> None:
        if self.position or self.busy() or (self.cross[self.data._name][0] == 0 and self.turn % 3):
            return
        c = self.data.close[0]
        stop, take = px(c * 0.985), px(c * 1.015)
        if self.turn % 2 == 0:
            self.buy_bracket(size=SIZE, exectype=bt.Order.Market, stopprice=stop, limitprice=take)
        else:
            parent = self.buy(size=SIZE, exectype=bt.Order.Market, transmit=False)
            self.sell(size=SIZE, exectype=bt.Order.Stop, price=stop, parent=parent, transmit=False)
            self.sell(size=SIZE, exectype=bt.Order.Limit, price=take, parent=parent, transmit=True)
        self.turn += 1


class OcoCase(Recording):
    """A dip or a breakout, whichever comes first (oco=); out on the averages' cross down."""

    def act(self) -> None:
        if self.position:
            if self.crossed_down() and not self.busy():
                self.close()
            return
        if self.busy():
            return
        c = self.data.close[0]
        breakout = self.buy(size=SIZE, exectype=bt.Order.Stop, price=px(c * 1.004), valid=VALID)
        self.buy(size=SIZE, exectype=bt.Order.Limit, price=px(c * 0.996), valid=VALID, oco=breakout)


class TrailCase(Recording):
    """In on a cross up; out with a trailing stop (StopTrail by percent, then StopTrailLimit by
    amount, in turn)."""

    def __init__(self) -> None:
        super().__init__()
        self.turn = 0

    def filled(self, order) -> None:
        if order.isbuy():
            if self.turn % 2 == 0:
                self.sell(size=order.executed.size, exectype=bt.Order.StopTrail, trailpercent=0.01)
            else:
                amount = px(order.executed.price * 0.01)
                self.sell(size=order.executed.size, exectype=bt.Order.StopTrailLimit, trailamount=amount,
                          plimoffset=px(amount / 2))  # fmt: skip
            self.turn += 1

    def act(self) -> None:
        if not self.position and not self.busy() and self.crossed_up():
            self.buy(size=SIZE)


class ProtectCase(Recording):
    """A stop-loss placed in notify_order when the entry completes; out on a cross down
    (cancelling the stop first) if the stop has not fired."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_order = None

    def filled(self, order) -> None:
        if order.isbuy():
            self.stop_order = self.sell(size=order.executed.size, exectype=bt.Order.Stop,
                                        price=px(order.executed.price * 0.99))  # fmt: skip

    def act(self) -> None:
        if not self.position:
            if not self.busy() and self.crossed_up():
                self.buy(size=SIZE)
        elif self.crossed_down() and self.stop_order is not None and self.stop_order.alive():
            self.cancel(self.stop_order)
            self.close()


class TargetCase(Recording):
    """order_target_size, order_target_value and order_target_percent in turn: in on a cross
    up, flat on a cross down."""

    def __init__(self) -> None:
        super().__init__()
        self.turn = 0

    def act(self) -> None:
        if self.busy():
            return
        kind = self.turn % 3
        if not self.position and self.crossed_up():
            if kind == 0:
                self.order_target_size(target=SIZE)
            elif kind == 1:
                self.order_target_value(target=400.0)
            else:
                self.order_target_percent(target=0.05)
        elif self.position and self.crossed_down():
            if kind == 0:
                self.order_target_size(target=0)
            elif kind == 1:
                self.order_target_value(target=0)
            else:
                self.order_target_percent(target=0)
            self.turn += 1


class TwoDataCase(Recording):
    """Two symbols, each traded on its own averages."""

    def act(self) -> None:
        for data, size in zip(self.datas, (SIZE, 0.3), strict=True):
            position = self.getposition(data)
            if not position and not self.busy(data) and self.crossed_up(data):
                self.buy(data=data, size=size)
            elif position and not self.busy(data) and self.crossed_down(data):
                self.close(data=data)


CASES = {
    "sizer": Case("sizer", SizerCase, setup=fixed_sizer),
    "entries": Case("entries", EntriesCase),
    "brackets": Case("brackets", BracketCase, exits_at_entry=True, differs="an exit within its entry's bar"),
    "oco": Case("oco", OcoCase, differs="a bar reaching both orders of the group"),
    "trail": Case("trail", TrailCase),
    "protect": Case("protect", ProtectCase),
    "targets": Case("targets", TargetCase, plain_differs=(
        "backtrader sizes order_target_value/_percent in whole units (0 BTC here): a plain BackBroker "
        "orders nothing for them; the market's rules size them in lot steps")),
    "two-datas": Case("two-datas", TwoDataCase, symbols=("BTC/USDT", "ETH/USDT")),
}


# --- the comparison ----------------------------------------------------------------------------


def compare(case: Case, exchange: str, drive: str, paper: Result, live: Result, rules_broker, fee: float) -> None:
    """paper against the backtest with the market's rules (exactly), live against it with the
    exchange's differences the README states, and backtrader's own BackBroker beside them."""
    bars = len(live.rows[case.symbols[0]])
    ruled = backtest(case, live.rows, rules_broker, stop_at=bars)
    plain_broker = bt.brokers.BackBroker()
    plain_broker.setcommission(commission=fee)
    plain = backtest(case, live.rows, plain_broker, mode="plain", stop_at=bars)
    rows = [("backtest (rules)", ruled), ("backtest (BackBroker)", plain), ("paper", paper), ("live", live)]
    # What a bar cannot tell (which of two orders it reaches fills; a bracket's exits within its
    # entry's bar), decided as the exchange does: the live run is that backtest.
    expected = backtest(case, live.rows, AsTheExchange(rules=rules_broker.p.rules, exits_at_entry=case.exits_at_entry),
                        mode="as the exchange", stop_at=bars)  # fmt: skip
    rows.insert(1, ("backtest (as the exchange)", expected))
    if case.differs:
        assert [r.key() for r in expected.records] != [r.key() for r in ruled.records], (
            f"{case.differs} must happen on these candles for the comparison to mean anything"
        )
    else:
        assert [r.key() for r in expected.records] == [r.key() for r in ruled.records]
    print("\n" + table(f"{case.name} {exchange} {drive}", rows))
    for _, result in rows:
        assert_no_silent_refusals(result)
    assert any(r.status == "Completed" for r in ruled.records), "the strategy must trade for the comparison to mean"

    # Paper is the backtest with the market's rules, to the last digit.
    assert [vars(r) | {"ref": 0} for r in paper.records] == [vars(r) | {"ref": 0} for r in ruled.records]
    assert paper.strategy.trades == ruled.strategy.trades
    assert paper.value == pytest.approx(ruled.value, abs=1e-6)

    # backtrader's BackBroker: the same orders; exits sell the whole position (the exchange
    # has taken the buy's fee from it: the rules send what is held and say so).
    if case.plain_differs:
        assert [r.key() for r in plain.records] != [r.key() for r in ruled.records], case.plain_differs
    else:
        assert [r.key() for r in plain.records] == [r.key() for r in ruled.records]
    assert not any(r.fee_adjusted for r in plain.records)

    # Live: the same orders, trades and prices; fills within the backtest's bar.
    assert [r.key() for r in live.records] == [r.key() for r in expected.records], diff(live, expected)
    tick = float(rules_broker.rules_for(live.strategy.datas[0]).price_tick)
    moved = 0.0  # what trailing stops rounded to the tick moved the account by
    for ours, theirs in zip(live.records, expected.records, strict=True):
        if ours.type.startswith("StopTrail"):
            # The exchange takes the trail's price on its tick; backtrader trails to any price.
            assert abs(ours.price - theirs.price) <= tick / 2 + 1e-9, (ours, theirs)
            moved += (ours.price - theirs.price) * abs(ours.size) * (1 - fee)
        else:
            assert ours.price == pytest.approx(theirs.price, abs=1e-6), (ours, theirs)
        # An exit of the position sells what is held: the backtest books the position closed
        # and says what it sent; live books what the exchange sold.
        if ours.status == "Completed":
            assert ours.fee_adjusted == theirs.fee_adjusted, (ours, theirs)
            assert ours.size == pytest.approx(-theirs.sent if theirs.fee_adjusted else theirs.size, abs=1e-9)
            assert theirs.dt_ms - HOUR <= ours.dt_ms < theirs.dt_ms, (ours, theirs)
        else:
            assert ours.size == theirs.size == 0, (ours, theirs)
    if moved:
        assert [t[0::3] for t in live.strategy.trades] == [t[0::3] for t in expected.strategy.trades]
    else:
        assert live.strategy.trades == expected.strategy.trades
    # The account: the ledger's value less the fee coins' price move (README).
    assert live.value == pytest.approx(expected.value + coin_fee_drift(live, fee) + moved, abs=1e-6)


def diff(a: Result, b: Result) -> str:
    lines = []
    for x, y in zip(a.records, b.records, strict=False):
        mark = "  " if x.key() == y.key() else "!!"
        lines.append(f"{mark} {x.key()} {x.price} | {y.key()} {y.price}")
    lines.append(f"({len(a.records)} vs {len(b.records)} orders)")
    return "\n".join(lines)


def run_case(name: str, exchange: str, drive: str, tmp_path) -> None:
    case = CASES[name]
    paper, _ = emulated(exchange, case, "paper", drive, bars=BARS)
    live, rules_broker = emulated(exchange, case, "live", drive, bars=BARS, journal=str(tmp_path / "j.db"))
    fee = float(live.markets[case.symbols[0]]["taker"])  # type: ignore[attr-defined]
    compare(case, exchange, drive, paper, live, rules_broker, fee)


# Every case runs two ways: in lockstep at full replay speed (the market runs free and waits only
# for the broker's acknowledgement of each close and of each trade within a candle), and with a
# clock the test steps through each candle's path, waiting for the account to settle before
# every step (asked on cerebro's thread: see paritylib.on_cerebro).
@pytest.mark.parametrize("drive", ["lockstep", "step"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_parity(exchange, name, drive, tmp_path):
    run_case(name, exchange, drive, tmp_path)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_coins_the_account_already_holds_are_left_alone(exchange, tmp_path):
    """The same strategy live on an account that already holds 10 BTC: the same orders and
    trades as on an account holding only the cash, and the 10 BTC are still there at the end
    (the account holds 10 plus what the strategy holds)."""
    case = CASES["sizer"]
    live, rules_broker = emulated(exchange, case, "live", "lockstep", bars=BARS, balances={"USDT": CASH, "BTC": 10},
                                  journal=str(tmp_path / "j.db"))  # fmt: skip
    ruled = backtest(case, live.rows, rules_broker, stop_at=len(live.rows["BTC/USDT"]))
    print("\n" + table(f"{case.name} {exchange} lockstep, account with 10 BTC", [("backtest (rules)", ruled),
                                                                                 ("live", live)]))  # fmt: skip
    assert [r.key() for r in live.records] == [r.key() for r in ruled.records], diff(live, ruled)
    assert live.strategy.trades == ruled.strategy.trades
    held = live.strategy.positions_held
    assert live.balances["BTC"] == Decimal(10) + held
    fee = float(live.markets["BTC/USDT"]["taker"])  # type: ignore[attr-defined]
    assert live.value == pytest.approx(ruled.value + coin_fee_drift(live, fee), abs=1e-6)
