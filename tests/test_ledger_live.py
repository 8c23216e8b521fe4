"""The live broker's own ledger, checked fills, history bars, restarts and clean stops.

Real ccxt, real sockets and real threads against an in-process emulator, for both exchanges; the
emulator's account is the truth compared against. Helpers come from ``test_broker_live``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from decimal import Decimal

import backtrader as bt
import pytest
from livetest import Driver, streaming, wait_until
from test_broker_live import (
    SYMBOL,
    TICK,
    balance,
    engine_fills,
    last,
    live,
    make_emulator,
    new_store,
)

from realtrade_core import ConfigurationError
from realtrade_core.emulator.server import Emulator
from realtrade_core.events import Fill, Side
from realtrade_core.journal import Journal


def realtrade_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("realtrade")]


def stepping(cerebro: bt.Cerebro, emulator, candles: int = 3) -> Driver:
    """A driver that waits for the strategy's first live bar, then closes ``candles`` candles one
    at a time (each waited for, bounded); ``check()`` it once ``cerebro.run()`` returns."""

    def script(d: Driver) -> None:
        s = d.wait_strategy(lambda s: getattr(s, "live", False), "the first live bar")
        d.wait(streaming(emulator, SYMBOL, feeds=d.cerebro.datas), "the candle stream")
        for _ in range(candles):
            if d.cerebro_done.is_set():
                return  # the strategy stopped the run: no bar will come
            bars = len(s.data)
            emulator.step(1)
            wait_until(lambda b=bars: len(s.data) > b or d.cerebro_done.is_set(), timeout=5)

    driver = Driver(cerebro, script, deadline=60)
    driver.start()
    return driver


# --- whose coins --------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_coins_the_account_held_before_are_never_sold(exchange):
    """The account holds 10 BTC of its own. The strategy's position starts flat; a sell of
    coins it did not buy ends Margin with the reason and is never sent; a round trip of its own
    leaves the 10 BTC exactly as they were; value counts only the ledger."""
    with make_emulator(exchange, balances={"USDT": 10_000, "BTC": 10}) as emulator:
        store = new_store(exchange, emulator)
        try:
            with live(emulator, store, None) as run:
                s = run.strategy
                assert s.first_position == 0
                assert run.broker.getcash() == 10_000
                assert run.broker.getvalue() == pytest.approx(10_000)  # not the 10 BTC
                stray = run.do(lambda s: s.sell(size=0.5))
                run.until(lambda: s.statuses(stray), "the refusal reaching the strategy")
                assert s.statuses(stray) == ["Margin"]
                assert "did not buy" in s.last(stray).reason and "holds no BTC" in s.last(stray).reason
                assert run.do(lambda s: s.close()) is None  # nothing to close: backtrader sends nothing
                buy = run.do(lambda s: s.buy(size=0.01))
                run.until(lambda: "Completed" in s.statuses(buy), "the buy")
                more = run.do(lambda s: s.sell(size=0.02))  # more than the strategy bought
                run.until(lambda: s.statuses(more), "the refusal reaching the strategy")
                assert s.statuses(more) == ["Margin"] and "holds 0.01" in s.last(more).reason
                sell = run.do(lambda s: s.close())
                run.until(lambda: "Completed" in s.statuses(sell), "the close")
                assert run.broker.getposition(s.data).size == 0
                run.wait(lambda: run.broker.live.balances["BTC"] == (Decimal(10), Decimal(0)), "the balances")
                assert sum(balance(emulator, "BTC")) == 10  # the account's own coins, untouched
                assert run.broker.live.ledger_cash == sum(balance(emulator, "USDT"))
            sides = [o.side.value for o in emulator.engine.all_orders(emulator.api_key)]
            assert sides == ["buy", "sell"]  # the refused sells never reached the exchange
        finally:
            store.stop()


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_adopt_holdings_makes_the_accounts_coins_the_starting_position(exchange):
    with make_emulator(exchange, balances={"USDT": 10_000, "BTC": Decimal("0.5")}) as emulator:
        store = new_store(exchange, emulator)
        try:
            with live(emulator, store, None, adopt_holdings=True, cash=2_000) as run:
                s = run.strategy
                assert s.first_position == 0.5 and run.broker.getcash() == 2_000
                assert any("adopted" in m for m in s.store_messages)
                sell = run.do(lambda s: s.close())
                run.until(lambda: "Completed" in s.statuses(sell), "the close")
                assert sum(balance(emulator, "BTC")) == 0
        finally:
            store.stop()


def test_two_live_brokers_on_one_account_keep_separate_ledgers(exchange, emulator, tmp_path):
    """A second broker with the same ledger name is refused before any order; with a name of its
    own it trades its own cash and never sees the first one's position."""
    first_store, second_store = new_store(exchange, emulator), new_store(exchange, emulator)
    try:
        with live(emulator, first_store, str(tmp_path / "a.db"), cash=6_000) as first:
            with pytest.raises(AssertionError, match="cerebro failed") as failed:
                with live(emulator, second_store, str(tmp_path / "b.db")):
                    pass
            assert isinstance(failed.value.__cause__, ConfigurationError)
            assert "ledger 'default'" in str(failed.value.__cause__)
            assert emulator.engine.all_orders(emulator.api_key) == []
            with live(emulator, second_store, str(tmp_path / "b.db"), ledger="second", cash=4_000) as second:
                buy = first.do(lambda s: s.buy(size=0.01))
                first.until(lambda: "Completed" in first.strategy.statuses(buy), "the first one's buy")
                second.wait(lambda: any("did not place" in m for m in second.strategy.store_messages),
                            "the second broker to see the first one's fill")  # fmt: skip
                assert second.broker.getposition(second.strategy.data).size == 0
                assert second.broker.getcash() == 4_000
                assert first.broker.getposition(first.strategy.data).size == 0.01
                assert first.broker.getcash() == pytest.approx(6_000 - float(engine_fills(
                    emulator, buy.info.client_order_id)[0].price) * 0.01)  # fmt: skip
    finally:
        first_store.stop()
        second_store.stop()


def test_coins_moved_away_shrink_the_position_to_what_the_account_holds(exchange, emulator, store, journal_path):
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        buy = run.do(lambda s: s.buy(size=0.02))
        run.until(lambda: "Completed" in s.statuses(buy), "the buy")
        emulator.engine.set_balance(emulator.api_key, "BTC", Decimal("0.005"))  # withdrawn by hand
        run.until(lambda: run.broker.getposition(s.data).size == 0.005, "the position shrinking")
        # The strategy hears of it with cerebro's next pass (notify_store), not at once.
        run.wait(lambda: any("shrinks to 0.005" in m for m in s.store_messages), "the shrink reported")
        sell = run.do(lambda s: s.close())
        run.until(lambda: "Completed" in s.statuses(sell), "the close")
        assert sum(balance(emulator, "BTC")) == 0


def test_dust_the_lot_step_leaves_is_reported_never_a_position(exchange, emulator, store, journal_path):
    """0.0123 BTC bought leaves 0.0122877 after the fee; the lot step lets the exit sell only
    whole steps of that (0.01228 at a step of 0.00001); what is left is dust, reported, and the
    position is flat."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        buy = run.do(lambda s: s.buy(size=0.0123))
        run.until(lambda: "Completed" in s.statuses(buy), "the buy")
        sell = run.do(lambda s: s.close())
        run.until(lambda: "Completed" in s.statuses(sell), "the close")
        (bought,) = engine_fills(emulator, buy.info.client_order_id)
        (sold,) = engine_fills(emulator, sell.info.client_order_id)
        step = emulator.engine.market("BTCUSDT").step_size
        held = Decimal("0.0123") - bought.fee
        assert sold.amount == (held // step) * step and sell.info.fee_adjusted
        book = run.broker.live.books[SYMBOL]
        assert run.broker.getposition(s.data).size == 0 and book.size == 0
        assert book.dust == sum(balance(emulator, "BTC")) == held - sold.amount > 0
        run.wait(lambda: any("dust" in m for m in s.store_messages), "the dust reported")


def test_dust_is_journaled_and_a_later_exit_sells_it_with_the_position(exchange, emulator, journal_path):
    """The dust of one round trip survives a restart in the journal and goes with the next exit
    once it makes a lot step: 0.0000077 left, then 0.0122877 + 0.0000077 sells as 0.01229."""
    step = emulator.engine.market("BTCUSDT").step_size
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            buy = run.do(lambda s: s.buy(size=0.0123))
            run.until(lambda: "Completed" in run.strategy.statuses(buy), "the buy")
            sell = run.do(lambda s: s.close())
            run.until(lambda: "Completed" in run.strategy.statuses(sell), "the close")
            first_dust = run.broker.live.books[SYMBOL].dust
        assert first_dust == sum(balance(emulator, "BTC")) > 0
    finally:
        store.stop()
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            book = run.broker.live.books[SYMBOL]
            assert book.dust == first_dust  # from the journal
            buy = run.do(lambda s: s.buy(size=0.0123))
            run.until(lambda: "Completed" in s.statuses(buy), "the second buy")
            sell = run.do(lambda s: s.close())
            run.until(lambda: "Completed" in s.statuses(sell), "the second close")
            (bought,) = engine_fills(emulator, buy.info.client_order_id)
            (sold,) = engine_fills(emulator, sell.info.client_order_id)
            own = Decimal("0.0123") - bought.fee + first_dust
            assert sold.amount == (own // step) * step > (Decimal("0.0123") - bought.fee) // step * step
            assert book.size == 0 and book.dust == sum(balance(emulator, "BTC")) == own - sold.amount
    finally:
        store.stop()


# --- history bars -------------------------------------------------------------------------------


class BuysOnItsFirstBar(bt.Strategy):
    """Buys on its first bar (history) and on its first live bar; records what became of each."""

    def __init__(self) -> None:
        self.orders: list[bt.Order] = []
        self.live = False
        self.done = threading.Event()
        self.store_messages: list[str] = []

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(str(msg))

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def next(self) -> None:
        if len(self.orders) == 0:
            self.orders.append(self.buy(size=0.01))  # a history bar
        elif self.live and len(self.orders) == 1:
            self.orders.append(self.buy(size=0.01))
        elif len(self.orders) == 2 and not self.orders[1].alive():
            self.done.set()
            self.env.runstop()


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_orders_made_on_history_bars_are_rejected_and_never_sent(exchange, emulator, store, journal_path, mode):
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=5, qcheck=0.02))
    options = {"mode": "live", "journal": journal_path} if mode == "live" else {"cash": 10_000}
    cerebro.setbroker(store.getbroker(**options))
    cerebro.addstrategy(BuysOnItsFirstBar)
    driver = stepping(cerebro, emulator)
    (s,) = cerebro.run()
    driver.check()
    history, live_order = s.orders
    assert history.status == bt.Order.Rejected
    assert "history bar" in history.info.reject_reason and "never trade" in history.info.reject_reason
    assert live_order.status == bt.Order.Completed
    assert any("history" in m for m in s.store_messages)  # warned once
    if mode == "live":
        placed = emulator.engine.all_orders(emulator.api_key)
        assert [o.client_order_id for o in placed] == [live_order.info.client_order_id]


# --- fills are checked before they count ----------------------------------------------------------


def test_a_fill_that_cannot_be_ours_never_moves_the_ledger(exchange, emulator, store, journal_path):
    """Fills arrive on the private stream as the WebSocket thread hands them over: one of an order
    this broker never placed, ones with NaN, infinite or negative numbers, one three times the
    order's size, one repeating a trade already applied. None moves the position or the cash, none
    is journaled, each is reported; the real order stays open and is still cancellable."""
    with live(emulator, store, journal_path) as run:
        s = run.strategy
        rest = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=float(last(emulator) * Decimal("0.8"))))
        cid, oid = rest.info.client_order_id, rest.info.order_id
        buy = run.do(lambda s: s.buy(size=0.01))
        run.until(lambda: "Completed" in s.statuses(buy), "the buy")
        (real,) = engine_fills(emulator, buy.info.client_order_id)
        session = run.broker.live
        cash, position = session.ledger_cash, session.books[SYMBOL].size

        def fill(trade_id: str, amount, price, client_order_id=cid, order_id=oid) -> Fill:
            return Fill(exchange, trade_id, order_id, client_order_id, SYMBOL, Side.BUY, Decimal(price),
                        Decimal(amount), Decimal("0"), "BTC", False, real.time)  # fmt: skip

        bad = [
            fill("x-1", "0.01", "100", client_order_id="someone-else", order_id="999999"),
            fill("x-2", "NaN", "100"),
            fill("x-3", "0.001", "Infinity"),
            fill("x-4", "-0.004", "100"),
            fill("x-5", "0.03", "100"),  # three times the order
            fill(str(real.trade_id), str(real.amount), str(real.price), buy.info.client_order_id, buy.info.order_id),
        ]
        for item in bad:
            session.inbox.put(item)
        run.step()
        run.wait(lambda: len([m for m in s.store_messages if "x-" in m]) >= 5, "each bad fill reported")
        assert session.ledger_cash == cash and session.books[SYMBOL].size == position
        journal = Journal(journal_path)
        try:
            recorded = {f.trade_id for f in journal.fills()}
            assert recorded == {str(real.trade_id)}
        finally:
            journal.close()
        assert rest.alive() and s.statuses(rest) == ["Submitted", "Accepted"]
        run.do(lambda s: s.cancel(rest))
        run.until(lambda: "Canceled" in s.statuses(rest), "the real order cancelled")


# --- restarts -----------------------------------------------------------------------------------------


def test_a_position_from_before_a_restart_reaches_notify_trade_when_closed(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            buy = run.do(lambda s: s.buy(size=0.01))
            run.until(lambda: "Completed" in run.strategy.statuses(buy), "the buy")
        bought = engine_fills(emulator, buy.info.client_order_id)[0]
    finally:
        store.stop()
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            assert s.first_position == 0.01
            sell = run.do(lambda s: s.close())
            run.until(lambda: s.trades, "notify_trade for the restored position")
            (sold,) = engine_fills(emulator, sell.info.client_order_id)
            pnl, _ = s.trades[0]
            assert pnl == pytest.approx(0.01 * float(sold.price - bought.price), abs=1e-9)
    finally:
        store.stop()


def test_a_reattached_trailing_stop_goes_on_trailing(exchange, emulator, journal_path):
    """A StopTrail placed before a restart comes back as a StopTrail with its trail: as the market
    rises after the restart, the broker moves it up on the exchange."""
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            buy = run.do(lambda s: s.buy(size=0.01))
            run.until(lambda: "Completed" in s.statuses(buy), "the buy")
            stop = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.StopTrail, trailpercent=0.05))
            run.until(lambda: "Accepted" in s.statuses(stop), "the trailing stop resting")
    finally:
        store.stop()
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            (order,) = run.broker.get_orders_open()
            assert order.info.reattached and order.exectype == bt.Order.StopTrail
            assert order.trailpercent == 0.05
            start = order.created.price
            for _ in range(60):  # until a close above every close since it was placed
                if order.created.price > start:
                    break
                run.step(1)
            assert order.created.price > start, "the re-attached stop must trail the closes"
            moved = Decimal(str(order.created.price)).quantize(TICK)
            run.wait(lambda: any(o.side.value == "sell" and o.stop_price == moved
                                 for o in emulator.engine.open_orders(emulator.api_key)), "the stop moved on the exchange")  # fmt: skip
    finally:
        store.stop()


def test_a_reattached_order_keeps_its_validity(exchange, emulator, journal_path):
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            far = float((last(emulator) * Decimal("0.8")).quantize(TICK))
            def place(s):
                now = s.data.datetime.datetime(0)
                bar = now - s.data.datetime.datetime(-1)
                return s.buy(size=0.01, exectype=bt.Order.Limit, price=far, valid=now + bar * 4)

            order = run.do(place)
            cid = order.info.client_order_id
    finally:
        store.stop()
    store = new_store(exchange, emulator)
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            (again,) = s.first_open
            assert again.info.client_order_id == cid and again.valid
            run.until(lambda: any(n.client_order_id == cid and n.status == "Expired" for n in s.notes),
                      "the re-attached order expiring", steps=40)  # fmt: skip
            assert {o.client_order_id: o.status.value for o in emulator.engine.all_orders(emulator.api_key)}[cid] == (
                "canceled")  # fmt: skip
    finally:
        store.stop()


# --- clean stops ---------------------------------------------------------------------------------------


class Crashes(bt.Strategy):
    """Buys on its first live bar, then raises."""

    params = (("when", "crash"),)

    def __init__(self) -> None:
        self.live = False
        self.order: bt.Order | None = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def next(self) -> None:
        if not self.live:
            return
        if self.order is None:
            self.order = self.buy(size=0.01)  # on the bar before the stop
            if self.p.when == "stop":
                self.env.runstop()
            return
        if self.p.when == "crash":
            raise ZeroDivisionError("a bug in the strategy")
        if self.p.when == "interrupt":
            raise KeyboardInterrupt


def run_crashing(emulator, store, journal_path, when: str):
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=2, qcheck=0.02))
    cerebro.setbroker(store.getbroker(mode="live", journal=journal_path))
    cerebro.addstrategy(Crashes, when=when)
    return cerebro


def test_an_order_made_on_the_last_bar_before_a_stop_is_sent(exchange, emulator, store, journal_path):
    cerebro = run_crashing(emulator, store, journal_path, "stop")
    driver = stepping(cerebro, emulator)
    (s,) = cerebro.run()
    driver.check()
    placed = {o.client_order_id for o in emulator.engine.all_orders(emulator.api_key)}
    assert s.order.info.client_order_id in placed
    journal = Journal(journal_path)
    try:
        assert journal.get_order(s.order.info.client_order_id).order_id  # acknowledged before the stop
    finally:
        journal.close()


def test_an_exception_in_the_strategy_stops_every_realtrade_thread(exchange, emulator, store, journal_path):
    cerebro = run_crashing(emulator, store, journal_path, "crash")
    driver = stepping(cerebro, emulator)
    with pytest.raises(ZeroDivisionError, match="a bug in the strategy"):
        cerebro.run()
    driver.check()
    ours = lambda: [n for n in realtrade_threads() if not n.startswith("realtrade-emulator")]  # noqa: E731
    assert wait_until(lambda: not ours(), timeout=15), ours()
    journal = Journal(journal_path)  # closed by the broker: readable, with the order in it
    try:
        (recorded,) = journal.orders(SYMBOL)
        assert recorded.order_id and recorded.status in ("new", "filled")  # acknowledged, then the crash
    finally:
        journal.close()


def test_ctrl_c_in_a_script_ends_with_a_short_message_and_no_traceback(exchange, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import threading
        import time
        import backtrader as bt
        import realtrade_core as rt
        from realtrade_core.emulator.server import Emulator

        class Interrupted(bt.Strategy):
            def notify_data(self, data, status, *args, **kwargs):
                self.live = data._getstatusname(status) == "LIVE"

            def next(self):
                if getattr(self, "live", False):
                    if not getattr(self, "bought", None):
                        self.bought = self.buy(size=0.01)
                    else:
                        raise KeyboardInterrupt

        with Emulator("{exchange}", symbols=("BTC/USDT",), speed=None, history=20, seed=5,
                      balances={{"USDT": 10_000}}) as emulator:
            store = rt.get_store("{exchange}", "emulator", emulator=emulator)
            cerebro = bt.Cerebro()
            cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=2, qcheck=0.02))
            cerebro.setbroker(store.getbroker(mode="live", journal={str(tmp_path / "j.db")!r}))
            cerebro.addstrategy(Interrupted)
            def steps():
                while not getattr(cerebro.runningstrats[0] if getattr(cerebro, "runningstrats", None) else None,
                                  "live", False):
                    time.sleep(0.02)
                for _ in range(3):
                    emulator.step(1)
                    time.sleep(0.3)

            threading.Thread(target=steps, daemon=True).start()
            cerebro.run()
            print("position", cerebro.broker.getposition(cerebro.datas[0]).size)
            store.stop()
        print("threads", [t.name for t in threading.enumerate() if t.name.startswith("realtrade")])
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "interrupted (Ctrl-C)" in done.stderr
    assert "position 0.01" in done.stdout and "threads []" in done.stdout


# --- several quote currencies -----------------------------------------------------------------


class TwoQuotes(bt.Strategy):
    """On its first live bar buys ``amount`` of ETH/BTC; at the next, closes it. Records values."""

    params = (("amount", 0.0),)

    def __init__(self) -> None:
        self.live = False
        self.bars = 0
        self.done: list[bt.Order] = []
        self.sent: list[bt.Order] = []
        self.store_messages: list[str] = []

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(str(msg))

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if data._getstatusname(status) == "LIVE":
            self.live = True

    def notify_order(self, order) -> None:
        if not order.alive():
            self.done.append(order)

    def next(self) -> None:
        self.bars += 1
        eth = self.getdatabyname("ETH/BTC")
        if not self.live:
            return
        if not self.sent:
            self.sent.append(self.buy(data=eth, size=self.p.amount))
        elif len(self.sent) == 1 and self.done and self.getposition(eth).size:
            self.sent.append(self.close(data=eth))


def two_quote_cerebro(store, broker, amount: float) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in ("SOL/USDT", "ETH/BTC"):
        cerebro.adddata(store.getdata(dataname=symbol, timeframe="1m", backfill_bars=2, qcheck=0.02), name=symbol)
    cerebro.setbroker(broker)
    cerebro.addstrategy(TwoQuotes, amount=amount)
    return cerebro


def min_amount(store, symbol: str) -> float:
    """A small amount the market accepts: twice its minimum notional at the last price."""
    store.start()
    market = store.market(symbol)
    price = Decimal(str(store.client.fetch_ticker(symbol)["last"]))
    step = Decimal(str(market["precision"]["amount"]))
    notional = Decimal(str((market["limits"]["cost"] or {}).get("min") or 0)) * 2
    amount = max(Decimal(str(market["limits"]["amount"]["min"] or step)), (notional / price // step + 1) * step)
    return float(amount)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_ledger_keeps_cash_in_each_quote_and_values_it_in_its_currency(exchange, tmp_path):
    """SOL/USDT and ETH/BTC in one ledger: the ETH/BTC trade pays and is paid in the ledger's
    BTC, which equals the account's BTC after every fill; USDT is untouched; getvalue() counts
    the BTC at the BTC/USDT price (a market the strategy does not trade)."""
    symbols = ("SOL/USDT", "ETH/BTC", "BTC/USDT")
    with Emulator(exchange, symbols=symbols, speed=None, history=20, seed=4,
                  balances={"USDT": 1_000, "BTC": 1}) as emulator:  # fmt: skip
        store = new_store(exchange, emulator)
        try:
            amount = min_amount(store, "ETH/BTC")
            broker = store.getbroker(mode="live", journal=str(tmp_path / "j.db"), fill_grace=1.0)
            cerebro = two_quote_cerebro(store, broker, amount)

            def script(d: Driver) -> None:
                s = d.wait_strategy(lambda s: s.live, "the first live bar")
                for _ in range(12):
                    if len(s.done) >= 2:
                        break
                    bars = s.bars
                    emulator.step(1)
                    d.wait(lambda b=bars: s.bars > b, "the next bar")
                d.wait(lambda: len(s.done) >= 2, "the round trip")
                session = broker.live
                d.wait(lambda: session.other_cash["BTC"] == sum(balance(emulator, "BTC")), "the BTC ledger")
                s.value_at_end = broker.getvalue()
                s.cash_at_end = broker.getcash()
                # the BTC/USDT price the ledger valued its BTC at (a ticker, kept a minute)
                s.btc_usdt = float(session.asset_prices["BTC/USDT"][0])
                book = session.books["ETH/BTC"]
                s.eth_left = float(book.held + book.dust) * session.last_price(book)  # in BTC: the dust

            driver = Driver(cerebro, script, deadline=60)
            driver.start()
            (s,) = cerebro.run()
            driver.check()
            buy, sell = s.done
            assert buy.status == sell.status == bt.Order.Completed
            session = broker.live
            assert session.currency == "USDT" and s.cash_at_end == 1_000, (session.ledger_cash, session.balances, session.other_cash)  # the main cash, untouched
            assert session.other_cash["BTC"] == sum(balance(emulator, "BTC")) < 1  # the fees went
            assert sum(balance(emulator, "USDT")) == 1_000
            assert float(store.client.fetch_ticker("BTC/USDT")["last"]) > 0
            expected = 1_000 + (float(session.other_cash["BTC"]) + s.eth_left) * s.btc_usdt
            assert s.value_at_end == pytest.approx(expected, rel=1e-12)
            assert s.eth_left * s.btc_usdt < 1  # only dust of ETH is left
        finally:
            store.stop()


def test_paper_refuses_a_market_quoted_in_another_currency(tmp_path):
    with Emulator("binance", symbols=("SOL/USDT", "ETH/BTC"), speed=None, history=20, seed=4) as emulator:
        store = new_store("binance", emulator)
        try:
            cerebro = two_quote_cerebro(store, store.getbroker(cash=1_000), min_amount(store, "ETH/BTC"))

            def script(d: Driver) -> None:
                s = d.wait_strategy(lambda s: s.live, "the first live bar")
                for _ in range(3):  # the order, then the bar that brings its notification
                    if s.done:
                        break
                    bars = s.bars
                    emulator.step(1)
                    d.wait(lambda b=bars: s.bars > b, "the next bar")
                d.wait(lambda: s.done, "the refusal")

            driver = Driver(cerebro, script, deadline=60)
            driver.start()
            (s,) = cerebro.run()
            driver.check()
            (order,) = s.done
            assert order.status == bt.Order.Rejected
            assert "keeps its cash in USDT; ETH/BTC is quoted in BTC" in order.info.reject_reason
        finally:
            store.stop()


@pytest.mark.parametrize("exchange", ["binance"])
def test_a_coin_that_is_both_held_and_cash_in_one_ledger_is_refused_at_start(exchange, tmp_path):
    with Emulator(exchange, symbols=("BTC/USDT", "ETH/BTC"), speed=None, history=20, seed=4) as emulator:
        store = new_store(exchange, emulator)
        try:
            broker = store.getbroker(mode="live", journal=str(tmp_path / "j.db"))
            cerebro = bt.Cerebro(stdstats=False)
            for symbol in ("BTC/USDT", "ETH/BTC"):
                cerebro.adddata(store.getdata(dataname=symbol, timeframe="1m", backfill_bars=2), name=symbol)
            cerebro.setbroker(broker)
            cerebro.addstrategy(bt.Strategy)
            with pytest.raises(ConfigurationError, match="BTC is both a coin .* two brokers"):
                cerebro.run()
            assert not emulator.engine.all_orders(emulator.api_key)
        finally:
            store.stop()


def test_two_exits_in_flight_never_sell_more_than_the_position(exchange, journal_path):
    """close() twice before the first exit has filled (a strategy that does not track its open
    orders, on bars faster than the exchange answers): the second is refused, Margin with the
    reason, and the coins the account held besides the strategy's are untouched."""
    with make_emulator(exchange, balances={"USDT": 10_000, "BTC": 1}) as emulator:
        _two_exits(exchange, emulator, journal_path)


def _two_exits(exchange, emulator, journal_path) -> None:
    store = new_store(exchange, emulator)
    before = sum(balance(emulator, "BTC"))
    try:
        with live(emulator, store, journal_path) as run:
            s = run.strategy
            buy = run.do(lambda s: s.buy(size=0.01))
            run.until(lambda: "Completed" in s.statuses(buy), "the buy")
            first, second = run.do(lambda s: (s.close(), s.close()))
            run.until(lambda: "Completed" in s.statuses(first), "the first exit")
            assert s.statuses(second)[-1] == "Margin"
            reason = second.info.get("reject_reason") or ""
            assert "would sell coins this strategy did not buy" in reason and "open sell orders" in reason, reason
            run.step(2)
            assert run.broker.getposition(s.data).size == 0
    finally:
        store.stop()
    (bought,) = engine_fills(emulator, buy.info.client_order_id)
    assert sum(balance(emulator, "BTC")) == before + bought.amount - bought.fee - sum(
        f.amount for f in engine_fills(emulator, first.info.client_order_id))
    assert not engine_fills(emulator, second.info.client_order_id or "none")
