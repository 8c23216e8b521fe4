"""The Binance emulator's REST dialect against unmodified ccxt.binance (only ``urls["api"]``
changed): every answer must equal what the engine did, and every error must reach ccxt as the
exception class real Binance answers produce."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any

import ccxt
import pytest

from realtrade_core.emulator.model import Candle, OrderStatus, OrderType

SYMBOL = "BTC/USDT"
MARKET_ID = "BTCUSDT"
MINUTE = 60_000


def ohlcv(candle: Candle) -> list[float]:
    """A candle as ccxt's fetch_ohlcv returns it."""
    return [
        candle.open_time,
        float(candle.open),
        float(candle.high),
        float(candle.low),
        float(candle.close),
        float(candle.volume),
    ]


def fold(open_time: int, rows: list[Candle]) -> list[float]:
    """OHLCV of the source candles of one bucket, computed independently of the engine."""
    return [
        open_time,
        float(rows[0].open),
        float(max(r.high for r in rows)),
        float(min(r.low for r in rows)),
        float(rows[-1].close),
        float(sum((r.volume for r in rows), Decimal(0))),
    ]


def fee(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate).quantize(Decimal("1e-8"), rounding=ROUND_DOWN)


def step_until(emulator: Any, condition: Any, max_candles: int = 300) -> None:
    """Step the manual clock one candle at a time until ``condition()`` holds."""
    for _ in range(max_candles):
        if condition():
            return
        emulator.step(1)
    raise AssertionError(f"condition not met within {max_candles} candles")


def engine_order(emulator: Any, order_id: str) -> Any:
    return emulator.engine.get_order(emulator.api_key, MARKET_ID, order_id=int(order_id))


# --- markets and market data -----------------------------------------------------------------


def test_load_markets_reports_the_market_spec(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    market = exchange.market(SYMBOL)

    assert (market["id"], market["spot"], market["active"]) == (MARKET_ID, True, True)
    assert market["precision"]["price"] == float(spec.tick_size)
    assert market["precision"]["amount"] == float(spec.step_size)
    assert market["limits"]["amount"] == {"min": float(spec.min_amount), "max": float(spec.max_amount)}
    assert market["limits"]["price"]["min"] == float(spec.tick_size)
    assert market["limits"]["cost"]["min"] == float(spec.min_notional)
    assert exchange.symbols == [SYMBOL]


def test_load_markets_works_without_keys(emulator: Any) -> None:
    public = emulator.ccxt_client(apiKey="", secret="")

    markets = public.load_markets()

    assert list(markets) == [SYMBOL]


def test_fetch_time_is_the_server_clock_with_its_skew(emulator: Any, exchange: Any) -> None:
    emulator.set_clock_skew(2_500)
    before = exchange.milliseconds()

    server_time = exchange.fetch_time()

    assert before + 2_500 <= server_time <= exchange.milliseconds() + 2_500


def test_fetch_ticker_matches_the_engine(emulator: Any, exchange: Any) -> None:
    emulator.step(3)
    engine = emulator.engine
    stats = engine.ticker_24h(MARKET_ID)
    bid, bid_qty, ask, ask_qty = engine.book(MARKET_ID)

    ticker = exchange.fetch_ticker(SYMBOL)

    assert ticker["last"] == float(engine.last_price(MARKET_ID))
    assert (ticker["open"], ticker["high"], ticker["low"]) == (
        float(stats["open"]),
        float(stats["high"]),
        float(stats["low"]),
    )
    assert (ticker["baseVolume"], ticker["quoteVolume"]) == (float(stats["volume"]), float(stats["quote_volume"]))
    assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == (
        float(bid),
        float(bid_qty),
        float(ask),
        float(ask_qty),
    )
    assert ticker["timestamp"] == engine.now()


def test_fetch_order_book_is_the_one_level_book(emulator: Any, exchange: Any) -> None:
    bid, bid_qty, ask, ask_qty = emulator.engine.book(MARKET_ID)

    book = exchange.fetch_order_book(SYMBOL)

    assert book["bids"] == [[float(bid), float(bid_qty)]]
    assert book["asks"] == [[float(ask), float(ask_qty)]]


def test_fetch_ohlcv_pages_through_history_without_gap_or_duplicate(emulator: Any, exchange: Any) -> None:
    emulator.step(2)
    expected = emulator.engine.candles(MARKET_ID, MINUTE, limit=450)  # the forming candle last
    rows: list[list[float]] = []
    since, pages = expected[0].open_time, 0
    while True:
        page = exchange.fetch_ohlcv(SYMBOL, "1m", since=since, limit=100)
        pages += 1
        rows += page
        if len(page) < 100:
            break
        since = page[-1][0] + MINUTE

    assert pages > 3
    assert rows == [ohlcv(c) for c in expected]


def test_fetch_ohlcv_higher_timeframe_folds_the_source_candles(emulator: Any, exchange: Any) -> None:
    emulator.step(7)
    source = emulator.engine.candles(MARKET_ID, MINUTE, limit=1000)
    buckets: dict[int, list[Candle]] = {}
    for candle in source:
        buckets.setdefault(candle.open_time - candle.open_time % (15 * MINUTE), []).append(candle)

    rows = exchange.fetch_ohlcv(SYMBOL, "15m", limit=1000)

    assert rows == [fold(start, group) for start, group in sorted(buckets.items())]


def test_weekly_klines_open_on_monday_midnight(emulator: Any, exchange: Any) -> None:
    source = emulator.engine.candles(MARKET_ID, MINUTE, limit=1000)
    weeks: dict[int, list[Candle]] = {}
    for candle in source:
        day = datetime.fromtimestamp(candle.open_time / 1000, tz=timezone.utc)
        monday = (
            datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000 - day.weekday() * 86_400_000
        )
        weeks.setdefault(int(monday), []).append(candle)

    rows = exchange.fetch_ohlcv(SYMBOL, "1w")

    assert rows == [fold(start, group) for start, group in sorted(weeks.items())]


def test_fetch_ohlcv_of_an_interval_not_a_multiple_of_the_source_is_refused(exchange: Any) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        exchange.fetch_ohlcv(SYMBOL, "1s")


def test_rest_answers_carry_the_used_weight_header(exchange: Any) -> None:
    exchange.fetch_ticker(SYMBOL)
    first = int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"])

    exchange.fetch_order_book(SYMBOL)

    assert int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"]) >= first + 5


# --- account and orders ----------------------------------------------------------------------


def test_fetch_balance_matches_the_engine(emulator: Any, exchange: Any) -> None:
    balance = exchange.fetch_balance()

    for held in emulator.engine.balances(emulator.api_key):
        assert balance[held.asset]["free"] == float(held.free)
        assert balance[held.asset]["used"] == float(held.locked)
        assert balance[held.asset]["total"] == float(held.total)


def test_market_buy_fills_at_the_last_price_and_moves_the_balances(emulator: Any, exchange: Any) -> None:
    engine = emulator.engine
    spec = engine.market(MARKET_ID)
    last = engine.last_price(MARKET_ID)
    before = {b.asset: b.free for b in engine.balances(emulator.api_key)}
    amount = Decimal("0.01")
    charged = fee(amount, spec.taker_fee)

    order = exchange.create_order(SYMBOL, "market", "buy", float(amount))

    placed = engine_order(emulator, order["id"])
    assert order["clientOrderId"] == placed.client_order_id
    assert (order["status"], order["filled"], order["average"]) == ("closed", float(amount), float(last))
    assert order["fee"] == {"currency": "BTC", "cost": float(charged)}
    assert [t["id"] for t in order["trades"]] == [str(f.trade_id) for f in placed.fills]
    balance = exchange.fetch_balance()
    assert balance["BTC"]["free"] == float(before["BTC"] + amount - charged)
    assert balance["USDT"]["free"] == float(before["USDT"] - amount * last)


def test_market_buy_by_cost_spends_at_most_the_quote_amount(emulator: Any, exchange: Any) -> None:
    last = emulator.engine.last_price(MARKET_ID)
    step = emulator.engine.market(MARKET_ID).step_size

    order = exchange.create_market_buy_order_with_cost(SYMBOL, 100)

    assert order["info"]["origQuoteOrderQty"] == "100.00000000"
    assert order["filled"] == float((Decimal(100) / last).quantize(step, rounding=ROUND_DOWN))
    assert order["cost"] <= 100


def test_limit_buy_below_the_market_rests_and_locks_funds(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    price = (emulator.engine.last_price(MARKET_ID) * Decimal("0.9")).quantize(spec.tick_size)

    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price))

    assert (order["status"], order["filled"], order["price"]) == ("open", 0.0, float(price))
    assert [o["id"] for o in exchange.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert exchange.fetch_balance()["USDT"]["used"] == float(price * Decimal("0.01"))


def test_marketable_limit_buy_fills_at_once_as_taker(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    last = emulator.engine.last_price(MARKET_ID)

    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(last + 100 * spec.tick_size))

    assert (order["status"], order["average"]) == ("closed", float(last))
    assert order["fee"]["cost"] == float(fee(Decimal("0.01"), spec.taker_fee))


def test_resting_limit_fills_as_maker_at_its_price_when_the_path_reaches_it(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    price = emulator.engine.last_price(MARKET_ID) - spec.tick_size
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price))

    step_until(emulator, lambda: engine_order(emulator, order["id"]).status is OrderStatus.FILLED)

    fetched = exchange.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["average"], fetched["filled"]) == ("closed", float(price), 0.01)
    trade = exchange.fetch_my_trades(SYMBOL)[-1]
    assert (trade["order"], trade["takerOrMaker"]) == (order["id"], "maker")
    assert trade["fee"]["cost"] == float(fee(Decimal("0.01"), spec.maker_fee))


def test_post_only_limit_that_would_take_is_rejected(emulator: Any, exchange: Any) -> None:
    last = emulator.engine.last_price(MARKET_ID)

    with pytest.raises(ccxt.OrderImmediatelyFillable):
        exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(last), {"postOnly": True})


def test_post_only_limit_below_the_market_rests_as_limit_maker(emulator: Any, exchange: Any) -> None:
    price = emulator.engine.last_price(MARKET_ID) * Decimal("0.9")

    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price), {"postOnly": True})

    assert (order["status"], order["postOnly"], order["info"]["type"]) == ("open", True, "LIMIT_MAKER")


def test_stop_market_sell_via_stopPrice_triggers_when_the_path_crosses_it(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    stop = emulator.engine.last_price(MARKET_ID) - spec.tick_size

    order = exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopPrice": float(stop)})

    placed = engine_order(emulator, order["id"])
    assert (placed.type, placed.stop_price, placed.status) == (OrderType.STOP_MARKET, stop, OrderStatus.NEW)
    assert (order["status"], order["triggerPrice"], order["info"]["type"]) == ("open", float(stop), "STOP_LOSS")
    step_until(emulator, lambda: engine_order(emulator, order["id"]).status is OrderStatus.FILLED)
    fetched = exchange.fetch_order(order["id"], SYMBOL)
    fill = engine_order(emulator, order["id"]).fills[0]
    assert (fetched["status"], fetched["filled"], fetched["average"]) == ("closed", 0.01, float(fill.price))
    assert fill.price <= stop


def test_stop_limit_buy_via_triggerPrice_triggers_then_fills_at_most_its_price(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    stop = emulator.engine.last_price(MARKET_ID) + spec.tick_size
    price = (stop * Decimal("1.01")).quantize(spec.tick_size)

    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price), {"triggerPrice": float(stop)})

    placed = engine_order(emulator, order["id"])
    assert (placed.type, placed.stop_price, placed.price) == (OrderType.STOP_LIMIT, stop, price)
    assert (order["status"], order["triggerPrice"], order["info"]["type"]) == ("open", float(stop), "STOP_LOSS_LIMIT")
    step_until(emulator, lambda: engine_order(emulator, order["id"]).status is OrderStatus.FILLED)
    fetched = exchange.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["filled"]) == ("closed", 0.01)
    assert stop <= Decimal(str(fetched["average"])) <= price


def test_fetch_order_by_client_order_id(emulator: Any, exchange: Any) -> None:
    price = emulator.engine.last_price(MARKET_ID) * Decimal("0.9")
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price), {"clientOrderId": "my-order_1"})

    fetched = exchange.fetch_order(None, SYMBOL, {"clientOrderId": "my-order_1"})

    assert (fetched["id"], fetched["clientOrderId"], fetched["status"]) == (order["id"], "my-order_1", "open")
    assert (fetched["amount"], fetched["price"]) == (0.01, order["price"])


def test_cancel_order_releases_the_locked_funds(emulator: Any, exchange: Any) -> None:
    price = emulator.engine.last_price(MARKET_ID) * Decimal("0.9")
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(price))

    canceled = exchange.cancel_order(order["id"], SYMBOL)

    assert (canceled["id"], canceled["status"]) == (order["id"], "canceled")
    assert canceled["info"]["origClientOrderId"] == order["clientOrderId"]
    assert engine_order(emulator, order["id"]).status is OrderStatus.CANCELED
    assert exchange.fetch_open_orders(SYMBOL) == []
    assert exchange.fetch_balance()["USDT"]["used"] == 0


def test_fetch_my_trades_equals_the_engine_fills(emulator: Any, exchange: Any) -> None:
    exchange.create_order(SYMBOL, "market", "buy", 0.02)
    emulator.step(1)
    exchange.create_order(SYMBOL, "market", "sell", 0.01)

    trades = exchange.fetch_my_trades(SYMBOL)

    fills = emulator.engine.fills(emulator.api_key, MARKET_ID)
    assert len(fills) == 2
    assert [
        (
            t["id"],
            t["order"],
            t["side"],
            t["price"],
            t["amount"],
            t["cost"],
            t["fee"],
            t["takerOrMaker"],
            t["timestamp"],
        )
        for t in trades
    ] == [
        (
            str(f.trade_id),
            str(f.order_id),
            f.side.value,
            float(f.price),
            float(f.amount),
            float(f.quote_amount),
            {"currency": f.fee_asset, "cost": float(f.fee)},
            "maker" if f.is_maker else "taker",
            f.time,
        )
        for f in fills
    ]


def test_fetch_closed_orders_lists_filled_and_canceled_orders(emulator: Any, exchange: Any) -> None:
    bought = exchange.create_order(SYMBOL, "market", "buy", 0.01)
    resting = exchange.create_order(SYMBOL, "limit", "buy", 0.01, float(emulator.engine.last_price(MARKET_ID) / 2))
    exchange.cancel_order(resting["id"], SYMBOL)

    orders = exchange.fetch_orders(SYMBOL)

    assert [(o["id"], o["status"]) for o in orders] == [(bought["id"], "closed"), (resting["id"], "canceled")]


# --- raw shapes ------------------------------------------------------------------------------

ORDER_FULL_KEYS = {
    "symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty", "executedQty",
    "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "workingTime",
    "selfTradePreventionMode", "fills",
}  # fmt: skip
ORDER_QUERY_KEYS = {
    "symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty", "cummulativeQuoteQty",
    "status", "timeInForce", "type", "side", "stopPrice", "icebergQty", "time", "updateTime", "isWorking",
    "workingTime", "origQuoteOrderQty", "selfTradePreventionMode",
}  # fmt: skip


def raw_order(emulator: Any, **extra: str) -> dict[str, str]:
    return {"symbol": MARKET_ID, "side": "BUY", "type": "MARKET", "quantity": "0.01", **extra}


@pytest.mark.parametrize(
    ("resp_type", "keys"),
    [
        ("ACK", {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}),
        ("RESULT", ORDER_FULL_KEYS - {"fills"}),
        ("FULL", ORDER_FULL_KEYS),
    ],
)
def test_new_order_answers_in_the_requested_shape(emulator: Any, exchange: Any, resp_type: str, keys: set) -> None:
    answer = exchange.privatePostOrder(raw_order(emulator, newOrderRespType=resp_type))

    assert set(answer) == keys


def test_order_query_has_the_documented_fields_as_strings(emulator: Any, exchange: Any) -> None:
    placed = exchange.privatePostOrder(raw_order(emulator))

    answer = exchange.privateGetOrder({"symbol": MARKET_ID, "orderId": placed["orderId"]})

    assert set(answer) == ORDER_QUERY_KEYS
    assert all(isinstance(answer[k], str) for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty"))
    assert (answer["status"], answer["type"], answer["isWorking"]) == ("FILLED", "MARKET", False)


# --- errors ----------------------------------------------------------------------------------


def test_wrong_secret_is_an_authentication_error(exchange: Any) -> None:
    exchange.secret = "0" * 64

    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        exchange.fetch_balance()


def test_unknown_api_key_is_an_authentication_error(exchange: Any) -> None:
    exchange.apiKey = "not-a-key-of-this-emulator"

    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        exchange.fetch_balance()


@pytest.mark.parametrize("skew_ms", [-5_000, 5_000], ids=["client-ahead", "client-behind-beyond-recv-window"])
def test_clock_skew_is_an_invalid_nonce(emulator: Any, exchange: Any, skew_ms: int) -> None:
    # Behind: past ccxt's recvWindow by a margin, so the request's own latency cannot decide it.
    if skew_ms > 0:
        skew_ms += int(exchange.options["recvWindow"])
    emulator.set_clock_skew(skew_ms)

    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        exchange.fetch_balance()


def test_clock_behind_within_the_recv_window_is_accepted(emulator: Any, exchange: Any) -> None:
    emulator.set_clock_skew(int(exchange.options["recvWindow"]) - 5_000)

    assert "USDT" in exchange.fetch_balance()["total"]


@pytest.mark.parametrize("status", [429, 418])
def test_rate_limit_answers_reach_ccxt_as_ddos_protection(emulator: Any, exchange: Any, status: int) -> None:
    emulator.fail_http(status, retry_after=2)

    with pytest.raises((ccxt.DDoSProtection, ccxt.RateLimitExceeded), match="-1003"):
        exchange.fetch_ticker(SYMBOL)


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_reach_ccxt_as_operation_failed(emulator: Any, exchange: Any, status: int) -> None:
    emulator.fail_http(status)

    with pytest.raises(ccxt.OperationFailed):
        exchange.fetch_ticker(SYMBOL)


def test_order_beyond_the_balance_is_insufficient_funds(emulator: Any, exchange: Any) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order(SYMBOL, "market", "buy", 5)


def test_price_off_the_tick_is_an_invalid_order(emulator: Any, exchange: Any) -> None:
    spec = emulator.engine.market(MARKET_ID)
    price = (emulator.engine.last_price(MARKET_ID) * Decimal("0.9")).quantize(spec.tick_size) + spec.tick_size / 2

    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        exchange.privatePostOrder(raw_order(emulator, type="LIMIT", timeInForce="GTC", price=str(price)))


def test_quantity_off_the_step_is_an_invalid_order(emulator: Any, exchange: Any) -> None:
    step = emulator.engine.market(MARKET_ID).step_size

    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        exchange.privatePostOrder(raw_order(emulator, quantity=str(Decimal("0.01") + step / 2)))


def test_order_below_the_minimum_value_is_a_notional_filter_failure(emulator: Any, exchange: Any) -> None:
    # ccxt maps -1013 without a PRICE_FILTER / LOT_SIZE text to BadRequest, as it does for
    # real Binance answers to the same request.
    step = emulator.engine.market(MARKET_ID).step_size

    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        exchange.create_order(SYMBOL, "market", "buy", float(step))


def test_too_many_decimals_is_a_bad_request(emulator: Any, exchange: Any) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1111"):
        exchange.privatePostOrder(raw_order(emulator, quantity="0.010000001"))


def test_stop_that_would_trigger_at_once_is_rejected(emulator: Any, exchange: Any) -> None:
    below = emulator.engine.last_price(MARKET_ID) * Decimal("0.99")

    with pytest.raises(ccxt.OrderImmediatelyFillable):
        exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopPrice": float(below)})


def test_duplicate_client_order_id_of_an_open_order_is_rejected(emulator: Any, exchange: Any) -> None:
    price = float(emulator.engine.last_price(MARKET_ID) * Decimal("0.9"))
    exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})

    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})


def test_unknown_symbol_is_a_bad_symbol(exchange: Any) -> None:
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        exchange.publicGetTicker24hr({"symbol": "NOPEUSDT"})


def test_fetching_an_unknown_order_is_order_not_found(exchange: Any) -> None:
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        exchange.fetch_order("987654", SYMBOL)


def test_canceling_an_unknown_order_is_order_not_found(exchange: Any) -> None:
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        exchange.cancel_order("987654", SYMBOL)


def test_missing_mandatory_parameter_is_a_bad_request(exchange: Any) -> None:
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        exchange.privatePostOrder({"symbol": MARKET_ID, "side": "BUY", "type": "LIMIT", "quantity": "0.01"})
