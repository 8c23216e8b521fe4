"""Lockstep replay and candle-by-candle steps across holes in the data.

In lockstep the replay waits at every candle close until the client acknowledges it; realtrade's
broker acknowledges by itself once the strategy has acted on the bar (and, live, its orders
have been answered), so even at a speed where a candle lasts microseconds every order a
strategy places on a closed bar is in the book before the next candle opens.
"""

from __future__ import annotations

import csv
import threading
from datetime import datetime, timezone
from decimal import Decimal as D

import backtrader as bt
import pytest
from livetest import MINUTE, NO_THROTTLE, Driver, last_closed_open

from realtrade_core import ConfigurationError
from realtrade_core.emulator.clock import EmulatedClock
from realtrade_core.emulator.engine import Engine
from realtrade_core.emulator.lockstep import LockstepPacer
from realtrade_core.emulator.model import Candle, KlineEvent, MarketSpec, OrderEvent, TradeEvent
from realtrade_core.emulator.server import Emulator, EmulatorError
from realtrade_core.store import get_store

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def candle(index: int, price: str = "100", symbol_shift: int = 0) -> Candle:
    p = D(price) + symbol_shift
    return Candle(T0 + index * MINUTE, MINUTE, p, p + 1, p - 1, p + D("0.5"), D("4"))


def spec(symbol: str = "BTCUSDT", base: str = "BTC") -> MarketSpec:
    return MarketSpec(symbol=symbol, base=base, quote="USDT", tick_size=D("0.01"), step_size=D("0.001"),
                      min_amount=D("0.001"), max_amount=D("100"), min_notional=D("5"))  # fmt: skip


def closes(events: list) -> list[tuple[str, int]]:
    return [(e.symbol, e.candle.open_time) for e in events if isinstance(e, KlineEvent) and e.closed]


def recording(engine: Engine) -> list:
    events: list = []
    engine.subscribe(events.append)
    return events


# --- the engine ---------------------------------------------------------------------------------------


def test_a_lockstep_engine_stops_at_each_close_until_released():
    engine = Engine([(spec(), [candle(i) for i in range(8)])], history=2,
                    clock=EmulatedClock(T0 + 2 * MINUTE, speed=None), lockstep=True)  # fmt: skip
    events = recording(engine)
    engine.advance_to(T0 + 6 * MINUTE)
    assert engine.held_at == engine.now() == T0 + 3 * MINUTE  # candle 2 closed, candle 3 at its open
    assert closes(events) == [("BTCUSDT", T0 + 2 * MINUTE)]
    # The next candle's opening trade is out (an order placed now meets it, as backtrader fills a
    # market order at the next open), none after it.
    assert [e.price for e in events if isinstance(e, TradeEvent) and e.time >= T0 + 3 * MINUTE] == [D("100")]
    assert not [e for e in events if isinstance(e, TradeEvent) and e.time > T0 + 3 * MINUTE]
    engine.advance_to(T0 + 6 * MINUTE)  # nothing moves while it waits
    assert engine.now() == T0 + 3 * MINUTE and len(closes(events)) == 1
    assert not engine.release(T0 + 2 * MINUTE)  # a late acknowledgement of an earlier close
    assert engine.release(T0 + 3 * MINUTE)
    engine.advance_to(T0 + 6 * MINUTE)
    assert engine.held_at == T0 + 4 * MINUTE
    assert closes(events) == [("BTCUSDT", T0 + 2 * MINUTE), ("BTCUSDT", T0 + 3 * MINUTE)]


def test_lockstep_waits_after_every_symbol_closing_at_that_instant():
    btc = [candle(i) for i in range(6)]
    eth = [candle(i, "50") for i in range(6)]
    engine = Engine([(spec(), btc), (spec("ETHUSDT", "ETH"), eth)], history=2,
                    clock=EmulatedClock(T0 + 2 * MINUTE, speed=None), lockstep=True)  # fmt: skip
    events = recording(engine)
    engine.advance_to(T0 + 5 * MINUTE)
    assert closes(events) == [("BTCUSDT", T0 + 2 * MINUTE), ("ETHUSDT", T0 + 2 * MINUTE)]
    assert engine.held_at == T0 + 3 * MINUTE


def test_lockstep_needs_a_manual_engine_clock():
    with pytest.raises(ValueError, match="lockstep engine needs a manual clock"):
        Engine([(spec(), [candle(i) for i in range(4)])], history=2, lockstep=True)


def test_each_step_closes_exactly_one_candle_across_a_hole():
    # Candles 0-3, an outage of three candles, then 7-9.
    rows = [candle(i) for i in (0, 1, 2, 3, 7, 8, 9)]
    engine = Engine([(spec(), rows)], history=2, clock=EmulatedClock(T0 + 2 * MINUTE, speed=None))
    events = recording(engine)
    seen = []
    for _ in range(5):
        before = len(closes(events))
        engine.step_candles(1)
        assert len(closes(events)) == before + 1
        seen.append(closes(events)[-1][1])
        assert engine.now() == seen[-1] + MINUTE  # the step ends at that candle's close
    assert seen == [T0 + i * MINUTE for i in (2, 3, 7, 8, 9)]


def test_a_lockstep_step_closes_one_candle_across_a_hole_and_waits_there():
    rows = [candle(i) for i in (0, 1, 2, 5, 6)]
    engine = Engine([(spec(), rows)], history=2, clock=EmulatedClock(T0 + 2 * MINUTE, speed=None), lockstep=True)
    events = recording(engine)
    engine.step_candles(2)
    assert closes(events) == [("BTCUSDT", T0 + 2 * MINUTE), ("BTCUSDT", T0 + 5 * MINUTE)]
    assert engine.held_at == T0 + 6 * MINUTE


def test_the_pacer_moves_on_only_after_an_acknowledgement():
    engine = Engine([(spec(), [candle(i) for i in range(6)])], history=2,
                    clock=EmulatedClock(T0 + 2 * MINUTE, speed=None), lockstep=True)  # fmt: skip
    pacer = LockstepPacer(engine, speed=1e9)  # a minute in 60 ns: every tick reaches the next close
    pacer.tick()
    assert engine.held_at == T0 + 3 * MINUTE
    pacer.tick()
    assert engine.held_at == T0 + 3 * MINUTE
    assert pacer.ack(T0 + 3 * MINUTE) and pacer.state() == {"held_at": None, "acks": 1}
    while engine.held_at is None:
        pacer.tick()
    assert engine.held_at == T0 + 4 * MINUTE


# --- the emulator ----------------------------------------------------------------------------------------


def write_csv(path, rows: list[Candle]) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for c in rows:
            out.writerow([c.open_time, c.open, c.high, c.low, c.close, c.volume])


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_emulator_steps_candle_by_candle_across_a_gap_in_its_data_file(exchange, tmp_path):
    rows = [candle(i) for i in (*range(10), *range(14, 20))]  # a four-candle outage after 9
    write_csv(tmp_path / "gap.csv", rows)
    with Emulator(exchange, data=str(tmp_path / "gap.csv"), speed=None, history=8) as emu:
        events = recording(emu.engine)
        closed = []
        for _ in range(5):
            emu.step(1)
            new = closes(events)[len(closed):]
            assert len(new) == 1
            closed.extend(new)
        client = emu.ccxt_client()
        fetched = [row[0] for row in client.fetch_ohlcv("BTC/USDT", "1m", since=T0 + 8 * MINUTE)]
    assert [t for _, t in closed] == [T0 + i * MINUTE for i in (8, 9, 14, 15, 16)]
    assert fetched[:5] == [T0 + i * MINUTE for i in (8, 9, 14, 15, 16)]


def test_lockstep_needs_a_speed_and_acks_need_lockstep(toy_dialect):
    with pytest.raises(ConfigurationError, match="lockstep paces a running replay"):
        Emulator(toy_dialect, speed=None, lockstep=True)
    emu = Emulator(toy_dialect, speed=None, history=20)
    try:
        with pytest.raises(EmulatorError, match="ack\\(\\) is for a lockstep emulator"):
            emu.ack()
    finally:
        emu.stop()
    emu = Emulator(toy_dialect, speed=600, lockstep=True, history=20)
    try:
        with pytest.raises(EmulatorError, match="step\\(\\)/advance\\(\\) need Emulator\\(speed=None\\)"):
            emu.step()
    finally:
        emu.stop()


def test_a_lockstep_emulator_waits_at_a_close_and_says_where(toy_dialect, wait_until):
    import json
    import urllib.request

    with Emulator(toy_dialect, speed=1e6, lockstep=True, history=20) as emu:
        held = wait_until(lambda: emu.engine.held_at)
        state = json.loads(urllib.request.urlopen(emu.admin_url + "/state").read())
        assert state["lockstep"] == {"held_at": held, "acks": 0} and state["time"] == held
        request = urllib.request.Request(emu.admin_url + "/ack", data=json.dumps({"time": held}).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        answer = json.loads(urllib.request.urlopen(request).read())
        assert answer["released"] is True
        wait_until(lambda: (emu.engine.held_at or 0) > held)
        assert emu.engine.held_at == held + 60_000  # exactly one candle later


# --- realtrade's broker acknowledges by itself ----------------------------------------------------------

LIVE_BARS = 12


class EveryBar(bt.Strategy):
    """On each live bar: note where the emulator stands, place a limit buy that rests."""

    params = (("emulator", None), ("orders", True))

    def __init__(self) -> None:
        self.live = False
        self.bars: list[tuple[int, int | None]] = []  # (bar close ms, emulator time at next())
        self.placed: list[str] = []
        self.enough = threading.Event()

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def next(self) -> None:
        if not self.live or self.enough.is_set():
            return
        close_ms = int(self.data.datetime.datetime(0).replace(tzinfo=timezone.utc).timestamp() * 1000)
        self.bars.append((close_ms, self.p.emulator.engine.now() if self.p.emulator else None))
        if self.p.orders:
            order = self.buy(size=0.001, exectype=bt.Order.Limit, price=round(self.data.close[0] * 0.9, 2))
            self.placed.append(order.info.client_order_id)
        if len(self.bars) >= LIVE_BARS:
            self.enough.set()


def lockstep_run(store, emulator, mode: str, journal: str | None = None) -> EveryBar:
    start = last_closed_open(emulator) - 9 * MINUTE
    cerebro = bt.Cerebro(stdstats=False)
    fromdate = datetime.fromtimestamp(start / 1000, tz=timezone.utc).replace(tzinfo=None)
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", fromdate=fromdate, qcheck=0.01))
    kwargs = {"mode": "live", "journal": journal} if mode == "live" else {"cash": 10_000.0}
    cerebro.setbroker(store.getbroker(**kwargs))
    cerebro.addstrategy(EveryBar, emulator=emulator, orders=mode == "live")
    driver = Driver(cerebro, lambda d: d.wait_strategy(lambda s: s.enough.is_set(), "the live bars"), deadline=90)
    driver.start()
    (strategy,) = cerebro.run()
    driver.check()
    return strategy


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_orders_of_each_closed_bar_are_in_before_the_next_candle_opens(exchange, tmp_path):
    """A candle lasts 60 microseconds (speed 1e6), yet every limit order the strategy places on
    a closed bar reaches the book after that close and the next candle's open, before any other
    trade of the next candle."""
    with Emulator(exchange, speed=1e6, lockstep=True, history=50, balances={"USDT": 100_000}) as emulator:
        timeline: list[tuple[str, int, str]] = []

        def record(event) -> None:
            if isinstance(event, KlineEvent) and event.closed:
                timeline.append(("close", event.candle.open_time + MINUTE, ""))
            elif isinstance(event, TradeEvent):
                timeline.append(("trade", event.time, ""))
            elif isinstance(event, OrderEvent) and event.execution.value == "new":
                timeline.append(("order", event.time, event.order.client_order_id))

        emulator.engine.subscribe(record)
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        strategy = lockstep_run(store, emulator, "live", journal=str(tmp_path / "j.db"))
        store.stop()

    assert len(strategy.placed) == LIVE_BARS
    for (close_ms, _), cid in zip(strategy.bars, strategy.placed, strict=True):
        at = next(i for i, (kind, _, who) in enumerate(timeline) if kind == "order" and who == cid)
        # the last close before it is the bar's own candle...
        last_close = max(t for kind, t, _ in timeline[:at] if kind == "close")
        assert last_close == close_ms, (cid, close_ms, last_close)
        # ...and of the next candle only its opening trade came before it
        assert len([t for kind, t, _ in timeline[:at] if kind == "trade" and t >= close_ms]) == 1
        assert not [t for kind, t, _ in timeline[:at] if kind == "trade" and t > close_ms]


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "over-http"])
def test_paper_trading_holds_a_lockstep_market_at_the_bar_the_strategy_is_on(remote):
    """Whenever the strategy is on a live bar, the emulator stands at that bar's close: the
    broker's acknowledgement (in process, or POST /_emulator/ack) lets the next candle open only
    after ``next()`` has run."""
    with Emulator("binance", speed=1e6, lockstep=True, history=50) as emulator:
        if remote:
            store = get_store("binance", "emulator", emulator_url=emulator.base_http)
        else:
            store = get_store("binance", "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        strategy = lockstep_run(store, emulator, "paper")
        store.stop()
    closes_ms = [close for close, _ in strategy.bars]
    assert len(closes_ms) == LIVE_BARS
    assert closes_ms == list(range(closes_ms[0], closes_ms[0] + LIVE_BARS * MINUTE, MINUTE))  # none skipped
    assert all(now == close for close, now in strategy.bars), strategy.bars


def test_a_lockstep_emulator_says_where_an_accounts_orders_stand_while_it_waits(wait_until):
    """What a live client applies before it uses a bar: the status and filled amount of its
    orders, in process and over HTTP (unknown ids left out; another account's refused)."""
    import json
    import urllib.error
    import urllib.request

    with Emulator("binance", speed=1e6, lockstep=True, history=20, balances={"USDT": 10_000}) as emu:
        held = wait_until(lambda: emu.engine.held_at)
        client = emu.ccxt_client()
        bought = client.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "ls-1"})
        below = round(float(bought["price"] or client.fetch_ticker("BTC/USDT")["last"]) * 0.9, 2)
        resting = client.create_order("BTC/USDT", "limit", "buy", 0.01, below, params={"clientOrderId": "ls-2"})
        assert bought and resting
        states = emu.order_states(["ls-1", "ls-2", "nope"])
        request = urllib.request.Request(emu.admin_url + "/orders",
                                         data=json.dumps({"client_order_ids": ["ls-1", "ls-2"]}).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        answer = json.loads(urllib.request.urlopen(request).read())
        refused = urllib.request.Request(emu.admin_url + "/orders",
                                         data=json.dumps({"client_order_ids": ["ls-1"], "account": "x"}).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(refused)
    assert states == {"held_at": held, "held_for": "close",
                      "orders": {"ls-1": {"status": "filled", "filled": "0.01"},
                                 "ls-2": {"status": "new", "filled": "0"}}}  # fmt: skip
    assert answer == states
    assert error.value.code == 400 and "API key" in json.loads(error.value.read())["error"]


def test_a_lockstep_engine_also_waits_where_orders_trade_within_a_candle():
    """A step that fills (or triggers, or expires) an order holds the replay there until the
    client has reacted: a sibling's cancel or a bracket's exits reach the book before the
    price moves on, as they would in real time, where a candle lasts far longer than a round trip."""
    from realtrade_core.emulator.model import AccountConfig, OrderType, Side

    rows = [candle(i) for i in range(6)]  # each candle runs 100 -> 99 -> 101 -> 100.5
    engine = Engine([(spec(), rows)], history=2, clock=EmulatedClock(T0 + 2 * MINUTE, speed=None), lockstep=True,
                    accounts=[AccountConfig("k", "s", {"USDT": D("1000")})])  # fmt: skip
    engine.advance_to(T0 + 5 * MINUTE)
    assert (engine.held_at, engine.held_for) == (T0 + 3 * MINUTE, "close")
    order = engine.place_order("k", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.1"), price=D("99.5"))
    assert engine.release(T0 + 3 * MINUTE)
    engine.advance_to(T0 + 5 * MINUTE)
    filled_at = engine.held_at
    assert engine.held_for == "orders" and T0 + 3 * MINUTE < filled_at < T0 + 4 * MINUTE
    assert engine.get_order("k", order_id=order.order_id).status.value == "filled"
    assert engine.now() == filled_at
    assert not engine.release(T0 + 3 * MINUTE)  # an acknowledgement of the close before it
    assert engine.release(filled_at)
    engine.advance_to(T0 + 5 * MINUTE)
    assert (engine.held_at, engine.held_for) == (T0 + 4 * MINUTE, "close")
