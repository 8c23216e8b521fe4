"""Parity of a USDT perpetual: a short-selling strategy and a long/short reversal, each as a
backtest (the store's ``backtest_broker`` with the contract's margin, fee and the funding rates
the emulator settled), paper trading and live trading on the emulator in lockstep, on real
hourly candles held across funding times, on Binance USDⓈ-M and Bybit linear.

Every mode must make the same orders (side, type, status, the bar the strategy learned it on),
the same trades and the same final value. docs/futures.md states how the funding model differs
from the exchange's: per payment ``|size| x |mark - open| x |rate|``, where the emulator's mark
price at the funding time is that open, so here the values agree to the cent.
"""

from __future__ import annotations

import pytest
from paritylib import CASH, HOUR, Case, Recording, assert_no_silent_refusals, backtest, emulated, table

SYMBOL = "BTC/USDT:USDT"
SIZE = 0.5  # about 17,000 USDT of contracts on 10,000 of cash: needs the leverage
LEVERAGE = 3
BARS = 120  # 30 history bars, 90 live ones: eleven funding times


class ShortCase(Recording):
    """Sells short when the fast average crosses below the slow one; buys back when it crosses up."""

    def act(self) -> None:
        if not self.position and self.crossed_down():
            self.sell(size=SIZE)
        elif self.position.size < 0 and self.crossed_up():
            self.close()


class ReversalCase(Recording):
    """Always in the market once the averages cross: long above, short below, each reversal one
    order of twice the size."""

    def act(self) -> None:
        held = self.position.size
        if self.crossed_up() and held <= 0:
            self.buy(size=SIZE - held)
        elif self.crossed_down() and held >= 0:
            self.sell(size=SIZE + held)


CASES = {name: Case(name, cls, symbols=(SYMBOL,)) for name, cls in (("short", ShortCase), ("reversal", ReversalCase))}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_backtest_paper_and_live_trade_a_perpetual_alike(exchange, name, tmp_path):
    case = CASES[name]
    paper, _ = emulated(exchange, case, "paper", "lockstep", bars=BARS, market_type="perpetual", leverage=LEVERAGE)
    live, rules = emulated(exchange, case, "live", "lockstep", bars=BARS, market_type="perpetual",
                           journal=str(tmp_path / "journal.sqlite3"), leverage=LEVERAGE)  # fmt: skip
    expected = backtest(case, live.rows, rules, stop_at=BARS)
    print("\n" + table(f"{exchange} {name}", [("backtest", expected), ("paper", paper), ("live", live)]))
    assert rules.funding_payments, "a position must be held across a funding time"
    sells = [r for r in expected.records if r.side == "Sell" and r.status == "Completed"]
    assert sells and expected.strategy.trades, "the strategy must sell short for the comparison to mean anything"
    if name == "reversal":
        assert any(abs(r.size) == pytest.approx(2 * SIZE) for r in expected.records), "a reversal in one order"
    for result in (paper, live):  # the same orders and trades; the value below
        assert_no_silent_refusals(result)
        assert [r.key() for r in result.records] == [r.key() for r in expected.records], result.mode
        assert [(r.size, r.price) for r in result.records] == [(r.size, r.price) for r in expected.records]
        assert len(result.strategy.trades) == len(expected.strategy.trades), result.mode
        for got, want in zip(result.strategy.trades, expected.strategy.trades, strict=True):
            assert (got[0], got[3]) == (want[0], want[3]) and got[1:3] == pytest.approx(want[1:3], abs=1e-6)
    assert paper.value == pytest.approx(expected.value, abs=0.01)
    # A backtest settles the funding due at T with the first bar that ends after T: a payment at
    # the last bar's close (the exchange's, which the live ledger has) never reaches it.
    last_close = live.rows[SYMBOL][-1][0] + HOUR
    funded = live.strategy.broker.funding_payments
    late = [p for p in funded if p.time >= last_close]
    settled = [p for p in funded if p.time < last_close]
    assert [(p.time, p.size) for p in settled] == [(p.time, p.size) for p in rules.funding_payments]
    assert [p.amount for p in settled] == pytest.approx([p.amount for p in rules.funding_payments], abs=1e-5)
    assert live.value == pytest.approx(expected.value + sum(p.amount for p in late), abs=0.01)
    assert live.value != pytest.approx(CASH, abs=1.0), "the run must have moved the account"
