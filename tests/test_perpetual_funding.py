"""The backtest's funding model against the exchange's own settlements: a short held on the
emulator (Binance USDⓈ-M, Bybit linear) across funding times is paid what the exchange computes
at its mark price. The model pays at the open of the bar starting at the funding time; the
emulator's mark price at that instant is that price, so the two agree to the cent. A real
venue's mark price differs from the open by a little: the stated difference per payment is
|size| x |mark - open| x |rate| (docs/futures.md)."""

from __future__ import annotations

import pytest
from livetest import candles
from paritylib import HOUR, perpetual_replay

from realtrade_core.backtest import PerpetualCommission
from realtrade_core.perpetual import FundingRates

SYMBOL = "BTC/USDT:USDT"
SIZE = 0.03


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_the_backtest_funding_is_within_its_stated_difference_of_the_exchanges(exchange):
    with perpetual_replay(exchange) as (emulator, store):
        store.start()
        store.client.create_order(SYMBOL, "market", "sell", SIZE)  # a short, through unmodified ccxt
        opened = emulator.engine.now()
        assert float(emulator.position(SYMBOL).size) == -SIZE
        emulator.step(24)  # a day: three funding times
        settled = emulator.incomes(SYMBOL, "FUNDING_FEE")
        rows = {r[0]: r for r in candles(emulator, "BTC/USDT", opened - 2 * HOUR, emulator.engine.now(), HOUR)}
        published = store.funding_rates(SYMBOL, opened)

    assert len(settled) == 3 and len(published) == 3
    for income in settled:
        rate = float(income.rate)
        assert published.due(income.time, income.time + 1) == [(income.time, rate)]  # what a backtest reads
        bar = rows[income.time]  # the hour that opens at the funding time
        model = PerpetualCommission().funding_payment(-SIZE, bar[1], rate)  # the backtest's: at the open
        assert float(income.amount) == pytest.approx(model, abs=1e-8)
    assert isinstance(published, FundingRates)
