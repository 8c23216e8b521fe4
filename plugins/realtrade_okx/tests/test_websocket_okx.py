"""The OKX streams: messages as OKX writes them become typed events (unit tests on payloads of
OKX's documented shapes), and over real sockets the emulator's business and private endpoints
deliver candles, orders, fills and balances that agree with its REST answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from realtrade_okx.common import login_signature
from realtrade_okx.websocket import OkxPrivateWebSocket, OkxWebSocket

from realtrade_core.emulator.server import Emulator
from realtrade_core.errors import ConfigurationError
from realtrade_core.events import BalanceUpdate, Bar, Fill, OrderStatus, OrderUpdate, Side, Trade
from realtrade_core.testing import EventRecorder, emulated_store, stop_connections, wait_until
from realtrade_core.validation import MalformedMessage
from realtrade_core.websocket import Authenticated, Subscribed

SYMBOL = "BTC/USDT"
SYMBOLS = {"BTC-USDT": SYMBOL}
FAST = replace(OkxWebSocket.default_config, reconnect_delay=0.05, reconnect_delay_max=0.2)


def parse(payload: Any, ws: OkxWebSocket | None = None) -> list[Any]:
    ws = ws or OkxWebSocket(url="wss://example.invalid/ws/v5/business", symbols=SYMBOLS)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return list(ws.parse(text) or ())


def order_item(**fields: Any) -> dict[str, Any]:
    item = {
        "instType": "SPOT", "instId": "BTC-USDT", "ordId": "312269865356374016", "clOrdId": "rt1", "px": "30000",
        "sz": "0.02", "ordType": "limit", "side": "buy", "tdMode": "cash", "tgtCcy": "", "accFillSz": "0",
        "avgPx": "", "state": "live", "tradeId": "", "fillSz": "0", "fillPx": "", "fillFee": "0", "fillFeeCcy": "",
        "fillTime": "", "execType": "", "cancelSourceReason": "", "uTime": "1700000000100", "cTime": "1700000000000",
    }  # fmt: skip
    return {**item, **fields}


# --------------------------------------------------------------------------------------------
# names and messages


def test_stream_names_are_channel_and_instrument() -> None:
    market = {"id": "BTC-USDT", "symbol": SYMBOL}
    assert OkxWebSocket.stream_name("bar", market, "1m") == "candle1m:BTC-USDT"
    assert OkxWebSocket.stream_name("bar", market, "1h") == "candle1H:BTC-USDT"
    assert OkxWebSocket.stream_name("bar", market, "1d") == "candle1Dutc:BTC-USDT"  # UTC days, as ccxt's REST
    assert OkxWebSocket.stream_name("trade", market) == "trades-all:BTC-USDT"
    with pytest.raises(ConfigurationError, match="unknown stream kind 'book'; use 'bar' or 'trade'"):
        OkxWebSocket.stream_name("book", market)


def test_subscribe_and_login_messages_follow_okx() -> None:
    ws = OkxWebSocket(url="wss://example.invalid", symbols=SYMBOLS)
    (request,) = ws.subscribe_messages(("candle1m:BTC-USDT", "trades-all:BTC-USDT"))
    assert request["op"] == "subscribe" and request["id"].isalnum()
    assert request["args"] == [
        {"channel": "candle1m", "instId": "BTC-USDT"},
        {"channel": "trades-all", "instId": "BTC-USDT"},
    ]
    assert ws.ping_message() == "ping"
    from realtrade_core.credentials import Credentials

    private = OkxPrivateWebSocket(
        url="wss://example.invalid", credentials=Credentials("key-1234567890", "secret-123456"),
        server_time=lambda: 1_700_000_000_999, passphrase="pass-phrase",
    )  # fmt: skip
    (login,) = private.auth_messages()
    (arg,) = login["args"]
    assert login["op"] == "login" and arg["timestamp"] == "1700000000"  # seconds
    assert (arg["apiKey"], arg["passphrase"]) == ("key-1234567890", "pass-phrase")
    assert arg["sign"] == login_signature("secret-123456", "1700000000")
    assert private.subscribe_messages(private.streams)[0]["args"] == [
        {"channel": "orders", "instType": "SPOT"},
        {"channel": "account"},
    ]
    assert "secret-123456" not in repr(private) and "pass-phrase" not in repr(private)


# --------------------------------------------------------------------------------------------
# parsing


def test_candles_become_bars_final_only_when_confirmed() -> None:
    row = ["1700000040000", "100.1", "101", "99.5", "100.7", "12.5", "1250", "1250", "0"]
    push = {"arg": {"channel": "candle1m", "instId": "BTC-USDT"}, "data": [row]}
    (forming,) = parse(push)
    (final,) = parse({**push, "data": [[*row[:8], "1"]]})
    assert forming == replace(final, closed=False)
    assert final == Bar("okx", SYMBOL, "1m", 1_700_000_040_000, 100.1, 101.0, 99.5, 100.7, 12.5, True)
    with pytest.raises(MalformedMessage):
        parse({**push, "data": [[*row[:8], "yes"]]})
    assert parse({"arg": {"channel": "candle1m", "instId": "ETH-USDT"}, "data": [row]}) == []  # not our market


def test_trades_acks_and_pongs() -> None:
    push = {"arg": {"channel": "trades-all", "instId": "BTC-USDT"},
            "data": [{"instId": "BTC-USDT", "tradeId": "130639474", "px": "42219.9", "sz": "0.12", "side": "buy",
                      "ts": "1700000000001", "source": "0"}]}  # fmt: skip
    assert parse(push) == [Trade("okx", SYMBOL, "130639474", 42219.9, 0.12, Side.BUY, 1_700_000_000_001)]
    assert parse("pong") == []
    # OKX answers each channel of a subscribe request; "connected" waits for the answers.
    subscribed = {"event": "subscribe", "arg": {"channel": "candle1m", "instId": "BTC-USDT"}, "connId": "a"}
    assert parse(subscribed) == [Subscribed(("candle1m:BTC-USDT",))]
    assert parse({**subscribed, "arg": {"channel": "orders", "instType": "SPOT"}}) == [Subscribed(("orders",))]
    ws = OkxWebSocket(url="wss://example.invalid/ws/v5/business", symbols=SYMBOLS)
    (request,) = ws.subscribe_messages(("candle1m:BTC-USDT", "candle1m:NOPE-USDT"))
    refused = {"event": "error", "code": "60018", "msg": "doesn't exist", "id": request["id"], "connId": "a"}
    assert parse(refused, ws) == [Subscribed(("candle1m:BTC-USDT", "candle1m:NOPE-USDT"), ok=False)]
    assert parse({"event": "login", "code": "0", "msg": "", "connId": "a"}) == [Authenticated(True)]
    assert parse({"event": "error", "code": "60009", "msg": "Login failed.", "connId": "a"}) == [
        Authenticated(False, "60009 Login failed.")
    ]
    (clock,) = parse({"event": "error", "code": "60004", "msg": "Invalid timestamp", "connId": "a"})
    assert clock.clock and not clock.ok


def test_an_order_push_with_a_trade_is_an_update_and_a_fill() -> None:
    item = order_item(
        state="partially_filled", accFillSz="0.005", avgPx="30000", tradeId="242589207", fillSz="0.005",
        fillPx="30000", fillFee="-0.000005", fillFeeCcy="BTC", fillTime="1700000000200", execType="M",
    )  # fmt: skip
    update, fill = parse({"arg": {"channel": "orders", "instType": "SPOT"}, "data": [item]})
    assert update == OrderUpdate(
        "okx", "312269865356374016", "rt1", SYMBOL, Side.BUY, "limit", OrderStatus.PARTIALLY_FILLED,
        Decimal(30000), Decimal("0.02"), Decimal("0.005"), Decimal(30000), None, 1_700_000_000_100,
    )  # fmt: skip
    assert fill == Fill(
        "okx", "242589207", "312269865356374016", "rt1", SYMBOL, Side.BUY, Decimal(30000), Decimal("0.005"),
        Decimal("0.000005"), "BTC", True, 1_700_000_000_200,
    )  # fmt: skip


def test_order_states_types_and_quote_amounts() -> None:
    def one(**fields: Any) -> OrderUpdate:
        return parse({"arg": {"channel": "orders"}, "data": [order_item(**fields)]})[0]

    assert one(state="live", ordType="post_only").type == "limit"
    cancelled = one(state="canceled", cancelSourceReason="Order canceled by user")
    assert (cancelled.status, cancelled.reason) == (OrderStatus.CANCELED, "Order canceled by user")
    market = one(state="filled", ordType="market", tgtCcy="quote_ccy", sz="100", px="", accFillSz="0.0033")
    assert (market.type, market.price, market.amount, market.filled) == (
        "market", None, Decimal("0.0033"), Decimal("0.0033"),
    )  # fmt: skip
    with pytest.raises(MalformedMessage, match="unknown OKX order state 'dreaming'"):
        one(state="dreaming")


def test_account_push_is_free_and_frozen_per_currency() -> None:
    push = {"arg": {"channel": "account", "uid": "1"},
            "data": [{"uTime": "1700000000300", "details": [
                {"ccy": "USDT", "cashBal": "9700", "availBal": "9400", "frozenBal": "300"},
                {"ccy": "BTC", "cashBal": "0.01", "availBal": "0.01", "frozenBal": "0"}]}]}  # fmt: skip
    (update,) = parse(push)
    assert update.time == 1_700_000_000_300
    assert {(b.asset, b.free, b.locked) for b in update.balances} == {
        ("USDT", Decimal(9400), Decimal(300)), ("BTC", Decimal("0.01"), Decimal(0)),
    }  # fmt: skip
    with pytest.raises(MalformedMessage):
        parse({**push, "data": [{"details": [{"ccy": "USDT"}]}]})  # no cashBal: never read as zero


# --------------------------------------------------------------------------------------------
# over real sockets


@pytest.fixture(scope="module")
def store() -> Iterator[Any]:
    yield from emulated_store("okx", SYMBOL)


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    stop_connections(opened)


def test_the_business_endpoint_streams_each_candle_as_rest_has_it(store: Any, connections: list[Any]) -> None:
    emu = store.emulator
    ws = OkxWebSocket.for_store(store, private=False, config=FAST)
    ws.subscribe("candle1m:BTC-USDT")
    rec = EventRecorder(ws)
    connections.append(ws)
    ws.start()
    assert ws.wait_connected(5)
    wait_until(lambda: emu.hub.subscribers("candle1m:BTC-USDT") >= 1, what="the subscription")
    for _ in range(3):
        emu.step(1)
    rec.wait(lambda r: len([b for b in r.of(Bar) if b.closed]) >= 3, what="three closed candles")
    closed = [b for b in rec.of(Bar) if b.closed][-3:]
    rest = store.client.fetch_ohlcv(SYMBOL, "1m", since=closed[0].open_time, limit=3)
    assert [(b.open_time, b.open, b.high, b.low, b.close, b.volume) for b in closed] == [tuple(r) for r in rest]


def test_a_rest_order_streams_its_update_fill_and_balances(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu = store.emulator
    rec = EventRecorder()
    unsubscribe = store.subscribe_account(rec)  # the store's own private connection, logged in
    try:
        rec.wait(lambda r: ("connected", "ready") in r.items, what="the private connection")
        wait_until(lambda: emu.hub.subscribers("orders") >= 1, what="the orders channel")
        order = store.client.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "wsbuy1"})
        rec.wait(lambda r: any(f.client_order_id == "wsbuy1" for f in r.of(Fill)), what="the fill")
        rec.wait(lambda r: any(u.status is OrderStatus.FILLED and u.client_order_id == "wsbuy1"
                               for u in r.of(OrderUpdate)), what="the order filled")  # fmt: skip
        (fill,) = [f for f in rec.of(Fill) if f.client_order_id == "wsbuy1"]
        (trade,) = [t for t in store.client.fetch_my_trades(SYMBOL) if t["order"] == order["id"]]
        assert (fill.trade_id, fill.order_id, fill.amount) == (trade["id"], order["id"], Decimal("0.01"))
        assert fill.fee == Decimal(str(trade["fee"]["cost"])) > 0 and fill.fee_currency == "BTC"
        base = emu.balances()["BTC"].total
        rec.wait(lambda r: any(b.asset == "BTC" and b.free + b.locked == base
                               for u in r.of(BalanceUpdate) for b in u.balances), what="the BTC balance")  # fmt: skip
    finally:
        unsubscribe()
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("realtrade"))
    assert ours and emu.secret not in ours and emu.api_key not in ours and store.passphrase not in ours


def test_a_login_with_the_wrong_passphrase_is_refused_and_retried(connections: list[Any]) -> None:
    with Emulator("okx", speed=None, history=20, future=50, settings={"passphrase": "right"}) as emu:
        from realtrade_core.credentials import Credentials

        ws = OkxPrivateWebSocket(
            url=emu.urls["ws_private"], credentials=Credentials(emu.api_key, emu.secret), symbols=SYMBOLS,
            passphrase="wrong", config=FAST,
        )  # fmt: skip
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        rec.wait(lambda r: len(r.of_kind("error")) >= 2, what="two refused logins")
        assert not ws.wait_connected(0.1) and emu.hub.subscribers("orders") == 0
        assert "60024" in str(rec.of_kind("error")[0])
        ws.stop()


def test_pings_keep_an_idle_connection_alive(connections: list[Any]) -> None:
    # Its own emulator, which closes a connection after 0.4 s without a client message (OKX: 30 s).
    with Emulator("okx", speed=None, history=20, future=50, settings={"idle_timeout": 0.4}) as emu:
        ws = OkxWebSocket(("candle1m:BTC-USDT",), url=emu.urls["ws_business"], symbols=SYMBOLS,
                          config=replace(FAST, app_ping_interval=0.1))  # fmt: skip
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        first = ws.stats().messages
        wait_until(lambda: ws.stats().messages >= first + 10, what="ten pongs")  # ~1 s, 2.5 idle timeouts
        stats = ws.stats()
        assert (stats.reconnects, stats.unknown_messages, stats.parse_errors) == (0, 0, 0)
        assert rec.of_kind("disconnected") == []
        ws.stop()
