"""The engine's perpetual contracts (realtrade_core.emulator.contracts), driven without a server:
margin, reduce-only, margin-mode and leverage rules, stops that take margin at their trigger,
funding on a lockstep replay, and events."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal as D

import pytest

from realtrade_core.emulator import Emulator
from realtrade_core.emulator.clock import EmulatedClock
from realtrade_core.emulator.contracts import FUNDING_INTERVAL_MS, next_funding_after
from realtrade_core.emulator.engine import Engine
from realtrade_core.emulator.model import (
    AccountConfig,
    Candle,
    EngineError,
    MarketSpec,
    OrderStatus,
    PositionEvent,
    RejectReason,
)

MINUTE = 60_000
T0 = 1_704_088_800_000  # 2024-01-01T06:00:00Z
KEY = "contract-key"
SYMBOL = "BTCUSDT"


def _engine(*, balance: str = "10000", lockstep: bool = False, history: int = 10) -> Engine:
    """BTCUSDT perpetual at 1,000 flat for 10 past minutes, then climbing 1 a minute."""
    candles = [Candle(T0 + i * MINUTE, MINUTE, D(1000), D(1000), D(1000), D(1000), D(1)) for i in range(history)]
    for i in range(history, history + 200):
        price = D(1000 + i - history)
        candles.append(Candle(T0 + i * MINUTE, MINUTE, price, price + 1, price, price + 1, D(1)))
    spec = MarketSpec(SYMBOL, "BTC", "USDT", tick_size=D("0.1"), step_size=D("0.001"), min_amount=D("0.001"),
                      maker_fee=D("0.0002"), taker_fee=D("0.0005"), contract=True, max_leverage=50)  # fmt: skip
    clock = EmulatedClock(T0 + history * MINUTE, None)
    accounts = [AccountConfig(KEY, "secret", {"USDT": D(balance)})]
    return Engine([(spec, candles)], clock=clock, accounts=accounts, lockstep=lockstep)


def _usdt(engine: Engine):
    return next(b for b in engine.balances(KEY) if b.asset == "USDT")


def test_a_reduce_only_order_larger_than_the_position_closes_it_and_expires_the_rest():
    engine = _engine()
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))
    order = engine.place_order(KEY, SYMBOL, "sell", "market", D("3"), reduce_only=True)
    assert (order.status, order.filled) == (OrderStatus.EXPIRED, D("1"))
    assert engine.position(KEY, SYMBOL).size == 0 and _usdt(engine).locked == 0


def test_resting_reduce_only_orders_expire_when_the_position_is_closed():
    engine = _engine()
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))
    take_profit = engine.place_order(KEY, SYMBOL, "sell", "limit", D("1"), price=D(1100), reduce_only=True)
    engine.place_order(KEY, SYMBOL, "sell", "market", D("1"))
    assert engine.get_order(KEY, order_id=take_profit.order_id).status is OrderStatus.EXPIRED


def test_only_the_part_that_opens_a_position_needs_margin_less_what_its_closing_frees():
    engine = _engine(balance="101")
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))  # 1,000 at 20x: 50 of margin, 0.5 fee
    # 50.5 left. Selling 2.9 closes the long (freeing its 50) and opens a short of 1.9 (95 of
    # margin): 45 more. Selling 3.1 would need 55 more.
    with pytest.raises(EngineError) as refused:
        engine.place_order(KEY, SYMBOL, "sell", "limit", D("3.1"), price=D(1000))
    assert refused.value.reason is RejectReason.INSUFFICIENT_MARGIN
    order = engine.place_order(KEY, SYMBOL, "sell", "limit", D("2.9"), price=D(1000))
    assert order.status is OrderStatus.FILLED and engine.position(KEY, SYMBOL).size == D("-1.9")


def test_margin_mode_changes_only_while_flat_and_without_orders():
    engine = _engine()
    with pytest.raises(EngineError) as same:
        engine.set_margin_mode(KEY, SYMBOL, "cross")
    assert same.value.reason is RejectReason.NOT_MODIFIED
    resting = engine.place_order(KEY, SYMBOL, "buy", "limit", D("1"), price=D(900))
    with pytest.raises(EngineError) as orders:
        engine.set_margin_mode(KEY, SYMBOL, "isolated")
    assert orders.value.reason is RejectReason.OPEN_ORDERS_EXIST
    engine.cancel_order(KEY, SYMBOL, order_id=resting.order_id)
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))
    with pytest.raises(EngineError) as position:
        engine.set_margin_mode(KEY, SYMBOL, "isolated")
    assert position.value.reason is RejectReason.POSITION_EXISTS
    assert engine.margin_mode(KEY, SYMBOL) == "cross"


def test_lower_leverage_takes_more_margin_or_is_refused():
    engine = _engine(balance="120")
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))  # 50 of margin at 20x
    assert engine.set_leverage(KEY, SYMBOL, 10) == 10 and engine.position(KEY, SYMBOL).margin == 100
    with pytest.raises(EngineError) as refused:
        engine.set_leverage(KEY, SYMBOL, 5)  # 200 of margin: the wallet has 119.5
    assert refused.value.reason is RejectReason.INSUFFICIENT_MARGIN
    with pytest.raises(EngineError) as too_high:
        engine.set_leverage(KEY, SYMBOL, 51)
    assert too_high.value.reason is RejectReason.INVALID_LEVERAGE
    assert engine.leverage(KEY, SYMBOL) == 10


def test_a_stop_takes_its_margin_when_it_triggers_and_is_cancelled_without_it():
    engine = _engine(balance="60")
    stop = engine.place_order(KEY, SYMBOL, "buy", "stop_market", D("2"), stop_price=D("1001.5"))
    assert _usdt(engine).locked == 0  # nothing held while it waits
    engine.step_candles(2)
    assert engine.get_order(KEY, order_id=stop.order_id).status is OrderStatus.CANCELED  # 100 needed, 60 there
    small = engine.place_order(KEY, SYMBOL, "buy", "stop_market", D("1"), stop_price=D("1003.5"))
    engine.step_candles(2)
    assert engine.get_order(KEY, order_id=small.order_id).status is OrderStatus.FILLED
    assert engine.position(KEY, SYMBOL).size == 1


def test_funding_settles_on_a_lockstep_replay_once_it_passes_the_funding_time():
    engine = _engine(lockstep=True, history=100)  # the clock stands at 07:40
    funding = next_funding_after(engine.now())
    assert funding == T0 + 2 * 3_600_000 and funding % FUNDING_INTERVAL_MS == 0
    events: list[PositionEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, PositionEvent) else None)
    engine.place_order(KEY, SYMBOL, "buy", "market", D("1"))
    for _ in range(25):  # candle by candle past 08:00, releasing each close
        engine.step_candles(1)
    paid = [e for e in events if e.reason == "funding_fee"]
    assert len(paid) == 1 and paid[0].time == funding
    assert paid[0].income[0].amount == -(paid[0].positions[0].mark_price * D("0.0001")).quantize(D("1e-8"))


def test_reduce_only_is_refused_on_spot_markets():
    spot = MarketSpec(SYMBOL, "BTC", "USDT")
    candles = [Candle(T0 + i * MINUTE, MINUTE, D(1000), D(1000), D(1000), D(1000), D(1)) for i in range(20)]
    engine = Engine([(spot, candles)], clock=EmulatedClock(T0 + 10 * MINUTE, None),
                    accounts=[AccountConfig(KEY, "s", {"USDT": D(10000), "BTC": D(1)})])  # fmt: skip
    with pytest.raises(EngineError) as refused:
        engine.place_order(KEY, SYMBOL, "sell", "market", D("0.1"), reduce_only=True)
    assert refused.value.reason is RejectReason.INVALID_PARAMETER
    with pytest.raises(EngineError):
        engine.position(KEY, SYMBOL)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_served_emulator_sets_a_perpetuals_mark_price_and_funding_rate_over_its_admin_api(toy_dialect):
    with Emulator(toy_dialect, symbols=["BTC/USDT:USDT"], speed=None, balances={"USDT": 1000}) as emu:
        assert emu.engine.markets[SYMBOL].contract and emu.balances()["USDT"].total == 1000
        status, answer = _post(f"{emu.admin_url}/perpetual", {"symbol": "BTC/USDT:USDT", "mark_price": "12345.5",
                                                               "funding_rate": "-0.0002"})  # fmt: skip
        assert status == 200
        assert (answer["mark_price"], answer["funding_rate"]) == ("12345.5", "-0.0002")
        assert answer["next_funding_time"] == next_funding_after(emu.engine.now())
        assert emu.position("BTC/USDT:USDT").mark_price == D("12345.5")
        status, answer = _post(f"{emu.admin_url}/perpetual", {"symbol": "BTC/USDT:USDT", "mark_price": None})
        assert status == 200 and D(answer["mark_price"]) == emu.engine.last_price(SYMBOL)
        status, answer = _post(f"{emu.admin_url}/perpetual", {"symbol": "BTC/USDT:USDT", "leverage": 5})
        assert status == 400 and "unknown key" in answer["error"]
        status, answer = _post(f"{emu.admin_url}/perpetual", {"symbol": "ETH/USDT:USDT", "mark_price": 1})
        assert status == 400 and "serves no market" in answer["error"]
