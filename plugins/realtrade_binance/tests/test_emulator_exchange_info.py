"""The Binance emulator's ``exchangeInfo`` and the rules it announces, through unmodified ccxt.

Every filter Binance sets on a major spot market is listed, and what the filters promise holds:
TAKE_PROFIT and TAKE_PROFIT_LIMIT orders work, and the open-order limits and the price band
refuse what Binance refuses.

The market is a small hand-made file: five flat candles at 30000 (the past), then

====  =======  =======  =======  =======
 #     open     high     low      close
====  =======  =======  =======  =======
 5     30000    30010    29990    30000    (open when the emulator starts)
 6     30000    30400    29950    30350    up through 30300
 7     30350    30360    29600    29650    down through 29700
 8+    29650    29650    29650    29650
====  =======  =======  =======  =======
"""

from __future__ import annotations

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


@pytest.fixture
def emulator(make_emulator, tmp_path):
    path = tmp_path / "BTCUSDT-1m.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{T0 + i * MINUTE},{o},{h},{low},{c},5" for i, (o, h, low, c) in enumerate(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return make_emulator(data=path, history=5, balances={"BTC": "1", "USDT": "100000"})


def run_until_closed(emulator, order_id: str) -> None:
    for _ in range(len(ROWS)):
        if not emulator.order(order_id).status.is_open:
            return
        emulator.step(1)
    raise AssertionError(f"order {order_id} never closed")


def test_exchange_info_lists_every_filter_and_order_type(exchange):
    info = exchange.publicGetExchangeInfo({"symbol": ID})
    (symbol,) = info["symbols"]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert list(filters) == [
        "PRICE_FILTER", "LOT_SIZE", "ICEBERG_PARTS", "MARKET_LOT_SIZE", "TRAILING_DELTA", "PERCENT_PRICE_BY_SIDE",
        "NOTIONAL", "MAX_NUM_ORDERS", "MAX_NUM_ORDER_LISTS", "MAX_NUM_ALGO_ORDERS", "MAX_NUM_ORDER_AMENDS",
    ]  # fmt: skip
    assert filters["MAX_NUM_ORDERS"] == {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}
    assert filters["MAX_NUM_ALGO_ORDERS"] == {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}
    assert filters["ICEBERG_PARTS"] == {"filterType": "ICEBERG_PARTS", "limit": 10}
    assert filters["PERCENT_PRICE_BY_SIDE"]["bidMultiplierDown"] == "0.2"
    assert filters["TRAILING_DELTA"]["maxTrailingBelowDelta"] == 2000
    assert {"TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "STOP_LOSS", "LIMIT_MAKER"} <= set(symbol["orderTypes"])
    assert symbol["permissions"] == [] and symbol["permissionSets"] == [["SPOT"]]
    assert (symbol["isSpotTradingAllowed"], symbol["allowTrailingStop"], symbol["cancelReplaceAllowed"]) == (
        True, False, False,
    )  # fmt: skip
    assert "sors" not in info  # the emulator has no smart order routing
    assert exchange.market(SYMBOL)["info"]["orderTypes"] == symbol["orderTypes"]


def test_take_profit_sell_fires_on_a_rise_at_its_price(emulator, exchange):
    order = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"takeProfitPrice": 30300})
    fetched = exchange.fetch_order(order["id"], SYMBOL)
    assert fetched["info"]["type"] == "TAKE_PROFIT" and fetched["triggerPrice"] == 30300
    assert fetched["status"] == "open"
    run_until_closed(emulator, order["id"])
    filled = emulator.order(order["id"])
    assert filled.status is OrderStatus.FILLED and filled.average_price == Decimal(30300)
    assert exchange.fetch_order(order["id"], SYMBOL)["info"]["type"] == "TAKE_PROFIT"


def test_take_profit_limit_buy_fires_on_a_fall(emulator, exchange):
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, 29700, {"takeProfitPrice": 29700})
    assert exchange.fetch_order(order["id"], SYMBOL)["info"]["type"] == "TAKE_PROFIT_LIMIT"
    emulator.step(2)  # the rise to 30400 passes it by
    assert not emulator.order(order["id"]).triggered
    run_until_closed(emulator, order["id"])
    assert emulator.order(order["id"]).average_price == Decimal(29700)


def test_take_profit_already_reached_would_trigger_immediately(emulator, exchange):
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"takeProfitPrice": 29900})
    assert emulator.refused_orders()[-1].reason == "Order would trigger immediately."


def test_at_most_five_waiting_stops_per_symbol(emulator, exchange):
    stops = [exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": 29000}) for _ in range(5)]
    with pytest.raises(ccxt.InvalidOrder, match="MAX_NUM_ALGO_ORDERS"):
        exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"takeProfitPrice": 31000})
    assert emulator.refused_orders()[-1].code == -2010
    exchange.create_order(SYMBOL, "limit", "sell", 0.01, 31000)  # a plain order is not an algo order
    exchange.cancel_order(stops[0]["id"], SYMBOL)
    exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"takeProfitPrice": 31000})
    assert len(emulator.orders(status="open")) == 6  # 4 stops, 1 take-profit, 1 limit


def test_at_most_200_open_orders_per_symbol(emulator, exchange):
    for _ in range(200):
        exchange.create_order(SYMBOL, "limit", "buy", 0.001, 25000)
    with pytest.raises(ccxt.InvalidOrder, match="MAX_NUM_ORDERS"):
        exchange.create_order(SYMBOL, "limit", "buy", 0.001, 25000)
    exchange.create_order(SYMBOL, "market", "buy", 0.001)  # fills at once: never open
    assert len(emulator.orders(status="open")) == 200


def test_a_price_far_from_the_average_is_refused(emulator, exchange):
    with pytest.raises(ccxt.InvalidOrder, match="PERCENT_PRICE_BY_SIDE"):
        exchange.create_order(SYMBOL, "limit", "buy", 0.001, 5000)  # under 0.2 x 30000
    with pytest.raises(ccxt.InvalidOrder, match="PERCENT_PRICE_BY_SIDE"):
        exchange.create_order(SYMBOL, "limit", "sell", 0.001, 160000)  # over 5 x 30000
    assert [r.code for r in emulator.refused_orders()] == [-1013, -1013]
    exchange.create_order(SYMBOL, "limit", "buy", 0.001, 6000)  # 0.2 x 30000 is inside the band
