"""The live broker against the emulator: orders, fills, fees, unknown outcomes, restarts.

Every test runs real ccxt, real sockets and real threads against an in-process emulator with a
manual clock, for each exchange plugin. Cerebro runs in a background thread; the test thread
hands actions to the strategy (run in cerebro's thread at the next bar), steps the emulator and
waits, bounded, for what the strategy and the exchange must show. The engine's own records
(``engine.fills``, ``engine.all_orders``, ``engine.balances``) are the truth compared against.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import backtrader as bt
import pytest

from realtrade_core import ConfigurationError, Veto, hookimpl
from realtrade_core.emulator.model import MarketSpec
from realtrade_core.emulator.server import Emulator
from realtrade_core.journal import Journal
from realtrade_core.plugins import get_plugin_host, load_exchange
from realtrade_core.testing import live as live_harness
from realtrade_core.testing.live import Note, Trader

EXCHANGES = ["binance", "bybit"]
SYMBOL = "BTC/USDT"
MARKET_ID = "BTCUSDT"
TICK = Decimal("0.01")
BALANCES = {"USDT": 10_000, "BTC": 0}


class LiveRun(live_harness.LiveRun):
    """The suite's harness on :data:`SYMBOL` unless told otherwise."""

    def __init__(self, emulator: Emulator, store: Any, symbol: str = SYMBOL, timeframe: str = "1m",
                 **options: Any) -> None:  # fmt: skip
        super().__init__(emulator, store, symbol, timeframe, **options)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=EXCHANGES)
def exchange(request) -> str:
    return request.param


def make_emulator(exchange: str, **options: Any) -> Emulator:
    options.setdefault("balances", BALANCES)
    return Emulator(exchange, symbols=(SYMBOL,), speed=None, history=50, seed=5, **options)


@pytest.fixture
def emulator(exchange):
    with make_emulator(exchange) as emu:
        yield emu


def new_store(exchange: str, emulator: Emulator, **options: Any) -> Any:
    """A store of its own (not the process cache) on ``emulator``; ccxt gives up after 2 s.

    ccxt's own throttle is off: it spaces every request 50-100 ms apart (for an exchange's
    limits, which this emulator does not enforce), and no test here is about that pacing;
    rate limits the tests are about are the emulator's 429/418 answers."""
    spec = load_exchange(exchange)
    config = {"timeout": 2000, "enableRateLimit": False}
    return spec.store(venue="emulator", emulator=emulator, spec=spec, ccxt_config=config, **options)


@pytest.fixture
def store(exchange, emulator):
    store = new_store(exchange, emulator)
    yield store
    store.stop()


@pytest.fixture
def journal_path(tmp_path):
    return str(tmp_path / "journal.sqlite3")


def live(emulator, store, journal_path, **options) -> LiveRun:
    options = {"journal": journal_path, "unknown_outcome_window": 0.3, "fill_grace": 1.0, **options}
    return LiveRun(emulator, store, **options)


def last(emulator) -> Decimal:
    return emulator.engine.last_price(MARKET_ID)


def engine_fills(emulator, client_order_id: str) -> list:
    return [f for f in emulator.engine.fills(emulator.api_key) if f.client_order_id == client_order_id]


def balance(emulator, asset: str) -> tuple[Decimal, Decimal]:
    for b in emulator.engine.balances(emulator.api_key):
        if b.asset == asset:
            return b.free, b.locked
    return Decimal(0), Decimal(0)


def quote_commission(fill) -> float:
    """The engine's fee of a fill in quote terms (buys pay it in the base asset)."""
    return float(fill.fee * fill.price) if fill.fee_asset == "BTC" else float(fill.fee)


def assert_matches_engine(note: Note, fills: list) -> None:
    """The executed size, average price and commission of an order equal the engine's fills."""
    assert fills, "the engine has no fill for the order"
    size = sum(f.amount for f in fills)
    assert abs(note.size) == pytest.approx(float(size), abs=1e-12)
    assert note.price == pytest.approx(float(sum(f.amount * f.price for f in fills) / size), rel=1e-12)
    assert note.comm == pytest.approx(sum(quote_commission(f) for f in fills), rel=1e-9, abs=1e-12)
    assert note.price > 0 and note.comm > 0


# --- orders -----------------------------------------------------------------------------------


def test_market_order_completes_with_the_exchange_fill_price_size_and_fee(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        order = run.do(lambda s: s.buy(size=0.01))
        s = run.strategy
        run.until(lambda: "Completed" in s.statuses(order), "the market order completing")
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
        cid = order.info.client_order_id
        assert_matches_engine(s.last(order), engine_fills(emulator, cid))
        # cash and value follow the account
        cash, value, close = run.do(lambda s: (s.broker.getcash(), s.broker.getvalue(), s.data.close[0]))
        free, locked = balance(emulator, "USDT")
        btc = sum(balance(emulator, "BTC"))
        assert cash == pytest.approx(float(free))
        assert value == pytest.approx(float(free + locked) + float(btc) * close)
        journal = Journal(journal_path)
        recorded = journal.get_order(cid)
        assert recorded.status == "filled" and recorded.order_id == order.info.order_id
        assert [f.trade_id for f in journal.fills(client_order_id=cid)] == [
            str(f.trade_id) for f in engine_fills(emulator, cid)
        ]
        journal.close()


def test_answers_and_fills_reach_notify_order_without_waiting_for_a_bar(exchange, emulator, store, journal_path):
    """A live feed waits up to ``qcheck`` (0.5 s by default) for a bar before cerebro runs a pass
    of its broker. The broker's answers and fills wake that wait, so with ``quicknotify`` (else
    backtrader holds notifications for the next bar) ``notify_order`` comes at once. Here
    ``qcheck`` is an hour and the clock stands still after the order's bar: without the wake the
    order would sit Submitted until the next candle."""
    with live(emulator, store, journal_path, qcheck=3600, quicknotify=True) as run:
        bars = run.strategy.bars
        order = run.do(lambda s: s.buy(size=0.01))
        s = run.strategy
        run.wait(lambda: "Completed" in s.statuses(order), "the fill without another bar")
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
        assert s.bars == bars + 1  # the order's own bar only
        assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))


def test_a_fee_in_the_coin_is_commission_and_the_exit_sells_what_is_held(exchange, emulator, store, journal_path):
    """The exchange takes a buy's fee in BTC. As in a backtest the position counts the filled
    0.01 and the fee is commission; ``close()`` sells what the account holds for the position,
    which closes it, and says so. The ledger's cash equals the account's to the last decimal."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        buy = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(buy), "the buy completing")
        (bought,) = engine_fills(emulator, buy.info.client_order_id)
        btc = sum(balance(emulator, "BTC"))
        assert bought.fee_asset == "BTC" and btc == Decimal("0.01") - bought.fee
        assert run.broker.getposition(s.data).size == 0.01  # filled amounts, as a backtest counts
        assert s.last(buy).comm == pytest.approx(float(bought.fee * bought.price), rel=1e-12)
        sell = run.do(lambda s: s.close())
        run.until(lambda: "Completed" in s.statuses(sell) or "Margin" in s.statuses(sell), "the close")
        assert s.statuses(sell)[-1] == "Completed", s.last(sell)
        assert sell.info.fee_adjusted and sell.info.sent == float(btc), dict(sell.info)
        assert sum(balance(emulator, "BTC")) == 0
        assert run.broker.getposition(s.data).size == 0
        (sold,) = engine_fills(emulator, sell.info.client_order_id)
        assert sold.amount == btc
        run.until(lambda: s.trades, "notify_trade")
        pnl, pnlcomm = s.trades[0]
        expected = 0.01 * float(sold.price - bought.price)  # a backtest's pnl for 0.01
        assert pnl == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert pnlcomm == pytest.approx(expected - quote_commission(bought) - quote_commission(sold), abs=1e-9)
        # The account made the trade's pnlcomm, but for the fee coins' move between buy and sell.
        usdt = sum(balance(emulator, "USDT"))
        assert float(usdt) - 10_000 == pytest.approx(pnlcomm + float(bought.fee * (bought.price - sold.price)),
                                                     abs=1e-8)  # fmt: skip
        assert run.broker.live.ledger_cash == usdt
        assert run.broker.getcash() == float(usdt)


def test_limit_order_rests_and_fills_at_its_price(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        order = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=float(last(emulator) - 5 * TICK)))
        run.until(lambda: "Completed" in s.statuses(order), "the limit order filling")
        fills = engine_fills(emulator, order.info.client_order_id)
        assert all(f.is_maker and f.price == Decimal(str(order.created.price)) for f in fills)
        assert_matches_engine(s.last(order), fills)
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]


def test_stop_and_stop_limit_orders_trigger_and_fill(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            trigger = float(last(emulator) + 3 * TICK)
            stop = s.buy(size=0.01, exectype=bt.Order.Stop, price=trigger)
            stop_limit = s.buy(size=0.01, exectype=bt.Order.StopLimit, price=trigger, plimit=trigger * 1.01)
            return stop, stop_limit

        stop, stop_limit = run.do(place)
        run.until(lambda: all("Completed" in s.statuses(o) for o in (stop, stop_limit)), "both stops filling")
        types = {o.order_id: o.type.value for o in emulator.engine.all_orders(emulator.api_key)}
        for order, kind in ((stop, "stop_market"), (stop_limit, "stop_limit")):
            fills = engine_fills(emulator, order.info.client_order_id)
            assert types[fills[0].order_id] == kind
            assert_matches_engine(s.last(order), fills)
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]


def test_partial_fills_report_partial_then_completed_with_cumulative_sizes(exchange, tmp_path):
    spec = MarketSpec(
        MARKET_ID, "BTC", "USDT", step_size=Decimal("0.000001"), min_amount=Decimal("0.000001"),
        max_fill_per_step=Decimal("0.004"),
    )  # fmt: skip
    with make_emulator(exchange, markets=[spec]) as emulator:
        store = new_store(exchange, emulator)
        try:
            with live(emulator, store, str(tmp_path / "j.sqlite3")) as run:
                s = run.strategy
                order = run.do(
                    lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=float(last(emulator) - 2 * TICK))
                )
                run.until(lambda: "Completed" in s.statuses(order), "the last partial fill")
                fills = engine_fills(emulator, order.info.client_order_id)
                assert [f.amount for f in fills] == [Decimal("0.004"), Decimal("0.004"), Decimal("0.002")]
                notes = [n for n in s.notes if n.ref == order.ref]
                assert [n.status for n in notes] == ["Submitted", "Accepted", "Partial", "Partial", "Completed"]
                assert [n.size for n in notes[2:]] == pytest.approx([0.004, 0.008, 0.01])
                assert_matches_engine(notes[-1], fills)
        finally:
            store.stop()


def test_cancel_of_resting_limit_and_stop_orders_is_confirmed_by_the_exchange(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            far = last(emulator)
            limit = s.buy(size=0.01, exectype=bt.Order.Limit, price=float((far * Decimal("0.5")).quantize(TICK)))
            stop = s.buy(size=0.01, exectype=bt.Order.Stop, price=float((far * 2).quantize(TICK)))
            return limit, stop

        orders = run.do(place)
        assert len(emulator.engine.open_orders(emulator.api_key)) == 2
        run.do(lambda s: [s.cancel(o) for o in orders])
        run.until(lambda: all("Canceled" in s.statuses(o) for o in orders), "both cancels")
        assert {o.status.value for o in emulator.engine.all_orders(emulator.api_key)} == {"canceled"}
        run.wait(lambda: run.broker.getcash() == 10_000, "the locked USDT coming back")
        assert not run.broker.get_orders_open()


def test_the_ledgers_cash_shrinks_to_the_account_but_not_with_a_deposit(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        assert run.broker.getcash() == 10_000
        emulator.engine.set_balance(emulator.api_key, "USDT", Decimal("7500.5"))  # e.g. a withdrawal
        run.wait(lambda: run.broker.getcash() == 7500.5, "the balance update")
        run.wait(lambda: any("shrinks" in m for m in run.strategy.store_messages), "the strategy told")
        emulator.engine.set_balance(emulator.api_key, "USDT", Decimal("20000"))  # a deposit: not the strategy's
        run.wait(lambda: run.broker.live.balances["USDT"][0] == 20000, "the broker to see the deposit")
        run.step()
        assert run.broker.getcash() == 7500.5


def test_without_a_private_stream_orders_fills_and_balances_are_polled(exchange, emulator, journal_path):
    from realtrade_core.store import get_store

    store = get_store(f"ccxt:{exchange}", "emulator", emulator=emulator)  # the generic adapter: REST only
    try:
        run = live(emulator, store, journal_path, poll_interval=0.2, balance_refresh=0.3)
        run.cerebro.datas[0].p.poll_interval = 0.05
        with run:
            s = run.strategy
            order = run.do(lambda s: s.buy(size=0.01))
            run.until(lambda: "Completed" in s.statuses(order), "the polled fill", steps=10)
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
            assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))
            emulator.engine.set_balance(emulator.api_key, "USDT", Decimal(5000))
            run.wait(lambda: run.broker.getcash() == 5000, "the REST balance refresh")
    finally:
        store.stop()


# --- unknown outcomes ----------------------------------------------------------------------------


def order_path(emulator) -> str:
    """The path that creates one order (Binance also creates OCO lists on another)."""
    return min((path for _, path in emulator.order_paths), key=len)


def test_submit_timeout_is_resolved_by_lookup_without_a_second_order(exchange, emulator, store, journal_path, caplog):
    caplog.set_level(logging.DEBUG, logger="realtrade_core.live")
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        emulator.timeout_next_order()  # the engine executes it, the answer never comes
        order = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(order), "the order completing", steps=20)
        run.wait(lambda: order.info.get("order_id"), "the lookup finding the order")
        run.step(2)
        orders = emulator.engine.all_orders(emulator.api_key)
        assert [o.client_order_id for o in orders] == [order.info.client_order_id]
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
        assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))
        # the stream's fill came long before any answer, and was matched by client order id
        assert any("arrived before the REST acknowledgement" in r.getMessage() for r in caplog.records)


def test_submit_5xx_is_looked_up_then_sent_once(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        emulator.fail_http(503, path_prefix=order_path(emulator))  # refused before the engine saw it
        order = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(order), "the order completing", steps=20)
        run.step(2)
        orders = emulator.engine.all_orders(emulator.api_key)
        assert [o.client_order_id for o in orders] == [order.info.client_order_id]
        assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))


def test_rate_limited_submit_waits_then_sends_the_order_once(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        emulator.fail_http(429, count=2, retry_after=1, path_prefix=order_path(emulator))  # refused, not executed
        order = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(order), "the order completing", steps=20)
        orders = emulator.engine.all_orders(emulator.api_key)
        assert [o.client_order_id for o in orders] == [order.info.client_order_id]
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]


def test_rate_limited_read_waits_as_long_as_retry_after_asks(exchange, emulator, store):
    from realtrade_core.live import ExchangeIO

    store.start()
    broker = store.getbroker(mode="live")
    io = ExchangeIO(broker, threading.Event())
    path = {"binance": "/api/v3/account", "bybit": "/v5/account/wallet-balance"}[exchange]
    emulator.fail_http(429, retry_after=1, path_prefix=path)
    started = time.monotonic()
    balances = io.balances()
    assert time.monotonic() - started >= 1.0
    assert balances["USDT"] == (Decimal(10_000), Decimal(0))


# --- restart ---------------------------------------------------------------------------------------


def test_restart_sees_the_position_reattaches_the_open_order_and_applies_the_offline_fill_once(
    exchange, emulator, journal_path
):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            buy = run.do(lambda s: s.buy(size=0.02))
            run.until(lambda: "Completed" in s.statuses(buy), "the buy")

            def place(s: Trader) -> tuple:
                near = s.sell(size=0.01, exectype=bt.Order.Limit, price=float(last(emulator) + 2 * TICK))
                far = s.sell(size=0.005, exectype=bt.Order.Limit, price=float(last(emulator) * 2))
                return near, far

            # Placed, then the process stops before the market moves.
            near, far = run.do(place)
            run.wait(lambda: len(emulator.engine.open_orders(emulator.api_key)) == 2, "both orders resting")
        near_cid, far_cid = near.info.client_order_id, far.info.client_order_id
    finally:
        store.stop()

    # While "down": the near order fills.
    for _ in range(60):
        if engine_fills(emulator, near_cid):
            break
        emulator.step(1)
    offline = engine_fills(emulator, near_cid)
    assert offline and sum(f.amount for f in offline) == Decimal("0.01")
    # Someone else places an order on the same account meanwhile.
    price = (last(emulator) * Decimal("0.5")).quantize(TICK)
    emulator.engine.place_order(emulator.api_key, MARKET_ID, "buy", "limit", Decimal("0.001"), price=price,
                                client_order_id="by-hand-1")  # fmt: skip
    btc = sum(balance(emulator, "BTC"))

    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            # Right from the first bar: the ledger as the journal left it, with the offline fill
            # (0.02 bought, 0.01 sold); the account holds that less the buy's fee in BTC.
            assert s.first_position == pytest.approx(0.01, abs=1e-12)
            assert run.broker.live.books[SYMBOL].held == btc
            (reattached,) = s.first_open
            assert reattached.info.client_order_id == far_cid and reattached.info.reattached
            assert reattached.alive() and reattached.size == pytest.approx(-0.005)
            assert any(n.client_order_id == far_cid and n.status == "Accepted" and n.reattached for n in s.notes)
            assert any(near_cid in m and "filled" in m for m in s.store_messages), s.store_messages
            assert any("not in the journal" in m for m in s.store_messages), s.store_messages
            assert all(o.info.client_order_id != "by-hand-1" for o in run.broker.get_orders_open())
            run.step(2)
            assert run.broker.getposition(s.data).size == pytest.approx(0.01, abs=1e-12)  # the offline fill once
            assert run.broker.live.books[SYMBOL].held == btc
            run.do(lambda s: s.cancel(reattached))
            run.until(lambda: any(n.client_order_id == far_cid and n.status == "Canceled" for n in s.notes), "cancel")
            statuses = {o.client_order_id: o.status.value for o in emulator.engine.all_orders(emulator.api_key)}
            assert statuses[far_cid] == "canceled" and statuses["by-hand-1"] == "new"  # not ours: left alone
    finally:
        store.stop()
    journal = Journal(journal_path)
    try:
        recorded = journal.fills(client_order_id=near_cid)
        assert sorted(f.trade_id for f in recorded) == sorted(str(f.trade_id) for f in offline)
        assert {f.source for f in recorded} == {"offline"}
        assert journal.get_order(near_cid).status == "filled"
        assert journal.get_order(far_cid).status == "canceled"
    finally:
        journal.close()


# --- validity (valid=) and stops already crossed --------------------------------------------------


def test_an_order_past_its_validity_is_cancelled_on_the_exchange_and_ends_expired(
    exchange, emulator, store, journal_path
):
    """valid=: the order rests on the exchange while a bar may fill it; when the bar before the
    first bar past ``valid`` closes it is cancelled there, and the strategy gets Expired,
    stamped with that first bar past ``valid`` (as BackBroker expires it)."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        far = float((last(emulator) * Decimal("0.5")).quantize(TICK))
        order, bar = run.do(lambda s: (s.buy(size=0.01, exectype=bt.Order.Limit, price=far, valid=timedelta(minutes=2)),
                                       s.data.datetime.datetime(0)))  # fmt: skip
        cid = order.info.client_order_id
        run.step()  # bar + 1 min: still valid, resting
        assert engine_orders(emulator)[cid].status.value == "new" and order.alive()
        run.step()  # bar + 2 min: the next bar is past valid, so the order leaves the exchange now
        run.wait(lambda: order.status == bt.Order.Expired, "the order expiring")
        assert engine_orders(emulator)[cid].status.value == "canceled"
        run.step()
        run.wait(lambda: "Expired" in s.statuses(order), "notify_order(Expired)")
        assert s.statuses(order) == ["Submitted", "Accepted", "Expired"]
        assert bt.num2date(order.executed.dt) == bar + timedelta(minutes=3)
        assert order.executed.size == 0 and not run.broker.get_orders_open()
        run.wait(lambda: run.broker.getcash() == 10_000, "the locked USDT coming back")


def test_cancelled_on_the_last_bar_it_is_valid_for_an_order_ends_canceled(exchange, emulator, store, journal_path):
    """On its last valid bar the order is already being taken off the exchange for its
    validity; the strategy cancelling it then still makes it Canceled, as in a backtest."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        far = float((last(emulator) * Decimal("0.5")).quantize(TICK))
        order = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=far, valid=timedelta(minutes=2)))
        run.step()
        assert run.do(lambda s: s.broker.cancel(order)) is True  # at bar + 2 min, its last valid bar
        run.wait(lambda: order.status == bt.Order.Canceled, "the cancel")
        run.step()
        run.wait(lambda: "Canceled" in s.statuses(order), "notify_order(Canceled)")
        assert s.statuses(order) == ["Submitted", "Accepted", "Canceled"]
        assert engine_orders(emulator)[order.info.client_order_id].status.value == "canceled"


def test_an_order_that_would_expire_before_a_bar_could_fill_it_is_never_sent(exchange, emulator, store, journal_path):
    """A validity that ends before the next bar (a timedelta shorter than a bar, or the plain
    number backtrader leaves unconverted) expires the order in a backtest before it can fill:
    live it never goes out, even when its price would fill at once."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            marketable = float(last(emulator) + 5 * TICK)
            return (s.buy(size=0.01, exectype=bt.Order.Limit, price=marketable, valid=timedelta(seconds=30)),
                    s.buy(size=0.01, exectype=bt.Order.Limit, price=marketable, valid=1))  # fmt: skip

        orders = run.do(place)
        run.step()
        run.wait(lambda: all("Expired" in s.statuses(o) for o in orders), "both orders expiring")
        for order in orders:
            assert s.statuses(order) == ["Submitted", "Accepted", "Expired"]
        assert engine_orders(emulator) == {}
        journal = Journal(journal_path)
        assert {journal.get_order(o.info.client_order_id).status for o in orders} == {"expired"}
        journal.close()


def test_fills_made_before_the_validity_cancel_lands_count(exchange, tmp_path):
    """An order partly filled when its validity ends: the cancel takes the rest off the exchange
    and the order ends Expired with what it filled."""
    spec = MarketSpec(
        MARKET_ID, "BTC", "USDT", step_size=Decimal("0.000001"), min_amount=Decimal("0.000001"),
        max_fill_per_step=Decimal("0.002"),  # a candle's steps cannot fill 0.01
    )  # fmt: skip
    with make_emulator(exchange, markets=[spec]) as emulator:
        store = new_store(exchange, emulator)
        try:
            with live(emulator, store, str(tmp_path / "j.sqlite3")) as run:
                s = run.strategy

                def place(s: Trader) -> bt.Order:
                    price = float(last(emulator) - 2 * TICK)
                    return s.buy(size=0.01, exectype=bt.Order.Limit, price=price, valid=timedelta(minutes=1))

                order = run.do(place)
                run.step()  # the one bar it is valid for
                run.wait(lambda: order.status == bt.Order.Expired, "the order expiring")
                run.step()
                run.wait(lambda: "Expired" in s.statuses(order), "notify_order(Expired)")
                placed = engine_orders(emulator)[order.info.client_order_id]
                assert placed.status.value == "canceled"
                assert 0 < placed.filled < Decimal("0.01"), "the order must fill partly for the test to mean anything"
                statuses = s.statuses(order)
                assert statuses[:2] == ["Submitted", "Accepted"] and statuses[-1] == "Expired"
                assert set(statuses[2:-1]) == {"Partial"}
                assert order.executed.size == pytest.approx(float(placed.filled), abs=1e-12)
                assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))
        finally:
            store.stop()


def test_a_stop_whose_price_is_already_crossed_goes_as_the_order_it_triggers_into(
    exchange, emulator, store, journal_path
):
    """The exchange refuses a stop the last price has already crossed (it would trigger
    immediately); backtrader fills it at the next price, so it goes as a market order (a
    stop-limit as a limit order) and completes, still a Stop / StopLimit to the strategy."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            crossed = float(last(emulator) - 3 * TICK)  # a buy stop below the market
            stop = s.buy(size=0.01, exectype=bt.Order.Stop, price=crossed)
            stop_limit = s.buy(size=0.01, exectype=bt.Order.StopLimit, price=crossed, plimit=crossed * 1.01)
            return stop, stop_limit

        stop, stop_limit = run.do(place)
        run.until(lambda: all("Completed" in s.statuses(o) for o in (stop, stop_limit)), "both stops filling")
        placed = engine_orders(emulator)
        for order, kind in ((stop, "market"), (stop_limit, "limit")):
            assert placed[order.info.client_order_id].type.value == kind
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
            assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))
        assert stop.getordername() == "Stop" and stop_limit.getordername() == "StopLimit"


def test_a_trailing_stop_follows_the_closes_on_the_exchange_and_fills_at_its_trail(
    exchange, emulator, store, journal_path
):
    """``StopTrail`` live: the stop rests on the exchange at the trail's price and, after each
    closed bar, moves by the close as backtrader trails it (the exchange order replaced); the
    strategy sees one order, which completes at the trail's price when the market falls to it."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        buy = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(buy), "the buy")
        stop = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.StopTrail, trailpercent=0.002))
        run.until(lambda: "Completed" in s.statuses(stop), "the trailing stop filling", steps=120)
        assert s.statuses(stop) == ["Submitted", "Accepted", "Completed"]
        placed = [o for o in emulator.engine.all_orders(emulator.api_key) if o.side.value == "sell"]
        assert len(placed) >= 2, "the trail must have moved for the test to mean anything"
        assert [o.status.value for o in placed[:-1]] == ["canceled"] * (len(placed) - 1)
        final = placed[-1]
        assert final.status.value == "filled" and final.client_order_id == stop.info.client_order_id
        stops = [o.stop_price for o in placed[:-1]]
        assert stops == sorted(stops), "a sell's trail only ever rises"
        # At its trail price, or at market when the market had crossed the new trail already.
        assert final.type.value in ("stop_market", "market")
        (fill,) = engine_fills(emulator, final.client_order_id)
        assert fill.price <= Decimal(str(stop.created.price)).quantize(TICK)
        assert s.last(stop).price == pytest.approx(float(fill.price))
        assert run.broker.getposition(s.data).size == 0


# --- rejections and the interlock ------------------------------------------------------------------


class _RiskLimit:
    @hookimpl
    def realtrade_pre_trade(self, request):
        if request.amount == 0.0123:
            return Veto("size 0.0123 is on the test's block list", source="test-risk")
        return None


def test_rejections_reach_notify_order_with_their_reason(exchange, emulator, store, journal_path):
    risk = _RiskLimit()
    get_plugin_host().register(risk, "test-risk")
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            tiny, greedy, vetoed = run.do(lambda s: (s.buy(size=0.00001), s.buy(size=1.0), s.buy(size=0.0123)))
            run.until(lambda: all("Rejected" in s.statuses(o) for o in (tiny, vetoed)), "two rejections")
            run.until(lambda: "Margin" in s.statuses(greedy), "refused for want of funds")
            assert "minimum notional" in s.last(tiny).reason
            # Margin, as backtrader calls it: the strategy's cash cannot pay, so it is never sent.
            assert "cash 10000" in s.last(greedy).reason and "cannot pay" in s.last(greedy).reason
            assert s.last(vetoed).reason == "size 0.0123 is on the test's block list (test-risk)"
            assert emulator.engine.all_orders(emulator.api_key) == []
    finally:
        get_plugin_host().unregister(risk)


@pytest.mark.parametrize("market_type", ["spot", "perpetual"])
def test_live_on_mainnet_without_allow_mainnet_raises_before_any_request(exchange, market_type, monkeypatch):
    connects: list[Any] = []
    real_connect = socket.socket.connect

    def spy(self, address):
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    spec = load_exchange(exchange)
    store = spec.store(venue="mainnet", api_key="fake-api-key-0123", secret="fake-secret-4567", spec=spec,
                       market_type=market_type)  # fmt: skip
    with pytest.raises(ConfigurationError, match="allow_mainnet=True") as info:
        store.getbroker(mode="live")
    assert "fake-secret" not in str(info.value) and "fake-api-key" not in str(info.value)
    assert connects == []
    assert not store.started and store._client is None


# --- brackets and OCO -----------------------------------------------------------------------------


def engine_orders(emulator) -> dict[str, Any]:
    """The engine's orders of this account by client order id."""
    return {o.client_order_id: o for o in emulator.engine.all_orders(emulator.api_key)}


def place_bracket(run: LiveRun, emulator, stop_ticks: Decimal | None, limit_ticks: Decimal | None) -> tuple:
    """A market-entry buy_bracket; a child ``None`` is placed far away (it will not fill)."""

    def place(s: Trader) -> tuple:
        px = last(emulator)
        stop = px - stop_ticks * TICK if stop_ticks is not None else (px * Decimal("0.5")).quantize(TICK)
        limit = px + limit_ticks * TICK if limit_ticks is not None else (px * 2).quantize(TICK)
        orders = tuple(s.buy_bracket(size=0.01, exectype=bt.Order.Market, stopprice=float(stop),
                                     limitprice=float(limit)))  # fmt: skip
        # What the strategy sees at creation, read in cerebro's thread before the parent can fill.
        s.at_creation = [(o.status, o.info.get("order_id")) for o in orders]
        return orders

    return run.do(place)


@pytest.mark.parametrize("leg", ["take_profit", "stop"])
def test_bracket_children_go_after_the_parent_fills_and_one_filling_cancels_the_other(
    exchange, emulator, store, journal_path, leg
):
    """bracket_exits="held" (any exchange): a spot account locks what each resting sell may sell,
    so the take-profit rests on the exchange and the stop is armed in the broker; a bar crossing
    it cancels the take-profit on the exchange, then the stop sells as a market order."""
    with live(emulator, store, journal_path, bracket_exits="held") as run:
        s = run.strategy
        stop_ticks, limit_ticks = (None, Decimal(3)) if leg == "take_profit" else (Decimal(3), None)
        parent, stop, limit = place_bracket(run, emulator, stop_ticks, limit_ticks)
        (_, _), (stop_status, stop_id), (limit_status, limit_id) = s.at_creation
        assert stop_status == limit_status == bt.Order.Accepted  # at creation, as in a backtest
        assert not stop_id and not limit_id  # held in the broker
        run.until(lambda: "Completed" in s.statuses(parent), "the parent filling")
        run.wait(lambda: limit.info.get("order_id"), "the take-profit on the exchange")
        winner, loser = (limit, stop) if leg == "take_profit" else (stop, limit)
        run.until(lambda: "Completed" in s.statuses(winner), f"the {leg} filling")
        run.until(lambda: "Canceled" in s.statuses(loser), "the sibling cancelled")
        orders = engine_orders(emulator)
        assert orders[winner.info.client_order_id].status.value == "filled"
        if leg == "stop":
            assert orders[limit.info.client_order_id].status.value == "canceled"  # cancelled on the exchange
            assert orders[stop.info.client_order_id].type.value == "market"
        else:
            assert stop.info.client_order_id not in orders  # the armed stop never went
        assert not emulator.engine.open_orders(emulator.api_key)
        # the children sold what the account held after the base-asset fee: position closed
        (bought,) = engine_fills(emulator, parent.info.client_order_id)
        sold = engine_fills(emulator, winner.info.client_order_id)
        assert sum(f.amount for f in sold) == bought.amount - bought.fee
        assert sum(balance(emulator, "BTC")) == 0
        assert run.broker.getposition(s.data).size == 0
        assert s.statuses(winner) == ["Submitted", "Accepted", "Completed"]
        assert s.statuses(loser) == ["Submitted", "Accepted", "Canceled"]
        assert s.statuses(parent) == ["Submitted", "Accepted", "Completed"]
        assert not run.broker.get_orders_open()
        run.until(lambda: s.trades, "notify_trade")


@pytest.mark.parametrize("leg", ["take_profit", "stop"])
def test_bracket_exits_both_rest_on_the_exchange_and_the_one_reached_ends_the_other(
    exchange, emulator, store, journal_path, leg
):
    """The exchanges' own way (Binance: one OCO order list; Bybit: two conditional orders that
    hold no coins until they trigger): both exits rest on the exchange, so the position is
    protected even if the process stops, and the one the market reaches fills at its price."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        stop_ticks, limit_ticks = (None, Decimal(3)) if leg == "take_profit" else (Decimal(3), None)
        _, stop, limit = place_bracket(run, emulator, stop_ticks, limit_ticks)
        run.wait(lambda: stop.info.get("order_id") and limit.info.get("order_id"), "both exits on the exchange")
        stop_cid, limit_cid = stop.info.client_order_id, limit.info.client_order_id
        resting = {o.client_order_id for o in emulator.engine.open_orders(emulator.api_key)}
        assert resting == {stop_cid, limit_cid}
        if exchange == "binance":
            orders = engine_orders(emulator)
            assert orders[stop_cid].list_id == orders[limit_cid].list_id is not None  # one OCO list
        else:
            assert balance(emulator, "BTC")[1] == 0  # conditional orders hold nothing until they trigger
        winner, loser = (limit, stop) if leg == "take_profit" else (stop, limit)
        run.until(lambda: "Completed" in s.statuses(winner), f"the {leg} filling")
        run.until(lambda: "Canceled" in s.statuses(loser), "the other exit ended")
        orders = engine_orders(emulator)
        (fill,) = engine_fills(emulator, winner.info.client_order_id)
        target = orders[winner.info.client_order_id]
        assert fill.price == (target.stop_price if leg == "stop" else target.price)  # its own price, no slippage
        assert orders[loser.info.client_order_id].status.value in ("expired", "canceled")
        assert not emulator.engine.open_orders(emulator.api_key)
        assert sum(balance(emulator, "BTC")) == 0 and run.broker.getposition(s.data).size == 0
        assert s.statuses(winner) == ["Submitted", "Accepted", "Completed"]
        assert s.statuses(loser) == ["Submitted", "Accepted", "Canceled"]
        assert not run.broker.get_orders_open()
        run.until(lambda: s.trades, "notify_trade")
    assert links(journal_path) == {}


def test_bracket_parent_cancelled_cancels_the_children_which_are_never_sent(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            px = last(emulator)
            return tuple(s.buy_bracket(size=0.01, price=float((px * Decimal("0.5")).quantize(TICK)),
                                       stopprice=float((px * Decimal("0.4")).quantize(TICK)),
                                       limitprice=float((px * Decimal("0.6")).quantize(TICK))))  # fmt: skip

        parent, stop, limit = run.do(place)
        assert set(engine_orders(emulator)) == {parent.info.client_order_id}
        assert len(run.broker.get_orders_open()) == 3
        run.do(lambda s: s.cancel(parent))
        run.until(lambda: all("Canceled" in s.statuses(o) for o in (parent, stop, limit)), "the bracket cancelled")
        assert s.statuses(stop) == ["Submitted", "Accepted", "Canceled"]
        assert s.statuses(limit) == ["Submitted", "Accepted", "Canceled"]
        assert set(engine_orders(emulator)) == {parent.info.client_order_id}  # the children never went
        assert engine_orders(emulator)[parent.info.client_order_id].status.value == "canceled"
        assert not run.broker.get_orders_open()


def test_oco_orders_one_filling_cancels_the_other(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy

        def place(s: Trader) -> tuple:
            px = last(emulator)
            first = s.buy(size=0.01, exectype=bt.Order.Limit, price=float((px * Decimal("0.5")).quantize(TICK)))
            second = s.buy(size=0.01, oco=first)
            return first, second

        first, second = run.do(place)
        run.until(lambda: "Completed" in s.statuses(second), "the market order filling")
        run.until(lambda: "Canceled" in s.statuses(first), "the OCO sibling cancelled")
        assert engine_orders(emulator)[first.info.client_order_id].status.value == "canceled"


# --- brackets and OCO groups across a restart -----------------------------------------------------


def notes_of(s: Trader, client_order_id: str) -> list[str]:
    return [n.status for n in s.notes if n.client_order_id == client_order_id]


def links(journal_path: str) -> dict[str, str]:
    journal = Journal(journal_path)
    try:
        return {link.client_order_id: link.state for g in journal.active_groups().values() for link in g}
    finally:
        journal.close()


def test_restart_watches_the_bracket_stop_again_and_it_still_closes_the_position(exchange, emulator, journal_path):
    """The stop of a bracket is held by the broker (the take-profit rests on the exchange): it
    is journaled, so the next run watches it again and the position stays protected."""
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path, bracket_exits="held") as run:
            s = run.strategy
            parent, stop, limit = place_bracket(run, emulator, Decimal(3), None)
            # no step: the market stands still, so the stop cannot trigger before the restart
            run.wait(lambda: parent.status == bt.Order.Completed, "the parent filling")
            run.wait(lambda: limit.info.get("order_id"), "the take-profit on the exchange")
        stop_cid, limit_cid = stop.info.client_order_id, limit.info.client_order_id
    finally:
        store.stop()
    assert links(journal_path) == {parent.info.client_order_id: "done", stop_cid: "armed", limit_cid: "sent"}
    held = sum(balance(emulator, "BTC"))

    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path, bracket_exits="held") as run:
            s = run.strategy
            assert s.first_position == 0.01  # what the parent filled; the account holds it less the fee
            assert run.broker.live.books[SYMBOL].held == held
            by_cid = {o.info.client_order_id: o for o in s.first_open}
            assert set(by_cid) == {stop_cid, limit_cid}
            # The stop closes the position; once sent (a bar may have crossed it already), it
            # sells what the account holds for it.
            stop = by_cid[stop_cid]
            assert stop.size == pytest.approx(-float(held) if stop.info.get("fee_adjusted") else -0.01)
            assert stop.info.reattached
            assert notes_of(s, stop_cid) == ["Accepted"]
            run.until(lambda: "Completed" in notes_of(s, stop_cid), "the restored stop closing the position")
            # notify_order comes with a bar: the cancel may land after the bar that brought the fill
            run.until(lambda: "Canceled" in notes_of(s, limit_cid), "the take-profit cancelled")
            orders = engine_orders(emulator)
            assert orders[limit_cid].status.value == "canceled"
            assert (orders[stop_cid].type.value, orders[stop_cid].status.value) == ("market", "filled")
            assert sum(balance(emulator, "BTC")) == 0 and run.broker.getposition(s.data).size == 0
            assert not run.broker.get_orders_open()
    finally:
        store.stop()
    assert links(journal_path) == {}  # the bracket is finished in the journal too


def test_restart_sends_the_children_of_a_bracket_whose_parent_filled_while_offline(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path, bracket_exits="held") as run:

            def place(s: Trader) -> tuple:
                px = last(emulator)
                return tuple(s.buy_bracket(size=0.01, price=float(px - 2 * TICK),
                                           stopprice=float((px * Decimal("0.5")).quantize(TICK)),
                                           limitprice=float((px * 2).quantize(TICK))))  # fmt: skip

            parent, stop, limit = run.do(place)
            run.wait(lambda: parent.info.get("order_id"), "the parent on the exchange")
        parent_cid, stop_cid, limit_cid = (o.info.client_order_id for o in (parent, stop, limit))
    finally:
        store.stop()
    assert links(journal_path) == {parent_cid: "sent", stop_cid: "held", limit_cid: "held"}
    for _ in range(60):  # while down, the parent fills
        if engine_orders(emulator)[parent_cid].status.value == "filled":
            break
        emulator.step(1)
    (bought,) = engine_fills(emulator, parent_cid)
    assert set(engine_orders(emulator)) == {parent_cid}  # nothing else went out meanwhile

    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path, bracket_exits="held") as run:
            s = run.strategy
            run.wait(lambda: limit_cid in engine_orders(emulator), "the take-profit sent at start")
            take_profit = engine_orders(emulator)[limit_cid]
            assert (take_profit.side.value, take_profit.amount) == ("sell", bought.amount - bought.fee)
            assert stop_cid not in engine_orders(emulator)  # the stop is watched by the broker
            assert {o.info.client_order_id for o in run.broker.get_orders_open()} == {stop_cid, limit_cid}
            assert any(parent_cid in m and "filled" in m for m in s.store_messages), s.store_messages
            assert links(journal_path) == {parent_cid: "done", stop_cid: "armed", limit_cid: "sent"}
    finally:
        store.stop()


def test_restart_cancels_the_rest_of_an_oco_group_one_of_which_filled_while_offline(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:

            def place(s: Trader) -> tuple:
                px = last(emulator)
                near = s.buy(size=0.01, exectype=bt.Order.Limit, price=float(px - 2 * TICK))
                far = s.buy(size=0.01, exectype=bt.Order.Limit, price=float((px * Decimal("0.5")).quantize(TICK)),
                            oco=near)  # fmt: skip
                return near, far

            near, far = run.do(place)
            run.wait(lambda: far.info.get("order_id"), "both orders on the exchange")
        near_cid, far_cid = near.info.client_order_id, far.info.client_order_id
    finally:
        store.stop()
    for _ in range(60):
        if engine_orders(emulator)[near_cid].status.value == "filled":
            break
        emulator.step(1)
    assert engine_orders(emulator)[far_cid].status.value == "new"

    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            run.wait(lambda: engine_orders(emulator)[far_cid].status.value == "canceled", "the OCO sibling cancelled")
            # notify_order comes with a bar: the cancel may land after the first live bar
            run.until(lambda: "Canceled" in notes_of(s, far_cid), "notify_order of the cancel")
            assert not run.broker.get_orders_open()
    finally:
        store.stop()
    assert links(journal_path) == {}


def test_restart_keeps_both_exchange_side_exits_and_the_one_reached_ends_the_other(exchange, emulator, journal_path):
    """With the exchange's own exits (Binance OCO list, Bybit conditional orders) both rest on
    the exchange: a restart re-attaches them as one bracket, and the stop still exits."""
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            _, stop, limit = place_bracket(run, emulator, Decimal(3), None)
            run.wait(lambda: stop.info.get("order_id") and limit.info.get("order_id"), "both exits on the exchange")
        stop_cid, limit_cid = stop.info.client_order_id, limit.info.client_order_id
    finally:
        store.stop()
    assert {o.client_order_id for o in emulator.engine.open_orders(emulator.api_key)} == {stop_cid, limit_cid}

    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            assert {o.info.client_order_id for o in s.first_open} == {stop_cid, limit_cid}
            run.until(lambda: "Completed" in notes_of(s, stop_cid), "the stop exit")
            run.until(lambda: "Canceled" in notes_of(s, limit_cid), "the take-profit ended")
            (fill,) = engine_fills(emulator, stop_cid)
            assert fill.price == engine_orders(emulator)[stop_cid].stop_price
            assert not emulator.engine.open_orders(emulator.api_key) and sum(balance(emulator, "BTC")) == 0
            assert not run.broker.get_orders_open()
    finally:
        store.stop()
    assert links(journal_path) == {}


@pytest.mark.parametrize("exchange", ["binance"])  # the exchange with OCO lists
def test_an_oco_list_the_exchange_refuses_falls_back_to_a_resting_take_profit_and_a_held_stop(
    exchange, emulator, journal_path
):
    """Binance refuses an OCO whose take-profit the market has already passed; nothing was
    placed, so the exits go the generic way and the position is still closed."""
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy

            def place(s: Trader) -> tuple:
                px = last(emulator)  # the take-profit under the market: the list is refused
                return tuple(s.buy_bracket(size=0.01, exectype=bt.Order.Market, limitprice=float(px - 5 * TICK),
                                           stopprice=float((px * Decimal("0.5")).quantize(TICK))))  # fmt: skip

            _, stop, limit = run.do(place)
            # the market stands still until the exits are settled
            run.wait(lambda: limit.info.get("order_id"), "the take-profit on the exchange, alone")
            run.until(lambda: "Completed" in s.statuses(limit), "the take-profit filling at once")
            run.until(lambda: "Canceled" in s.statuses(stop), "the held stop cancelled")
            run.wait(
                lambda: any("refused a bracket's OCO exits" in m for m in s.store_messages), "the refusal reported"
            )
            orders = engine_orders(emulator)
            assert orders[limit.info.client_order_id].status.value == "filled"
            assert stop.info.client_order_id not in orders  # held by the broker, never sent
            assert sum(balance(emulator, "BTC")) == 0 and not run.broker.get_orders_open()
    finally:
        store.stop()
    assert links(journal_path) == {}


@pytest.mark.parametrize("exchange", ["binance"])  # the exchange with OCO lists
def test_an_oco_list_whose_answer_times_out_is_looked_up_not_sent_twice(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:

            def place(s: Trader) -> tuple:
                px = last(emulator)
                return tuple(s.buy_bracket(size=0.01, price=float(px - 2 * TICK),
                                           stopprice=float((px * Decimal("0.9")).quantize(TICK)),
                                           limitprice=float((px * Decimal("1.1")).quantize(TICK))))  # fmt: skip

            parent, stop, limit = run.do(place)
            run.wait(lambda: parent.info.get("order_id"), "the entry resting")
            emulator.timeout_next_order()  # the list is placed, its answer never comes
            run.until(lambda: parent.status == bt.Order.Completed, "the entry filling")
            run.wait(lambda: stop.info.get("order_id") and limit.info.get("order_id"), "the lookup finding both legs")
            orders = engine_orders(emulator)
            assert len(orders) == 3  # the entry and one OCO list: nothing sent twice
            assert orders[stop.info.client_order_id].list_id == orders[limit.info.client_order_id].list_id
            assert {o.info.client_order_id for o in run.broker.get_orders_open()} == {
                stop.info.client_order_id,
                limit.info.client_order_id,
            }
    finally:
        store.stop()


@pytest.mark.parametrize("exchange", ["binance"])  # the exchange with OCO lists
def test_a_bracket_exit_rejected_before_sending_leaves_the_other_to_go_alone(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy

            def place(s: Trader) -> tuple:
                px = last(emulator)  # a stop so low that 0.01 BTC at it is below the minimum notional
                return tuple(s.buy_bracket(size=0.01, exectype=bt.Order.Market, stopprice=1.0,
                                           limitprice=float((px * 2).quantize(TICK))))  # fmt: skip

            _, stop, limit = run.do(place)
            run.wait(lambda: limit.info.get("order_id"), "the take-profit on the exchange, alone")
            assert stop.status == bt.Order.Rejected and "minimum notional" in stop.info.reject_reason
            orders = engine_orders(emulator)
            assert orders[limit.info.client_order_id].list_id is None  # a plain order, not a list
            assert stop.info.client_order_id not in orders
            assert [o.info.client_order_id for o in run.broker.get_orders_open()] == [limit.info.client_order_id]
            run.step()
            assert "Rejected" in s.statuses(stop)
    finally:
        store.stop()
