"""Property-based fuzzing (hypothesis) of every parser of untrusted input.

* Both plugins' stream parsers, public (klines, trades, book) and private (orders, fills,
  balances), driven through the connection's own dispatch (``BaseWebSocket._deliver``: parse,
  check, quarantine, route), with valid messages, arbitrary text and JSON, and valid messages
  mutated (wrong types, strings for numbers, NaN/inf/negative, huge and second-based timestamps,
  missing and extra keys, truncated JSON). Properties: nothing raises out of the connection; a
  quarantined message delivers nothing; every delivered event is valid (finite, non-negative
  prices; integer times); a candle is delivered closed only when its message said ``true``; a
  valid message is delivered exactly as sent.
* The REST path of candles: klines pages parsed by real ccxt, then the store's paging and the
  feed's splice: nothing but valid closed candles reach the feed, whatever the page holds.
* Configuration text: timeframes and the exchange allow/deny lists from the environment.

Example counts are kept small (``settings`` below) so the whole module runs in a few seconds.
"""

from __future__ import annotations

import copy
import json
import math
import queue
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtrade_core.credentials import Credentials
from realtrade_core.errors import ConfigurationError, RealtradeError
from realtrade_core.events import BalanceUpdate, Bar, BookTop, Fill, OrderUpdate, Trade
from realtrade_core.timeframes import parse_timeframe

binance_ws = pytest.importorskip("realtrade_binance.websocket")
bybit_ws = pytest.importorskip("realtrade_bybit.websocket")

MINUTE = 60_000
FORMING = 1_700_000_040_000  # the candle forming now opened here
NOW = FORMING + 30_000  # the exchange's market clock in these tests
SYMBOLS = {"BTCUSDT": "BTC/USDT"}
KEYS = Credentials("fuzz-api-key-123", "fuzz-secret-456")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------
# connections (never started: messages go straight into the connection's dispatch)


def connection(kind: str) -> Any:
    url = "ws://127.0.0.1:9/ws"
    if kind == "binance":
        ws = binance_ws.BinanceWebSocket(url=url, symbols=SYMBOLS)
    elif kind == "binance-user":
        ws = binance_ws.BinanceUserDataWebSocket(url=url, credentials=KEYS, symbols=SYMBOLS)
    elif kind == "bybit":
        ws = bybit_ws.BybitWebSocket(url=url, symbols=SYMBOLS)
    else:
        ws = bybit_ws.BybitPrivateWebSocket(url=url, credentials=KEYS, symbols=SYMBOLS)
    ws.clock = lambda: NOW
    ws.delivered = []
    ws.on("data", ws.delivered.append)
    return ws


def feed(ws: Any, text: str | bytes) -> tuple[list[Any], int]:
    """Process one message as the connection's thread does; returns (events delivered, how many
    messages were quarantined). Whatever the message, nothing may raise."""
    before_events, before_bad = len(ws.delivered), sum(ws.quarantined.values())
    data = text.encode() if isinstance(text, str) else text
    ws._deliver(data, isinstance(text, str))
    ws._end = None  # a serverShutdown directive asked to reconnect: nothing to reconnect here
    return ws.delivered[before_events:], sum(ws.quarantined.values()) - before_bad


def assert_valid(events: list[Any], quarantined: int) -> None:
    assert quarantined in (0, 1)
    if quarantined:
        assert events == [], "a quarantined message delivered events"
    for event in events:
        assert event.problem(NOW) is None, event
        if isinstance(event, (Bar, Trade, BookTop)):
            for name in ("open", "high", "low", "close", "volume", "price", "amount", "bid", "ask"):
                value = getattr(event, name, 0.0)
                assert math.isfinite(value) and value >= 0, (name, event)
        if isinstance(event, (OrderUpdate, Fill)):
            for name in ("price", "amount", "filled", "average", "stop_price"):
                value = getattr(event, name, None)
                assert value is None or (value.is_finite() and value >= 0), (name, event)
        if isinstance(event, Bar) and event.closed:
            assert event.open_time + MINUTE <= NOW + 1_000, "a forming candle delivered as closed"


# --------------------------------------------------------------------------------------------
# valid messages


@st.composite
def candles(draw: Any) -> dict[str, Any]:
    closed = draw(st.booleans())
    back = draw(st.integers(1 if closed else 0, 50_000))
    prices = sorted(draw(st.lists(st.floats(0.0, 1e9, allow_nan=False), min_size=4, max_size=4)))
    middle = prices[1:3] if draw(st.booleans()) else prices[2:0:-1]
    return {
        "open_time": FORMING - back * MINUTE,
        "open": middle[0],
        "high": prices[3],
        "low": prices[0],
        "close": middle[1],
        "volume": draw(st.floats(0.0, 1e12, allow_nan=False)),
        "closed": closed,
    }


def kline(exchange: str, c: dict[str, Any]) -> dict[str, Any]:
    if exchange == "binance":
        return {
            "e": "kline", "E": NOW, "s": "BTCUSDT",
            "k": {
                "t": c["open_time"], "T": c["open_time"] + MINUTE - 1, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2,
                "o": repr(c["open"]), "c": repr(c["close"]), "h": repr(c["high"]), "l": repr(c["low"]),
                "v": repr(c["volume"]), "n": 2, "x": c["closed"], "q": "0", "V": "0", "Q": "0", "B": "0",
            },
        }  # fmt: skip
    return {
        "topic": "kline.1.BTCUSDT", "ts": NOW, "type": "snapshot",
        "data": [{
            "start": c["open_time"], "end": c["open_time"] + MINUTE - 1, "interval": "1",
            "open": repr(c["open"]), "close": repr(c["close"]), "high": repr(c["high"]), "low": repr(c["low"]),
            "volume": repr(c["volume"]), "turnover": "0", "confirm": c["closed"], "timestamp": NOW,
        }],
    }  # fmt: skip


PUBLIC = {
    "binance": [
        {"e": "trade", "E": NOW, "s": "BTCUSDT", "t": 12345, "p": "30000.5", "q": "0.25", "T": NOW, "m": True},
        {"e": "aggTrade", "E": NOW, "s": "BTCUSDT", "a": 77, "p": "30000.5", "q": "0.25", "T": NOW, "m": False},
        {"u": 400900217, "s": "BTCUSDT", "b": "29999.9", "B": "1.5", "a": "30000.1", "A": "2.5"},
    ],
    "bybit": [
        {
            "topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": NOW,
            "data": [{"T": NOW, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "30000.50", "i": "20f4-3950"}],
        },
        {
            "topic": "orderbook.1.BTCUSDT", "type": "snapshot", "ts": NOW,
            "data": {"s": "BTCUSDT", "b": [["29999.9", "1.5"]], "a": [["30000.1", "2.5"]], "u": 1, "seq": 2},
        },
        {
            "topic": "tickers.BTCUSDT", "type": "snapshot", "ts": NOW,
            "data": {"symbol": "BTCUSDT", "bid1Price": "29999.9", "bid1Size": "1",
                     "ask1Price": "30000.1", "ask1Size": "2"},
        },
    ],
}  # fmt: skip

PRIVATE = {
    "binance-user": [
        {
            "subscriptionId": 0,
            "event": {
                "e": "executionReport", "E": NOW, "s": "BTCUSDT", "c": "rt-abc", "S": "BUY", "o": "LIMIT",
                "f": "GTC", "q": "1.00000000", "p": "30000.00", "P": "0.00000000", "F": "0.00000000", "g": -1,
                "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 4293153, "l": "0.40000000",
                "z": "0.40000000", "L": "30000.00", "n": "0.0004", "N": "BTC", "T": NOW, "t": 99, "I": 1,
                "w": False, "m": True, "M": True, "O": NOW, "Z": "12000.00", "Y": "12000.00", "Q": "0",
            },
        },
        {
            "subscriptionId": 0,
            "event": {"e": "outboundAccountPosition", "E": NOW, "u": NOW,
                      "B": [{"a": "BTC", "f": "1.5", "l": "0.5"}, {"a": "USDT", "f": "100.0", "l": "0"}]},
        },
    ],
    "bybit-private": [
        {
            "topic": "order", "id": "x", "creationTime": NOW,
            "data": [{
                "category": "spot", "symbol": "BTCUSDT", "orderId": "1", "orderLinkId": "rt-abc", "side": "Buy",
                "orderType": "Limit", "cancelType": "UNKNOWN", "price": "30000", "qty": "1",
                "orderStatus": "PartiallyFilled",
                "leavesQty": "0.6", "cumExecQty": "0.4", "cumExecValue": "12000", "avgPrice": "30000",
                "rejectReason": "EC_NoError", "triggerPrice": "", "stopOrderType": "", "updatedTime": str(NOW),
            }],
        },
        {
            "topic": "execution", "id": "y", "creationTime": NOW,
            "data": [{
                "category": "spot", "symbol": "BTCUSDT", "execFee": "0.0004", "execId": "e-1", "execPrice": "30000",
                "execQty": "0.4", "execType": "Trade", "orderId": "1", "orderLinkId": "rt-abc", "side": "Buy",
                "execTime": str(NOW), "isMaker": False, "feeCurrency": "BTC",
            }],
        },
        {
            "topic": "wallet", "id": "z", "creationTime": NOW,
            "data": [{"accountType": "UNIFIED", "coin": [
                {"coin": "BTC", "walletBalance": "2", "locked": "0.5"},
                {"coin": "USDT", "walletBalance": "100", "locked": "0"},
            ]}],
        },
    ],
}  # fmt: skip

EXPECTED_PRIVATE = {  # events each valid private message above delivers
    "binance-user": [(Fill, OrderUpdate), (BalanceUpdate,)],
    "bybit-private": [(OrderUpdate,), (Fill,), (BalanceUpdate,)],
}


# --------------------------------------------------------------------------------------------
# mutations


WEIRD_TEXT = [
    "", "false", "true", "NaN", "nan", "Infinity", "-Infinity", "inf", "1e400", "-1", "-0.5", "0x10", "1_000", " 1",
    "abc", "9" * 40, "1700000040000", "BTCUSDT", "BUY", "Buy",
]  # fmt: skip
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(WEIRD_TEXT),
    st.integers(-(2**70), 2**70),
    st.sampled_from([4_102_444_800_000, 10**18, -1, 0, 1, 1_700_000_040, FORMING + 1, FORMING + 10 * MINUTE]),
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN and Infinity literally
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=6),
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


@st.composite
def mutate(draw: Any, message: dict[str, Any]) -> tuple[Any, str]:
    """``message`` with one to three fields replaced, deleted or added, or its JSON truncated."""
    msg = copy.deepcopy(message)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(msg)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = msg
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
        if op == "replace":
            parent[path[-1]] = draw(WEIRD)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=4))] = draw(WEIRD)
    text = json.dumps(msg)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text) - 1))]
        return None, text
    return msg, text


def closed_flags(exchange: str, msg: Any) -> list[Any]:
    """The raw closed flags a (mutated) kline message carries."""
    try:
        if exchange == "binance":
            return [msg["k"]["x"]]
        return [item.get("confirm") for item in msg["data"]]
    except (KeyError, TypeError, AttributeError):
        return []


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
KINDS = ["binance", "binance-user", "bybit", "bybit-private"]


# --------------------------------------------------------------------------------------------
# stream parsers


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
@FUZZ
@given(candle=candles())
def test_a_valid_kline_is_delivered_exactly_as_sent(exchange: str, candle: dict[str, Any]) -> None:
    ws = connection(exchange)
    events, bad = feed(ws, json.dumps(kline(exchange, candle)))
    assert bad == 0
    expected = Bar(
        exchange, "BTC/USDT", "1m", candle["open_time"], candle["open"], candle["high"], candle["low"],
        candle["close"], candle["volume"], candle["closed"], NOW,
    )  # fmt: skip
    assert events == [expected]


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
@FUZZ
@given(data=st.data())
def test_a_mutated_kline_is_delivered_valid_or_quarantined(exchange: str, data: Any) -> None:
    ws = connection(exchange)
    msg, text = data.draw(mutate(kline(exchange, data.draw(candles()))))
    events, bad = feed(ws, text)
    assert_valid(events, bad)
    if any(isinstance(e, Bar) and e.closed for e in events):
        assert True in closed_flags(exchange, msg) and all(f is True or f is False for f in closed_flags(exchange, msg))
    if msg is None:  # truncated JSON is never read
        assert events == [] and bad == 1


@pytest.mark.parametrize("kind", KINDS)
@FEW
@given(data=st.data())
def test_a_mutated_message_of_any_stream_is_delivered_valid_or_quarantined(kind: str, data: Any) -> None:
    ws = connection(kind)
    templates = PUBLIC.get(kind) or PRIVATE[kind]
    _, text = data.draw(mutate(data.draw(st.sampled_from(templates))))
    events, bad = feed(ws, text)
    assert_valid(events, bad)


@pytest.mark.parametrize("kind", KINDS)
@FEW
@given(payload=st.one_of(JSON.map(json.dumps), st.text(max_size=40), st.binary(max_size=40)))
def test_arbitrary_input_never_escapes_the_parser(kind: str, payload: str | bytes) -> None:
    ws = connection(kind)
    events, bad = feed(ws, payload)
    assert_valid(events, bad)


@pytest.mark.parametrize("kind", ["binance-user", "bybit-private"])
def test_the_valid_private_messages_are_delivered(kind: str) -> None:
    ws = connection(kind)
    for message, classes in zip(PRIVATE[kind], EXPECTED_PRIVATE[kind], strict=True):
        events, bad = feed(ws, json.dumps(message))
        assert bad == 0 and tuple(type(e) for e in events) == classes
    fills = [e for e in ws.delivered if isinstance(e, Fill)]
    assert fills[0].price == Decimal("30000") and fills[0].amount == Decimal("0.4")


@pytest.mark.parametrize("kind", KINDS)
def test_the_valid_templates_pass_untouched(kind: str) -> None:
    ws = connection(kind)
    for message in PUBLIC.get(kind) or PRIVATE[kind]:
        events, bad = feed(ws, json.dumps(message))
        assert bad == 0 and events, message


def test_secrets_never_reach_the_quarantine_log(caplog: pytest.LogCaptureFixture) -> None:
    ws = connection("binance-user")
    event = {"e": "executionReport", "s": "BTCUSDT", "X": KEYS.secret, "k": KEYS.api_key}
    leaked = {"subscriptionId": 0, "event": event}
    with caplog.at_level("DEBUG", logger="realtrade_core.websocket"):
        _, bad = feed(ws, json.dumps(leaked))
    assert bad == 1 and ws.quarantined == {"order": 1}
    assert KEYS.secret not in caplog.text and KEYS.api_key not in caplog.text
    assert "quarantined a bad order message" in caplog.text


# --------------------------------------------------------------------------------------------
# REST candles: ccxt-parsed klines pages through the store's paging and the feed's splice


def binance_row(c: dict[str, Any]) -> list[Any]:
    return [c["open_time"], repr(c["open"]), repr(c["high"]), repr(c["low"]), repr(c["close"]),
            repr(c["volume"]), c["open_time"] + MINUTE - 1, "0", 1, "0", "0", "0"]  # fmt: skip


@st.composite
def klines_pages(draw: Any) -> list[Any]:
    """A klines REST answer: valid rows of closed candles, some mutated."""
    rows = []
    for c in draw(st.lists(candles(), max_size=8)):
        row = binance_row({**c, "closed": True, "open_time": min(c["open_time"], FORMING - MINUTE)})
        if draw(st.integers(0, 2)) == 0:
            index = draw(st.integers(0, 5))
            row[index] = draw(WEIRD)
        rows.append(row)
    return rows


_PARSERS: list[Any] = []


def _fake_store(raw_pages: list[Any]) -> Any:
    import ccxt

    from realtrade_core.store import Store

    if not _PARSERS:
        _PARSERS.append(ccxt.binance())  # only its parsing is used: no request is ever sent
    parser = _PARSERS[0]

    class Client:
        def fetch_ohlcv(self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None) -> Any:
            return parser.parse_ohlcvs(raw_pages.pop(0) if raw_pages else [], None, timeframe, since, limit)

    class FakeStore(Store):
        exchange = "fuzz"

        def server_time(self) -> int:
            return NOW

        def refresh_time(self) -> None:
            pass

    store = FakeStore(venue="testnet")
    store._client = Client()
    return store


@FEW
@given(page=klines_pages())
def test_rest_candles_reach_the_feed_only_when_valid(page: list[Any]) -> None:
    from realtrade_core.feed import _BAR, _BarPump

    store = _fake_store([page])
    tf = parse_timeframe("1m")
    out: queue.Queue = queue.Queue()
    fake_feed = SimpleNamespace(p=SimpleNamespace(store=store, dataname="BTC/USDT"), _symbol="BTC/USDT",
                                tf=tf, _outbox=out)  # fmt: skip
    pump = _BarPump(fake_feed)
    pump.last_open = FORMING - 50_001 * MINUTE  # fetch from the oldest candle candles() makes
    try:
        pump.catch_up()
    except RealtradeError:
        return  # a clear error is allowed; anything else fails the test
    delivered = []
    while not out.empty():
        kind, row = out.get_nowait()
        assert kind == _BAR
        delivered.append(row)
    opens = [r[0] for r in delivered]
    assert opens == sorted(set(opens)), "out of order or repeated"
    for row in delivered:  # the outbox holds floats: the open time was an integer before
        assert row[0] == int(row[0]) and pump.problem([int(row[0]), *row[1:]], now_ms=NOW) is None, row


# --------------------------------------------------------------------------------------------
# configuration text


@FUZZ
@given(text=st.one_of(st.text(max_size=8), st.from_regex(r"\A\s*[0-9]{1,4}\s*[smhdwMy]\s*\Z")))
def test_a_timeframe_setting_parses_or_is_a_clear_configuration_error(text: str) -> None:
    try:
        tf = parse_timeframe(text)
    except ConfigurationError as exc:
        assert "timeframe" in str(exc)
        return
    assert tf.ms > 0 and parse_timeframe(tf.name) == tf


@FUZZ
@given(text=st.one_of(st.none(), st.text(max_size=30)))
def test_exchange_lists_from_the_environment_never_fail(text: str | None) -> None:
    from realtrade_core.discovery import names_from_env

    names = names_from_env(text)
    assert names is None or all(n and n == n.strip().lower() and "," not in n for n in names)
