"""Lookups of lost orders and fills ask on the exchange's clock, not the machine's.

The emulator replays candles from 2021 (as ``realtrade emulator --data`` does): its orders and
fills are stamped with the replay's dates while this machine's clock says today. A fill lost from
the private stream is still found over REST (within ``fill_grace``, on Bybit too, whose create
answer carries no status), and an order whose create answer is lost is found by client order id,
never sent twice.
"""

from __future__ import annotations

import csv
from decimal import Decimal

import backtrader as bt
import pytest
from test_broker_live import BALANCES, SYMBOL, assert_matches_engine, engine_fills, live, new_store

from realtrade_core.emulator.replay import synthetic_candles
from realtrade_core.emulator.server import Emulator

EXCHANGES = ["binance", "bybit"]
MINUTE = 60_000
JAN_2021 = 1_609_459_200_000  # far behind the machine's clock


@pytest.fixture(params=EXCHANGES)
def exchange(request) -> str:
    return request.param


@pytest.fixture
def replay(exchange, tmp_path):
    """An emulator replaying candles of January 2021 on a manual clock."""
    path = tmp_path / "btc-2021.csv"
    rows = synthetic_candles(seed=5, count=400, interval_ms=MINUTE, start_ms=JAN_2021, start_price=Decimal(30_000))
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for c in rows:
            writer.writerow([c.open_time, c.open, c.high, c.low, c.close, c.volume])
    with Emulator(exchange, symbols=(SYMBOL,), data=str(path), speed=None, history=50, balances=BALANCES) as emu:
        assert emu.engine.now() < JAN_2021 + 400 * MINUTE  # the market lives in 2021
        yield emu


@pytest.fixture
def store(exchange, replay):
    store = new_store(exchange, replay)
    yield store
    store.stop()


def test_a_fill_the_stream_lost_is_found_over_rest_on_the_exchange_clock(exchange, replay, store, tmp_path):
    # audit_interval=3600: only the fill_grace check can find the lost fill within this test
    with live(replay, store, str(tmp_path / "journal.sqlite3"), audit_interval=3600) as run:
        s = run.strategy
        assert run.broker.live.io.exchange_ms() < JAN_2021 + 400 * MINUTE

        def buy_while_the_stream_is_stalled(s):
            replay.stall_connections(60)  # every stream frame is dropped; connections stay open
            return s.buy(size=0.01)

        order = run.do(buy_while_the_stream_is_stalled)  # the REST answer came back
        cid = order.info.client_order_id
        assert engine_fills(replay, cid) and "Completed" not in s.statuses(order)
        replay.reset_faults()  # the stall ends; the fill's frames stay lost
        # Found on the wall clock (fill_grace), not by bars: wait for it, then a bar tells the strategy.
        run.wait(lambda: order.status == bt.Order.Completed, "the lost fill found over REST", timeout=20)
        run.step()
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
        assert_matches_engine(s.last(order), engine_fills(replay, cid))
        assert [o.client_order_id for o in replay.engine.all_orders(replay.api_key)] == [cid]


def test_an_order_whose_answer_was_lost_is_found_by_client_id_and_never_sent_twice(exchange, replay, store, tmp_path):
    with live(replay, store, str(tmp_path / "journal.sqlite3")) as run:
        s = run.strategy
        replay.timeout_next_order()  # the engine executes it, the answer never comes
        order = run.do(lambda s: s.buy(size=0.01))
        cid = order.info.client_order_id
        run.until(lambda: "Completed" in s.statuses(order), "the order completing", steps=20)
        run.wait(lambda: order.info.get("order_id"), "the lookup finding the order")
        run.step(3)  # long past the unknown-outcome window: a second send would have happened
        assert [o.client_order_id for o in replay.engine.all_orders(replay.api_key)] == [cid]
        assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
        assert_matches_engine(s.last(order), engine_fills(replay, cid))


def test_a_private_stream_login_refused_for_its_timestamp_has_the_clock_measured_again(exchange):
    """The exchange's clock jumps a minute ahead while the private stream is up; its next login
    is refused for its timestamp (Binance -1021, Bybit "Params Error"). The connection has the
    store measure the clock again, and the login after that succeeds: no REST call of the
    broker's is needed to bring the account's stream back."""
    import threading

    with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=10, balances=BALANCES) as emu:
        store = new_store(exchange, emu)
        store.start()
        ws = store.spec.websocket.for_store(store, private=True)
        connected = threading.Semaphore(0)
        ws.on("connected", lambda *_: connected.release())
        ws.start()
        try:
            assert connected.acquire(timeout=10), "the private stream never connected"
            before = store.time_offset_ms
            emu.set_clock_skew(60_000)
            assert emu.drop_connections(private=True) >= 1
            assert connected.acquire(timeout=20), "the private stream did not come back"
            assert abs(store.time_offset_ms - before - 60_000) < 5_000
        finally:
            ws.stop(5)
            emu.set_clock_skew(0)
            store.stop()
