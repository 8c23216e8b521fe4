"""BinanceWebSocket and BinanceUserDataWebSocket: parsers on documented payloads, then the real
thing against the emulator on 127.0.0.1 (manual clock, real ccxt, real sockets and threads).

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
from realtrade_binance.store import BinanceStore
from realtrade_binance.websocket import URLS, BinanceUserDataWebSocket, BinanceWebSocket

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
from realtrade_core.websocket import Authenticated, Reconnect, Subscribed, WebSocketConfig

SYMBOL = "BTC/USDT"
MARKET = {"id": "BTCUSDT", "symbol": SYMBOL, "type": "spot"}
SYMBOLS = {"BTCUSDT": SYMBOL, "ETHBTC": "ETH/BTC", "BNBBTC": "BNB/BTC", "BNBUSDT": "BNB/USDT"}
# Barrier messages (see sync()) carry a symbol of their own, so they never mix with market data.
PROBE_SYMBOL = "PROBE/USDT"
LIVE_SYMBOLS = {"BTCUSDT": SYMBOL, "PROBEUSDT": PROBE_SYMBOL}
PROBE = '{"e":"trade","E":0,"s":"PROBEUSDT","t":%d,"p":"1","q":"1","T":0,"m":false,"M":true}'
STREAMS = ("btcusdt@kline_1m", "btcusdt@trade", "btcusdt@bookTicker")
FAST = replace(BinanceWebSocket.default_config, reconnect_delay=0.05, reconnect_delay_max=0.2)


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def store() -> Iterator[Any]:
    yield from emulated_store("binance", SYMBOL)


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
def market_ws(store: Any, emu: Emulator, connections: list[Any]) -> Callable[..., tuple[Any, EventRecorder]]:
    def make(
        streams: tuple[str, ...] = STREAMS, config: WebSocketConfig = FAST, **kwargs: Any
    ) -> tuple[Any, EventRecorder]:
        ws = BinanceWebSocket(
            streams, url=store.stream_urls()["ws_market"], symbols=LIVE_SYMBOLS, config=config, **kwargs
        )
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        sync(emu, rec)
        return ws, rec

    return make


@pytest.fixture
def user_ws(store: Any, connections: list[Any]) -> Callable[..., tuple[Any, EventRecorder]]:
    def make(config: WebSocketConfig = FAST, **kwargs: Any) -> tuple[Any, EventRecorder]:
        ws = BinanceWebSocket.for_store(store, private=True, config=config)
        rec = EventRecorder(ws)
        connections.append(ws)
        ws.start()
        assert ws.wait_connected(5)
        return ws, rec

    return make


@pytest.fixture
def engine_events(emu: Emulator) -> Iterator[list[Any]]:
    events: list[Any] = []
    unsubscribe = emu.engine.subscribe(events.append)
    yield events
    unsubscribe()


def sync(emu: Emulator, rec: EventRecorder, topic: str = "btcusdt@trade", timeout: float = 5.0) -> None:
    """Barrier: publish probe trades on ``topic`` until one reaches the client, so its
    subscription is live on the connection it reads. (Counting the server's subscribers is not
    enough: a connection the client already left may still be registered with the topics.)"""
    deadline = time.monotonic() + timeout
    seen = len([t for t in rec.of(Trade) if t.symbol == PROBE_SYMBOL])
    for n in itertools.count():
        emu.hub.publish(topic, PROBE % n)
        try:
            rec.wait(lambda r: len([t for t in r.of(Trade) if t.symbol == PROBE_SYMBOL]) > seen, timeout=0.05)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no probe on {topic} reached the client within {timeout} s") from None


def market(rec: EventRecorder, cls: type) -> list[Any]:
    """``cls`` events of the real market (probes left out)."""
    return [e for e in rec.of(cls) if e.symbol == SYMBOL]


def place_and_wait(rest: Any, rec: EventRecorder, side: str = "buy", amount: float = 0.01) -> dict[str, Any]:
    order = rest.create_order(SYMBOL, "market", side, amount)
    rec.wait(
        lambda r: r.count(OrderUpdate, order_id=order["id"], status=OrderStatus.FILLED) == 1,
        what="the filled OrderUpdate",
    )
    return order


# --------------------------------------------------------------------------------------------
# contract, names, URLs (no network)


def test_both_classes_meet_the_base_contract() -> None:
    assert BinanceWebSocket.missing_members() == []
    assert BinanceUserDataWebSocket.missing_members() == []
    assert BinanceWebSocket.exchange == BinanceUserDataWebSocket.exchange == "binance"


@pytest.mark.parametrize(
    ("kind", "timeframe", "name"),
    [
        ("bar", "1m", "btcusdt@kline_1m"),
        ("bar", "1h", "btcusdt@kline_1h"),
        ("bar", "1d", "btcusdt@kline_1d"),
        ("trade", None, "btcusdt@trade"),
        ("book", None, "btcusdt@bookTicker"),
    ],
)
def test_stream_names(kind: str, timeframe: str | None, name: str) -> None:
    assert BinanceWebSocket.stream_name(kind, MARKET, timeframe) == name


@pytest.mark.parametrize(("kind", "timeframe"), [("bar", "7m"), ("bar", None), ("depth", None), ("ticker", "1m")])
def test_unsupported_stream_is_a_configuration_error(kind: str, timeframe: str | None) -> None:
    with pytest.raises(ConfigurationError, match=repr(timeframe) if kind == "bar" else repr(kind)):
        BinanceWebSocket.stream_name(kind, MARKET, timeframe)


@pytest.mark.parametrize("venue", ["mainnet", "testnet"])
def test_for_store_uses_the_real_urls_and_keeps_secrets_out_of_sight(venue: str) -> None:
    store = BinanceStore(venue=venue, api_key="KEY-abcdefghijkl", secret="SECRET-mnopqrstuv")
    # Offline: hand ccxt a market table instead of loading it (BTCUSDT is spot and USD-M).
    store.client.markets_by_id = {"BTCUSDT": [{**MARKET, "symbol": "BTC/USDT:USDT", "type": "swap"}, MARKET]}
    public = BinanceWebSocket.for_store(store, private=False)
    private = BinanceWebSocket.for_store(store, private=True)
    assert type(public) is BinanceWebSocket and isinstance(private, BinanceUserDataWebSocket)
    assert public.url(()) == URLS[venue]["public"]
    assert private.url(()) == URLS[venue]["private"]
    assert public.state is private.state is ConnectionState.IDLE  # unstarted
    assert public._symbols == {"BTCUSDT": SYMBOL}  # the spot market, not the swap
    for ws in (public, private):
        assert "KEY-" not in repr(ws) and "SECRET-" not in repr(ws)
    assert "stream.testnet" in URLS["testnet"]["public"] and "ws-api.binance.com" in URLS["mainnet"]["private"]


def test_private_connection_without_credentials_is_refused() -> None:
    store = BinanceStore(venue="mainnet")
    store.client.markets_by_id = {"BTCUSDT": [MARKET]}
    with pytest.raises(ConfigurationError, match="API key"):
        BinanceWebSocket.for_store(store, private=True)
    with pytest.raises(ConfigurationError, match="no streams"):
        BinanceUserDataWebSocket(credentials=Credentials("k", "s")).subscribe("btcusdt@trade")


def test_auth_request_is_signed_as_binance_documents() -> None:
    ws = BinanceUserDataWebSocket(credentials=Credentials("my-key", "my-secret"), server_time=lambda: 1747385641636)
    (request,) = ws.auth_messages()
    assert request["method"] == "userDataStream.subscribe.signature"
    params = request["params"]
    expected = hmac.new(b"my-secret", b"apiKey=my-key&timestamp=1747385641636", hashlib.sha256).hexdigest()
    assert params == {"apiKey": "my-key", "timestamp": 1747385641636, "signature": expected}
    # The matching response is the auth acknowledgement; other ids are not.
    assert ws.parse(json.dumps({"id": "other", "status": 200, "result": {}})) == ()
    ok = {"id": request["id"], "status": 200, "result": {"subscriptionId": 7}}
    assert tuple(ws.parse(json.dumps(ok))) == (Authenticated(),) and ws.subscription_id == 7
    refused = {
        "id": request["id"],
        "status": 400,
        "error": {"code": -1022, "msg": "Signature for this request is not valid."},
    }
    (auth,) = ws.parse(json.dumps(refused))
    assert auth == Authenticated(False, "-1022: Signature for this request is not valid.")


# --------------------------------------------------------------------------------------------
# parsers on the documented example payloads

DOC_KLINE = {
    "e": "kline", "E": 1672515782136, "s": "BNBBTC",
    "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200, "o": "0.0010",
          "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100, "x": False, "q": "1.0000",
          "V": "500", "Q": "0.500", "B": "123456"},
}  # fmt: skip
DOC_TRADE = {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
             "T": 1672515782136, "m": True, "M": True}  # fmt: skip
DOC_AGG_TRADE = {"e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001", "q": "100",
                 "f": 100, "l": 105, "T": 1672515782136, "m": False, "M": True}  # fmt: skip
DOC_BOOK_TICKER = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000",
                   "A": "40.66000000"}  # fmt: skip
DOC_EXECUTION_REPORT = {
    "e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW", "S": "BUY",
    "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410", "P": "0.00000000", "F": "0.00000000",
    "g": -1, "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000", "z": "0.00000000",
    "L": "0.00000000", "n": "0", "N": None, "T": 1499405658657, "t": -1, "v": 3, "I": 8641984, "w": True,
    "m": False, "M": False, "O": 1499405658657, "Z": "0.00000000", "Y": "0.00000000", "Q": "0.00000000",
    "W": 1499405658657, "V": "NONE",
}  # fmt: skip


def parse(ws: Any, payload: Any) -> list[Any]:
    return list(ws.parse(json.dumps(payload)))


def test_market_payloads_become_typed_events() -> None:
    ws = BinanceWebSocket(symbols=SYMBOLS)
    assert parse(ws, DOC_KLINE) == [
        Bar("binance", "BNB/BTC", "1m", 1672515780000, 0.001, 0.0025, 0.0015, 0.002, 1000.0, False, 1672515782136)
    ]
    # "m" true: the buyer was the maker, so the taker sold.
    assert parse(ws, DOC_TRADE) == [Trade("binance", "BNB/BTC", "12345", 0.001, 100.0, Side.SELL, 1672515782136)]
    assert parse(ws, DOC_AGG_TRADE) == [Trade("binance", "BNB/BTC", "12345", 0.001, 100.0, Side.BUY, 1672515782136)]
    assert parse(ws, DOC_BOOK_TICKER) == [BookTop("binance", "BNB/USDT", 25.3519, 31.21, 25.3652, 40.66, None)]
    closed = {**DOC_KLINE, "k": {**DOC_KLINE["k"], "x": True, "i": "1h"}}
    (bar,) = parse(ws, closed)
    assert bar.closed and bar.timeframe == "1h"
    # The combined-stream envelope is unwrapped.
    assert parse(ws, {"stream": "bnbbtc@trade", "data": DOC_TRADE}) == parse(ws, DOC_TRADE)


def test_control_messages_acks_and_unknown_payloads() -> None:
    ws = BinanceWebSocket(symbols=SYMBOLS)
    shutdown = {"e": "serverShutdown", "E": 1770123456789}
    assert [type(e) for e in parse(ws, shutdown)] == [Reconnect]
    assert [type(e) for e in parse(ws, {"stream": "!serverShutdown", "data": shutdown})] == [Reconnect]
    assert parse(ws, {"result": None, "id": 1}) == []  # nothing asked with that id
    # The answer to a SUBSCRIBE names its streams by the request's id ("connected" waits for it).
    ok, refused = ws.subscribe_messages(("btcusdt@kline_1m",)), ws.subscribe_messages(("nope@kline_1m",))
    assert parse(ws, {"result": None, "id": ok[0]["id"]}) == [Subscribed(("btcusdt@kline_1m",))]
    assert parse(ws, {"result": None, "id": ok[0]["id"]}) == []  # answered once
    error = {"error": {"code": 2, "msg": "Invalid request"}, "id": refused[0]["id"]}
    assert parse(ws, error) == [Subscribed(("nope@kline_1m",), ok=False)]
    assert ws.parse(json.dumps({"e": "depthUpdate", "s": "BNBBTC"})) is None
    assert ws.parse(json.dumps([1, 2])) is None
    assert ws.parse(json.dumps({**DOC_TRADE, "s": "NOPE"})) is None  # not one of the store's markets
    with pytest.raises(ValueError):
        ws.parse('{"e":"kline","E":17000000,"s":"BTC')  # what send_malformed() sends


def test_user_data_payloads_become_typed_events() -> None:
    ws = BinanceUserDataWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    wrap = lambda event: {"subscriptionId": 0, "event": event}  # noqa: E731
    assert parse(ws, wrap(DOC_EXECUTION_REPORT)) == [
        OrderUpdate(
            "binance", "4293153", "mUvoqJxFIILMdfAW5iGSOW", "ETH/BTC", Side.BUY, "limit", OrderStatus.NEW,
            Decimal("0.10264410"), Decimal("1"), Decimal("0"), None, None, 1499405658657, None,
        )
    ]  # fmt: skip
    trade = {**DOC_EXECUTION_REPORT, "x": "TRADE", "X": "PARTIALLY_FILLED", "l": "0.4", "z": "0.6", "L": "0.1026",
             "n": "0.0004", "N": "ETH", "t": 77, "m": True, "Z": "0.06156", "T": 1499405658700}  # fmt: skip
    fill, update = parse(ws, wrap(trade))
    assert fill == Fill(
        "binance", "77", "4293153", "mUvoqJxFIILMdfAW5iGSOW", "ETH/BTC", Side.BUY,
        Decimal("0.1026"), Decimal("0.4"), Decimal("0.0004"), "ETH", True, 1499405658700,
    )  # fmt: skip
    assert (update.status, update.filled, update.average) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.6"),
        Decimal("0.1026"),
    )
    position = {"e": "outboundAccountPosition", "E": 1564034571105, "u": 1564034571073,
                "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]}  # fmt: skip
    assert parse(ws, wrap(position)) == [
        BalanceUpdate("binance", (AssetBalance("ETH", Decimal("10000"), Decimal("0")),), 1564034571105)
    ]
    # Deltas are followed by an absolute position; list statuses by per-order reports.
    assert parse(ws, wrap({"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "100.00000000", "T": 1})) == []
    assert parse(ws, wrap({"e": "listStatus", "E": 1, "s": "ETHBTC", "g": 2, "O": []})) == []
    assert [type(e) for e in parse(ws, wrap({"e": "eventStreamTerminated", "E": 1728973001334}))] == [Reconnect]
    assert ws.parse(json.dumps(wrap({"e": "somethingNew"}))) is None


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        ("NEW", OrderStatus.NEW, None),
        ("PARTIALLY_FILLED", OrderStatus.PARTIALLY_FILLED, None),
        ("FILLED", OrderStatus.FILLED, None),
        ("CANCELED", OrderStatus.CANCELED, None),
        ("REJECTED", OrderStatus.REJECTED, "INSUFFICIENT_BALANCES"),
        ("EXPIRED", OrderStatus.EXPIRED, None),
        ("EXPIRED_IN_MATCH", OrderStatus.EXPIRED, "EXPIRED_IN_MATCH"),
    ],
)
def test_order_statuses_map_exactly(raw: str, status: OrderStatus, reason: str | None) -> None:
    ws = BinanceUserDataWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    report = {**DOC_EXECUTION_REPORT, "X": raw, "r": "INSUFFICIENT_BALANCES" if raw == "REJECTED" else "NONE"}
    (update,) = parse(ws, {"subscriptionId": 0, "event": report})
    assert (update.status, update.reason) == (status, reason)


@pytest.mark.parametrize(
    ("raw", "kind", "price", "stop"),
    [
        ("MARKET", "market", "0.00000000", None),
        ("LIMIT_MAKER", "limit", "0.1", None),
        ("STOP_LOSS", "stop_market", "0.00000000", Decimal("0.09")),
        ("STOP_LOSS_LIMIT", "stop_limit", "0.1", Decimal("0.09")),
    ],
)
def test_order_types_map_to_ccxt_names(raw: str, kind: str, price: str, stop: Decimal | None) -> None:
    ws = BinanceUserDataWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    report = {**DOC_EXECUTION_REPORT, "o": raw, "p": price, "P": "0.09000000" if stop else "0.00000000"}
    (update,) = parse(ws, {"subscriptionId": 0, "event": report})
    assert (update.type, update.price, update.stop_price) == (kind, Decimal(price) or None, stop)


def test_an_unknown_order_status_is_a_parse_error_not_a_guess() -> None:
    ws = BinanceUserDataWebSocket(credentials=Credentials("k", "s"), symbols=SYMBOLS)
    with pytest.raises(ValueError, match="SOMETHING"):
        ws.parse(json.dumps({"subscriptionId": 0, "event": {**DOC_EXECUTION_REPORT, "X": "SOMETHING"}}))


# --------------------------------------------------------------------------------------------
# market streams against the emulator


def test_every_market_stream_delivers_what_the_engine_printed(
    emu: Emulator, market_ws: Callable[..., Any], engine_events: list[Any]
) -> None:
    ws, rec = market_ws((*STREAMS, "btcusdt@aggTrade"))
    emu.step(3)
    closes = [e for e in engine_events if isinstance(e, KlineEvent) and e.closed]
    trades = [e for e in engine_events if isinstance(e, TradeEvent)]
    books = [e for e in engine_events if isinstance(e, BookEvent)]
    forming = [e for e in engine_events if isinstance(e, KlineEvent) and not e.closed]
    assert len(closes) == 3 and trades and books
    expected = 2 * len(trades) + len(books) + len(closes) + len(forming)
    rec.wait(lambda r: len(market(r, Bar) + market(r, Trade) + market(r, BookTop)) >= expected, what="every message")

    bars = [b for b in market(rec, Bar) if b.closed]
    assert bars == [
        Bar("binance", SYMBOL, "1m", k.candle.open_time, float(k.candle.open), float(k.candle.high),
            float(k.candle.low), float(k.candle.close), float(k.candle.volume), True, k.time)
        for k in closes
    ]  # fmt: skip
    assert len(market(rec, Bar)) == len(closes) + len(forming)
    want = [
        Trade("binance", SYMBOL, str(t.trade_id), float(t.price), float(t.amount),
              Side.SELL if t.buyer_is_maker else Side.BUY, t.time)
        for t in trades
    ]  # fmt: skip
    got = market(rec, Trade)
    assert got[0::2] == want and got[1::2] == want  # @trade and @aggTrade, interleaved
    assert market(rec, BookTop) == [
        BookTop("binance", SYMBOL, float(b.bid), float(b.bid_amount), float(b.ask), float(b.ask_amount), None)
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
    wait_until(lambda: emu.hub.subscribers("btcusdt@kline_1m") == 0, what="earlier connections to close")
    unsubscribe = store.subscribe_bars(SYMBOL, store.timeframe("1m"), on_stream)
    try:
        wait_until(lambda: emu.hub.subscribers("btcusdt@kline_1m") == 1, what="the store's subscription")
        start = emu.engine.now()
        emu.step(5)
        assert got.wait(5)
        bars = [row for kind, row in rows if kind == "bar"]
        candles = rest.fetch_ohlcv(SYMBOL, "1m", since=start, limit=5)
        assert bars == candles
        assert len({b[0] for b in bars}) == 5  # one closed bar per candle, no duplicates
    finally:
        unsubscribe()


def test_a_candle_stream_is_announced_to_its_own_route_once_the_exchange_streams_it(store: Any, emu: Emulator) -> None:
    # A feed backfills from REST, then looks once more for a candle that closed meanwhile when
    # told its stream is on. Told too early (request sent, not yet in effect), a candle closing
    # in between would come only with the next one.
    got: dict[str, list[Any]] = {"1m": [], "5m": []}
    effective: dict[str, int] = {}
    told = {name: threading.Event() for name in got}

    def route(name: str, stream: str) -> Callable[[tuple], None]:
        def on_stream(item: tuple) -> None:
            if item[0] == "connected":
                effective.setdefault(name, emu.hub.subscribers(stream))
                got[name].append(item)
                told[name].set()

        return on_stream

    first = store.subscribe_bars(SYMBOL, store.timeframe("1m"), route("1m", "btcusdt@kline_1m"))
    try:
        assert told["1m"].wait(5)  # "ready" on a new connection, "subscribed" on one already up
        second = store.subscribe_bars(SYMBOL, store.timeframe("5m"), route("5m", "btcusdt@kline_5m"))
        try:
            assert told["5m"].wait(5)
            assert got["5m"] == [("connected", "subscribed")]
            assert effective == {"1m": 1, "5m": 1}  # announced only once the exchange streams it
            assert len(got["1m"]) == 1  # another route's stream tells nothing to this one
        finally:
            second()
    finally:
        first()


def test_reconnects_and_resubscribes_after_a_drop(emu: Emulator, market_ws: Callable[..., Any]) -> None:
    ws, rec = market_ws()
    assert emu.drop_connections() >= 1
    rec.wait(lambda r: len(r.of_kind("disconnected")) >= 1, what="disconnected")
    rec.wait(lambda r: len(r.of_kind("connected")) >= 2 and ws.is_connected(), what="connected again")
    sync(emu, rec)
    assert ws.stats().reconnects >= 1
    before = len(rec.of(Bar))
    emu.step(1)
    rec.wait(lambda r: any(b.closed for b in r.of(Bar)[before:]), what="a bar after the reconnect")


def test_a_stalled_connection_is_replaced_by_the_watchdog(connections: list[Any]) -> None:
    # Its own emulator: pings every 0.1 s keep a healthy connection visibly alive.
    with Emulator("binance", speed=None, history=20, future=50, settings={"ping_interval": 0.1}) as emu:
        ws = BinanceWebSocket(
            STREAMS, url=emu.urls["ws_market"], symbols=LIVE_SYMBOLS, config=replace(FAST, stale_after=0.5)
        )
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


def test_a_malformed_frame_is_counted_and_skipped(emu: Emulator, market_ws: Callable[..., Any]) -> None:
    ws, rec = market_ws()
    assert emu.send_malformed() >= 1
    wait_until(lambda: ws.stats().parse_errors == 1, what="the parse error")
    emu.step(1)
    rec.wait(lambda r: any(b.closed for b in r.of(Bar)), what="bars after the malformed frame")
    assert ws.stats().reconnects == 0 and ws.is_connected()


def test_server_shutdown_replaces_the_connection_without_a_failure(
    emu: Emulator, market_ws: Callable[..., Any]
) -> None:
    _ws, rec = market_ws()
    assert emu.dialect.send_server_shutdown() >= 1
    rec.wait(lambda r: r.of_kind("disconnected") and len(r.of_kind("connected")) >= 2, what="the replacement")
    assert "serverShutdown" in rec.of_kind("disconnected")[0].reason
    assert rec.of_kind("error") == []  # routine, not an error
    sync(emu, rec)
    emu.step(1)
    rec.wait(lambda r: any(b.closed for b in r.of(Bar)), what="bars on the new connection")


def test_the_connection_is_replaced_before_its_age_limit(emu: Emulator, market_ws: Callable[..., Any]) -> None:
    ws, rec = market_ws(max_connection_age=0.2)
    rec.wait(lambda r: len(r.of_kind("connected")) >= 3, what="two proactive replacements")
    assert all("age limit" in e.reason for e in rec.of_kind("disconnected"))
    assert rec.of_kind("error") == [] and ws.stats().stale_reconnects == 0


def test_flood_of_100000_messages_loses_nothing(emu: Emulator, market_ws: Callable[..., Any]) -> None:
    ws, _ = market_ws(("btcusdt@trade",))
    total = 100_000
    ids: list[str] = []
    done = threading.Event()

    def on_trade(trade: Trade) -> None:
        if trade.symbol != SYMBOL:
            return  # a late probe
        ids.append(trade.trade_id)
        if len(ids) == total:
            done.set()

    ws.on("trade", on_trade)
    template = '{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"60000.5","q":"0.25","T":1,"m":false,"M":true}'
    for i in range(1, total + 1):
        emu.hub.publish("btcusdt@trade", template % i)
    assert done.wait(30), f"only {len(ids)} of {total} arrived"
    assert ids == [str(i) for i in range(1, total + 1)]
    stats = ws.stats()
    assert (stats.parse_errors, stats.unknown_messages, stats.reconnects) == (0, 0, 0)


# --------------------------------------------------------------------------------------------
# user data against the emulator


def test_a_rest_order_streams_new_fill_filled_and_balances(
    store: Any, emu: Emulator, rest: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rec = EventRecorder()
    unsubscribe = store.subscribe_account(rec)  # the store's own private connection
    try:
        rec.wait(lambda r: ("connected", "ready") in r.items, what="the user-data connection")
        order = rest.create_order(SYMBOL, "market", "buy", 0.01)
        rec.wait(lambda r: r.count(OrderUpdate, status=OrderStatus.FILLED) and r.of(BalanceUpdate), what="events")
        rec.wait(lambda r: len(r.of(BalanceUpdate)) >= 2, what="both balance updates")
        mine = [e for e in rec.items if getattr(e, "order_id", None) == order["id"]]
        assert [type(e).__name__ for e in mine] == ["OrderUpdate", "Fill", "OrderUpdate"]
        new, fill, filled = mine
        trades = rest.fetch_my_trades(SYMBOL, since=None)
        trade = next(t for t in trades if t["order"] == order["id"])
        assert (new.status, new.filled, new.average, new.type, new.side) == (
            OrderStatus.NEW, Decimal(0), None, "market", Side.BUY,
        )  # fmt: skip
        assert new.client_order_id == order["clientOrderId"] and new.symbol == SYMBOL
        assert fill.trade_id == trade["id"] and fill.client_order_id == order["clientOrderId"]
        assert (fill.price, fill.amount) == (Decimal(str(trade["price"])), Decimal("0.01"))
        assert (
            fill.fee == Decimal(str(trade["fee"]["cost"])) > 0
            and fill.fee_currency == trade["fee"]["currency"] == "BTC"
        )
        assert (filled.status, filled.filled, filled.average) == (OrderStatus.FILLED, Decimal("0.01"), fill.price)
        balance = rest.fetch_balance()
        last = {b.asset: b for u in rec.of(BalanceUpdate) for b in u.balances}
        for asset in ("BTC", "USDT"):
            assert last[asset].free == Decimal(str(balance[asset]["free"]))
    finally:
        unsubscribe()
    assert emu.secret not in caplog.text
    # ccxt's own DEBUG request log shows the API key header; realtrade's records never do.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("realtrade")]
    assert ours and not [m for m in ours if emu.api_key in m]


def test_a_canceled_order_reports_its_own_client_id(user_ws: Callable[..., Any], rest: Any) -> None:
    _ws, rec = user_ws()
    last = rest.fetch_ticker(SYMBOL)["last"]
    price = round(last * 0.8, 2)
    order = rest.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "ws-test-cancel"})
    rest.cancel_order(order["id"], SYMBOL)
    rec.wait(lambda r: r.count(OrderUpdate, order_id=order["id"], status=OrderStatus.CANCELED), what="the cancel")
    new, canceled = [e for e in rec.of(OrderUpdate) if e.order_id == order["id"]]
    assert (new.type, new.price, new.status) == ("limit", Decimal(str(price)), OrderStatus.NEW)
    assert canceled.client_order_id == new.client_order_id == "ws-test-cancel"


def test_a_stop_limit_order_is_typed_with_its_stop_price(user_ws: Callable[..., Any], rest: Any) -> None:
    _ws, rec = user_ws()
    last = rest.fetch_ticker(SYMBOL)["last"]
    stop, price = round(last * 0.9, 2), round(last * 0.85, 2)
    order = rest.create_order(SYMBOL, "STOP_LOSS_LIMIT", "sell", 0.01, price, {"stopPrice": stop})
    rec.wait(lambda r: r.count(OrderUpdate, order_id=order["id"]), what="the stop order")
    (update,) = [e for e in rec.of(OrderUpdate) if e.order_id == order["id"]]
    assert (update.type, update.price, update.stop_price) == ("stop_limit", Decimal(str(price)), Decimal(str(stop)))
    rest.cancel_order(order["id"], SYMBOL)


def test_user_data_reauthenticates_after_a_drop(emu: Emulator, user_ws: Callable[..., Any], rest: Any) -> None:
    ws, rec = user_ws()
    emu.drop_connections()
    rec.wait(lambda r: r.of_kind("disconnected") and len(r.of_kind("connected")) >= 2, what="the new connection")
    assert ws.stats().reconnects >= 1 and ws.subscription_id is not None
    # The emulator streams user data only after a signed subscribe on the new connection.
    place_and_wait(rest, rec)
    assert rec.count(Fill) >= 1


def test_event_stream_terminated_subscribes_again(emu: Emulator, user_ws: Callable[..., Any], rest: Any) -> None:
    _ws, rec = user_ws()
    assert emu.dialect.terminate_user_data_streams(emu.api_key) >= 1
    rec.wait(lambda r: r.of_kind("disconnected") and len(r.of_kind("connected")) >= 2, what="subscribed again")
    assert "eventStreamTerminated" in rec.of_kind("disconnected")[0].reason
    assert rec.of_kind("error") == []
    place_and_wait(rest, rec, side="sell")


def test_a_refused_signature_is_an_auth_error(store: Any, connections: list[Any]) -> None:
    emu = store.emulator
    ws = BinanceUserDataWebSocket(
        url=store.stream_urls()["ws_api"],
        credentials=Credentials(emu.api_key, "not-the-secret"),
        symbols={"BTCUSDT": SYMBOL},
        config=replace(FAST, max_reconnect_attempts=0),
    )
    rec = EventRecorder(ws)
    connections.append(ws)
    ws.start()
    rec.wait(lambda r: r.of_kind("max_reconnect"), what="giving up")
    error = rec.of_kind("error")[0]
    assert error.where == "auth" and "-1022" in error.message
    assert not ws.is_connected() and "not-the-secret" not in repr(ws)


def test_stop_leaves_no_thread_alive(market_ws: Callable[..., Any], user_ws: Callable[..., Any]) -> None:
    public, _ = market_ws()
    private, _ = user_ws()
    # The age limit is the connection thread's own timer: one thread per connection, no other.
    names = {f"realtrade-ws-{w.name}" for w in (public, private)}
    assert len([t for t in threading.enumerate() if t.name in names]) == 2
    assert public.stop(5) and private.stop(5)
    assert [t.name for t in threading.enumerate() if t.name in names] == []
    assert public.state is private.state is ConnectionState.STOPPED


def test_futures_user_data_events_become_typed_events() -> None:
    from realtrade_binance.futures_stream import BinanceFuturesUserDataWebSocket

    from realtrade_core.events import FundingFee, PositionUpdate
    from realtrade_core.websocket import Reconnect

    keys = iter(["key-1", "key-2"])
    ws = BinanceFuturesUserDataWebSocket(url="wss://example.invalid/ws", listen_key=lambda: next(keys),
                                         symbols={"BTCUSDT": "BTC/USDT:USDT"})  # fmt: skip
    assert ws.url(()) == "wss://example.invalid/ws/key-1" and ws.url(()).endswith("/key-2")  # asked at every connect
    funding = {
        "e": "ACCOUNT_UPDATE", "E": 1700000000100, "T": 1700000000000,
        "a": {"m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": "990.5", "cw": "990.5", "bc": "-0.5"}],
              "P": [{"s": "BTCUSDT", "pa": "0.02", "ep": "30000", "up": "1.5", "ps": "BOTH"}]},
    }  # fmt: skip
    events = list(ws.parse(json.dumps(funding)))
    assert events[1:] == [
        PositionUpdate("binance", "BTC/USDT:USDT", Decimal("0.02"), Decimal("30000"), Decimal("1.5"), None,
                       1700000000000),
        FundingFee("binance", "BTC/USDT:USDT@1700000000000", "BTC/USDT:USDT", Decimal("-0.5"), "USDT",
                   Decimal("0.02"), None, None, 1700000000000),
    ]  # fmt: skip
    assert [type(e) for e in ws.parse(json.dumps({"e": "listenKeyExpired", "E": 1}))] == [Reconnect]
