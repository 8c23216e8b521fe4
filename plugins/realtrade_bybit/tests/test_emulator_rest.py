"""Fidelity of the Bybit emulator's REST dialect, seen through unmodified ccxt.bybit.

Only ``urls["api"]`` of the ccxt client differs from a mainnet client (``emulator.ccxt_client()``);
every expectation is checked against what the emulator's engine actually did.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import ccxt
import pytest

from realtrade_core.emulator.model import OrderStatus, Side

SYMBOL = "BTC/USDT"
ID = "BTCUSDT"
MINUTE = 60_000


def engine_order(emulator, order_id: str):
    return emulator.engine.get_order(emulator.api_key, ID, order_id=int(order_id))


def ohlcv(candle) -> list:
    return [
        candle.open_time,
        float(candle.open),
        float(candle.high),
        float(candle.low),
        float(candle.close),
        float(candle.volume),
    ]


def step_until(emulator, predicate, max_candles: int = 200) -> None:
    """Step the manual clock one candle at a time until ``predicate()`` holds."""
    for _ in range(max_candles):
        if predicate():
            return
        emulator.step(1)
    assert predicate(), f"the market did not get there within {max_candles} candles"


# --- markets and market data -------------------------------------------------------------------


def test_load_markets_reports_the_market_spec(emulator, exchange):
    spec = emulator.engine.market(ID)
    market = exchange.market(SYMBOL)
    assert market["id"] == ID and market["spot"] is True and market["active"] is True
    assert market["precision"] == {"amount": float(spec.step_size), "price": float(spec.tick_size)}
    assert market["limits"]["amount"] == {"min": float(spec.min_amount), "max": float(spec.max_amount)}
    assert market["limits"]["cost"]["min"] == float(spec.min_notional)
    assert list(exchange.markets) == [SYMBOL]  # contract categories are served empty


def test_fetch_time_is_the_server_clock_with_injected_skew(emulator, exchange):
    before = exchange.milliseconds()
    assert before - 1000 <= exchange.fetch_time() <= exchange.milliseconds() + 1000
    emulator.set_clock_skew(60_000)
    assert exchange.fetch_time() >= before + 59_000


def test_fetch_status_is_ok(exchange):
    assert exchange.fetch_status()["status"] == "ok"


def test_fetch_trading_fee_equals_the_market_spec(emulator, exchange):
    spec = emulator.engine.market(ID)
    fee = exchange.fetch_trading_fee(SYMBOL)
    assert (fee["maker"], fee["taker"]) == (float(spec.maker_fee), float(spec.taker_fee))


def test_fetch_ticker_equals_the_engine(emulator, exchange):
    emulator.step(3)
    ticker = exchange.fetch_ticker(SYMBOL)
    stats = emulator.engine.ticker_24h(ID)
    bid, bid_amount, ask, ask_amount = emulator.engine.book(ID)
    assert ticker["last"] == float(emulator.engine.last_price(ID)) == float(stats["last"])
    assert (ticker["bid"], ticker["ask"]) == (float(bid), float(ask))
    assert (ticker["bidVolume"], ticker["askVolume"]) == (float(bid_amount), float(ask_amount))
    assert (ticker["open"], ticker["high"], ticker["low"]) == (
        float(stats["open"]),
        float(stats["high"]),
        float(stats["low"]),
    )
    assert ticker["baseVolume"] == float(stats["volume"])
    assert ticker["quoteVolume"] == float(stats["quote_volume"])


def test_fetch_ohlcv_pages_forward_over_the_whole_history(emulator, exchange):
    emulator.step(2)  # the last page ends in the candle still forming
    expected = [ohlcv(c) for c in emulator.engine.candles(ID, MINUTE, limit=1000)]
    assert len(expected) > 450
    since, pages, got = expected[0][0], 0, []
    while True:
        page = exchange.fetch_ohlcv(SYMBOL, "1m", since=since, limit=100)
        if not page:
            break
        pages += 1
        got += page
        since = page[-1][0] + MINUTE
    assert pages >= 4
    assert got == expected  # same candles, oldest first, no gap, no duplicate


def test_fetch_ohlcv_without_since_returns_the_latest_candles(emulator, exchange):
    expected = [ohlcv(c) for c in emulator.engine.candles(ID, MINUTE, limit=50)]
    assert exchange.fetch_ohlcv(SYMBOL, "1m", limit=50) == expected


@pytest.mark.parametrize(("timeframe", "interval_ms"), [("5m", 5 * MINUTE), ("1h", 60 * MINUTE)])
def test_fetch_ohlcv_aggregates_higher_timeframes_like_the_engine(emulator, exchange, timeframe, interval_ms):
    expected = [ohlcv(c) for c in emulator.engine.candles(ID, interval_ms, limit=1000)]
    got = exchange.fetch_ohlcv(SYMBOL, timeframe, since=expected[0][0], limit=1000)
    assert got == expected


def test_fetch_ohlcv_weekly_candle_opens_on_monday(emulator, exchange):
    (candle,) = exchange.fetch_ohlcv(SYMBOL, "1w", limit=1)
    assert datetime.fromtimestamp(candle[0] / 1000, tz=timezone.utc).strftime("%a %H:%M") == "Mon 00:00"
    source = emulator.engine.candles(ID, MINUTE, start=candle[0], limit=100_000)
    assert candle[1] == float(source[0].open) and candle[4] == float(source[-1].close)
    assert candle[2] == max(float(c.high) for c in source)
    assert candle[3] == min(float(c.low) for c in source)


def test_fetch_ohlcv_monthly_candle_opens_on_the_first(emulator, exchange):
    (candle,) = exchange.fetch_ohlcv(SYMBOL, "1M", limit=1)
    opened = datetime.fromtimestamp(candle[0] / 1000, tz=timezone.utc)
    assert (opened.day, opened.hour, opened.minute) == (1, 0, 0)
    source = emulator.engine.candles(ID, MINUTE, start=candle[0], limit=100_000)
    assert candle[5] == float(sum(c.volume for c in source))


def test_fetch_order_book_is_the_one_level_book(emulator, exchange):
    emulator.step(1)
    book = exchange.fetch_order_book(SYMBOL)
    bid, bid_amount, ask, ask_amount = emulator.engine.book(ID)
    assert book["bids"] == [[float(bid), float(bid_amount)]]
    assert book["asks"] == [[float(ask), float(ask_amount)]]


def test_fetch_trades_are_the_engine_public_trades(emulator, exchange):
    emulator.step(3)
    expected = emulator.engine.public_trades(ID, 60)
    trades = exchange.fetch_trades(SYMBOL)
    assert [t["id"] for t in trades] == [str(t.trade_id) for t in expected]
    assert [(t["price"], t["amount"], t["timestamp"]) for t in trades] == [
        (float(t.price), float(t.amount), t.time) for t in expected
    ]


# --- account ----------------------------------------------------------------------------------------


def test_fetch_balance_equals_the_engine(emulator, exchange):
    exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(emulator.engine.last_price(ID)) * 0.9)
    balance = exchange.fetch_balance()
    for entry in emulator.engine.balances(emulator.api_key):
        assert balance[entry.asset]["total"] == float(entry.total)
        assert balance[entry.asset]["free"] == float(entry.free)
        assert balance[entry.asset]["used"] == float(entry.locked)
    assert balance["USDT"]["used"] > 0  # the resting buy locks quote


# --- orders -------------------------------------------------------------------------------------------


def test_market_buy_in_base_amount_fills_completely(emulator, exchange):
    order = exchange.create_order(SYMBOL, "market", "buy", 0.01)
    placed = engine_order(emulator, order["id"])
    assert placed.status is OrderStatus.FILLED and placed.amount == Decimal("0.01")
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "closed" and fetched["type"] == "market" and fetched["side"] == "buy"
    assert fetched["amount"] == fetched["filled"] == 0.01
    assert fetched["average"] == float(placed.average_price)
    assert fetched["cost"] == float(placed.cost)
    assert fetched["fee"] == {"cost": float(placed.fee), "currency": "BTC"}


def test_market_buy_with_price_spends_the_quote_amount(emulator, exchange):
    last = emulator.engine.last_price(ID)
    step = emulator.engine.market(ID).step_size
    # With a price, ccxt sends amount * price as a quote-denominated qty (no marketUnit), which
    # Bybit reads as quote coin for a market buy.
    order = exchange.create_order(SYMBOL, "market", "buy", 0.02, float(last))
    placed = engine_order(emulator, order["id"])
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    quote_qty = Decimal(fetched["info"]["qty"])
    assert fetched["info"]["marketUnit"] == "quoteCoin" and quote_qty <= Decimal("0.02") * last
    assert placed.status is OrderStatus.FILLED
    assert placed.filled == (quote_qty / last // step) * step
    assert placed.cost <= quote_qty and fetched["filled"] == float(placed.filled)


def test_market_buy_by_cost_buys_what_the_cost_affords(emulator, exchange):
    order = exchange.create_market_buy_order_with_cost(SYMBOL, 100)
    placed = engine_order(emulator, order["id"])
    last = emulator.engine.last_price(ID)
    step = emulator.engine.market(ID).step_size
    assert placed.status is OrderStatus.FILLED
    assert placed.filled == (Decimal(100) / last // step) * step
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["info"]["marketUnit"] == "quoteCoin" and fetched["info"]["qty"] == "100"
    assert fetched["filled"] == float(placed.filled) and fetched["cost"] <= 100


def test_market_sell_fills_and_pays_the_fee_in_quote(emulator, exchange):
    order = exchange.create_order(SYMBOL, "market", "sell", 0.05)
    placed = engine_order(emulator, order["id"])
    assert placed.status is OrderStatus.FILLED and placed.side is Side.SELL
    (trade,) = exchange.fetch_my_trades(SYMBOL)
    assert trade["order"] == order["id"] and trade["side"] == "sell" and trade["takerOrMaker"] == "taker"
    assert trade["fee"]["currency"] == "USDT" and trade["fee"]["cost"] == float(placed.fee)


def test_resting_limit_order_is_listed_open_then_canceled(emulator, exchange):
    price = round(float(emulator.engine.last_price(ID)) * 0.9, 2)
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "rest-1"})
    (listed,) = exchange.fetch_open_orders(SYMBOL)
    assert listed["id"] == order["id"] and listed["clientOrderId"] == "rest-1"
    assert listed["status"] == "open" and listed["price"] == price and listed["amount"] == 0.01
    assert listed["remaining"] == 0.01 and listed["filled"] == 0
    exchange.cancel_order(order["id"], SYMBOL)
    assert engine_order(emulator, order["id"]).status is OrderStatus.CANCELED
    assert exchange.fetch_open_orders(SYMBOL) == []
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "canceled"


def test_open_orders_of_every_symbol_need_the_spot_default_type(emulator):
    # Without a symbol ccxt.bybit asks for its defaultType (swap -> category=linear), as it does
    # against Bybit itself; options={"defaultType": "spot"} makes it ask for spot orders.
    exchange = emulator.ccxt_client(options={"defaultType": "spot"})
    price = round(float(emulator.engine.last_price(ID)) * 0.9, 2)
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, price)
    assert [o["id"] for o in exchange.fetch_open_orders()] == [order["id"]]
    assert emulator.ccxt_client().fetch_open_orders() == []


def test_marketable_limit_order_fills_at_once_as_taker(emulator, exchange):
    last = emulator.engine.last_price(ID)
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(last) * 1.01)
    placed = engine_order(emulator, order["id"])
    assert placed.status is OrderStatus.FILLED and placed.average_price == last
    (trade,) = exchange.fetch_my_trades(SYMBOL)
    assert trade["takerOrMaker"] == "taker" and trade["price"] == float(last)


def test_ioc_limit_order_that_cannot_fill_is_canceled(emulator, exchange):
    price = round(float(emulator.engine.last_price(ID)) * 0.9, 2)
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"timeInForce": "IOC"})
    assert engine_order(emulator, order["id"]).status is OrderStatus.EXPIRED
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "canceled" and fetched["timeInForce"] == "IOC" and fetched["filled"] == 0


def test_post_only_order_rests_as_maker(emulator, exchange):
    price = round(float(emulator.engine.last_price(ID)) * 0.9, 2)
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"postOnly": True})
    (listed,) = exchange.fetch_open_orders(SYMBOL)
    assert listed["id"] == order["id"] and listed["info"]["timeInForce"] == "PostOnly"


def test_post_only_order_that_would_take_is_invalid(emulator, exchange):
    price = round(float(emulator.engine.last_price(ID)) * 1.1, 2)
    with pytest.raises(ccxt.InvalidOrder):
        exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"postOnly": True})
    assert emulator.engine.open_orders(emulator.api_key) == []


def test_resting_limit_order_fills_as_maker_when_the_market_reaches_it(emulator, exchange):
    tick = emulator.engine.market(ID).tick_size
    price = emulator.engine.last_price(ID) - tick
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price))
    step_until(emulator, lambda: engine_order(emulator, order["id"]).status is OrderStatus.FILLED)
    fetched = exchange.fetch_closed_order(order["id"], SYMBOL)
    assert fetched["status"] == "closed" and fetched["average"] == float(price)
    (trade,) = exchange.fetch_order_trades(order["id"], SYMBOL)
    assert trade["takerOrMaker"] == "maker" and trade["price"] == float(price)


def test_stop_market_order_waits_untriggered_then_fills(emulator, exchange):
    tick = emulator.engine.market(ID).tick_size
    trigger = emulator.engine.last_price(ID) + tick
    order = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"triggerPrice": float(trigger)})
    (listed,) = exchange.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert listed["id"] == order["id"] and listed["triggerPrice"] == float(trigger)
    assert listed["info"]["orderStatus"] == "Untriggered" and listed["status"] == "open"
    step_until(emulator, lambda: engine_order(emulator, order["id"]).status is OrderStatus.FILLED)
    placed = engine_order(emulator, order["id"])
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "closed" and fetched["filled"] == 0.01
    assert fetched["average"] == float(placed.average_price) >= float(trigger)


def test_stop_limit_order_becomes_a_limit_order_at_its_price(emulator, exchange):
    tick = emulator.engine.market(ID).tick_size
    last = emulator.engine.last_price(ID)
    trigger, price = last - tick, last - 2 * tick
    order = exchange.create_order(SYMBOL, "limit", "sell", 0.01, float(price), {"triggerPrice": float(trigger)})
    placed = engine_order(emulator, order["id"])
    assert placed.stop_price == trigger and placed.price == price and not placed.triggered
    step_until(emulator, lambda: engine_order(emulator, order["id"]).triggered)
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["type"] == "limit" and fetched["price"] == float(price)
    assert fetched["triggerPrice"] == float(trigger)


def test_untriggered_stop_order_is_canceled_with_the_trigger_param(emulator, exchange):
    trigger = emulator.engine.last_price(ID) * 2
    order = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"triggerPrice": float(trigger)})
    with pytest.raises(ccxt.OrderNotFound):  # as on Bybit spot: plain cancel does not see it
        exchange.cancel_order(order["id"], SYMBOL)
    exchange.cancel_order(order["id"], SYMBOL, {"trigger": True})
    fetched = exchange.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
    assert fetched["status"] == "canceled" and fetched["info"]["orderStatus"] == "Deactivated"


def test_fetch_my_trades_equals_the_engine_fills(emulator, exchange):
    exchange.create_order(SYMBOL, "market", "buy", 0.01)
    exchange.create_order(SYMBOL, "market", "sell", 0.02)
    fills = emulator.engine.fills(emulator.api_key, ID)
    trades = exchange.fetch_my_trades(SYMBOL)
    assert [t["id"] for t in trades] == [str(f.trade_id) for f in fills]
    for trade, fill in zip(trades, fills, strict=True):
        assert trade["order"] == str(fill.order_id) and trade["timestamp"] == fill.time
        assert (trade["price"], trade["amount"], trade["cost"]) == (
            float(fill.price),
            float(fill.amount),
            float(fill.quote_amount),
        )
        assert trade["fee"]["cost"] == float(fill.fee) and trade["fee"]["currency"] == fill.fee_asset


def test_order_accepted_but_unanswered_is_found_by_client_order_id(emulator, exchange):
    exchange.timeout = 1000
    emulator.timeout_next_order()
    with pytest.raises(ccxt.RequestTimeout):
        exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    response = exchange.privateGetV5OrderRealtime({"category": "spot", "symbol": ID, "orderLinkId": "lost-1"})
    (found,) = response["result"]["list"]
    assert found["orderLinkId"] == "lost-1" and found["orderStatus"] == "Filled"


# --- errors -------------------------------------------------------------------------------------------


def test_wrong_secret_is_an_authentication_error(emulator):
    client = emulator.ccxt_client(secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError):
        client.fetch_balance()


def test_unknown_api_key_is_an_authentication_error(emulator):
    client = emulator.ccxt_client(apiKey="unknown-key")
    with pytest.raises(ccxt.AuthenticationError):
        client.fetch_balance()


@pytest.mark.parametrize("skew_ms", [-10_000, 10_000], ids=["server-behind", "server-ahead"])
def test_clock_skew_beyond_recv_window_is_invalid_nonce(emulator, exchange, skew_ms):
    emulator.set_clock_skew(skew_ms)
    with pytest.raises(ccxt.InvalidNonce):
        exchange.fetch_balance()


def test_clock_skew_within_recv_window_is_accepted(emulator, exchange):
    emulator.set_clock_skew(3_000)  # requests arrive 3 s "late", inside the 5 s recv window
    assert exchange.fetch_balance()["USDT"]["total"] > 0


def test_http_429_is_rate_limit_exceeded(emulator, exchange):
    emulator.fail_http(429, retry_after=1)
    with pytest.raises(ccxt.RateLimitExceeded):
        exchange.fetch_ticker(SYMBOL)
    assert exchange.fetch_ticker(SYMBOL)["last"] > 0  # one fault, one failed request


def test_http_403_ip_limit_is_rate_limit_exceeded(emulator, exchange):
    emulator.fail_http(403)
    with pytest.raises(ccxt.RateLimitExceeded):
        exchange.fetch_ticker(SYMBOL)


def test_order_endpoints_report_rate_limit_usage(emulator, exchange):
    exchange.create_order(SYMBOL, "market", "buy", 0.01)
    first = dict(exchange.last_response_headers)
    exchange.create_order(SYMBOL, "market", "buy", 0.01)
    second = dict(exchange.last_response_headers)
    headers = {k.lower(): v for k, v in second.items()}
    assert headers["x-bapi-limit"] == "20" and int(headers["x-bapi-limit-reset-timestamp"]) > 0
    before = {k.lower(): v for k, v in first.items()}["x-bapi-limit-status"]
    assert int(headers["x-bapi-limit-status"]) <= int(before)


def test_http_503_is_exchange_not_available(emulator, exchange):
    emulator.fail_http(503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.fetch_ticker(SYMBOL)


def test_order_over_the_balance_is_insufficient_funds(emulator, exchange):
    last = float(emulator.engine.last_price(ID))
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order(SYMBOL, "limit", "buy", 100, round(last * 0.9, 2))


def test_order_below_the_minimum_notional_is_invalid(emulator, exchange):
    last = float(emulator.engine.last_price(ID))
    with pytest.raises(ccxt.InvalidOrder, match="170140"):
        exchange.create_order(SYMBOL, "limit", "buy", 0.00001, round(last * 0.9, 2))


def test_price_off_the_tick_size_is_invalid(emulator, exchange):
    # ccxt rounds prices to the tick size itself; its implicit API sends the raw value.
    last = emulator.engine.last_price(ID)
    request = {"category": "spot", "symbol": ID, "side": "Buy", "orderType": "Limit", "qty": "0.01"}
    with pytest.raises(ccxt.InvalidOrder, match="170134"):
        exchange.privatePostV5OrderCreate({**request, "price": str(last * Decimal("0.9") + Decimal("0.001"))})


def test_quantity_off_the_step_size_is_invalid(emulator, exchange):
    price = str((emulator.engine.last_price(ID) * Decimal("0.9")).quantize(Decimal("0.01")))
    request = {"category": "spot", "symbol": ID, "side": "Buy", "orderType": "Limit", "price": price}
    with pytest.raises(ccxt.InvalidOrder, match="170137"):
        exchange.privatePostV5OrderCreate({**request, "qty": "0.0100001"})


@pytest.mark.parametrize(("side", "code", "expect"), [("buy", "110092", "Rising"), ("sell", "110093", "Falling")])
def test_stop_order_triggering_at_the_last_price_is_invalid(emulator, exchange, side, code, expect):
    # Spot triggers fire on a rise when placed above the price and on a fall when below: one at
    # the price itself would fire at once.
    trigger = float(emulator.engine.last_price(ID))
    with pytest.raises(ccxt.InvalidOrder, match=f"{code}.*expect {expect}"):
        exchange.create_order(SYMBOL, "market", side, 0.01, None, {"triggerPrice": trigger})


def test_trigger_direction_contradicting_the_trigger_price_is_a_bad_request(emulator, exchange):
    # ccxt refuses triggerDirection for spot; its implicit API sends it as given.
    below = str((emulator.engine.last_price(ID) * Decimal("0.9")).quantize(Decimal("0.01")))
    request = {"category": "spot", "symbol": ID, "side": "Sell", "orderType": "Market", "qty": "0.01"}
    request.update({"orderFilter": "StopOrder", "triggerPrice": below})
    with pytest.raises(ccxt.BadRequest, match=r"10001.*triggerDirection"):
        exchange.privatePostV5OrderCreate({**request, "triggerDirection": 1})
    placed = exchange.privatePostV5OrderCreate({**request, "triggerDirection": 2})["result"]
    assert engine_order(emulator, placed["orderId"]).trigger_above is False


def test_duplicate_order_link_id_is_invalid(emulator, exchange):
    exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="170141"):
        exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "dup-1"})


def test_order_for_an_unknown_symbol_is_a_bad_request(emulator, exchange):
    request = {"category": "spot", "symbol": "FOOUSDT", "side": "Buy", "orderType": "Market", "qty": "1"}
    with pytest.raises(ccxt.BadRequest, match="symbol invalid"):
        exchange.privatePostV5OrderCreate(request)


def test_cancel_of_an_unknown_order_is_order_not_found(emulator, exchange):
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order("987654321", SYMBOL)


def test_fetch_of_an_unknown_order_is_order_not_found(emulator, exchange):
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_open_order("987654321", SYMBOL)
