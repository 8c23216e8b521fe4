"""Bybit spot conditional orders in the emulator, through unmodified ccxt.bybit and the private stream.

A ``StopOrder`` conditional order (ccxt: ``params={"triggerPrice": x}``) holds no funds until it
triggers, and its trigger direction follows from where the trigger lies against the last price
when it is placed. A ``tpslOrder`` holds its funds from the start.

The market is a small hand-made file, so every price the tests meet is known in advance: five
flat candles at 30000 (the past), then

====  =======  =======  =======  =======  ==============================================
 #     open     high     low      close    path (4 steps)
====  =======  =======  =======  =======  ==============================================
 5     30000    30010    29990    30000    the candle open when the emulator starts
 6     30000    30400    29950    30350    up through 30300
 7     30350    30360    29600    29650    down through 29700
 8+    29650    29650    29650    29650    flat
====  =======  =======  =======  =======  ==============================================

Each candle opens at the previous close, so a trigger is always crossed within a candle and
fires at its own price.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal

import ccxt
import pytest

from realtrade_core.emulator.model import OrderStatus

SYMBOL = "BTC/USDT"
ID = "BTCUSDT"
MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
ROWS = [
    *[("30000", "30000", "30000", "30000")] * 5,
    ("30000", "30010", "29990", "30000"),
    ("30000", "30400", "29950", "30350"),
    ("30350", "30360", "29600", "29650"),
    *[("29650", "29650", "29650", "29650")] * 4,
]
TAKE_PROFIT = Decimal(30300)
STOP_LOSS = Decimal(29700)


def auth_message(api_key: str, secret: str, expires: int) -> dict:
    signature = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return {"op": "auth", "args": [api_key, expires, signature]}


def topic_is(topic):
    return lambda message: message.get("topic") == topic


@pytest.fixture
def emulator(make_emulator, tmp_path):
    """The hand-made market above; the account holds exactly 0.01 BTC and 1000 USDT."""
    path = tmp_path / "BTCUSDT-1m.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{T0 + i * MINUTE},{o},{h},{low},{c},5" for i, (o, h, low, c) in enumerate(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return make_emulator(data=path, history=5, balances={"BTC": "0.01", "USDT": "1000"})


@pytest.fixture
def private(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    assert client.request(auth_message(emulator.api_key, emulator.secret, expires))["success"] is True
    assert client.request({"op": "subscribe", "args": ["order"]})["success"] is True
    return client


def engine_order(emulator, order_id: str):
    return emulator.engine.get_order(emulator.api_key, ID, order_id=int(order_id))


def step_until(emulator, predicate, max_candles: int = len(ROWS)) -> None:
    """Step the manual clock one candle at a time until ``predicate()`` holds."""
    for _ in range(max_candles):
        if predicate():
            return
        emulator.step(1)
    assert predicate(), f"not reached within {max_candles} candles"


def btc(exchange) -> tuple[float, float, float]:
    # A coin the account no longer holds drops out of Bybit's wallet, and so out of ccxt's balance.
    balance = exchange.fetch_balance().get("BTC") or {"free": 0, "used": 0, "total": 0}
    return balance["free"], balance["used"], balance["total"]


def test_take_profit_and_stop_loss_rest_on_the_same_coins_and_the_second_is_cancelled(emulator, exchange, private):
    assert emulator.engine.last_price(ID) == Decimal(30000)
    take = exchange.create_order(
        SYMBOL, "limit", "sell", 0.01, float(TAKE_PROFIT), {"triggerPrice": float(TAKE_PROFIT), "clientOrderId": "tp"}
    )
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": float(STOP_LOSS)})

    # Both wait, neither holds the coins.
    listed = {o["id"]: o for o in exchange.fetch_open_orders(SYMBOL, params={"trigger": True})}
    assert set(listed) == {take["id"], stop["id"]}
    for order, direction in ((listed[take["id"]], 1), (listed[stop["id"]], 2)):
        assert order["status"] == "open" and order["info"]["orderStatus"] == "Untriggered"
        assert order["info"]["triggerDirection"] == direction and order["info"]["stopOrderType"] == "Stop"
    assert listed[take["id"]]["triggerPrice"] == float(TAKE_PROFIT) == listed[take["id"]]["price"]
    assert listed[stop["id"]]["triggerPrice"] == float(STOP_LOSS)
    assert btc(exchange) == (0.01, 0, 0.01)

    # The rise fills the take-profit at its own price.
    step_until(emulator, lambda: not engine_order(emulator, take["id"]).status.is_open)
    filled = exchange.fetch_order(take["id"], SYMBOL, {"acknowledged": True})
    assert filled["status"] == "closed" and filled["filled"] == 0.01 and filled["average"] == float(TAKE_PROFIT)
    (trade,) = exchange.fetch_order_trades(take["id"], SYMBOL)
    assert trade["price"] == float(TAKE_PROFIT)
    assert engine_order(emulator, stop["id"]).status is OrderStatus.NEW
    assert btc(exchange) == (0, 0, 0)

    # The fall triggers the stop-loss, which finds no coins left: cancelled, nothing traded.
    step_until(emulator, lambda: not engine_order(emulator, stop["id"]).status.is_open)
    assert emulator.engine.last_price(ID) < STOP_LOSS
    cancelled = exchange.fetch_order(stop["id"], SYMBOL, {"acknowledged": True})
    assert cancelled["status"] == "canceled" and cancelled["filled"] == 0
    assert cancelled["info"]["orderStatus"] == "Cancelled" and cancelled["info"]["rejectReason"] == "EC_Others"
    assert cancelled["info"]["cancelType"] == "UNKNOWN"
    (history,) = exchange.fetch_canceled_orders(SYMBOL)
    assert history["id"] == stop["id"] and history["status"] == "canceled"
    assert exchange.fetch_order_trades(stop["id"], SYMBOL) == []
    assert exchange.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    balances = {b.asset: b for b in emulator.engine.balances(emulator.api_key)}
    assert balances["BTC"].free == balances["BTC"].locked == 0
    fee = engine_order(emulator, take["id"]).fee
    assert (balances["USDT"].free, balances["USDT"].locked) == (1000 + Decimal("0.01") * TAKE_PROFIT - fee, 0)
    assert btc(exchange) == (0, 0, 0)

    pushes = {}
    deadline = time.monotonic() + 5
    while (take["id"], "Filled") not in pushes or (stop["id"], "Cancelled") not in pushes:
        item = private.recv_until(topic_is("order"), timeout=max(deadline - time.monotonic(), 0.01))["data"][0]
        pushes[(item["orderId"], item["orderStatus"])] = item
    assert (take["id"], "Untriggered") in pushes and (take["id"], "Triggered") in pushes
    assert (stop["id"], "Untriggered") in pushes and (stop["id"], "Triggered") not in pushes
    assert pushes[(stop["id"], "Cancelled")]["cumExecQty"] == "0"


def test_a_stop_the_client_cancels_is_deactivated(emulator, exchange):
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": float(STOP_LOSS)})
    exchange.cancel_order(stop["id"], SYMBOL, {"trigger": True})
    fetched = exchange.fetch_order(stop["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "canceled" and fetched["info"]["orderStatus"] == "Deactivated"
    assert fetched["info"]["cancelType"] == "CancelByUser"


def test_buy_trigger_below_the_market_fires_on_a_fall(emulator, exchange):
    buy = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(STOP_LOSS), {"triggerPrice": float(STOP_LOSS)})
    (listed,) = exchange.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert listed["info"]["triggerDirection"] == 2 and listed["info"]["orderStatus"] == "Untriggered"
    assert exchange.fetch_balance()["USDT"]["used"] == 0

    emulator.step(2)  # the rise to 30400 passes without touching it
    assert emulator.engine.candles(ID, MINUTE, limit=2)[0].high == Decimal(30400)
    assert not engine_order(emulator, buy["id"]).triggered

    step_until(emulator, lambda: not engine_order(emulator, buy["id"]).status.is_open)
    filled = exchange.fetch_order(buy["id"], SYMBOL, {"acknowledged": True})
    assert filled["status"] == "closed" and filled["average"] == float(STOP_LOSS) and filled["filled"] == 0.01


def test_buy_trigger_above_the_market_still_fires_on_a_rise(emulator, exchange):
    buy = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"triggerPrice": float(TAKE_PROFIT)})
    assert exchange.fetch_open_orders(SYMBOL, params={"trigger": True})[0]["info"]["triggerDirection"] == 1
    step_until(emulator, lambda: not engine_order(emulator, buy["id"]).status.is_open)
    placed = engine_order(emulator, buy["id"])
    assert placed.status is OrderStatus.FILLED and placed.average_price == TAKE_PROFIT


def test_tpsl_order_holds_its_coins_from_the_start(emulator, exchange):
    # ccxt sends a spot stopLossPrice as orderFilter=tpslOrder with triggerDirection 2 (a fall).
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": float(STOP_LOSS)})
    (listed,) = exchange.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert listed["id"] == stop["id"] and listed["info"]["stopOrderType"] == "tpslOrder"
    assert listed["info"]["triggerDirection"] == 2
    assert btc(exchange) == (0, 0.01, 0.01)
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": float(STOP_LOSS)})
    step_until(emulator, lambda: not engine_order(emulator, stop["id"]).status.is_open)
    placed = engine_order(emulator, stop["id"])
    assert placed.status is OrderStatus.FILLED and placed.average_price == STOP_LOSS
