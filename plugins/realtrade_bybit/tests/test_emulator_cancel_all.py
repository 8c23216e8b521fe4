"""``POST /v5/order/cancel-all`` (spot) in the Bybit emulator, through ccxt's ``cancel_all_orders``.

As Bybit documents it: the open orders of ``symbol`` (else of ``baseCoin``, else every spot
order) of one kind, chosen by ``orderFilter``: ``Order`` by default (plain orders), ``StopOrder``
or ``tpslOrder`` (conditional orders waiting for their trigger). The answer lists the
cancelled orders' ``orderId`` / ``orderLinkId`` with ``success`` "1".
"""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

SYMBOL = "BTC/USDT"


@pytest.fixture
def emulator(make_emulator):
    return make_emulator(symbols=["BTC/USDT", "ETH/USDT"], balances={"USDT": 100_000, "BTC": 1, "ETH": 10})


@pytest.fixture
def exchange(emulator):
    client = emulator.ccxt_client(options={"defaultType": "spot"})
    client.load_markets()
    return client


def below(emulator, symbol: str = "BTCUSDT") -> float:
    return float(int(emulator.engine.last_price(symbol) * Decimal("0.8")))


def above(emulator, symbol: str = "BTCUSDT") -> float:
    return float(int(emulator.engine.last_price(symbol) * Decimal("1.2")))


def statuses(emulator) -> dict[str, str]:
    return {o.client_order_id: o.status.value for o in emulator.orders()}


def test_cancel_all_of_a_symbol_cancels_its_plain_orders_and_lists_them(emulator, exchange):
    buy = exchange.create_order(SYMBOL, "limit", "buy", 0.01, below(emulator), {"clientOrderId": "buy1"})
    sell = exchange.create_order(SYMBOL, "limit", "sell", 0.01, above(emulator), {"clientOrderId": "sell1"})
    exchange.create_order("ETH/USDT", "limit", "buy", 0.1, below(emulator, "ETHUSDT"), {"clientOrderId": "eth1"})
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": below(emulator)})
    assert emulator.balances()["USDT"].locked > 0

    cancelled = exchange.cancel_all_orders(SYMBOL)

    assert sorted((o["id"], o["clientOrderId"]) for o in cancelled) == sorted(
        [(buy["id"], "buy1"), (sell["id"], "sell1")]
    )
    assert all(o["symbol"] == SYMBOL for o in cancelled)
    after = statuses(emulator)
    assert (after["buy1"], after["sell1"], after["eth1"]) == ("canceled", "canceled", "new")
    assert emulator.order(stop["id"]).status.is_open  # a waiting conditional order is not "Order"
    eth_locked = Decimal(str(below(emulator, "ETHUSDT"))) * Decimal("0.1")
    assert emulator.balances()["USDT"].locked == eth_locked  # only the ETH order still holds USDT
    assert [o["id"] for o in exchange.fetch_open_orders(SYMBOL)] == [stop["id"]]


def test_trigger_cancels_only_conditional_orders_which_end_deactivated(emulator, exchange):
    plain = exchange.create_order(SYMBOL, "limit", "buy", 0.01, below(emulator))
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": below(emulator)})
    take = exchange.create_order(SYMBOL, "limit", "sell", 0.01, above(emulator), {"triggerPrice": above(emulator)})

    cancelled = exchange.cancel_all_orders(SYMBOL, {"trigger": True})

    assert sorted(o["id"] for o in cancelled) == sorted([stop["id"], take["id"]])
    fetched = exchange.fetch_order(stop["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "canceled" and fetched["info"]["orderStatus"] == "Deactivated"
    assert fetched["info"]["cancelType"] == "CancelByUser"
    assert [o["id"] for o in exchange.fetch_open_orders(SYMBOL)] == [plain["id"]]


def test_tpsl_filter_cancels_only_tpsl_orders(emulator, exchange):
    stop = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": below(emulator)})
    tpsl = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": below(emulator)})
    assert emulator.balances()["BTC"].locked == Decimal("0.01")  # a tpslOrder holds its coins

    cancelled = exchange.cancel_all_orders(SYMBOL, {"orderFilter": "tpslOrder"})

    assert [o["id"] for o in cancelled] == [tpsl["id"]]
    assert emulator.order(stop["id"]).status.is_open
    assert emulator.balances()["BTC"].locked == 0


def test_without_a_symbol_every_spot_order_is_cancelled(emulator, exchange):
    ids = {
        exchange.create_order(SYMBOL, "limit", "buy", 0.01, below(emulator))["id"],
        exchange.create_order("ETH/USDT", "limit", "buy", 0.1, below(emulator, "ETHUSDT"))["id"],
    }
    assert {o["id"] for o in exchange.cancel_all_orders()} == ids
    assert emulator.orders(status="open") == []


def test_base_coin_narrows_the_orders_cancelled(emulator, exchange):
    exchange.create_order(SYMBOL, "limit", "buy", 0.01, below(emulator))
    eth = exchange.create_order("ETH/USDT", "limit", "buy", 0.1, below(emulator, "ETHUSDT"))
    assert [o["id"] for o in exchange.cancel_all_orders(None, {"baseCoin": "ETH"})] == [eth["id"]]
    assert [o.symbol for o in emulator.orders(status="open")] == ["BTCUSDT"]


def test_nothing_open_answers_an_empty_list(emulator, exchange):
    assert exchange.cancel_all_orders(SYMBOL) == []
    raw = exchange.privatePostV5OrderCancelAll({"category": "spot", "symbol": "BTCUSDT"})
    assert raw["retCode"] == 0 and raw["result"] == {"list": [], "success": "1"}


def test_a_filled_order_is_not_listed(emulator, exchange):
    exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"marketUnit": "baseCoin"})
    resting = exchange.create_order(SYMBOL, "limit", "buy", 0.01, below(emulator))
    assert [o["id"] for o in exchange.cancel_all_orders(SYMBOL)] == [resting["id"]]


def test_an_unknown_order_filter_is_refused(exchange):
    with pytest.raises(ccxt.InvalidOrder, match="170202"):
        exchange.cancel_all_orders(SYMBOL, {"orderFilter": "Everything"})
