"""Bad candle messages on a live feed: quarantined and counted, while every good bar still arrives.

Real feeds, real ccxt, real sockets against an in-process emulator with a manual clock, for each
exchange. Bad messages are published on the feed's own kline topic, on the same connection and
in order with the emulator's candles: a candle "from 2100", a string open time, a string
``closed`` flag, a NaN price and a dozen more. The strategy must see exactly the emulator's
candles, each once, in order, and the store must count every bad message.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import backtrader as bt
import pytest
from livetest import MINUTE, NO_THROTTLE, Driver, Recorder, candles, last_closed_open

from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

EXCHANGES = ["binance", "bybit"]
SYMBOL = "BTC/USDT"
YEAR_2100 = 4_102_444_800_000

# Where each exchange's kline message keeps a candle's fields.
FIELDS = {
    "binance": {"open_time": "t", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "closed": "x"},
    "bybit": {
        "open_time": "start",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": "volume",
        "closed": "confirm",
    },
}
TOPICS = {"binance": "btcusdt@kline_1m", "bybit": "kline.1.BTCUSDT"}


def kline_message(exchange: str, row: tuple, closed: bool, now: int) -> dict[str, Any]:
    """A well-formed kline message of ``exchange`` for candle ``row`` (open_ms, o, h, l, c, v)."""
    open_ms, o, h, low, c, v = row
    if exchange == "binance":
        return {
            "e": "kline", "E": now, "s": "BTCUSDT",
            "k": {
                "t": open_ms, "T": open_ms + MINUTE - 1, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2,
                "o": str(o), "c": str(c), "h": str(h), "l": str(low), "v": str(v), "n": 2, "x": closed,
                "q": "0", "V": "0", "Q": "0", "B": "0",
            },
        }  # fmt: skip
    return {
        "topic": "kline.1.BTCUSDT", "ts": now, "type": "snapshot",
        "data": [{
            "start": open_ms, "end": open_ms + MINUTE - 1, "interval": "1",
            "open": str(o), "close": str(c), "high": str(h), "low": str(low), "volume": str(v),
            "turnover": "0", "confirm": closed, "timestamp": now,
        }],
    }  # fmt: skip


def candle_of(exchange: str, msg: dict[str, Any]) -> dict[str, Any]:
    return msg["k"] if exchange == "binance" else msg["data"][0]


# Each bad case turns a good message (of the last closed candle) into one that must be
# quarantined. ``forming`` is the open time of the candle forming now.
Mutation = Callable[[str, dict[str, Any], int], str]


def _field(name: str, value: Any) -> Mutation:
    def mutate(exchange: str, msg: dict[str, Any], forming: int) -> str:
        candle_of(exchange, msg)[FIELDS[exchange][name]] = value(candle_of(exchange, msg)[FIELDS[exchange][name]])
        return json.dumps(msg)

    return mutate


def _forming(closed: Any) -> Mutation:
    """The forming candle, its closed flag not a boolean: it must never become a bar."""

    def mutate(exchange: str, msg: dict[str, Any], forming: int) -> str:
        candle = candle_of(exchange, msg)
        candle[FIELDS[exchange]["open_time"]] = forming
        candle[FIELDS[exchange]["closed"]] = closed
        return json.dumps(msg)

    return mutate


def _ahead(exchange: str, msg: dict[str, Any], forming: int) -> str:
    candle_of(exchange, msg)[FIELDS[exchange]["open_time"]] = forming + MINUTE  # "closed", a bar ahead
    return json.dumps(msg)


def _missing(name: str) -> Mutation:
    def mutate(exchange: str, msg: dict[str, Any], forming: int) -> str:
        del candle_of(exchange, msg)[FIELDS[exchange][name]]
        return json.dumps(msg)

    return mutate


def _high_below_low(exchange: str, msg: dict[str, Any], forming: int) -> str:
    candle = candle_of(exchange, msg)
    f = FIELDS[exchange]
    candle[f["high"]] = str(float(candle[f["low"]]) / 2)
    return json.dumps(msg)


def _not_an_object(exchange: str, msg: dict[str, Any], forming: int) -> str:
    if exchange == "binance":
        msg["k"] = "kline"
    else:
        msg["data"] = {"start": 1}
    return json.dumps(msg)


def _truncated(exchange: str, msg: dict[str, Any], forming: int) -> str:
    text = json.dumps(msg)
    return text[: len(text) // 2]


BAD: dict[str, Mutation] = {
    "open time in 2100": _field("open_time", lambda t: YEAR_2100),
    "open time as a string": _field("open_time", str),
    "forming candle, closed is the string 'false'": _forming("false"),
    "forming candle, closed is the string 'true'": _forming("true"),
    "forming candle, closed is 1": _forming(1),
    "NaN price": _field("open", lambda p: "NaN"),
    "infinite high": _field("high", lambda p: "Infinity"),
    "negative volume": _field("volume", lambda v: "-5"),
    "negative close": _field("close", lambda p: "-" + p),
    "price is null": _field("low", lambda p: None),
    "price is true": _field("close", lambda p: True),
    "high below low": _high_below_low,
    "open time off the minute": _field("open_time", lambda t: t + 1),
    "open time in seconds": _field("open_time", lambda t: t // 1000),
    "a closed candle a bar ahead": _ahead,
    "close missing": _missing("close"),
    "candle not an object": _not_an_object,
    "truncated JSON": _truncated,
}
MALFORMED = {"truncated JSON"}  # not even readable as a kline


@pytest.fixture(params=EXCHANGES)
def exchange(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def emulator(exchange: str):
    with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=100, seed=11) as emu:
        yield emu


@pytest.fixture
def store(exchange: str, emulator: Emulator):
    store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
    yield store
    store.stop()


def run_with_bad_messages(exchange: str, emulator: Emulator, store: Any, plan: list[list[str]]) -> tuple[Any, Any]:
    """Run a live feed for ``len(plan)`` candles; before candle *i* closes, publish the bad
    messages ``plan[i]`` (and a valid repeat of the last candle) on the feed's topic."""
    cerebro = bt.Cerebro()
    data = store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=5, qcheck=0.05)
    cerebro.adddata(data)
    cerebro.addstrategy(Recorder)
    topic = TOPICS[exchange]

    def script(d: Driver) -> None:
        strategy = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
        d.wait(lambda: emulator.hub.subscribers(topic) > 0, "the kline subscription")
        rows = strategy.rows[SYMBOL]
        for names in plan:
            last = candles(emulator, SYMBOL, last_closed_open(emulator), last_closed_open(emulator))[0]
            forming = last[0] + MINUTE
            now = emulator.engine.now()
            for name in names:
                emulator.hub.publish(topic, BAD[name](exchange, kline_message(exchange, last, True, now), forming))
            # A valid repeat of a delivered candle, extra keys and all: not bad, not a new bar.
            repeat = kline_message(exchange, last, True, now)
            candle_of(exchange, repeat)["unexpected"] = {"extra": [1, 2]}
            emulator.hub.publish(topic, json.dumps(repeat))
            emulator.step(1)
            target = last_closed_open(emulator)
            d.wait(lambda t=target: bool(rows) and rows[-1][0] == t, f"bar {target}")

    driver = Driver(cerebro, script, deadline=30.0)
    driver.start()
    (strategy,) = cerebro.run()
    driver.check()
    return strategy, data


def expected_counts(names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        kind = "malformed" if name in MALFORMED else "bar"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@pytest.mark.parametrize(
    "bad",
    ["open time in 2100", "open time as a string", "forming candle, closed is the string 'false'", "NaN price"],
)
def test_one_bad_candle_message_is_quarantined_and_the_feed_goes_on(
    exchange: str, emulator: Emulator, store: Any, bad: str
) -> None:
    strategy, data = run_with_bad_messages(exchange, emulator, store, [[bad], [], []])
    got = strategy.rows[SYMBOL]
    assert got == candles(emulator, SYMBOL, got[0][0], last_closed_open(emulator))  # each once, in order
    assert store.quarantined == {"bar": 1}
    assert data.quarantined == {}  # stopped at the connection: nothing bad reached the feed


def test_a_stream_of_mutated_candles_delivers_every_good_bar_once_and_counts_every_bad_one(
    exchange: str, emulator: Emulator, store: Any
) -> None:
    names = list(BAD)
    rng = random.Random(20240601)
    pool = names * 2
    rng.shuffle(pool)  # every bad case twice, in a random order, two to five per candle
    plan: list[list[str]] = []
    while pool:
        take = rng.randint(2, 5)
        plan.append(pool[:take])
        pool = pool[take:]
    plan.append([])
    strategy, data = run_with_bad_messages(exchange, emulator, store, plan)
    got = strategy.rows[SYMBOL]
    expected = candles(emulator, SYMBOL, got[0][0], last_closed_open(emulator))
    assert got == expected and len(got) == 5 + len(plan)
    sent = [name for names in plan for name in names]
    assert store.quarantined == expected_counts(sent)
    assert sum(store.quarantined.values()) == len(sent) == 2 * len(BAD)
    assert data.quarantined == {}


# --------------------------------------------------------------------------------------------
# the account stream


def bad_account_messages(exchange: str, now: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind it is counted under, message): account messages that must never reach the broker."""
    if exchange == "binance":
        report = {
            "e": "executionReport", "E": now, "s": "BTCUSDT", "c": "rt-bad", "S": "BUY", "o": "LIMIT", "f": "GTC",
            "q": "0.001", "p": "1000", "P": "0", "x": "TRADE", "X": "FILLED", "r": "NONE", "i": 9, "l": "0.001",
            "z": "0.001", "L": "NaN", "n": "0", "N": None, "T": now, "t": 5, "m": False, "Z": "1",
        }  # fmt: skip
        position = {"e": "outboundAccountPosition", "E": now, "u": now, "B": [{"a": "BTC", "f": "1", "l": "-1"}]}
        return [
            # an execution report carries a fill: counted under the kind of the event that is bad
            ("fill", {"subscriptionId": 0, "event": report}),  # a fill at a NaN price
            ("fill", {"subscriptionId": 0, "event": {**report, "L": "1000", "m": "false"}}),  # a string flag
            ("order", {"subscriptionId": 0, "event": {**report, "x": "NEW", "X": "NEW", "q": "-0.001"}}),
            ("balance", {"subscriptionId": 0, "event": position}),  # a negative amount held by orders
        ]
    order = {
        "symbol": "BTCUSDT", "orderId": "9", "orderLinkId": "rt-bad", "side": "Buy", "orderType": "Limit",
        "price": "Infinity", "qty": "0.001", "orderStatus": "New", "cumExecQty": "0", "updatedTime": str(now),
    }  # fmt: skip
    execution = {
        "symbol": "BTCUSDT", "execId": "e9", "orderId": "9", "side": "Buy", "execPrice": "-5", "execQty": "0.001",
        "execType": "Trade", "execTime": str(now), "isMaker": False,
    }  # fmt: skip
    wallet = [{"accountType": "UNIFIED", "coin": [{"coin": "BTC", "walletBalance": "1", "locked": "-0.5"}]}]
    return [
        ("order", {"topic": "order", "creationTime": now, "data": [order]}),
        ("fill", {"topic": "execution", "creationTime": now, "data": [execution]}),
        ("balance", {"topic": "wallet", "creationTime": now, "data": wallet}),
    ]


def account_quarantine(store: Any, emulator: Emulator, bad: list[tuple[str, dict]],
                       good: Callable[[], Callable[[Any], bool]]) -> None:  # fmt: skip
    """Send the ``bad`` (kind, message) pairs down the account's private connection, then do
    something ``good`` (it returns a predicate of the events that says its event arrived): no bad
    message reaches a listener, the good event does, and the store counts each bad one by kind."""
    from realtrade_core.testing import EventRecorder, wait_until

    store.start()  # takes the emulator's funded account
    rec = EventRecorder()
    unsubscribe = store.subscribe_account(rec)
    try:
        wait_until(lambda: ("connected", "ready") in rec.items, timeout=10, what="the account stream")
        private = wait_until(lambda: [c for c in emulator.hub.connections() if c.account], what="the connection")
        for _, message in bad:
            private[0].send(json.dumps(message))
        arrived = good()
        rec.wait(lambda r: any(arrived(e) for e in r.items), timeout=10, what="the good event")
    finally:
        unsubscribe()
    events = [e for e in rec.items if not isinstance(e, tuple)]
    assert all(e.problem() is None for e in events)
    assert not any(getattr(e, "client_order_id", None) == "rt-bad" for e in events)
    expected: dict[str, int] = {}
    for kind, _ in bad:
        expected[kind] = expected.get(kind, 0) + 1
    assert store.quarantined == expected


def test_bad_account_messages_never_reach_the_broker_and_good_ones_still_do(
    exchange: str, emulator: Emulator, store: Any
) -> None:
    from realtrade_core.events import OrderUpdate

    def good() -> Callable[[Any], bool]:
        client = emulator.ccxt_client()
        client.load_markets()
        price = client.price_to_precision(SYMBOL, float(candles(emulator, SYMBOL, 0, emulator.engine.now())[-1][4]) / 2)
        placed = client.create_order(SYMBOL, "limit", "buy", 0.001, float(price))
        return lambda e: isinstance(e, OrderUpdate) and e.order_id == str(placed["id"])

    account_quarantine(store, emulator, bad_account_messages(exchange, emulator.engine.now()), good)
