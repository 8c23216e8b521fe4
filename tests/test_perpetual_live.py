"""Live trading of USDT perpetuals on the emulator with real ccxt (binanceusdm, bybit linear), real
sockets and threads: the account set up at start (one-way mode, margin mode, leverage), short
positions and reduce-only exits, the ledger's cash and value, the exchange's position and its
liquidation price, the exchange's position as the ledger's ceiling, funding from the private
stream, and a restart that takes the position back."""

from __future__ import annotations

from decimal import Decimal

import backtrader as bt
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


def short(r: LiveRun, size: float = SIZE):
    order = r.do(lambda s: s.sell(size=size))
    r.until(lambda: r.strategy.statuses(order)[-1:] == ["Completed"], "the short to fill")
    return order


def test_the_exchanges_smaller_position_is_the_ledgers_ceiling(exchange, emulator, store, tmp_path):
    with run(emulator, store, tmp_path) as r:
        short(r)
        # Someone closes part of the account's short by hand: the strategy's position shrinks to it.
        store.client.create_order(SYMBOL, "market", "buy", 0.004, None, {"reduceOnly": True})
        r.until(lambda: r.broker.getposition(r.cerebro.datas[0]).size == pytest.approx(-0.006), "the ledger to shrink")
        # The strategy hears of it with cerebro's next pass (notify_store), not at once.
        r.wait(lambda: any("shrinks to -0.006" in m for m in r.strategy.store_messages), "the shrink reported")
        r.wait(lambda: any("did not place" in m for m in r.strategy.store_messages), "the holder reported")
        assert engine_position(emulator) == Decimal("-0.006")
        buy = r.do(lambda s: s.close())  # closes what is left of the strategy's short, no more
        r.until(lambda: r.strategy.statuses(buy)[-1:] == ["Completed"], "the buy back to fill")
        assert buy.executed.size == pytest.approx(0.006) and engine_position(emulator) == 0


def test_a_liquidation_on_the_exchange_leaves_the_ledger_flat_and_says_so(exchange, emulator, store, tmp_path):
    with run(emulator, store, tmp_path, leverage=5, margin_mode="isolated") as r:
        short(r)
        position = r.do(lambda s: s.broker.exchange_position(s.data))
        assert position.liquidation_price > position.entry_price and position.margin_mode in ("isolated", None)
        emulator.set_mark_price(SYMBOL, position.liquidation_price * 1.01)  # the mark crosses it: liquidated
        assert engine_position(emulator) == 0
        r.until(lambda: r.broker.getposition(r.cerebro.datas[0]).size == 0, "the ledger to follow the exchange")
        r.wait(lambda: any("position shrinks to 0" in m for m in r.strategy.store_messages), "the shrink reported")
        # The short was closed at the liquidation's fill price: that loss is the ledger's.
        (closing,) = [f for f in emulator.engine.fills(emulator.api_key) if f.client_order_id.startswith("autoclose-")]
        (opening,) = [f for f in emulator.engine.fills(emulator.api_key) if f is not closing]
        loss = -opening.amount * (closing.price - opening.price)
        assert r.broker.live.ledger_cash == Decimal(str(CASH)) - opening.fee + loss


def test_a_liquidation_heard_after_its_position_is_booked_at_the_liquidations_price(exchange, emulator, store,
                                                                                    tmp_path):  # fmt: skip
    """The position push can come before the exchange's closing fill: the ledger shrinks at the
    last close for the moment, and the fill, when it comes, books the difference."""
    from realtrade_core.events import PositionUpdate

    with run(emulator, store, tmp_path, leverage=5, margin_mode="isolated") as r:
        short(r)
        position = r.do(lambda s: s.broker.exchange_position(s.data))
        flat = PositionUpdate(exchange, r.broker.live.books[SYMBOL].symbol, Decimal(0), None, None, None,
                              emulator.engine.now())  # fmt: skip
        r.do(lambda s: s.broker.live.apply(flat))  # the push first...
        assert r.broker.getposition(r.cerebro.datas[0]).size == 0
        emulator.set_mark_price(SYMBOL, position.liquidation_price * 1.01)  # ...then the liquidation's fill
        r.until(lambda: any("the exchange closed the position at" in m for m in r.strategy.store_messages),
                "the closing fill to be booked")  # fmt: skip
        (closing,) = [f for f in emulator.engine.fills(emulator.api_key) if f.client_order_id.startswith("autoclose-")]
        (opening,) = [f for f in emulator.engine.fills(emulator.api_key) if f is not closing]
        loss = -opening.amount * (closing.price - opening.price)
        assert r.broker.live.ledger_cash == Decimal(str(CASH)) - opening.fee + loss


def test_a_restart_takes_the_short_back_checked_against_the_exchange(exchange, emulator, store, tmp_path):
    with run(emulator, store, tmp_path) as first:
        short(first, 0.02)
        resting = first.do(lambda s: s.sell(size=SIZE, exectype=bt.Order.Limit, price=float(s.data.close[0]) * 1.5))
        wallet = first.broker.live.ledger_cash
    assert wallet < Decimal(str(CASH))  # the fee
    store.client.create_order(SYMBOL, "market", "buy", 0.005, None, {"reduceOnly": True})  # by hand, while down
    with run(emulator, store, tmp_path) as again:
        (reattached,) = again.strategy.first_open
        assert reattached.info.reattached and reattached.info.client_order_id == resting.info.client_order_id
        assert again.strategy.first_position == pytest.approx(-0.015)
        assert any("position shrinks to -0.015" in m for m in again.strategy.store_messages)
        assert again.broker.live.ledger_cash == wallet
        buy = again.do(lambda s: s.close())
        again.until(lambda: len(again.strategy.trades) == 1, "the restored trade to close")
        assert buy.info.get("reduce_only") is True and engine_position(emulator) == 0


def test_funding_from_the_stream_moves_the_ledgers_cash_and_is_reported(exchange, tmp_path):
    from paritylib import fixture_path

    data = {SYMBOL: str(fixture_path("BTC/USDT"))}
    with Emulator(exchange, symbols=(SYMBOL,), data=data, interval="1h", speed=None, history=30,
                  balances={"USDT": 5_000}) as emulator:  # fmt: skip
        store = new_store(exchange, emulator, market_type="perpetual")
        try:
            with run(emulator, store, tmp_path, timeframe="1h") as r:
                short(r, 0.02)
                incomes = lambda kind: emulator.engine.incomes(emulator.api_key, MARKET_ID, kind)  # noqa: E731
                r.until(lambda: incomes("FUNDING_FEE") and r.broker.funding_payments, "a funding payment", steps=10)
                (income,) = incomes("FUNDING_FEE")
                (payment,) = r.broker.funding_payments
                assert payment.amount == pytest.approx(float(income.amount), abs=1e-12)
                assert payment.size == pytest.approx(-0.02) and payment.rate == pytest.approx(float(income.rate))
                verb = "received" if income.amount > 0 else "paid"
                r.wait(lambda: any(m.startswith(f"funding: {SYMBOL} {verb}") for m in r.strategy.store_messages),
                       "the funding reported")  # fmt: skip
                # The ledger's wallet: its cash, less the fee, plus the funding; value and cash as paper's.
                fee = sum(i.amount for i in incomes("COMMISSION"))
                live = r.broker.live
                assert live.ledger_cash == Decimal(str(CASH)) + fee + income.amount
                (position,) = emulator.engine.positions(emulator.api_key, MARKET_ID)
                value, cash, close = r.do(lambda s: (s.broker.getvalue(), s.broker.getcash(), s.data.close[0]))
                unrealised = position.size * (Decimal(str(close)) - position.entry_price)
                margin = abs(position.size) * position.entry_price / 3
                assert value == pytest.approx(float(live.ledger_cash + unrealised), abs=1e-9)
                assert cash == pytest.approx(float(live.ledger_cash + unrealised - margin), abs=1e-9)
        finally:
            store.stop()


def test_an_order_the_ledgers_free_cash_cannot_margin_ends_margin_and_is_not_sent(exchange, emulator, store, tmp_path):
    with run(emulator, store, tmp_path, cash=100.0, leverage=1) as r:
        order = r.do(lambda s: s.sell(size=SIZE))  # about 300 USDT of contracts at 1x on 100 of cash
        r.until(lambda: r.strategy.statuses(order)[-1:] == ["Margin"], "the refusal to reach the strategy")
        assert "cannot margin 0.01 BTC/USDT:USDT" in r.strategy.last(order).reason
        assert emulator.engine.all_orders(emulator.api_key) == [] and engine_position(emulator) == 0


def bad_contract_messages(exchange: str, now: int) -> list[tuple[str, dict]]:
    """(kind, message) of account messages whose fields cannot be read as they stand."""
    if exchange == "binance":
        order = {"s": "BTCUSDT", "c": "rt-bad", "S": "SELL", "o": "MARKET", "q": "0.01", "p": "0", "ap": "0",
                 "sp": "0", "x": "TRADE", "X": "FILLED", "i": 7, "l": "0.01", "z": "0.01", "L": "30000", "n": "0.1",
                 "N": "USDT", "T": now, "t": 9, "m": False, "ot": "MARKET"}  # fmt: skip
        position = {"s": "BTCUSDT", "pa": "-0.01", "ep": "30000", "up": "0", "ps": "BOTH"}
        return [
            ("order", {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {**order, "X": "SOMETIMES"}}),
            ("order", {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {**order, "L": 30000.5}}),
            (
                "balance",
                {
                    "e": "ACCOUNT_UPDATE",
                    "E": now,
                    "T": now,
                    "a": {"m": "ORDER", "B": [], "P": [{**position, "pa": None}]},
                },
            ),
            (
                "funding",
                {
                    "e": "ACCOUNT_UPDATE",
                    "E": now,
                    "T": now,
                    "a": {"m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": "1", "cw": "1", "bc": "nan"}], "P": [position]},
                },
            ),
        ]
    execution = {"category": "linear", "symbol": "BTCUSDT", "execId": "f-1", "orderId": "", "orderLinkId": "",
                 "side": "Sell", "execType": "Funding", "execFee": "0.1", "feeCurrency": "USDT", "execQty": "0.01",
                 "execPrice": "30000", "feeRate": "0.0001", "execTime": str(now)}  # fmt: skip
    position = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "size": "0.01", "positionIdx": 0,
                "avgPrice": "30000", "unrealisedPnl": "0", "liqPrice": "", "updatedTime": str(now)}  # fmt: skip
    return [
        ("fill", {"topic": "execution", "creationTime": now, "data": [{**execution, "execFee": "a lot"}]}),
        ("fill", {"topic": "execution", "creationTime": now, "data": [{**execution, "execTime": "yesterday"}]}),
        ("position", {"topic": "position", "creationTime": now, "data": [{**position, "size": 0.01}]}),
        ("position", {"topic": "position", "creationTime": now, "data": [{**position, "avgPrice": "-5"}]}),
    ]


def test_bad_contract_account_messages_are_quarantined_and_good_ones_still_arrive(exchange, emulator, store):
    from test_quarantine import account_quarantine

    from realtrade_core.events import PositionUpdate

    def good():
        store.client.create_order(SYMBOL, "market", "sell", SIZE)
        return lambda e: isinstance(e, PositionUpdate) and e.size == Decimal("-0.01")

    account_quarantine(store, emulator, bad_contract_messages(exchange, emulator.engine.now()), good)


def test_a_stop_covers_the_short_reduce_only_and_a_resting_stop_is_reattached_and_cancelled(
    exchange, emulator, store, tmp_path
):
    with run(emulator, store, tmp_path) as first:
        short(first)
        far = first.do(lambda s: s.buy(size=SIZE, exectype=bt.Order.Stop, price=float(s.data.close[0]) * 1.5))
        first.until(lambda: first.strategy.statuses(far)[-1:] == ["Accepted"], "the stop to rest")
        assert far.info.reduce_only is True
    with run(emulator, store, tmp_path) as again:
        (stop,) = again.strategy.first_open  # the untriggered stop, found among the conditional orders
        assert stop.info.reattached and stop.info.client_order_id == far.info.client_order_id
        again.do(lambda s: s.cancel(stop))
        again.until(lambda: again.strategy.statuses(stop)[-1:] == ["Canceled"], "the stop's cancel")
        near = again.do(lambda s: s.buy(size=SIZE, exectype=bt.Order.Stop, price=float(s.data.close[0]) * 1.0005))
        again.until(lambda: again.strategy.statuses(near)[-1:] == ["Completed"], "the stop to trigger and fill", 200)
        assert near.info.reduce_only is True and engine_position(emulator) == 0
        assert near.executed.price >= near.created.price and len(again.strategy.trades) == 1


@pytest.mark.parametrize(("side", "leg"), [("long", "take_profit"), ("short", "take_profit"), ("long", "stop"),
                                           ("short", "stop")])  # fmt: skip
def test_a_brackets_exit_closes_the_position_reduce_only_and_cancels_the_other(
    exchange, emulator, store, tmp_path, side, leg
):
    near, far = 0.0005, 0.5  # the exit the test waits for is near the price, the other far away
    stop_off, limit_off = (far, near) if leg == "take_profit" else (near, far)

    def place(s):
        px = float(s.data.close[0])
        if side == "long":
            orders = s.buy_bracket(size=SIZE, exectype=bt.Order.Market, stopprice=px * (1 - stop_off),
                                   limitprice=px * (1 + limit_off))  # fmt: skip
        else:
            orders = s.sell_bracket(size=SIZE, exectype=bt.Order.Market, stopprice=px * (1 + stop_off),
                                    limitprice=px * (1 - limit_off))  # fmt: skip
        return tuple(orders)

    with run(emulator, store, tmp_path) as r:
        parent, stop, limit = r.do(place)
        winner, loser = (limit, stop) if leg == "take_profit" else (stop, limit)
        r.until(lambda: r.strategy.statuses(winner)[-1:] == ["Completed"], f"the {leg}", 200)
        r.until(lambda: r.strategy.statuses(loser)[-1:] == ["Canceled"], "the other exit's cancel")
        assert r.strategy.statuses(parent)[-1] == "Completed" and winner.info.reduce_only is True
        assert engine_position(emulator) == 0 and not emulator.engine.open_orders(emulator.api_key)
        assert len(r.strategy.trades) == 1 and r.broker.getposition(r.cerebro.datas[0]).size == 0


def test_oco_bracket_exits_are_refused_on_a_perpetual_store(exchange, store):
    assert store.getbroker(mode="live").bracket_exits == "held"
    with pytest.raises(ConfigurationError, match="perpetual contracts do not have; use 'held' or 'conditional'"):
        store.getbroker(mode="live", bracket_exits="oco")
