"""Unit tests of the Binance dialect's pure translation helpers, and of its kline aggregation
driven by a small fake engine and hub (no server, no sockets)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from realtrade_binance.emulator import BinanceDialect
from realtrade_binance.emulator.wire import (
    INTERVALS,
    BinanceError,
    OrderList,
    account_position,
    engine_error,
    execution_report,
    fmt,
    group_candles,
    injected_error_body,
    intervals_for,
    kline_row,
    list_status_event,
    my_trade,
    order_ack,
    order_cancel,
    order_list_body,
    order_query,
    parse_decimal,
    signature_ok,
    split_signature,
    symbol_filters,
    ws_signature_payload,
)

from realtrade_core.emulator.hub import TopicWatch
from realtrade_core.emulator.model import (
    Balance,
    Candle,
    Fill,
    KlineEvent,
    MarketSpec,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TradeEvent,
)

MINUTE = 60_000
# Binance's documented HMAC example (spot API docs, "SIGNED endpoint examples").
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)


def candle(minute: int, o: str, h: str, low: str, c: str, v: str = "1", interval: int = MINUTE) -> Candle:
    return Candle(
        minute * MINUTE, interval, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(v), Decimal(0), 1
    )


def order(**changes: Any) -> Order:
    base: dict[str, Any] = dict(
        order_id=7,
        client_order_id="abc",
        account="key",
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        amount=Decimal("0.5"),
        price=Decimal("100.5"),
        stop_price=None,
        status=OrderStatus.NEW,
        created_time=1000,
        updated_time=1000,
    )
    base.update(changes)
    return Order(**base)


# --- numbers and parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1"), "1.00000000"),
        (Decimal("0.01634790"), "0.01634790"),
        (Decimal("60000.5"), "60000.50000000"),
        (Decimal("0.000000001"), "0.000000001"),  # never rounded away
        (None, "0.00000000"),
    ],
)
def test_fmt_writes_binance_decimal_strings(value: Decimal | None, text: str) -> None:
    assert fmt(value) == text


def test_parse_decimal_refuses_illegal_characters() -> None:
    with pytest.raises(BinanceError) as info:
        parse_decimal({"price": "1e5"}, "price")
    assert info.value.code == -1100


def test_parse_decimal_refuses_more_than_eight_decimals() -> None:
    with pytest.raises(BinanceError) as info:
        parse_decimal({"quantity": "0.123456789"}, "quantity")
    assert info.value.code == -1111


def test_parse_decimal_accepts_trailing_zeros_beyond_eight_decimals() -> None:
    assert parse_decimal({"quantity": "0.1000000000"}, "quantity") == Decimal("0.1")


def test_missing_mandatory_decimal_is_1102() -> None:
    with pytest.raises(BinanceError) as info:
        parse_decimal({}, "price", required=True)
    assert (info.value.code, info.value.msg) == (
        -1102,
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
    )


# --- signatures ----------------------------------------------------------------------------------


def test_signature_of_the_documented_query_string_example() -> None:
    payload, signature = split_signature(
        DOC_QUERY + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71", ""
    )

    assert payload == DOC_QUERY
    assert signature is not None and signature_ok(DOC_SECRET, payload, signature)


def test_signature_of_the_documented_mixed_query_and_body_example() -> None:
    # totalParams is the query string immediately followed by the body, without "&".
    payload, signature = split_signature(
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        "&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
    )

    assert signature is not None and signature_ok(DOC_SECRET, payload, signature)


def test_websocket_api_payload_is_sorted_and_excludes_the_signature() -> None:
    payload = ws_signature_payload({"timestamp": 5, "apiKey": "k", "signature": "x", "recvWindow": 100})

    assert payload == "apiKey=k&recvWindow=100&timestamp=5"


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code", "msg"),
    [
        (RejectReason.INSUFFICIENT_BALANCE, -2010, "Account has insufficient balance for requested action."),
        (RejectReason.PRICE_PRECISION, -1013, "Filter failure: PRICE_FILTER"),
        (RejectReason.AMOUNT_PRECISION, -1013, "Filter failure: LOT_SIZE"),
        (RejectReason.MIN_AMOUNT, -1013, "Filter failure: LOT_SIZE"),
        (RejectReason.MIN_NOTIONAL, -1013, "Filter failure: NOTIONAL"),
        (RejectReason.DUPLICATE_CLIENT_ORDER_ID, -2010, "Duplicate order sent."),
        (RejectReason.WOULD_TRIGGER_IMMEDIATELY, -2010, "Order would trigger immediately."),
        (RejectReason.UNKNOWN_SYMBOL, -1121, "Invalid symbol."),
        (RejectReason.ORDER_NOT_FOUND, -2013, "Order does not exist."),
    ],
)
def test_engine_rejections_map_to_binance_codes(reason: RejectReason, code: int, msg: str) -> None:
    error = engine_error(reason, "engine text")

    assert (error.code, error.msg, error.status) == (code, msg, 400)


@pytest.mark.parametrize(("status", "code"), [(429, -1003), (418, -1003), (500, -1000), (503, -1001), (504, -1007)])
def test_injected_http_errors_have_binance_bodies(status: int, code: int) -> None:
    answered, body = injected_error_body(status, 60, now_ms=1_000)

    assert answered == status and body["code"] == code and isinstance(body["msg"], str)


def test_ban_message_names_the_end_of_the_ban() -> None:
    _, body = injected_error_body(418, 120, now_ms=1_000)

    assert "IP banned until 121000" in body["msg"]


# --- shapes ------------------------------------------------------------------------------------


def test_filters_are_built_from_the_market_spec() -> None:
    spec = MarketSpec("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.00001"))

    filters = {f["filterType"]: f for f in symbol_filters(spec)}

    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"] == {
        "filterType": "LOT_SIZE",
        "minQty": "0.00001000",
        "maxQty": "9000.00000000",
        "stepSize": "0.00001000",
    }
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"


def test_kline_row_has_binance_field_types() -> None:
    row = kline_row(candle(1, "1", "2", "0.5", "1.5", "10"))

    assert row == [
        MINUTE,
        "1.00000000",
        "2.00000000",
        "0.50000000",
        "1.50000000",
        "10.00000000",
        2 * MINUTE - 1,
        "0.00000000",
        1,
        "0.00000000",
        "0.00000000",
        "0",
    ]


def test_execution_report_of_a_fill() -> None:
    fill = Fill(
        3,
        7,
        "abc",
        "BTCUSDT",
        Side.BUY,
        Decimal("100.5"),
        Decimal("0.2"),
        Decimal("20.1"),
        Decimal("0.0002"),
        "BTC",
        True,
        2000,
    )
    filled = order(status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("0.2"), cost=Decimal("20.1"), fills=(fill,))

    report = execution_report(filled, "TRADE", fill, 2001, 9)

    assert (report["x"], report["X"], report["l"], report["z"], report["L"]) == (
        "TRADE",
        "PARTIALLY_FILLED",
        "0.20000000",
        "0.20000000",
        "100.50000000",
    )
    assert (report["n"], report["N"], report["t"], report["m"], report["T"]) == ("0.00020000", "BTC", 3, True, 2000)
    assert (report["w"], report["W"], report["Y"], report["Z"]) == (True, 1000, "20.10000000", "20.10000000")


def test_execution_report_of_a_cancel_names_the_original_client_id() -> None:
    report = execution_report(order(status=OrderStatus.CANCELED), "CANCELED", None, 3000, 10, None, "cancel-id")

    assert (report["c"], report["C"], report["w"], report["t"], report["N"]) == ("cancel-id", "abc", False, -1, None)
    assert "W" not in report


def test_untriggered_stop_is_not_working() -> None:
    stop = order(type=OrderType.STOP_MARKET, price=None, stop_price=Decimal("90"))

    report = execution_report(stop, "NEW", None, 1000, 1)

    assert (report["o"], report["P"], report["w"], report["p"]) == ("STOP_LOSS", "90.00000000", False, "0.00000000")


def test_cancel_answer_carries_both_client_ids() -> None:
    answer = order_cancel(order(status=OrderStatus.CANCELED), "cancel-id", 5000)

    assert (answer["origClientOrderId"], answer["clientOrderId"], answer["status"]) == ("abc", "cancel-id", "CANCELED")


def test_every_order_answer_names_its_order_list() -> None:
    leg, alone = order(list_id=4), order()
    fill = Fill(3, 7, "abc", "BTCUSDT", Side.BUY, Decimal("100"), Decimal("0.5"), Decimal("50"), Decimal(0), "BTC",
                True, 2000)  # fmt: skip

    rendered = [order_ack(leg, 1000), order_query(leg), order_cancel(leg, "c", 1000)]

    assert [body["orderListId"] for body in rendered] == [4, 4, 4]
    assert execution_report(leg, "NEW", None, 1000, 1)["g"] == 4
    assert (order_query(alone)["orderListId"], execution_report(alone, "NEW", None, 1000, 1)["g"]) == (-1, -1)
    assert (my_trade(fill)["orderListId"], my_trade(fill, 4)["orderListId"]) == (-1, 4)


def test_order_list_renders_as_binance_lists() -> None:
    order_list = OrderList(4, "key", "BTCUSDT", "list-1", 1000, legs=[(7, "tp"), (8, "sl")])

    body = order_list_body(order_list, [{"orderId": 7}, {"orderId": 8}])
    event = list_status_event(order_list, 1500)

    assert body == {
        "orderListId": 4,
        "contingencyType": "OCO",
        "listStatusType": "EXEC_STARTED",
        "listOrderStatus": "EXECUTING",
        "listClientOrderId": "list-1",
        "transactionTime": 1000,
        "symbol": "BTCUSDT",
        "orders": [
            {"symbol": "BTCUSDT", "orderId": 7, "clientOrderId": "tp"},
            {"symbol": "BTCUSDT", "orderId": 8, "clientOrderId": "sl"},
        ],
        "orderReports": [{"orderId": 7}, {"orderId": 8}],
    }
    assert event == {
        "e": "listStatus",
        "E": 1500,
        "s": "BTCUSDT",
        "g": 4,
        "c": "OCO",
        "l": "EXEC_STARTED",
        "L": "EXECUTING",
        "r": "NONE",
        "C": "list-1",
        "T": 1500,
        "O": [{"s": "BTCUSDT", "i": 7, "c": "tp"}, {"s": "BTCUSDT", "i": 8, "c": "sl"}],
    }
    order_list.done = True
    assert (list_status_event(order_list, 2000)["l"], order_list_body(order_list)["listOrderStatus"]) == (
        "ALL_DONE",
        "ALL_DONE",
    )


def test_account_position_lists_the_changed_assets() -> None:
    event = account_position([Balance("BTC", Decimal("1.5"), Decimal("0.25"))], 42)

    assert event == {
        "e": "outboundAccountPosition",
        "E": 42,
        "u": 42,
        "B": [{"a": "BTC", "f": "1.50000000", "l": "0.25000000"}],
    }


# --- intervals -----------------------------------------------------------------------------------


def test_intervals_are_multiples_of_the_source() -> None:
    assert [iv.name for iv in intervals_for(5 * MINUTE)] == [
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
    ]


def test_weeks_open_on_monday() -> None:
    week = INTERVALS["1w"]
    thursday_epoch = 0
    monday = 4 * 86_400_000

    assert week.align(thursday_epoch + 1) == monday - 7 * 86_400_000
    assert week.align(monday + 3 * 86_400_000) == monday
    assert week.align_up(monday + 1) == monday + week.ms


def test_group_candles_folds_each_bucket() -> None:
    rows = [candle(0, "1", "3", "1", "2"), candle(1, "2", "5", "0.5", "4"), candle(3, "4", "4", "3", "3")]

    grouped = group_candles(rows, INTERVALS["3m"])

    assert [(c.open_time, c.open, c.high, c.low, c.close, c.volume) for c in grouped] == [
        (0, Decimal(1), Decimal(5), Decimal("0.5"), Decimal(4), Decimal(2)),
        (3 * MINUTE, Decimal(4), Decimal(4), Decimal(3), Decimal(3), Decimal(1)),
    ]


# --- kline aggregation of the dialect, with a fake engine and hub ---------------------------------


class FakeEngine:
    def __init__(self, history: list[Candle]) -> None:
        self.history = history
        self.markets = {"BTCUSDT": MarketSpec("BTCUSDT", "BTC", "USDT")}

    def interval_ms(self, symbol: str) -> int:
        return MINUTE

    def candles(self, symbol: str, interval_ms: int, start: int, end: int, limit: int) -> list[Candle]:
        return [c for c in self.history if start <= c.open_time <= end][:limit]


class FakeHub:
    generation = 0  # the topics never change

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        self.sent: list[tuple[str, Any]] = []

    def subscribers(self, topic: str) -> int:
        return 1 if topic in self.topics else 0

    def watch(self, streams: Any, on_idle: Any = None) -> TopicWatch:
        return TopicWatch(self, streams, on_idle)  # type: ignore[arg-type]

    def publish(self, topic: str, payload: str, account: str | None = None) -> None:
        self.sent.append((topic, json.loads(payload)))


class FakeFaults:
    clock_skew_ms = 0


def dialect_with(topics: set[str], history: list[Candle] | None = None) -> tuple[BinanceDialect, FakeHub]:
    hub = FakeHub(topics)
    dialect = BinanceDialect(FakeEngine(history or []), hub, FakeFaults(), {})  # type: ignore[arg-type]
    return dialect, hub


def feed(dialect: BinanceDialect, *candles: Candle) -> None:
    """Each source candle as the engine emits it: one forming update, then its close."""
    for c in candles:
        dialect.on_event(TradeEvent("BTCUSDT", c.open_time // MINUTE + 1, c.open, Decimal(1), False, c.open_time))
        dialect.on_event(KlineEvent("BTCUSDT", c, False, c.open_time))
        dialect.on_event(KlineEvent("BTCUSDT", c, True, c.open_time + MINUTE))


def klines(hub: FakeHub) -> list[tuple[int, bool, str, str, str, str]]:
    return [(p["k"]["t"], p["k"]["x"], p["k"]["o"], p["k"]["h"], p["k"]["l"], p["k"]["c"]) for _, p in hub.sent]


def test_higher_interval_closes_once_with_the_last_source_candle() -> None:
    dialect, hub = dialect_with({"btcusdt@kline_3m"})

    feed(dialect, candle(0, "1", "2", "1", "2"), candle(1, "2", "4", "2", "3"), candle(2, "3", "3", "0.5", "1"))

    closed = [k for k in klines(hub) if k[1]]
    assert closed == [(0, True, "1.00000000", "4.00000000", "0.50000000", "1.00000000")]
    assert klines(hub)[-1][1] is True


def test_hole_at_the_end_of_a_bucket_closes_it_when_the_next_one_starts() -> None:
    dialect, hub = dialect_with({"btcusdt@kline_3m"})

    feed(dialect, candle(0, "1", "2", "1", "2"), candle(1, "2", "4", "2", "3"))  # minute 2 missing
    feed(dialect, candle(3, "3", "3", "3", "3"))

    sent = klines(hub)
    late_close = sent.index((0, True, "1.00000000", "4.00000000", "1.00000000", "3.00000000"))
    assert [k for k in sent if k[1] and k[0] == 0] == [sent[late_close]]
    assert all(k[0] == 3 * MINUTE for k in sent[late_close + 1 :])


def test_subscription_mid_bucket_includes_the_closed_source_candles() -> None:
    dialect, hub = dialect_with({"btcusdt@kline_3m"}, history=[candle(0, "5", "9", "5", "6")])

    feed(dialect, candle(1, "6", "7", "4", "7"))

    assert klines(hub)[0] == (0, False, "5.00000000", "9.00000000", "4.00000000", "7.00000000")


def test_combined_topic_gets_the_wrapped_payload() -> None:
    dialect, hub = dialect_with({"btcusdt@kline_1m|combined"})

    feed(dialect, candle(0, "1", "2", "1", "2"))

    _, message = hub.sent[0]
    assert message["stream"] == "btcusdt@kline_1m" and message["data"]["e"] == "kline"


def test_nothing_is_built_for_streams_nobody_listens_to() -> None:
    dialect, hub = dialect_with(set())

    feed(dialect, candle(0, "1", "2", "1", "2"))

    assert hub.sent == []
