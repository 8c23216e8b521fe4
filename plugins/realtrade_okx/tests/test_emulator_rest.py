"""Unmodified ccxt.okx against the OKX emulator dialect: markets, candles, balances, orders,
fills and OKX's errors, each checked against what the engine did."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import ccxt
import pytest

MINUTE = 60_000


def test_markets_come_from_the_spot_instruments_with_lot_size_and_tick(emulator, exchange):
    market = exchange.markets["BTC/USDT"]
    spec = emulator.engine.market("BTCUSDT")
    assert (market["id"], market["spot"], market["active"]) == ("BTC-USDT", True, True)
    assert market["precision"] == {"amount": float(spec.step_size), "price": float(spec.tick_size)}
    assert market["limits"]["amount"]["min"] == float(spec.min_amount)
    assert list(exchange.markets) == ["BTC/USDT"]  # no contract markets


def test_candles_page_as_okx_pages_them_newest_first_with_confirm(emulator, exchange):
    now = emulator.engine.now()
    latest = exchange.publicGetMarketCandles({"instId": "BTC-USDT", "bar": "1m", "limit": "3"})["data"]
    assert [len(row) for row in latest] == [9, 9, 9]
    assert int(latest[0][0]) == now // MINUTE * MINUTE and latest[0][8] == "0"  # the forming candle
    assert int(latest[0][0]) - int(latest[1][0]) == MINUTE and latest[1][8] == "1"
    # ccxt's paging (since -> before/after): contiguous, in order, from since.
    since = now // MINUTE * MINUTE - 150 * MINUTE
    rows = exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=100)
    assert len(rows) == 100 and rows[0][0] == since
    assert all(b[0] - a[0] == MINUTE for a, b in pairwise(rows))
    truth = emulator.engine.candles("BTCUSDT", MINUTE, since, since + 99 * MINUTE, limit=100)
    assert [r[4] for r in rows] == [float(c.close) for c in truth]
    # history-candles serves at most 100 a request.
    old = exchange.publicGetMarketHistoryCandles({"instId": "BTC-USDT", "bar": "1m", "limit": "300"})["data"]
    assert len(old) == 100


def test_hour_candles_aggregate_the_minutes_and_utc_days_open_at_midnight(emulator, exchange):
    hours = exchange.fetch_ohlcv("BTC/USDT", "1h", limit=2)
    start = hours[0][0]
    minutes = emulator.engine.candles("BTCUSDT", MINUTE, start, start + 59 * MINUTE, limit=60)
    assert hours[0][2] == max(float(c.high) for c in minutes) and hours[0][4] == float(minutes[-1].close)
    hong_kong = exchange.publicGetMarketCandles({"instId": "BTC-USDT", "bar": "1D", "limit": "1"})["data"][0]
    utc = exchange.publicGetMarketCandles({"instId": "BTC-USDT", "bar": "1Dutc", "limit": "1"})["data"][0]
    assert int(utc[0]) % 86_400_000 == 0 and int(hong_kong[0]) % 86_400_000 == 16 * 3_600_000


def test_balance_is_the_cash_account(emulator, exchange):
    balance = exchange.fetch_balance()
    assert balance["USDT"] == {"free": 10_000.0, "used": 0.0, "total": 10_000.0}


def test_market_buy_fills_with_the_fee_in_the_coin_bought(emulator, exchange):
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "mkt1"})
    fetched = exchange.fetch_order(order["id"], "BTC/USDT")
    engine_order = emulator.order(client_order_id="mkt1")
    assert fetched["status"] == "closed" and fetched["filled"] == 0.01 and fetched["clientOrderId"] == "mkt1"
    assert fetched["average"] == pytest.approx(float(engine_order.average_price))
    (trade,) = exchange.fetch_my_trades("BTC/USDT")
    (fill,) = emulator.fills(client_order_id="mkt1")
    assert trade["order"] == order["id"] and trade["amount"] == 0.01
    assert trade["fee"] == {"cost": float(fill.fee), "currency": fill.fee_asset}  # OKX writes it negative
    assert trade["info"]["clOrdId"] == "mkt1"
    assert exchange.fetch_balance()["BTC"]["total"] == float(emulator.balances()["BTC"].total)


def test_market_buy_in_quote_currency_is_the_default_of_okx(emulator, exchange):
    # OKX's default for a spot market buy: sz in the quote currency (ccxt sends tgtCcy=base_ccy).
    body = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "100", "clOrdId": "q1"}
    answer = exchange.privatePostTradeOrder(body)
    assert answer["code"] == "0" and answer["data"][0]["sCode"] == "0"
    order = emulator.order(client_order_id="q1")
    assert 0 < order.cost <= Decimal(100)
    record = exchange.privateGetTradeOrder({"instId": "BTC-USDT", "clOrdId": "q1"})["data"][0]
    assert (record["sz"], record["tgtCcy"], record["state"]) == ("100", "quote_ccy", "filled")


def test_a_resting_limit_is_listed_cancelled_and_then_found_cancelled(emulator, exchange):
    price = float(emulator.engine.last_price("BTCUSDT") / 2)
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "lim1"})
    assert [o["id"] for o in exchange.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert exchange.fetch_balance()["USDT"]["used"] == pytest.approx(0.001 * price)
    exchange.cancel_order(order["id"], "BTC/USDT")
    assert exchange.fetch_open_orders("BTC/USDT") == []
    assert exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "lim1"})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="51400"):
        exchange.cancel_order(order["id"], "BTC/USDT")
    assert [o["id"] for o in exchange.fetch_closed_orders("BTC/USDT")] == []  # state=filled only


def test_okx_refusals_reach_ccxt_as_its_error_classes_and_are_recorded(emulator, exchange):
    with pytest.raises(ccxt.BadRequest, match="clOrdId"):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 100.0, {"clientOrderId": "has-dash"})
    with pytest.raises(ccxt.InsufficientFunds, match="51008"):
        exchange.create_order("BTC/USDT", "market", "buy", 1.0, None, {"clientOrderId": "toomuch"})
    price = float(emulator.engine.last_price("BTCUSDT") / 2)
    exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.OrderNotFound, match="51603"):
        exchange.fetch_order("999999", "BTC/USDT")
    refused = {(r.client_order_id, r.code, r.symbol) for r in emulator.refused_orders()}
    assert {("has-dash", 51000, "BTCUSDT"), ("toomuch", 51008, "BTCUSDT"), ("dup1", 51016, "BTCUSDT")} <= refused


def test_signed_requests_need_the_key_secret_passphrase_and_a_recent_timestamp(make_emulator):
    emu = make_emulator(settings={"passphrase": "right"})
    with pytest.raises(ccxt.AuthenticationError, match="50105"):
        emu.ccxt_client(password="wrong").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="50113"):
        emu.ccxt_client(password="right", secret="not-the-secret").fetch_balance()
    assert emu.ccxt_client(password="right").fetch_balance()["USDT"]["total"] == 10_000.0
    emu.set_clock_skew(60_000)
    with pytest.raises(ccxt.InvalidNonce, match="50102"):
        emu.ccxt_client(password="right").fetch_balance()


def test_an_injected_rate_limit_is_okx_50011(emulator, exchange):
    emulator.fail_http(429, path_prefix="/api/v5/account/balance")
    with pytest.raises(ccxt.RateLimitExceeded, match="50011"):
        exchange.fetch_balance()
    assert exchange.fetch_balance()["USDT"]["total"] == 10_000.0
