"""Fields of the Bybit emulator's spot records that ccxt reads, as Bybit documents them for spot."""

from __future__ import annotations

from decimal import Decimal

SYMBOL = "BTC/USDT"


def test_instruments_carry_the_integer_symbol_id(exchange):
    info = exchange.market(SYMBOL)["info"]
    assert info["symbolId"] == 1 and info["symbolType"] == "" and info["innovation"] == "0"


def test_open_order_is_a_spot_record_without_contract_fields(emulator, exchange):
    last = emulator.engine.last_price("BTCUSDT")
    placed = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(int(last * Decimal("0.9"))))
    (order,) = exchange.fetch_open_orders(SYMBOL)
    info = order["info"]
    assert order["id"] == placed["id"] and order["symbol"] == SYMBOL
    assert "tpslMode" not in info and "createType" not in info  # spot has neither
    assert info["avgPrice"] == "" and info["cumFeeDetail"] == {}  # nothing filled yet
    assert Decimal(info["basePrice"]) == last and info["ocoTriggerBy"] == "OcoTriggerByUnknown"


def test_filled_order_reports_its_fee_per_coin(emulator, exchange):
    placed = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"marketUnit": "baseCoin"})
    fetched = exchange.fetch_order(placed["id"], SYMBOL, {"acknowledged": True})
    (fill,) = emulator.fills()
    assert fetched["info"]["cumFeeDetail"] == {"BTC": str(fill.fee.normalize())}
    assert fetched["fee"] == {"cost": float(fill.fee), "currency": "BTC"}
    assert fetched["average"] == float(fill.price)
