"""BybitWebSocket and BybitPrivateWebSocket: parsers on documented payloads, then the real thing
against the emulator on 127.0.0.1 (manual clock, real ccxt, real sockets and threads).

Fixtures live here rather than in conftest.py (the dialect's tests own that file); tests run
with ``--import-mode=importlib``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from realtrade_bybit.store import BybitStore
from realtrade_bybit.websocket import PRIVATE_TOPICS, URLS, BybitPrivateWebSocket, BybitWebSocket

from realtrade_core.credentials import Credentials
from realtrade_core.emulator import Emulator
from realtrade_core.emulator.model import BookEvent, KlineEvent, TradeEvent
from realtrade_core.errors import ConfigurationError
from realtrade_core.events import (
    AssetBalance,
    BalanceUpdate,
    Bar,
    BookTop,
    ConnectionState,
    Fill,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
)
from realtrade_core.testing import EventRecorder, emulated_store, stop_connections, wait_until
from realtrade_core.websocket import Authenticated, Subscribed, WebSocketConfig

SYMBOL = "BTC/USDT"
MARKET = {"id": "BTCUSDT", "symbol": SYMBOL, "type": "spot"}
SYMBOLS = {"BTCUSDT": SYMBOL, "ETHUSDT": "ETH/USDT", "ETH-30DEC22-1400-C": "ETH/USD:USDC-221230-1400-C"}
STREAMS = ("kline.1.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.1.BTCUSDT")
FAST = replace(BybitWebSocket.default_config, reconnect_delay=0.05, reconnect_delay_max=0.2)


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def store() -> Iterator[Any]:
    yield from emulated_store("bybit", SYMBOL)


@pytest.fixture
def emu(store: Any) -> Emulator:
    emulator = store.emulator
    emulator.reset_faults()
    return emulator


@pytest.fixture(scope="module")
def rest(store: Any) -> Any:
    client = store.emulator.ccxt_client()
    client.load_markets()
    return client


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    """Connections a test starts; stopped afterwards, and none may leave a thread behind."""
    opened: list[Any] = []
    yield opened
    stop_connections(opened)


@pytest.fixture
def public_ws(store: Any, emu: Emulator, connections: list[Any]) -> Callable[..., tuple[Any, EventRecorder]]:
    def make(streams: tuple[str, ...] = STREAMS, config: WebSocketConfig = FAST) -> tuple[Any, EventRecorder]:
        ws = BybitWebSocket(streams, url=store.stream_urls()["ws_public"], symbols={"BTCUSDT": SYMBOL}, config=config)
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        sync(emu, rec)
        return ws, rec

    return make


@pytest.fixture
def private_ws(store: Any, emu: Emulator, connections: list[Any]) -> Callable[..., tuple[Any, EventRecorder]]:
    def make(config: WebSocketConfig = FAST) -> tuple[Any, EventRecorder]:
        ws = BybitWebSocket.for_store(store, private=True, config=config)
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        sync_private(emu, rec)
        return ws, rec

    return make


@pytest.fixture
def engine_events(emu: Emulator) -> Iterator[list[Any]]:
    events: list[Any] = []
    unsubscribe = emu.engine.subscribe(events.append)
    yield events
    unsubscribe()


PROBE_TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":0,"data":[{"T":0,"s":"BTCUSDT","S":"Buy","v":"1",'
    '"p":"1","L":"PlusTick","i":"probe-%d","BT":false,"seq":0}]}'
)
PROBE_WALLET = (
    '{"topic":"wallet","id":"probe","creationTime":0,'
    '"data":[{"coin":[{"coin":"PROBE","walletBalance":"%d","locked":"0"}]}]}'
)


def is_probe(event: Any) -> bool:
    if isinstance(event, Trade):
        return event.trade_id.startswith("probe-")
    return isinstance(event, BalanceUpdate) and any(b.asset == "PROBE" for b in event.balances)


def market(rec: EventRecorder, cls: type) -> list[Any]:
    """``cls`` events that are not probes."""
    return [e for e in rec.of(cls) if not is_probe(e)]


def _sync(rec: EventRecorder, publish: Callable[[int], None], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = len([e for e in rec.items if is_probe(e)])
    for n in itertools.count():
        publish(n)
        try:
            rec.wait(lambda r: len([e for e in r.items if is_probe(e)]) > seen, timeout=0.05)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} probe reached the client within {timeout} s") from None


def sync(emu: Emulator, rec: EventRecorder, timeout: float = 5.0) -> None:
    """Barrier: publish probe trades until one reaches the client, so its subscriptions are live
    on the connection it reads. (Counting the server's subscribers is not enough: a connection
    the client already left may still be registered with the topics.)"""
    _sync(rec, lambda n: emu.hub.publish("publicTrade.BTCUSDT", PROBE_TRADE % n), "public", timeout)


def sync_private(emu: Emulator, rec: EventRecorder, timeout: float = 5.0) -> None:
    """The same for the private topics (subscribed together, after auth): a wallet probe."""
    _sync(rec, lambda n: emu.hub.publish("wallet", PROBE_WALLET % n, account=emu.api_key), "wallet", timeout)


def market_order(rest: Any, rec: EventRecorder, side: str = "buy", amount: float = 0.01) -> dict[str, Any]:
    order = rest.create_order(SYMBOL, "market", side, amount)
    rec.wait(
        lambda r: (
            r.count(OrderUpdate, order_id=order["id"], status=OrderStatus.FILLED) == 1
            and r.count(Fill, order_id=order["id"]) >= 1
        ),
        what="the filled OrderUpdate and its Fill",
    )
    return order


# --------------------------------------------------------------------------------------------
# contract, names, URLs (no network)


def test_both_classes_meet_the_base_contract() -> None:
    assert BybitWebSocket.missing_members() == []
    assert BybitPrivateWebSocket.missing_members() == []
    assert BybitWebSocket.default_config.app_ping_interval == 20.0
    assert BybitWebSocket(symbols=SYMBOLS).ping_message() == {"op": "ping"}


@pytest.mark.parametrize(
    ("kind", "timeframe", "name"),
    [
        ("bar", "1m", "kline.1.BTCUSDT"),
        ("bar", "15m", "kline.15.BTCUSDT"),
        ("bar", "1h", "kline.60.BTCUSDT"),
        ("bar", "4h", "kline.240.BTCUSDT"),
        ("bar", "12h", "kline.720.BTCUSDT"),
        ("bar", "1d", "kline.D.BTCUSDT"),
        ("bar", "1w", "kline.W.BTCUSDT"),
        ("trade", None, "publicTrade.BTCUSDT"),
        ("book", None, "orderbook.1.BTCUSDT"),
    ],
)
def test_stream_names(kind: str, timeframe: str | None, name: str) -> None:
    assert BybitWebSocket.stream_name(kind, MARKET, timeframe) == name


@pytest.mark.parametrize(("kind", "timeframe"), [("bar", "8h"), ("bar", "1s"), ("bar", None), ("depth", None)])
def test_unsupported_stream_is_a_configuration_error(kind: str, timeframe: str | None) -> None:
    with pytest.raises(ConfigurationError, match=repr(timeframe) if kind == "bar" else repr(kind)):
        BybitWebSocket.stream_name(kind, MARKET, timeframe)


@pytest.mark.parametrize("venue", ["mainnet", "testnet"])
def test_for_store_uses_the_real_urls_and_keeps_secrets_out_of_sight(venue: str) -> None:
    store = BybitStore(venue=venue, api_key="KEY-abcdefghijkl", secret="SECRET-mnopqrstuv")
    # Offline: hand ccxt a market table instead of loading it (BTCUSDT is spot and linear).
    store.client.markets_by_id = {"BTCUSDT": [{**MARKET, "symbol": "BTC/USDT:USDT", "type": "swap"}, MARKET]}
    public = BybitWebSocket.for_store(store, private=False)
    private = BybitWebSocket.for_store(store, private=True)
    assert type(public) is BybitWebSocket and isinstance(private, BybitPrivateWebSocket)
    assert public.url(()) == URLS[venue]["public"]
    assert private.url(()) == URLS[venue]["private"]
    assert public.streams == () and private.streams == PRIVATE_TOPICS == ("order", "execution", "wallet")
    assert public.state is private.state is ConnectionState.IDLE  # unstarted
    assert public._symbols == {"BTCUSDT": SYMBOL}  # the spot market, not the linear one
    for ws in (public, private):
        assert "KEY-" not in repr(ws) and "SECRET-" not in repr(ws)
    host = "stream-testnet.bybit.com" if venue == "testnet" else "stream.bybit.com"
    assert f"wss://{host}/v5/" in URLS[venue]["public"]


def test_private_connection_without_credentials_is_refused() -> None:
    store = BybitStore(venue="mainnet")
    store.client.markets_by_id = {"BTCUSDT": [MARKET]}
    with pytest.raises(ConfigurationError, match="API key"):
        BybitWebSocket.for_store(store, private=True)


def test_auth_and_subscribe_messages_follow_the_documentation() -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("my-key", "my-secret"), server_time=lambda: 1662350390000)
    (auth,) = ws.auth_messages()
    expires = 1662350400000
    signature = hmac.new(b"my-secret", f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    assert auth["op"] == "auth" and auth["args"] == ["my-key", expires, signature]
    (subscribe,) = ws.subscribe_messages(PRIVATE_TOPICS)
    assert subscribe["op"] == "subscribe" and subscribe["args"] == ["order", "execution", "wallet"]
    # Bybit spot takes at most 10 topics per request.
    many = tuple(f"publicTrade.X{i}USDT" for i in range(23))
    assert [len(m["args"]) for m in BybitWebSocket().subscribe_messages(many)] == [10, 10, 3]
    assert [m["op"] for m in BybitWebSocket().unsubscribe_messages(many[:2])] == ["unsubscribe"]


# --------------------------------------------------------------------------------------------
# parsers on the documented example payloads

DOC_KLINE = {
    "topic": "kline.5.BTCUSDT",
    "data": [{"start": 1672324800000, "end": 1672325099999, "interval": "5", "open": "16649.5", "close": "16677",
              "high": "16677", "low": "16608", "volume": "2.081", "turnover": "34666.4005", "confirm": False,
              "timestamp": 1672324988882}],
    "ts": 1672324988882, "type": "snapshot",
}  # fmt: skip
DOC_TRADE = {
    "topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
    "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick",
              "i": "20f43950-d8dd-5b31-9112-a178eb6023af", "BT": False, "seq": 1783284617}],
}  # fmt: skip
DOC_TICKER_SPOT = {
    "topic": "tickers.BTCUSDT", "ts": 1673853746003, "type": "snapshot", "cs": 2588407389,
    "data": {"symbol": "BTCUSDT", "lastPrice": "21109.77", "highPrice24h": "21426.99", "lowPrice24h": "20575",
             "prevPrice24h": "20704.93", "volume24h": "6780.866843", "turnover24h": "141946527.22907118",
             "price24hPcnt": "0.0196", "usdIndexPrice": "21120.2400136"},
}  # fmt: skip
DOC_ORDER = {
    "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90", "topic": "order", "creationTime": 1672364262474,
    "data": [{"symbol": "ETH-30DEC22-1400-C", "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020", "side": "Sell",
              "orderType": "Market", "cancelType": "UNKNOWN", "price": "72.5", "qty": "1", "orderIv": "",
              "timeInForce": "IOC", "orderStatus": "Filled", "orderLinkId": "", "lastPriceOnCreated": "",
              "reduceOnly": False, "leavesQty": "", "leavesValue": "", "cumExecQty": "1", "cumExecValue": "75",
              "avgPrice": "75", "blockTradeId": "", "positionIdx": 0, "cumExecFee": "0.358635", "closedPnl": "0",
              "createdTime": "1672364262444", "updatedTime": "1672364262457", "rejectReason": "EC_NoError",
              "stopOrderType": "", "tpslMode": "", "triggerPrice": "", "takeProfit": "", "stopLoss": "",
              "tpTriggerBy": "", "slTriggerBy": "", "tpLimitPrice": "", "slLimitPrice": "", "triggerDirection": 0,
              "triggerBy": "", "closeOnTrigger": False, "category": "option", "placeType": "price",
              "smpType": "None", "smpGroup": 0, "smpOrderId": "", "feeCurrency": "",
              "cumFeeDetail": {"MNT": "0.00242968"}}],
}  # fmt: skip
DOC_EXECUTION = {
    "topic": "execution", "id": "386825804_BTCUSDT_140612148849382", "creationTime": 1746270400355,
    "data": [{"category": "linear", "symbol": "BTCUSDT", "closedSize": "0.5", "execFee": "26.3725275",
              "execId": "0ab1bdf7-4219-438b-b30a-32ec863018f7", "execPrice": "95900.1", "execQty": "0.5",
              "execType": "Trade", "execValue": "47950.05", "feeRate": "0.00055", "leavesQty": "0",
              "orderId": "9aac161b-8ed6-450d-9cab-c5cc67c21784", "orderLinkId": "", "orderPrice": "94942.5",
              "orderQty": "0.5", "orderType": "Market", "stopOrderType": "UNKNOWN", "side": "Sell",
              "execTime": "1746270400353", "isLeverage": "0", "isMaker": False, "seq": 140612148849382,
              "marketUnit": "", "execPnl": "0.05", "createType": "CreateByUser", "feeCurrency": "USDT"}],
}  # fmt: skip
DOC_WALLET = {
    "id": "592324d2bce751-ad38-48eb-8f42-4671d1fb4d4e", "topic": "wallet", "creationTime": 1700034722104,
    "data": [{"accountType": "UNIFIED", "totalEquity": "10262.91335023",
              "coin": [{"coin": "BTC", "equity": "0.00102964", "walletBalance": "0.00102964",
                        "availableToWithdraw": "0.00102964", "locked": "0", "spotHedgingQty": "0.01592413"}]}],
}  # fmt: skip


def parse(ws: Any, payload: Any) -> list[Any]:
    return list(ws.parse(json.dumps(payload)))


def test_public_payloads_become_typed_events() -> None:
    ws = BybitWebSocket(symbols=SYMBOLS)
    assert parse(ws, DOC_KLINE) == [
        Bar("bybit", SYMBOL, "5m", 1672324800000, 16649.5, 16677.0, 16608.0, 16677.0, 2.081, False, 1672324988882)
    ]
    confirmed = {**DOC_KLINE, "topic": "kline.D.BTCUSDT", "data": [{**DOC_KLINE["data"][0], "confirm": True}]}
    (bar,) = parse(ws, confirmed)
    assert bar.closed and bar.timeframe == "1d"
    assert parse(ws, DOC_TRADE) == [
        Trade("bybit", SYMBOL, "20f43950-d8dd-5b31-9112-a178eb6023af", 16578.5, 0.001, Side.BUY, 1672304486865)
    ]
    # Spot tickers carry no book: understood, nothing to emit. Linear ones have bid1/ask1.
    assert parse(ws, DOC_TICKER_SPOT) == []
    linear = {**DOC_TICKER_SPOT, "data": {**DOC_TICKER_SPOT["data"], "bid1Price": "66666.60",
              "bid1Size": "23789.165", "ask1Price": "66666.70", "ask1Size": "23775.469"}}  # fmt: skip
    assert parse(ws, linear) == [BookTop("bybit", SYMBOL, 66666.6, 23789.165, 66666.7, 23775.469, 1673853746003)]


def test_orderbook_level_one_snapshots_and_deltas() -> None:
    ws = BybitWebSocket(symbols=SYMBOLS)

    def book(kind: str, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
        return {"topic": "orderbook.1.BTCUSDT", "type": kind, "ts": 5, "data": {"s": "BTCUSDT", "b": bids, "a": asks}}

    assert parse(ws, book("snapshot", [["100.1", "2"]], [["100.3", "1.5"]])) == [
        BookTop("bybit", SYMBOL, 100.1, 2.0, 100.3, 1.5, 5)
    ]
    # A delta changes one side; the other stays.
    assert parse(ws, book("delta", [], [["100.2", "0.5"]])) == [BookTop("bybit", SYMBOL, 100.1, 2.0, 100.2, 0.5, 5)]
    # A side emptied: no BookTop until it is known again.
    assert parse(ws, book("delta", [["100.1", "0"]], [])) == []
    assert parse(ws, book("delta", [["99.9", "3"]], [])) == [BookTop("bybit", SYMBOL, 99.9, 3.0, 100.2, 0.5, 5)]
    # Deeper books would need a local order book: not understood.
    assert ws.parse(json.dumps({**book("snapshot", [], []), "topic": "orderbook.50.BTCUSDT"})) is None


def test_acks_pongs_and_unknown_payloads() -> None:
    ws = BybitWebSocket(symbols=SYMBOLS)
    assert parse(ws, {"success": True, "ret_msg": "pong", "conn_id": "c", "op": "ping"}) == []
    assert parse(ws, {"req_id": "test", "op": "pong", "args": ["1675418560633"], "conn_id": "c"}) == []
    assert (
        parse(ws, {"success": True, "ret_msg": "subscribe", "conn_id": "c", "req_id": "10001", "op": "subscribe"}) == []
    )
    assert parse(ws, {"success": False, "ret_msg": "error:invalid topic(s)", "conn_id": "c", "op": "subscribe"}) == []
    # The answer to our own request names its topics by req_id ("connected" waits for it).
    ((request, more),) = [ws.subscribe_messages(tuple(f"kline.1.{s}" for s in "ABCDEFGHIJK"))]
    answer = {"success": True, "ret_msg": "subscribe", "conn_id": "c", "req_id": more["req_id"], "op": "subscribe"}
    assert parse(ws, answer) == [Subscribed(("kline.1.K",))]  # ten topics a request
    refused = {"success": False, "ret_msg": "error:invalid topic(s)", "req_id": request["req_id"], "op": "subscribe"}
    assert parse(ws, refused) == [Subscribed(tuple(f"kline.1.{s}" for s in "ABCDEFGHIJ"), ok=False)]
    assert parse(ws, {"success": True, "ret_msg": "", "op": "auth", "conn_id": "c"}) == [Authenticated()]
    assert parse(ws, {"success": False, "ret_msg": "Request not authorized", "op": "auth"}) == [
        Authenticated(False, "Request not authorized")
    ]
    assert ws.parse(json.dumps({"topic": "liquidation.BTCUSDT", "data": {}})) is None
    assert ws.parse(json.dumps({"hello": 1})) is None
    assert ws.parse(json.dumps({**DOC_TRADE, "topic": "publicTrade.NOPEUSDT"})) is None
    with pytest.raises(ValueError):
        ws.parse('{"e":"kline","E":17000000,"s":"BTC')  # what send_malformed() sends


def test_private_payloads_become_typed_events() -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    # The documented order is an option market order (qty in contracts, not quote coin).
    assert parse(ws, DOC_ORDER) == [
        OrderUpdate(
            "bybit", "5cf98598-39a7-459e-97bf-76ca765ee020", None, "ETH/USD:USDC-221230-1400-C", Side.SELL,
            "market", OrderStatus.FILLED, None, Decimal("1"), Decimal("1"), Decimal("75"), None,
            1672364262457, None,
        )
    ]  # fmt: skip
    assert parse(ws, DOC_EXECUTION) == [
        Fill(
            "bybit", "0ab1bdf7-4219-438b-b30a-32ec863018f7", "9aac161b-8ed6-450d-9cab-c5cc67c21784", None, SYMBOL,
            Side.SELL, Decimal("95900.1"), Decimal("0.5"), Decimal("26.3725275"), "USDT", False, 1746270400353,
        )
    ]  # fmt: skip
    funding = {**DOC_EXECUTION, "data": [{**DOC_EXECUTION["data"][0], "execType": "Funding"}]}
    assert parse(ws, funding) == []
    assert parse(ws, DOC_WALLET) == [
        BalanceUpdate("bybit", (AssetBalance("BTC", Decimal("0.00102964"), Decimal("0")),), 1700034722104)
    ]
    locked = {**DOC_WALLET, "data": [{"coin": [{"coin": "USDT", "walletBalance": "100", "locked": "30"}]}]}
    (update,) = parse(ws, locked)
    assert update.balances == (AssetBalance("USDT", Decimal("70"), Decimal("30")),)


def order_item(**fields: Any) -> dict[str, Any]:
    spot = {"symbol": "BTCUSDT", "category": "spot", "orderType": "Limit", "price": "60000", "qty": "0.5"}
    state = {"side": "Buy", "cumExecQty": "0", "cumExecValue": "0", "avgPrice": "0", "leavesQty": "0.5"}
    item = {**DOC_ORDER["data"][0], **spot, **state}
    item.update(fields)
    return {**DOC_ORDER, "data": [item]}


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        ("New", OrderStatus.NEW, None),
        ("PartiallyFilled", OrderStatus.PARTIALLY_FILLED, None),
        ("Filled", OrderStatus.FILLED, None),
        ("Cancelled", OrderStatus.CANCELED, None),
        ("Rejected", OrderStatus.REJECTED, "EC_PostOnlyWillTakeLiquidity"),
        ("PartiallyFilledCanceled", OrderStatus.CANCELED, "PartiallyFilledCanceled"),
        ("Untriggered", OrderStatus.NEW, None),
        ("Triggered", OrderStatus.NEW, None),
        ("Deactivated", OrderStatus.CANCELED, "Deactivated"),
    ],
)
def test_order_statuses_map_exactly(raw: str, status: OrderStatus, reason: str | None) -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    reject = "EC_PostOnlyWillTakeLiquidity" if raw == "Rejected" else "EC_NoError"
    (update,) = parse(ws, order_item(orderStatus=raw, rejectReason=reject))
    assert (update.status, update.reason) == (status, reason)
    (canceled,) = parse(ws, order_item(orderStatus="Cancelled", cancelType="CancelByUser"))
    assert canceled.reason == "CancelByUser"


@pytest.mark.parametrize(
    ("order_type", "trigger", "kind", "price"),
    [
        ("Limit", "0", "limit", Decimal("60000")),
        ("Market", "0", "market", None),
        ("Market", "61000", "stop_market", None),
        ("Limit", "61000", "stop_limit", Decimal("60000")),
    ],
)
def test_order_types_follow_order_type_and_trigger_price(
    order_type: str, trigger: str, kind: str, price: Decimal | None
) -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    stop_type = "Stop" if trigger != "0" else ""
    (update,) = parse(
        ws,
        order_item(
            orderType=order_type,
            triggerPrice=trigger,
            stopOrderType=stop_type,
            orderStatus="New",
            marketUnit="baseCoin",
        ),
    )
    assert (update.type, update.price, update.stop_price) == (kind, price, Decimal(trigger) or None)


def test_a_quote_coin_market_buy_reports_its_base_amount() -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    # qty is 600 USDT; what counts is the base amount: filled (+ left while open).
    filled = order_item(orderType="Market", qty="600", marketUnit="", orderStatus="Filled", cumExecQty="0.01",
                        cumExecValue="600", avgPrice="60000", leavesQty="0")  # fmt: skip
    (update,) = parse(ws, filled)
    assert (update.amount, update.filled, update.average) == (Decimal("0.01"), Decimal("0.01"), Decimal("60000"))


def test_an_unknown_order_status_is_a_parse_error_not_a_guess() -> None:
    ws = BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    with pytest.raises(ValueError, match="Whatever"):
        ws.parse(json.dumps(order_item(orderStatus="Whatever")))


# --------------------------------------------------------------------------------------------
# public streams against the emulator


def test_every_public_stream_delivers_what_the_engine_printed(
    emu: Emulator, public_ws: Callable[..., Any], engine_events: list[Any]
) -> None:
    ws, rec = public_ws()
    emu.step(3)
    closes = [e for e in engine_events if isinstance(e, KlineEvent) and e.closed]
    forming = [e for e in engine_events if isinstance(e, KlineEvent) and not e.closed]
    trades = [e for e in engine_events if isinstance(e, TradeEvent)]
    books = [e for e in engine_events if isinstance(e, BookEvent)]
    assert len(closes) == 3 and trades and books
    expected = len(trades) + len(books) + len(closes) + len(forming)
    rec.wait(lambda r: len(r.of(Bar) + market(r, Trade) + r.of(BookTop)) >= expected, what="every stream message")

    assert [b for b in rec.of(Bar) if b.closed] == [
        Bar("bybit", SYMBOL, "1m", k.candle.open_time, float(k.candle.open), float(k.candle.high),
            float(k.candle.low), float(k.candle.close), float(k.candle.volume), True, k.time)
        for k in closes
    ]  # fmt: skip
    assert len(rec.of(Bar)) == len(closes) + len(forming)
    assert market(rec, Trade) == [
        Trade("bybit", SYMBOL, str(t.trade_id), float(t.price), float(t.amount),
              Side.SELL if t.buyer_is_maker else Side.BUY, t.time)
        for t in trades
    ]  # fmt: skip
    assert rec.of(BookTop) == [
        BookTop("bybit", SYMBOL, float(b.bid), float(b.bid_amount), float(b.ask), float(b.ask_amount), b.time)
        for b in books
    ]
    assert ws.stats().parse_errors == ws.stats().unknown_messages == 0


def test_store_subscribe_bars_gets_exactly_one_closed_bar_per_candle(store: Any, emu: Emulator, rest: Any) -> None:
    rows: list[Any] = []
    got = threading.Event()

    def on_stream(item: tuple) -> None:
        rows.append(item)
        if sum(1 for kind, _ in rows if kind == "bar") >= 5:
            got.set()

    # Connections of earlier tests must be gone from the server first, or the count below
    # could be theirs.
    wait_until(lambda: emu.hub.subscribers("kline.1.BTCUSDT") == 0, what="earlier connections to close")
    unsubscribe = store.subscribe_bars(SYMBOL, store.timeframe("1m"), on_stream)
    try:
        wait_until(lambda: emu.hub.subscribers("kline.1.BTCUSDT") == 1, what="the store's subscription")
        start = emu.engine.now()
        emu.step(5)
        assert got.wait(5)
        bars = [row for kind, row in rows if kind == "bar"]
        assert bars == rest.fetch_ohlcv(SYMBOL, "1m", since=start, limit=5)
        assert len({b[0] for b in bars}) == 5  # one closed bar per candle, no duplicates
    finally:
        unsubscribe()


def test_reconnects_and_resubscribes_after_a_drop(emu: Emulator, public_ws: Callable[..., Any]) -> None:
    ws, rec = public_ws()
    assert emu.drop_connections() >= 1
    rec.wait(lambda r: r.of_kind("disconnected") and len(r.of_kind("connected")) >= 2, what="connected again")
    sync(emu, rec)
    assert ws.stats().reconnects >= 1
    before = len(rec.of(Bar))
    emu.step(1)
    rec.wait(lambda r: any(b.closed for b in r.of(Bar)[before:]), what="a bar after the reconnect")


def test_app_pings_keep_an_idle_connection_alive(connections: list[Any]) -> None:
    # Its own emulator, which cuts a connection after 0.4 s without a client message.
    with Emulator("bybit", speed=None, history=20, future=50, settings={"idle_timeout": 0.4}) as emu:
        config = replace(FAST, app_ping_interval=0.1)
        ws = BybitWebSocket(STREAMS, url=emu.urls["ws_public"], symbols={"BTCUSDT": SYMBOL}, config=config)
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


def test_a_stalled_connection_is_replaced_by_the_watchdog(connections: list[Any]) -> None:
    with Emulator("bybit", speed=None, history=20, future=50) as emu:
        # Pongs every 0.1 s make a healthy connection visibly alive.
        config = replace(FAST, app_ping_interval=0.1, stale_after=0.5)
        ws = BybitWebSocket(STREAMS, url=emu.urls["ws_public"], symbols={"BTCUSDT": SYMBOL}, config=config)
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        sync(emu, rec)
        emu.stall_connections(1.0)
        rec.wait(lambda r: ws.stats().stale_reconnects >= 1, what="the watchdog")
        assert any(e.where == "stale" for e in rec.of_kind("error"))
        wait_until(lambda: not emu.faults.stalled, what="the stall to end")
        sync(emu, rec)
        before = len(rec.of(Bar))
        emu.step(1)
        rec.wait(lambda r: any(b.closed for b in r.of(Bar)[before:]), what="a bar after the stall")
        ws.stop()


def test_a_malformed_frame_is_counted_and_skipped(emu: Emulator, public_ws: Callable[..., Any]) -> None:
    ws, rec = public_ws()
    assert emu.send_malformed() >= 1
    wait_until(lambda: ws.stats().parse_errors == 1, what="the parse error")
    emu.step(1)
    rec.wait(lambda r: any(b.closed for b in r.of(Bar)), what="bars after the malformed frame")
    assert ws.stats().reconnects == 0 and ws.is_connected()


def test_flood_of_100000_messages_loses_nothing(emu: Emulator, public_ws: Callable[..., Any]) -> None:
    ws, _ = public_ws(("publicTrade.BTCUSDT",))
    total = 100_000
    ids: list[str] = []
    done = threading.Event()

    def on_trade(trade: Trade) -> None:
        if is_probe(trade):
            return  # a late probe
        ids.append(trade.trade_id)
        if len(ids) == total:
            done.set()

    ws.on("trade", on_trade)
    template = (
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy",'
        '"v":"0.25","p":"60000.5","L":"PlusTick","i":"%d","BT":false,"seq":%d}]}'
    )
    for i in range(1, total + 1):
        emu.hub.publish("publicTrade.BTCUSDT", template % (i, i))
    assert done.wait(30), f"only {len(ids)} of {total} arrived"
    assert ids == [str(i) for i in range(1, total + 1)]
    stats = ws.stats()
    assert (stats.parse_errors, stats.unknown_messages, stats.reconnects) == (0, 0, 0)


# --------------------------------------------------------------------------------------------
# private stream against the emulator


def test_a_rest_order_streams_new_fill_filled_and_balances(
    store: Any, emu: Emulator, rest: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = EventRecorder()
    unsubscribe = store.subscribe_account(rec)  # the store's own private connection
    try:
        rec.wait(lambda r: ("connected", "ready") in r.items, what="the private connection")
        sync_private(emu, rec)
        order = market_order(rest, rec)
        rec.wait(lambda r: len(market(r, BalanceUpdate)) >= 2, what="both balance updates")
        updates = [e for e in rec.of(OrderUpdate) if e.order_id == order["id"]]
        assert [u.status for u in updates] == [OrderStatus.NEW, OrderStatus.FILLED]
        new, filled = updates
        (fill,) = [e for e in rec.of(Fill) if e.order_id == order["id"]]
        trade = next(t for t in rest.fetch_my_trades(SYMBOL) if t["order"] == order["id"])
        assert (new.filled, new.average, new.type, new.side, new.symbol) == (
            Decimal(0),
            None,
            "market",
            Side.BUY,
            SYMBOL,
        )
        assert new.client_order_id == fill.client_order_id == order["clientOrderId"]
        assert fill.trade_id == trade["id"]
        assert (fill.price, fill.amount) == (Decimal(str(trade["price"])), Decimal("0.01"))
        assert (
            fill.fee == Decimal(str(trade["fee"]["cost"])) > 0
            and fill.fee_currency == trade["fee"]["currency"] == "BTC"
        )
        assert (filled.amount, filled.filled, filled.average) == (Decimal("0.01"), Decimal("0.01"), fill.price)
        balance = rest.fetch_balance()
        last = {b.asset: b for u in market(rec, BalanceUpdate) for b in u.balances}
        for asset in ("BTC", "USDT"):
            assert last[asset].free == Decimal(str(balance[asset]["free"]))
            assert last[asset].locked == Decimal(str(balance[asset]["used"]))
    finally:
        unsubscribe()
    assert emu.secret not in caplog.text
    # ccxt's own DEBUG request log shows the API key header; realtrade's records never do.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("realtrade")]
    assert ours and not [m for m in ours if emu.api_key in m]


def test_a_conditional_order_is_a_stop_with_its_trigger(private_ws: Callable[..., Any], rest: Any) -> None:
    _ws, rec = private_ws()
    trigger = round(rest.fetch_ticker(SYMBOL)["last"] * 1.05, 2)
    order = rest.create_order(SYMBOL, "market", "buy", 0.01, None, {"triggerPrice": trigger})
    rec.wait(lambda r: r.count(OrderUpdate, order_id=order["id"]), what="the conditional order")
    rest.cancel_order(order["id"], SYMBOL, {"trigger": True})
    rec.wait(lambda r: r.count(OrderUpdate, order_id=order["id"], status=OrderStatus.CANCELED), what="the cancel")
    untriggered, canceled = [e for e in rec.of(OrderUpdate) if e.order_id == order["id"]]
    assert (untriggered.type, untriggered.status, untriggered.stop_price) == (
        "stop_market", OrderStatus.NEW, Decimal(str(trigger)),
    )  # fmt: skip
    assert canceled.type == "stop_market" and canceled.reason


def test_private_stream_reauthenticates_and_resubscribes_after_a_drop(
    emu: Emulator, private_ws: Callable[..., Any], rest: Any
) -> None:
    ws, rec = private_ws()
    emu.drop_connections()
    rec.wait(lambda r: r.of_kind("disconnected") and len(r.of_kind("connected")) >= 2, what="connected again")
    # The emulator refuses private topics before auth: events on them prove auth came first.
    sync_private(emu, rec)
    assert ws.stats().reconnects >= 1
    market_order(rest, rec, side="sell")
    rec.wait(lambda r: market(r, BalanceUpdate), what="a balance update")


def test_a_refused_auth_is_an_auth_error(store: Any, connections: list[Any]) -> None:
    emu = store.emulator
    ws = BybitPrivateWebSocket(
        url=store.stream_urls()["ws_private"],
        credentials=Credentials(emu.api_key, "not-the-secret"),
        symbols={"BTCUSDT": SYMBOL},
        config=replace(FAST, max_reconnect_attempts=0),
    )
    rec = EventRecorder(ws)
    connections.append(ws)
    ws.start()
    rec.wait(lambda r: r.of_kind("max_reconnect"), what="giving up")
    error = rec.of_kind("error")[0]
    assert error.where == "auth" and "not authorized" in error.message
    assert not ws.is_connected() and "not-the-secret" not in repr(ws)


def test_stop_leaves_no_thread_alive(public_ws: Callable[..., Any], private_ws: Callable[..., Any]) -> None:
    public, _ = public_ws()
    private, _ = private_ws()
    names = {f"realtrade-ws-{w.name}" for w in (public, private)}
    assert len([t for t in threading.enumerate() if t.name in names]) == 2
    assert public.stop(5) and private.stop(5)
    assert [t.name for t in threading.enumerate() if t.name in names] == []
    assert public.state is private.state is ConnectionState.STOPPED
