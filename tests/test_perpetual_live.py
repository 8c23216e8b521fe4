"""Live trading of USDT perpetuals on the emulator with real ccxt (binanceusdm, bybit linear), real
sockets and threads: the account set up at start (one-way mode, margin mode, leverage), short
positions and reduce-only exits, the ledger's cash and value, the exchange's position and its
liquidation price, the exchange's position as the ledger's ceiling, funding from the private
stream, and a restart that takes the position back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_broker_live import LiveRun, new_store

from realtrade_core import ConfigurationError
from realtrade_core.emulator.server import Emulator

SYMBOL = "BTC/USDT:USDT"
MARKET_ID = "BTCUSDT"
CASH = 1_000.0
SIZE = 0.01


@pytest.fixture(params=["binance", "bybit"])
def exchange(request) -> str:
    return request.param


@pytest.fixture
def emulator(exchange):
    with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=50, seed=5, balances={"USDT": 5_000}) as emu:
        yield emu


@pytest.fixture
def store(exchange, emulator):
    store = new_store(exchange, emulator, market_type="perpetual")
    yield store
    store.stop()


def run(emulator, store, tmp_path, **options) -> LiveRun:
    options = {"journal": str(tmp_path / "journal.sqlite3"), "cash": CASH, "leverage": 3, "fill_grace": 1.0, **options}
    return LiveRun(emulator, store, symbol=SYMBOL, **options)


def engine_position(emulator) -> Decimal:
    return next((p.size for p in emulator.engine.positions(emulator.api_key) if p.symbol == MARKET_ID), Decimal(0))


def test_a_sell_without_a_position_opens_a_short_and_the_buy_back_goes_reduce_only(exchange, emulator, store, tmp_path):
    with run(emulator, store, tmp_path) as r:
        sell = r.do(lambda s: s.sell(size=SIZE))
        r.until(lambda: r.strategy.statuses(sell)[-1:] == ["Completed"], "the short to fill")
        assert engine_position(emulator) == Decimal("-0.01")
        assert r.broker.getposition(r.cerebro.datas[0]).size == pytest.approx(-SIZE)
        position = r.do(lambda s: s.broker.exchange_position(s.data))
        assert position.size == pytest.approx(-SIZE) and position.liquidation_price > position.entry_price
        buy = r.do(lambda s: s.close())
        r.until(lambda: r.strategy.statuses(buy)[-1:] == ["Completed"], "the buy back to fill")
        assert buy.info.get("reduce_only") is True and sell.info.get("reduce_only") is False
        assert engine_position(emulator) == 0
        assert len(r.strategy.trades) == 1


@pytest.mark.parametrize(("mode", "leverage"), [("cross", 3), ("isolated", 2)])
def test_leverage_and_margin_mode_are_set_on_the_exchange_at_start(exchange, emulator, store, tmp_path, mode, leverage):
    with run(emulator, store, tmp_path, leverage=leverage, margin_mode=mode):
        assert emulator.engine.leverage(emulator.api_key, MARKET_ID) == leverage
        assert emulator.engine.margin_mode(emulator.api_key, MARKET_ID) == mode


def test_leverage_above_the_cap_or_an_unknown_margin_mode_is_refused_before_anything_is_sent(exchange, emulator, store):
    before = emulator.engine.leverage(emulator.api_key, MARKET_ID)
    with pytest.raises(ConfigurationError, match="above the cap of 5x: nothing was sent"):
        store.getbroker(mode="live", leverage=10)
    with pytest.raises(ConfigurationError, match="margin_mode must be 'cross'"):
        store.getbroker(mode="live", margin_mode="portfolio")
    assert emulator.engine.leverage(emulator.api_key, MARKET_ID) == before


def test_an_account_in_hedge_mode_is_refused_with_how_to_switch_to_one_way(exchange, emulator, store, tmp_path):
    store.start()
    store.client.set_position_mode(True, SYMBOL)
    refused = run(emulator, store, tmp_path)
    refused.thread.start()
    assert refused.done.wait(30), "cerebro.run() must end"
    assert isinstance(refused.error, ConfigurationError)
    message = str(refused.error)
    assert "hedge (dual-side) position mode" in message and "one-way mode only" in message
    assert ("positionSide/dual" if exchange == "binance" else "switch-mode") in message
    assert emulator.engine.all_orders(emulator.api_key) == []
    store.client.set_position_mode(False, SYMBOL)  # one-way again: a live broker starts
    with run(emulator, store, tmp_path) as r:
        assert r.broker.live is not None
