"""Unit tests of the Bybit dialect's pure translation helpers (no server, no engine)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from realtrade_bybit.emulator.wire import (
    REJECT_CODES,
    OrderExtra,
    aggregate,
    bucket_next,
    bucket_start,
    dec,
    order_record,
    order_status,
    reject_to_error,
    rest_signature,
    tick_direction,
    wallet_coin,
    ws_auth_signature,
)

from realtrade_core.emulator.model import (
    Balance,
    Candle,
    ExecutionType,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

MINUTE = 60_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def order(**changes) -> Order:
    fields = dict(
        order_id=7,
        client_order_id="link-7",
        account="key",
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        amount=Decimal("0.5"),
        price=Decimal("100"),
        stop_price=None,
        status=OrderStatus.NEW,
    )
    fields.update(changes)
    return Order(**fields)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("1E-7"), "0.0000001"), (Decimal("100"), "100"), (Decimal("0E-8"), "0"), (Decimal("1.2300"), "1.23")],
)
def test_decimals_are_written_plainly(value, text):
    assert dec(value) == text


@pytest.mark.parametrize(
    ("code", "moment", "start"),
    [
        ("1", "2026-03-04T10:17:30", "2026-03-04T10:17:00"),
        ("240", "2026-03-04T10:17:30", "2026-03-04T08:00:00"),
        ("D", "2026-03-04T10:17:30", "2026-03-04T00:00:00"),
        ("W", "2026-03-04T10:17:30", "2026-03-02T00:00:00"),  # a Wednesday -> that week's Monday
        ("M", "2026-03-04T10:17:30", "2026-03-01T00:00:00"),
    ],
)
def test_buckets_open_where_bybit_candles_open(code, moment, start):
    assert bucket_start(code, ms(moment)) == ms(start)


def test_the_month_after_december_is_january():
    assert bucket_next("M", ms("2026-12-01T00:00:00")) == ms("2027-01-01T00:00:00")


def test_aggregation_folds_source_candles_into_buckets():
    candles = [
        Candle(i * MINUTE, MINUTE, Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(1), Decimal(10))
        for i, (o, h, lo, c) in enumerate([(10, 12, 9, 11), (11, 15, 11, 14), (14, 14, 8, 9), (9, 10, 9, 10)])
    ]
    first, second = aggregate("3", candles)
    assert (first.start, first.end, first.open, first.high, first.low, first.close) == (0, 180_000, 10, 15, 8, 9)
    assert (first.volume, first.turnover) == (3, 30)
    assert (second.start, second.open, second.close) == (180_000, 9, 10)


def test_signatures_are_hex_hmac_sha256():
    expected = hmac.new(b"secret", b"1700000000000key5000category=spot", hashlib.sha256).hexdigest()
    assert rest_signature("secret", "1700000000000", "key", "5000", "category=spot") == expected
    expected = hmac.new(b"secret", b"GET/realtime1700000000000", hashlib.sha256).hexdigest()
    assert ws_auth_signature("secret", 1700000000000) == expected


@pytest.mark.parametrize(
    ("changes", "execution", "status"),
    [
        ({}, None, "New"),
        ({"status": OrderStatus.PARTIALLY_FILLED, "filled": Decimal("0.1")}, None, "PartiallyFilled"),
        ({"status": OrderStatus.CANCELED}, None, "Cancelled"),
        ({"status": OrderStatus.CANCELED, "filled": Decimal("0.1")}, None, "PartiallyFilledCanceled"),
        ({"status": OrderStatus.EXPIRED}, None, "Cancelled"),
        ({"status": OrderStatus.FILLED, "filled": Decimal("0.5")}, None, "Filled"),
        ({"stop_price": Decimal("90")}, None, "Untriggered"),
        ({"stop_price": Decimal("90"), "status": OrderStatus.CANCELED}, None, "Deactivated"),
        ({"stop_price": Decimal("90"), "triggered": True}, ExecutionType.TRIGGERED, "Triggered"),
        ({"stop_price": Decimal("90"), "triggered": True}, None, "New"),
    ],
)
def test_order_statuses_follow_bybit(changes, execution, status):
    assert order_status(order(**changes), execution) == status


STOP_ORDER = OrderExtra("0.5", "", "GTC", "StopOrder")


@pytest.mark.parametrize(
    ("extra", "status", "cancel_type", "reject_reason"),
    [
        # A StopOrder cancelled by the exchange when it fired without the funds to cover it.
        (STOP_ORDER, "Cancelled", "UNKNOWN", "EC_Others"),
        # One the client cancelled while it waited.
        (OrderExtra("0.5", "", "GTC", "StopOrder", cancel_by_user=True), "Deactivated", "CancelByUser", "EC_NoError"),
        (OrderExtra("0.5", "", "GTC", "tpslOrder"), "Deactivated", "CancelByUser", "EC_NoError"),
        (None, "Deactivated", "CancelByUser", "EC_NoError"),
    ],
)
def test_cancelled_conditional_order_tells_who_cancelled_it(extra, status, cancel_type, reject_reason):
    record = order_record(order(stop_price=Decimal("90"), status=OrderStatus.CANCELED), extra)
    assert (record["orderStatus"], record["cancelType"], record["rejectReason"]) == (
        status,
        cancel_type,
        reject_reason,
    )


@pytest.mark.parametrize(
    ("side", "above", "direction"),
    [(Side.SELL, True, 1), (Side.SELL, False, 2), (Side.BUY, False, 2), (Side.BUY, None, 1), (Side.SELL, None, 2)],
)
def test_trigger_direction_follows_the_order(side, above, direction):
    record = order_record(order(side=side, stop_price=Decimal("90"), trigger_above=above), STOP_ORDER)
    assert (record["triggerDirection"], record["stopOrderType"]) == (direction, "Stop")
    assert order_record(order(), None)["triggerDirection"] == 0


def test_quote_denominated_market_order_reports_the_quantity_as_sent():
    placed = order(type=OrderType.MARKET, price=None, amount=Decimal("0.001"))
    record = order_record(placed, OrderExtra("100", "quoteCoin", "IOC"))
    assert (record["qty"], record["marketUnit"], record["orderType"], record["timeInForce"]) == (
        "100",
        "quoteCoin",
        "Market",
        "IOC",
    )
    # ccxt reads the presence of tpslMode as "contract order": spot records must not carry it.
    assert "tpslMode" not in record


def test_market_order_placed_without_the_dialect_reports_base_units():
    record = order_record(order(type=OrderType.MARKET, price=None), None)
    assert (record["qty"], record["marketUnit"], record["price"]) == ("0.5", "baseCoin", "0")


def test_every_rejection_has_a_bybit_code():
    assert set(REJECT_CODES) == set(RejectReason)
    assert reject_to_error(RejectReason.INVALID_PARAMETER, "qty invalid").message == "params error: qty invalid"


def test_wallet_coin_leaves_free_to_be_derived_from_locked():
    coin = wallet_coin(Balance("BTC", Decimal("1.5"), Decimal("0.5")), Decimal(100))
    assert (coin["walletBalance"], coin["locked"], coin["availableToWithdraw"], coin["usdValue"]) == (
        "2",
        "0.5",
        "",
        "200",
    )


def test_tick_direction_remembers_the_last_move():
    assert tick_direction(None, Decimal(1), "") == "PlusTick"
    assert tick_direction(Decimal(2), Decimal(1), "PlusTick") == "MinusTick"
    assert tick_direction(Decimal(1), Decimal(1), "MinusTick") == "ZeroMinusTick"
    assert tick_direction(Decimal(1), Decimal(1), "PlusTick") == "ZeroPlusTick"
