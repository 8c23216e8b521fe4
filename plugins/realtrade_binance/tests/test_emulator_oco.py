"""Binance OCO order lists (``POST /api/v3/orderList/oco``) through BinanceExecution.create_oco_orders
and unmodified ccxt against the emulator: both legs rest under one orderListId with the funds
locked once, one leg trading or triggering expires the other, cancelling one cancels both, and a
price on the wrong side of the market is Binance's error as ccxt raises it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from realtrade_binance.execution import BinanceExecution
from realtrade_binance.store import BinanceStore

from realtrade_core.emulator.model import OrderStatus

SYMBOL = "BTC/USDT"
MARKET_ID = "BTCUSDT"
AMOUNT = Decimal("0.01")


def step_until(emulator: Any, condition: Any, max_candles: int = 300) -> None:
    """Step the manual clock one candle at a time until ``condition()`` holds."""
    for _ in range(max_candles):
        if condition():
            return
        emulator.step(1)
    raise AssertionError(f"condition not met within {max_candles} candles")


def engine_order(emulator: Any, order_id: str) -> Any:
    return emulator.engine.get_order(emulator.api_key, MARKET_ID, order_id=int(order_id))


def ticks(emulator: Any, count: int) -> Decimal:
    """The last price moved by ``count`` ticks."""
    spec = emulator.engine.market(MARKET_ID)
    return emulator.engine.last_price(MARKET_ID) + count * spec.tick_size


OcoSender = Callable[..., list]


@pytest.fixture
def oco(emulator: Any) -> Iterator[OcoSender]:
    """Binance's OCO submit (its execution dialect's, as the live broker calls it) through the
    ccxt client of a store attached to the test's emulator (no live session needed)."""
    store = BinanceStore(venue="emulator", emulator=emulator)
    store.start()
    try:
        yield lambda *args: BinanceExecution().create_oco_orders(store.client, *args)
    finally:
        store.stop()


def place_sell_oco(oco: OcoSender, limit: Decimal, stop: Decimal, stop_limit: Decimal | None = None) -> list:
    return oco(SYMBOL, "sell", AMOUNT, limit, stop, stop_limit, "oco-tp-1", "oco-sl-1")


def test_sell_oco_rests_both_legs_under_one_list_and_locks_the_base_once(
    emulator: Any, exchange: Any, oco: OcoSender
) -> None:
    limit_price, stop_price = ticks(emulator, 1), ticks(emulator, -2000)

    limit, stop = place_sell_oco(oco, limit_price, stop_price)

    assert (limit["clientOrderId"], limit["type"], limit["side"], limit["price"]) == (
        "oco-tp-1",
        "limit",
        "sell",
        float(limit_price),
    )
    assert (limit["status"], limit["amount"], limit["postOnly"], limit["info"]["type"]) == (
        "open",
        0.01,
        True,
        "LIMIT_MAKER",
    )
    assert (stop["clientOrderId"], stop["triggerPrice"], stop["status"], stop["info"]["type"]) == (
        "oco-sl-1",
        float(stop_price),
        "open",
        "STOP_LOSS",
    )
    list_id = engine_order(emulator, limit["id"]).list_id
    assert list_id is not None and engine_order(emulator, stop["id"]).list_id == list_id
    assert limit["info"]["orderListId"] == stop["info"]["orderListId"] == list_id
    open_orders = {o["id"]: o for o in exchange.fetch_open_orders(SYMBOL)}
    assert set(open_orders) == {limit["id"], stop["id"]}
    assert {o["info"]["orderListId"] for o in open_orders.values()} == {list_id}
    assert exchange.fetch_balance()["BTC"]["used"] == 0.01  # one lock for the pair

    step_until(emulator, lambda: engine_order(emulator, limit["id"]).status is OrderStatus.FILLED)

    filled, expired = exchange.fetch_order(limit["id"], SYMBOL), exchange.fetch_order(stop["id"], SYMBOL)
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 0.01, float(limit_price))
    assert (expired["status"], expired["filled"], expired["info"]["status"]) == ("expired", 0.0, "EXPIRED")
    assert expired["info"]["orderListId"] == list_id
    assert exchange.fetch_open_orders(SYMBOL) == []
    assert exchange.fetch_balance()["BTC"]["used"] == 0
    trade = exchange.fetch_my_trades(SYMBOL)[-1]
    assert (trade["order"], trade["takerOrMaker"], trade["info"]["orderListId"]) == (limit["id"], "maker", list_id)


def test_triggered_stop_expires_the_take_profit_and_fills_at_its_stop_price(
    emulator: Any, exchange: Any, oco: OcoSender
) -> None:
    limit_price, stop_price = ticks(emulator, 2000), ticks(emulator, -1)
    limit, stop = place_sell_oco(oco, limit_price, stop_price)

    step_until(emulator, lambda: engine_order(emulator, stop["id"]).status is OrderStatus.FILLED)

    expired, filled = exchange.fetch_order(limit["id"], SYMBOL), exchange.fetch_order(stop["id"], SYMBOL)
    assert (expired["status"], expired["filled"], expired["info"]["status"]) == ("expired", 0.0, "EXPIRED")
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 0.01, float(stop_price))
    assert exchange.fetch_balance()["BTC"]["used"] == 0


def test_stop_limit_leg_carries_its_limit_price(emulator: Any, oco: OcoSender) -> None:
    stop_price = ticks(emulator, -1000)
    stop_limit = ticks(emulator, -1100)

    _, stop = place_sell_oco(oco, ticks(emulator, 1000), stop_price, stop_limit)

    assert (stop["info"]["type"], stop["price"], stop["triggerPrice"]) == (
        "STOP_LOSS_LIMIT",
        float(stop_limit),
        float(stop_price),
    )
    placed = engine_order(emulator, stop["id"])
    assert (placed.price, placed.stop_price, placed.status) == (stop_limit, stop_price, OrderStatus.NEW)


def test_buy_oco_puts_the_stop_above_and_the_limit_maker_below(
    emulator: Any, exchange: Any, oco: OcoSender
) -> None:
    limit_price, stop_price = ticks(emulator, -1000), ticks(emulator, 1000)
    usdt_before = exchange.fetch_balance()["USDT"]["free"]

    limit, stop = oco(SYMBOL, "buy", AMOUNT, limit_price, stop_price, None, "buy-tp", "buy-sl")

    assert (limit["side"], limit["price"], limit["info"]["type"]) == ("buy", float(limit_price), "LIMIT_MAKER")
    assert (stop["side"], stop["triggerPrice"], stop["info"]["type"]) == ("buy", float(stop_price), "STOP_LOSS")
    assert exchange.fetch_balance()["USDT"]["free"] < usdt_before


def test_cancelling_one_leg_cancels_the_list(emulator: Any, exchange: Any, oco: OcoSender) -> None:
    limit, stop = place_sell_oco(oco, ticks(emulator, 1000), ticks(emulator, -1000))

    canceled = exchange.cancel_order(stop["id"], SYMBOL)

    assert (canceled["id"], canceled["status"], canceled["info"]["orderListId"]) == (
        stop["id"],
        "canceled",
        stop["info"]["orderListId"],
    )
    assert [exchange.fetch_order(o["id"], SYMBOL)["status"] for o in (limit, stop)] == ["canceled", "canceled"]
    assert exchange.fetch_open_orders(SYMBOL) == []
    assert exchange.fetch_balance()["BTC"]["used"] == 0


def test_delete_order_list_cancels_both_legs(emulator: Any, exchange: Any, oco: OcoSender) -> None:
    limit, stop = place_sell_oco(oco, ticks(emulator, 1000), ticks(emulator, -1000))
    list_id = limit["info"]["orderListId"]

    answer = exchange.privateDeleteOrderList({"symbol": MARKET_ID, "orderListId": list_id})

    assert (answer["orderListId"], answer["listStatusType"], answer["listOrderStatus"]) == (
        list_id,
        "ALL_DONE",
        "ALL_DONE",
    )
    assert [(r["orderId"], r["status"]) for r in answer["orderReports"]] == [
        (int(limit["id"]), "CANCELED"),
        (int(stop["id"]), "CANCELED"),
    ]
    with pytest.raises(ccxt.OrderNotFound):
        exchange.privateDeleteOrderList({"symbol": MARKET_ID, "orderListId": list_id})


def test_oco_answer_has_binance_order_list_shape(emulator: Any, exchange: Any) -> None:
    answer = exchange.privatePostOrderListOco(
        {
            "symbol": MARKET_ID,
            "side": "SELL",
            "quantity": "0.01",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": str(ticks(emulator, 1000)),
            "belowType": "STOP_LOSS_LIMIT",
            "belowStopPrice": str(ticks(emulator, -1000)),
            "belowPrice": str(ticks(emulator, -1100)),
            "belowTimeInForce": "GTC",
            "listClientOrderId": "my-list",
            "newOrderRespType": "RESULT",
        }
    )

    assert set(answer) == {
        "orderListId", "contingencyType", "listStatusType", "listOrderStatus", "listClientOrderId",
        "transactionTime", "symbol", "orders", "orderReports",
    }  # fmt: skip
    assert (answer["contingencyType"], answer["listStatusType"], answer["listOrderStatus"]) == (
        "OCO",
        "EXEC_STARTED",
        "EXECUTING",
    )
    assert (answer["listClientOrderId"], answer["symbol"]) == ("my-list", MARKET_ID)
    assert [set(o) for o in answer["orders"]] == [{"symbol", "orderId", "clientOrderId"}] * 2
    reports = answer["orderReports"]
    assert [r["orderId"] for r in reports] == [o["orderId"] for o in answer["orders"]]
    assert {r["orderListId"] for r in reports} == {answer["orderListId"]}
    assert sorted(r["type"] for r in reports) == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"]
    assert all(r["status"] == "NEW" and r["side"] == "SELL" for r in reports)
    listed = exchange.privateGetOrderList({"orderListId": answer["orderListId"]})
    assert {k: listed[k] for k in ("orderListId", "listClientOrderId", "orders")} == {
        k: answer[k] for k in ("orderListId", "listClientOrderId", "orders")
    }
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):  # the list is still executing
        exchange.privatePostOrderListOco(
            {
                "symbol": MARKET_ID,
                "side": "SELL",
                "quantity": "0.01",
                "aboveType": "LIMIT_MAKER",
                "abovePrice": str(ticks(emulator, 1000)),
                "belowType": "STOP_LOSS",
                "belowStopPrice": str(ticks(emulator, -1000)),
                "listClientOrderId": "my-list",
            }
        )


@pytest.mark.parametrize(
    ("limit_ticks", "stop_ticks"),
    [(-1, -1000), (1000, 1), (0, -1000)],
    ids=["take-profit-below-the-market", "stop-above-the-market", "take-profit-at-the-market"],
)
def test_prices_on_the_wrong_side_are_binance_relationship_error(
    emulator: Any, exchange: Any, oco: OcoSender, limit_ticks: int, stop_ticks: int
) -> None:
    with pytest.raises(ccxt.InvalidOrder, match=r"The relationship of the prices for the orders is not correct\."):
        place_sell_oco(oco, ticks(emulator, limit_ticks), ticks(emulator, stop_ticks))

    assert exchange.fetch_open_orders(SYMBOL) == []
    assert exchange.fetch_balance()["BTC"]["used"] == 0


def test_oco_beyond_the_balance_is_insufficient_funds(emulator: Any, oco: OcoSender) -> None:
    emulator.engine.set_balance(emulator.api_key, "BTC", Decimal("0.005"))

    with pytest.raises(ccxt.InsufficientFunds):
        place_sell_oco(oco, ticks(emulator, 1000), ticks(emulator, -1000))


@pytest.mark.parametrize(
    ("above", "below", "error"),
    [
        ({"aboveType": "STOP_LOSS", "aboveStopPrice": 1000}, {"belowType": "LIMIT_MAKER", "belowPrice": -1000},
         ccxt.InvalidOrder),  # a SELL needs the LIMIT_MAKER above
        ({"aboveType": "TAKE_PROFIT", "aboveStopPrice": 1000}, {"belowType": "STOP_LOSS", "belowStopPrice": -1000},
         ccxt.InvalidOrder),  # not an order type of the emulated symbol
        ({"aboveType": "LIMIT", "abovePrice": 1000}, {"belowType": "STOP_LOSS", "belowStopPrice": -1000},
         ccxt.BadRequest),  # not an OCO leg type
        ({"aboveType": "LIMIT_MAKER"}, {"belowType": "STOP_LOSS", "belowStopPrice": -1000},
         ccxt.BadRequest),  # abovePrice missing
        ({"aboveType": "LIMIT_MAKER", "abovePrice": 1000, "aboveTimeInForce": "GTC"},
         {"belowType": "STOP_LOSS", "belowStopPrice": -1000}, ccxt.BadRequest),  # GTC on a LIMIT_MAKER
    ],
    ids=["swapped-legs", "take-profit", "limit", "no-price", "time-in-force"],
)  # fmt: skip
def test_unsupported_leg_combinations_are_refused(
    emulator: Any, exchange: Any, above: dict, below: dict, error: type
) -> None:
    request: dict[str, Any] = {"symbol": MARKET_ID, "side": "SELL", "quantity": "0.01"}
    for key, value in {**above, **below}.items():
        request[key] = str(ticks(emulator, value)) if isinstance(value, int) else value

    with pytest.raises(error):
        exchange.privatePostOrderListOco(request)

    assert exchange.fetch_open_orders(SYMBOL) == []


def test_cancel_all_answers_an_oco_as_its_order_list(emulator: Any, exchange: Any, oco: OcoSender) -> None:
    single = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(ticks(emulator, -1000)))
    limit, stop = place_sell_oco(oco, ticks(emulator, 1000), ticks(emulator, -1000))

    answer = exchange.privateDeleteOpenOrders({"symbol": MARKET_ID})

    assert [(a.get("orderId"), a.get("orderListId"), a.get("status")) for a in answer] == [
        (int(single["id"]), -1, "CANCELED"),
        (None, limit["info"]["orderListId"], None),
    ]
    assert [(r["orderId"], r["status"]) for r in answer[1]["orderReports"]] == [
        (int(limit["id"]), "CANCELED"),
        (int(stop["id"]), "CANCELED"),
    ]
    assert exchange.fetch_open_orders(SYMBOL) == []
