"""The typed events: immutable, slotted, correctly named, money as Decimal."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from decimal import Decimal

import pytest

from realtrade_core.events import (
    DATA_EVENTS,
    AssetBalance,
    BalanceUpdate,
    Bar,
    BookTop,
    ConnectionEvent,
    ConnectionState,
    ErrorEvent,
    Event,
    Fill,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
)

D = Decimal


def samples() -> list[Event]:
    return [
        Bar("binance", "BTC/USDT", "1m", 1_700_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, True, 1_700_000_060_000),
        Trade("binance", "BTC/USDT", "42", 30000.5, 0.01, Side.BUY, 1_700_000_000_001),
        BookTop("bybit", "ETH/USDT", 2000.0, 1.5, 2000.1, 2.5),
        OrderUpdate(
            "bybit",
            "o-1",
            "rt-abc",
            "ETH/USDT",
            Side.SELL,
            "limit",
            OrderStatus.PARTIALLY_FILLED,
            D("2000.10"),
            D("1.000"),
            D("0.400"),
            D("2000.10"),
            None,
            1_700_000_000_002,
        ),
        Fill(
            "binance",
            "t-9",
            "o-1",
            "rt-abc",
            "BTC/USDT",
            Side.BUY,
            D("30000.01"),
            D("0.001"),
            D("0.000001"),
            "BTC",
            False,
            1_700_000_000_003,
        ),
        BalanceUpdate("binance", (AssetBalance("BTC", D("0.5"), D("0.1")),), 1_700_000_000_004),
        ConnectionEvent("binance", ConnectionState.CONNECTED, "ready", 0, 1_700_000_000_005),
        ErrorEvent("binance", "connect", "refused", "ConnectionRefusedError", 1_700_000_000_006),
    ]


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_events_are_frozen_slotted_hashable_and_picklable(event):
    assert dataclasses.is_dataclass(event)
    assert not hasattr(event, "__dict__")
    first = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, first, "changed")
    with pytest.raises((AttributeError, TypeError)):
        event.not_a_field = 1  # type: ignore[attr-defined]
    assert hash(event) == hash(dataclasses.replace(event))
    assert event == dataclasses.replace(event)
    assert pickle.loads(pickle.dumps(event)) == event
    assert isinstance(event, Event) and event.EVENT


def test_fast_init_keeps_the_dataclass_signature():
    signature = inspect.signature(Bar)
    assert list(signature.parameters) == [f.name for f in dataclasses.fields(Bar)]
    assert signature.parameters["event_time"].default is None
    bar = Bar("x", "A/B", "1h", 0, 1.0, 1.0, 1.0, 1.0, 0.0, False)
    assert bar.event_time is None
    assert (
        Bar(
            exchange="x",
            symbol="A/B",
            timeframe="1h",
            open_time=0,
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=0.0,
            closed=False,
        )
        == bar
    )
    with pytest.raises(TypeError, match="missing"):
        Bar("x")  # type: ignore[call-arg]
    assert OrderUpdate.__init__.__qualname__ == "OrderUpdate.__init__"
    assert "closed=False" in repr(bar)


def test_event_names():
    assert {Bar.EVENT, Trade.EVENT, BookTop.EVENT, OrderUpdate.EVENT, Fill.EVENT, BalanceUpdate.EVENT} == {
        "bar",
        "trade",
        "book",
        "order",
        "fill",
        "balance",
    }
    assert DATA_EVENTS == {"bar", "trade", "book", "order", "fill", "balance", "position", "funding"}
    assert ConnectionEvent.EVENT not in DATA_EVENTS and ErrorEvent.EVENT not in DATA_EVENTS


def test_order_status():
    assert [s.value for s in OrderStatus] == ["new", "partially_filled", "filled", "canceled", "rejected", "expired"]
    assert OrderStatus.NEW.is_open and OrderStatus.PARTIALLY_FILLED.is_open
    assert all(
        s.is_final for s in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
    )
    assert OrderStatus("filled") is OrderStatus.FILLED
    assert Side.BUY == "buy"


def test_money_is_exact_and_balances_unpack():
    order = samples()[3]
    assert isinstance(order, OrderUpdate)
    assert order.amount - order.filled == D("0.600")  # no float residue
    balance = samples()[5]
    assert isinstance(balance, BalanceUpdate)
    ((asset, free, locked),) = balance.balances
    assert (asset, free + locked) == ("BTC", D("0.6"))
    assert balance.balances[0].free == D("0.5")


def test_market_data_is_float():
    bar = samples()[0]
    assert all(isinstance(getattr(bar, f), float) for f in ("open", "high", "low", "close", "volume"))
