"""BaseWebSocket against a real aiohttp WebSocket server on loopback (see wsserver.py)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from wsserver import WSServer, frame

from realtrade_core.events import Bar, ConnectionEvent, ConnectionState, ErrorEvent, Event, Trade
from realtrade_core.websocket import (
    Authenticated,
    BaseWebSocket,
    Outgoing,
    Reconnect,
    Resubscribe,
    Subscribed,
    WebSocketConfig,
    WebSocketContractError,
)

FAST = {
    "reconnect_delay": 0.01,
    "reconnect_delay_max": 0.05,
    "connect_timeout": 2.0,
    "auth_timeout": 2.0,
    "stale_after": 5.0,
}


# Candles of the test protocol carry a sequence number "t"; the parser makes it a real open
# time (events are checked: a 1m candle opens on a minute after 2010), seq() turns it back.
T0 = 1_700_000_040_000
MINUTE = 60_000


def seq(bar: Bar) -> int:
    return (bar.open_time - T0) // MINUTE


class JsonWebSocket(BaseWebSocket):
    """The test plugin: a small JSON protocol (the whole plugin is these lines)."""

    exchange = "testex"

    def __init__(self, address: str, streams: Iterable[str] = (), *, key: str | None = None, **kw: Any) -> None:
        self._address = address
        self._key = key
        super().__init__(streams, **kw)

    def url(self, streams: tuple[str, ...]) -> str:
        return self._address

    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return [{"op": "subscribe", "args": list(streams)}]

    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return [{"op": "unsubscribe", "args": list(streams)}]

    def auth_messages(self) -> Iterable[Outgoing]:
        return [{"op": "auth", "args": [self._key, "signature"]}] if self._key else ()

    def ping_message(self) -> Outgoing:
        return {"op": "ping"}

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        if isinstance(message, bytes):
            return (Trade(self.exchange, "BIN/ARY", message.decode(), 1.0, 1.0, None, 0),)
        d = json.loads(message)
        op = d.get("op")
        if op is not None:
            if op == "auth":
                return (Authenticated(d["success"], d.get("msg", "")),)
            if op == "shutdown":
                return (Reconnect("serverShutdown"),)
            if op == "resubscribe":
                return (Resubscribe("lapsed"),)
            return ()
        topic = d.get("topic")
        if topic == "kline":
            return (
                Bar(
                    self.exchange,
                    d["s"],
                    "1m",
                    T0 + d["t"] * MINUTE,
                    float(d["o"]),
                    float(d["h"]),
                    float(d["l"]),
                    float(d["c"]),
                    float(d["v"]),
                    d["x"],
                    d.get("E"),
                ),
            )
        if topic == "trade":
            return (Trade(self.exchange, d["s"], str(d["id"]), float(d["p"]), float(d["q"]), None, d["T"]),)
        return None


def kline(seq: int, symbol: str = "BTC/USDT", closed: bool = True) -> dict:
    return {
        "topic": "kline",
        "s": symbol,
        "t": seq,
        "o": "1.5",
        "h": "2.5",
        "l": "0.5",
        "c": "2",
        "v": "10",
        "x": closed,
        "E": 99,
    }


class Collector:
    """A thread-safe callback that records events; tests wait on it with a bounded timeout."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.cond = threading.Condition()

    def __call__(self, event: Any) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], object], timeout: float = 5.0) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(lambda: predicate(self.items), timeout))

    def wait_count(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda items: len(items) >= n, timeout)


def poll_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """For conditions nothing signals (counters): re-check every few ms, bounded."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.005)
    return True


def ws_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("realtrade-ws-")]


@pytest.fixture
def server():
    s = WSServer().start()
    yield s
    s.close()


@pytest.fixture
def make_ws(server):
    made: list[BaseWebSocket] = []

    def make(*streams: str, key: str | None = None, address: str | None = None, cls=JsonWebSocket, **cfg: Any):
        config = WebSocketConfig(**{**FAST, **cfg})
        ws = cls(address or server.url, streams, key=key, config=config)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        assert ws.stop(5), f"{ws!r} did not stop"


# ------------------------------------------------------------------------------ contract


def test_missing_required_members_are_named():
    class Empty(BaseWebSocket):
        pass

    with pytest.raises(WebSocketContractError) as info:
        Empty()
    text = str(info.value)
    assert "Empty" in text
    for member in ("exchange", "url(", "parse(", "subscribe_messages(", "unsubscribe_messages("):
        assert member in text
    assert "ping_message" not in text
    assert isinstance(info.value, TypeError)
    assert Empty.missing_members() == ["exchange", "url", "parse", "subscribe_messages", "unsubscribe_messages"]

    class UrlStreams(BaseWebSocket):
        exchange = "x"
        streams_in_url = True

        def url(self, streams):
            return "ws://127.0.0.1:1/" + "/".join(streams)

        def parse(self, message):
            return ()

    assert UrlStreams.missing_members() == []
    UrlStreams()  # complete: nothing to subscribe by message
    with pytest.raises(WebSocketContractError, match="ping_message"):
        UrlStreams(config=WebSocketConfig(app_ping_interval=20))
    assert JsonWebSocket.missing_members(WebSocketConfig(app_ping_interval=20)) == []


def test_on_rejects_unknown_event_names():
    ws = JsonWebSocket("ws://127.0.0.1:1/ws")
    with pytest.raises(ValueError, match="bars"):
        ws.on("bars", print)
    off = ws.on("bar", print)
    off()
    off()  # idempotent


# ------------------------------------------------------------------------------ data path


def test_connects_and_delivers_typed_events(server, make_ws):
    ws = make_ws("kline.BTC")
    bars, everything, connected = Collector(), Collector(), Collector()
    ws.on("bar", bars)
    ws.on("data", everything)
    ws.on("connected", connected)
    assert not ws.is_connected()
    ws.start()
    assert ws.wait_connected(5)
    assert ws.is_connected() and ws.state is ConnectionState.CONNECTED
    assert server.wait_for(lambda: "kline.BTC" in server.last.subscriptions)
    assert server.publish("kline.BTC", kline(1)) == 1
    server.publish("kline.BTC", {"topic": "trade", "s": "BTC/USDT", "id": 7, "p": "3", "q": "4", "T": 5})
    assert bars.wait_count(1) and everything.wait_count(2)
    assert bars.items[0] == Bar("testex", "BTC/USDT", "1m", T0 + MINUTE, 1.5, 2.5, 0.5, 2.0, 10.0, True, 99)
    assert isinstance(everything.items[1], Trade)
    assert connected.items[0].state is ConnectionState.CONNECTED
    stats = ws.stats()
    assert stats.messages >= 3  # subscribe ack, kline, trade
    assert stats.connected_since is not None and stats.last_message_time >= stats.connected_since
    assert stats.parse_errors == stats.callback_errors == stats.reconnects == 0


def test_subscribe_and_unsubscribe_at_run_time(server, make_ws):
    ws = make_ws("a")
    ws.subscribe("b")  # before start: only remembered
    bars = Collector()
    ws.on("bar", bars)
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: server.last.subscriptions == {"a", "b"})
    ws.subscribe("c", "a")  # "a" is already active: only "c" goes out
    assert server.wait_for(lambda: "c" in server.last.subscriptions)
    assert json.loads(server.last.texts()[-1]) == {"op": "subscribe", "args": ["c"]}
    ws.unsubscribe("a")
    assert server.wait_for(lambda: "a" not in server.last.subscriptions)
    assert ws.streams == ("b", "c")
    assert server.publish("a", kline(1)) == 0
    server.publish("c", kline(2))
    assert bars.wait_count(1)
    assert [seq(b) for b in bars.items] == [2]
    with pytest.raises(ValueError):
        ws.subscribe("")


def test_send_is_queued_to_the_socket_thread(server, make_ws):
    ws = make_ws()
    assert ws.send({"op": "hello"}) is False  # not connected: nothing queued
    ws.start()
    assert ws.wait_connected(5)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(ws.send({"op": "n", "i": i}))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results)
    assert server.wait_for(lambda: server.last.ops().count("n") == 20)
    ws.send(b"raw bytes")
    assert server.wait_for(lambda: server.last.of_kind("binary"))


# ------------------------------------------------------------------------------ reconnects


def test_reconnects_after_drop_and_resubscribes(server, make_ws):
    ws = make_ws("a", "b")
    bars, connected, disconnected = Collector(), Collector(), Collector()
    ws.on("bar", bars)
    ws.on("connected", connected)
    ws.on("disconnected", disconnected)
    ws.start()
    assert connected.wait_count(1)
    assert server.wait_for(lambda: server.last.subscriptions == {"a", "b"})
    server.publish("a", kline(1))
    assert bars.wait_count(1)

    server.drop()
    assert connected.wait_count(2)
    assert disconnected.items[0].state is ConnectionState.DISCONNECTED
    assert "lost" in disconnected.items[0].reason or "closed" in disconnected.items[0].reason
    assert server.wait_for(lambda: len(server.conns) == 2 and server.last.subscriptions == {"a", "b"})
    assert server.last.ops() == ["subscribe"]  # every active stream, in one message
    server.publish("b", kline(2))
    assert bars.wait_count(2)
    assert [seq(b) for b in bars.items] == [1, 2]
    assert ws.stats().reconnects == 1


def test_server_close_frame_and_server_shutdown_control(server, make_ws):
    ws = make_ws("a")
    connected, disconnected = Collector(), Collector()
    ws.on("connected", connected)
    ws.on("disconnected", disconnected)
    ws.start()
    assert connected.wait_count(1)
    server.close_conn(code=1001, message=b"maintenance")
    assert connected.wait_count(2)
    assert "code 1001" in disconnected.items[0].reason and "maintenance" in disconnected.items[0].reason
    assert disconnected.items[0].attempt == 0  # counted after the event: the first failure

    # A Reconnect directive (Binance serverShutdown) replaces the connection at once, no failure.
    server.push({"op": "shutdown"})
    assert connected.wait_count(3)
    assert disconnected.items[1].reason == "reconnect: serverShutdown"
    assert connected.items[2].attempt == connected.items[1].attempt  # not counted as a failure
    assert server.wait_for(lambda: len(server.conns) == 3 and server.last.subscriptions == {"a"})


def test_a_connection_is_replaced_at_its_maximum_age_without_a_failure(server, make_ws):
    ws = make_ws("a", max_connection_age=0.2)
    bars, connected, disconnected, errors = Collector(), Collector(), Collector(), Collector()
    ws.on("bar", bars)
    ws.on("connected", connected)
    ws.on("disconnected", disconnected)
    ws.on("error", errors)
    ws.start()
    assert connected.wait_count(3)  # replaced twice, each time on our terms
    assert all("connection age limit" in d.reason for d in disconnected.items)
    assert all(c.attempt == 0 for c in connected.items) and errors.items == []
    assert server.wait_for(lambda: server.last.subscriptions == {"a"})  # resubscribed every time
    assert ws.stats().stale_reconnects == 0
    with pytest.raises(ValueError, match="max_connection_age must be > 0 or None"):
        WebSocketConfig(max_connection_age=0)


def test_auth_precedes_subscription_on_every_connection(server, make_ws):
    server.auto_auth = False
    ws = make_ws("private.order", key="KEY123")
    connected = Collector()
    ws.on("connected", connected)
    ws.start()
    assert server.wait_for(lambda: server.conns and server.last.ops() == ["auth"])
    assert ws.state is ConnectionState.AUTHENTICATING
    # No subscription goes out while the acknowledgement is outstanding.
    assert not server.wait_for(lambda: "subscribe" in server.last.ops(), timeout=0.3)
    assert not ws.is_connected()
    server.ack_auth()
    assert server.wait_for(lambda: server.last.ops() == ["auth", "subscribe"])
    assert connected.wait_count(1)

    server.auto_auth = True
    server.drop()
    assert connected.wait_count(2)
    assert server.wait_for(lambda: len(server.conns) == 2 and server.last.ops() == ["auth", "subscribe"])
    assert server.last.subscriptions == {"private.order"}


class AnsweredWebSocket(JsonWebSocket):
    """The test protocol where the server answers each subscription (as Binance, Bybit, OKX)."""

    subscribe_requires_ack = True

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        d = json.loads(message)
        if d.get("op") == "subscribe":
            return (Subscribed(tuple(d.get("args", ())), d["success"]),)
        return super().parse(message)


def test_connected_waits_until_the_exchange_answers_the_subscription(server, make_ws):
    # What closes after "connected" must be streamed: a feed fetches what closed before it. A
    # subscription takes effect on the exchange some time after it is sent.
    server.auto_subscribe = False
    ws = make_ws("kline.BTC", cls=AnsweredWebSocket)
    connected, bars = Collector(), Collector()
    ws.on("connected", connected)
    ws.on("bar", bars)
    ws.start()
    assert server.wait_for(lambda: server.conns and server.last.held == [["kline.BTC"]])
    assert not connected.wait_count(1, timeout=0.3)
    server.answer_subscriptions()
    assert connected.wait_count(1)
    assert server.publish("kline.BTC", kline(1)) == 1
    assert bars.wait_count(1)

    server.drop()  # every reconnection waits for its own answers
    assert server.wait_for(lambda: len(server.conns) == 2 and server.last.held == [["kline.BTC"]])
    assert not connected.wait_count(2, timeout=0.2)
    server.answer_subscriptions()
    assert connected.wait_count(2)


def test_a_stream_added_to_a_ready_connection_is_announced_once_answered(server, make_ws):
    ws = make_ws("kline.BTC", cls=AnsweredWebSocket)
    connected, subscribed = Collector(), Collector()
    ws.on("connected", connected)
    ws.on("subscribed", subscribed)
    ws.start()
    assert connected.wait_count(1)
    server.auto_subscribe = False
    ws.subscribe("kline.ETH", "kline.SOL")
    assert server.wait_for(lambda: server.last.held == [["kline.ETH", "kline.SOL"]])
    assert not subscribed.wait_count(1, timeout=0.2)
    server.answer_subscriptions()
    assert subscribed.wait_count(1)
    assert subscribed.items == [Subscribed(("kline.ETH", "kline.SOL"))]
    assert len(connected.items) == 1  # the connection itself did not change

    ws.subscribe("kline.XRP")
    assert server.wait_for(lambda: server.last.held == [["kline.XRP"]])
    server.answer_subscriptions(ok=False)  # refused: nothing will come, nothing is announced
    assert poll_until(lambda: not ws._unanswered)
    assert not subscribed.wait_count(2, timeout=0.2)


def test_an_unanswered_subscription_goes_on_after_the_timeout_with_a_warning(server, make_ws, caplog):
    server.auto_subscribe = False
    ws = make_ws("kline.BTC", cls=AnsweredWebSocket, auth_timeout=0.2)
    connected, errors = Collector(), Collector()
    ws.on("connected", connected)
    ws.on("error", errors)
    with caplog.at_level(logging.WARNING, logger="realtrade_core.websocket"):
        ws.start()
        assert connected.wait_count(1)
    assert "no answer to the subscription of kline.BTC within 0.2s" in caplog.text
    assert len(server.conns) == 1 and errors.items == []  # not a failure: the connection stays


def test_rejected_auth_is_an_error_and_a_failed_attempt(server, make_ws):
    server.auth_ok = False
    ws = make_ws("private.order", key="BADKEY", max_reconnect_attempts=1)
    errors, gave_up, connected = Collector(), Collector(), Collector()
    ws.on("error", errors)
    ws.on("max_reconnect", gave_up)
    ws.on("connected", connected)
    ws.start()
    assert gave_up.wait_count(1)
    auth_errors = [e for e in errors.items if e.where == "auth"]
    assert len(auth_errors) == 2 and "invalid key" in auth_errors[0].message
    assert connected.items == []
    assert all("subscribe" not in c.ops() for c in server.conns)


def test_auth_timeout(server, make_ws):
    server.auto_auth = False
    ws = make_ws(key="K", auth_timeout=0.2, max_reconnect_attempts=0)
    errors = Collector()
    ws.on("error", errors)
    ws.start()
    assert errors.wait_for(lambda items: any(e.where == "auth" for e in items))
    assert "no auth acknowledgement" in errors.items[-1].message


def test_max_reconnect_attempts_then_thread_ends(server, make_ws):
    server.refuse = -1
    ws = make_ws("a", max_reconnect_attempts=3)
    gave_up, errors = Collector(), Collector()
    ws.on("max_reconnect", gave_up)
    ws.on("error", errors)
    ws.start()
    assert gave_up.wait_count(1)
    event = gave_up.items[0]
    assert isinstance(event, ConnectionEvent) and event.state is ConnectionState.FAILED
    assert "3 attempts" in event.reason
    assert server.refused == 4  # the first connection and three retries
    assert [e.where for e in errors.items] == ["connect"] * 4
    assert ws.wait_connected(1) is False
    assert ws._thread is not None
    ws._thread.join(2)
    assert not ws._thread.is_alive() and ws.state is ConnectionState.FAILED


def test_backoff_is_full_jitter_with_a_cap():
    ws = JsonWebSocket("ws://x/ws", config=WebSocketConfig(reconnect_delay=0.5, reconnect_delay_max=4.0))
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (500, 4.0)]:
        delays = [ws._backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.7  # spread over the range, not pinned low
        assert min(delays) < ceiling * 0.3


def test_attempt_counter_resets_after_a_healthy_period(server, make_ws):
    server.refuse = 2
    ws = make_ws("a", healthy_after=0.2, stale_after=2.0, max_reconnect_attempts=2)
    connected, disconnected = Collector(), Collector()
    ws.on("connected", connected)
    ws.on("disconnected", disconnected)
    ws.start()
    assert connected.wait_count(1)
    assert connected.items[0].attempt == 2
    # Still two failures "owed" until healthy; after 0.2 s connected the counter is back to 0.
    assert poll_until(lambda: ws._attempt == 0, timeout=2)
    server.refuse = 1
    server.drop()  # a drop and a refusal: 2 + 2 failures would exceed 2 without the reset
    assert connected.wait_count(2, timeout=5)
    assert disconnected.items[0].attempt == 0
    assert connected.items[1].attempt == 2


# ------------------------------------------------------------------------------ heartbeats


def test_stalled_connection_is_replaced_by_the_watchdog(server, make_ws):
    ws = make_ws("a", stale_after=0.3, ping_frame_interval=0.1)
    errors, connected, bars = Collector(), Collector(), Collector()
    ws.on("error", errors)
    ws.on("connected", connected)
    ws.on("bar", bars)
    ws.start()
    assert connected.wait_count(1)
    # The client's protocol pings keep a quiet but healthy connection alive...
    assert server.wait_for(lambda: len(server.last.of_kind("ping")) >= 4, timeout=2)
    assert len(server.conns) == 1 and ws.stats().stale_reconnects == 0
    # ...until the server stops answering anything.
    server.stall()
    assert connected.wait_count(2, timeout=3)
    assert [e.where for e in errors.items] == ["stale"]
    assert ws.stats().stale_reconnects == 1
    assert server.wait_for(lambda: server.conns[0].closed)
    assert server.wait_for(lambda: "a" in server.last.subscriptions)
    server.publish("a", kline(5))
    assert bars.wait_count(1)


def test_a_slow_callback_is_not_mistaken_for_a_stale_connection(server, make_ws):
    ws = make_ws("a", stale_after=0.3)
    entered, release = threading.Event(), threading.Event()
    bars = Collector()

    def slow(bar: Bar) -> None:
        if seq(bar) == 1:
            entered.set()
            release.wait(5)

    ws.on("bar", slow)
    ws.on("bar", bars)
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: "a" in server.last.subscriptions)
    server.publish("a", kline(1))
    assert entered.wait(5)
    server.publish("a", kline(2))  # arrives while the thread is busy in the callback
    # Hold the thread past stale_after; the bounded wait is expected to time out.
    assert not server.wait_for(lambda: len(server.conns) > 1, timeout=0.5)
    release.set()
    assert bars.wait_count(2)
    assert ws.stats().stale_reconnects == 0 and len(server.conns) == 1


def test_server_pings_are_answered_and_count_as_liveness(server, make_ws):
    ws = make_ws("a", stale_after=0.4)
    ws.start()
    assert ws.wait_connected(5)
    conn = server.last
    deadline = time.monotonic() + 1.0
    i = 0
    while time.monotonic() < deadline:  # 1 s of server pings and no data, against stale_after=0.4
        i += 1
        server.ping(b"p%d" % i)
        assert server.wait_for(lambda i=i: len(conn.of_kind("pong")) >= i, timeout=2)
        assert not server.wait_for(lambda: len(server.conns) > 1, timeout=0.1)  # not replaced
    assert [p for _, p in conn.of_kind("pong")] == [b"p%d" % n for n in range(1, i + 1)]
    assert len(server.conns) == 1 and ws.stats().stale_reconnects == 0


def test_application_ping_on_schedule(server, make_ws):
    ws = make_ws(app_ping_interval=0.1)
    ws.start()
    assert ws.wait_connected(5)
    conn = server.last
    assert server.wait_for(lambda: conn.ops().count("ping") >= 5, timeout=3)
    times = [t for t, p in conn.of_kind("text") if json.loads(p).get("op") == "ping"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.07 <= g <= 0.5 for g in gaps), gaps
    # The pongs are understood (empty result), so nothing counts as unknown.
    assert ws.stats().unknown_messages == 0


# ------------------------------------------------------------------------------ robustness


def test_malformed_frames_are_skipped_and_counted(server, make_ws, caplog):
    ws = make_ws("a")
    bars = Collector()
    ws.on("bar", bars)
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: "a" in server.last.subscriptions)
    with caplog.at_level(logging.DEBUG, logger="realtrade_core.websocket"):
        server.push("this is not json")
        server.push_bad_utf8()
        server.push({"topic": "no-such-topic"})
        server.push({"topic": "kline", "s": "BTC/USDT"})  # missing fields: KeyError in parse
        server.publish("a", kline(3))
        assert bars.wait_count(1)
    stats = ws.stats()
    assert stats.parse_errors == 3 and stats.unknown_messages == 1
    assert ws.quarantined == {"malformed": 3} and stats.quarantined == 3
    assert len(server.conns) == 1 and ws.is_connected()
    # logged once at WARNING for the kind, the rest at DEBUG
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "quarantined a bad malformed message" in warnings[0].getMessage()


def test_no_utf8_validation_on_the_hot_path(server, make_ws, monkeypatch):
    """websocket-client's pure-Python UTF-8 check costs several times a whole parse: never run it."""
    import websocket
    import websocket._abnf
    import websocket._utils

    calls = []

    def spy(data: bytes) -> bool:
        calls.append(len(data))
        return True

    monkeypatch.setattr(websocket._abnf, "validate_utf8", spy)
    monkeypatch.setattr(websocket._utils, "validate_utf8", spy)
    ws = make_ws("a")
    bars = Collector()
    ws.on("bar", bars)
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: "a" in server.last.subscriptions)
    for i in range(10):
        server.publish("a", kline(i))
    server.push_raw(frame(b'{"topic":', fin=False), frame(b'"x"}', opcode=0x0))  # fragmented text too
    assert bars.wait_count(10)
    assert poll_until(lambda: ws.stats().unknown_messages == 1)
    assert calls == []
    # The spy does see websocket-client's own receive path when validation is on (its default).
    raw = websocket.create_connection(server.url, timeout=5)
    try:
        assert server.wait_for(lambda: len(server.conns) == 2)
        server.push("{}", conn=server.last)
        assert raw.recv() == "{}"
    finally:
        raw.close()
    assert calls == [2]


def test_callback_exceptions_are_counted_and_do_not_stop_delivery(server, make_ws):
    ws = make_ws("a")
    good = Collector()

    def bad(event: Any) -> None:
        raise RuntimeError("listener bug")

    ws.on("bar", bad)
    ws.on("bar", good)
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: "a" in server.last.subscriptions)
    for i in range(5):
        server.publish("a", kline(i))
    assert good.wait_count(5)
    assert ws.stats().callback_errors == 5
    assert ws.is_connected() and len(server.conns) == 1


def test_frames_decoded_by_hand(server, make_ws):
    """Fragmentation with an interleaved ping, binary, 16/64-bit lengths, split TCP writes."""
    ws = make_ws("a")
    trades, bars = Collector(), Collector()
    ws.on("trade", trades)
    ws.on("bar", bars)
    ws.start()
    assert ws.wait_connected(5)
    text = json.dumps(kline(1)).encode()
    server.push_raw(
        frame(text[:10], opcode=0x1, fin=False),
        frame(text[10:20], opcode=0x0, fin=False),
        frame(b"mid", opcode=0x9),
        frame(text[20:], opcode=0x0, fin=True),
    )
    server.push_raw(frame(b"binary-1", opcode=0x2))
    big = json.dumps({**kline(2), "pad": "x" * 70000}).encode()  # 64-bit length
    mid = json.dumps({**kline(3), "pad": "y" * 300}).encode()  # 16-bit length
    whole = frame(big) + frame(mid)
    server.push_raw(whole[:1], whole[1:5], whole[5:40000], whole[40000:], gap=0.02)
    assert bars.wait_count(3)
    assert [seq(b) for b in bars.items] == [1, 2, 3]
    assert trades.wait_count(1) and trades.items[0].trade_id == "binary-1"
    assert server.wait_for(lambda: server.last.of_kind("pong") and server.last.of_kind("pong")[0][1] == b"mid")
    assert len(server.conns) == 1


@pytest.mark.parametrize(
    "bad",
    [frame(b"x", mask=True), frame(b"x", rsv=4), frame(b"x", opcode=0x0), frame(b"x", opcode=0x3)],
    ids=["masked", "rsv", "orphan-continuation", "unknown-opcode"],
)
def test_protocol_errors_replace_the_connection(server, make_ws, bad):
    ws = make_ws("a")
    errors, connected = Collector(), Collector()
    ws.on("error", errors)
    ws.on("connected", connected)
    ws.start()
    assert connected.wait_count(1)
    server.push_raw(bad)
    assert connected.wait_count(2)
    assert errors.items[0].where == "recv" and "protocol error" in errors.items[0].message


def test_resubscribe_directive_sends_subscriptions_again(server, make_ws):
    ws = make_ws("a", "b")
    ws.start()
    assert ws.wait_connected(5)
    assert server.wait_for(lambda: server.last.ops() == ["subscribe"])
    server.push({"op": "resubscribe"})
    assert server.wait_for(lambda: server.last.ops() == ["subscribe", "subscribe"])
    assert len(server.conns) == 1


def test_streams_in_url_replace_the_connection_on_change(server, make_ws):
    class UrlStreams(BaseWebSocket):
        exchange = "urlex"
        streams_in_url = True

        def __init__(self, address, streams=(), key=None, **kw):
            self._address = address
            super().__init__(streams, **kw)

        def url(self, streams):
            return f"{self._address}?streams={'/'.join(streams)}"

        def parse(self, message):
            return ()

    ws = make_ws("x@kline_1m", cls=UrlStreams)
    connected = Collector()
    ws.on("connected", connected)
    ws.start()
    assert connected.wait_count(1)
    ws.subscribe("y@trade")
    assert connected.wait_count(2)
    assert server.last.path_qs.endswith("streams=x@kline_1m/y@trade")
    assert server.last.texts() == []  # nothing sent to subscribe
    assert connected.items[1].attempt == 0


# ------------------------------------------------------------------------------ lifecycle


def test_stop_leaves_no_thread_alive(server, make_ws):
    connected_ws = make_ws("a")
    connected_ws.start()
    assert connected_ws.wait_connected(5)
    server.refuse = -1
    waiting = make_ws("b", reconnect_delay=30.0, reconnect_delay_max=60.0)  # stuck in a long backoff
    waiting._rng.seed(1)
    waiting.start()
    assert server.wait_for(lambda: server.refused >= 1)
    refused = make_ws(address="ws://127.0.0.1:1/ws", reconnect_delay=30.0, reconnect_delay_max=60.0)
    refused._rng.seed(1)  # first backoff about 4 s: the thread is waiting when stopped
    refused.start()
    assert len(ws_threads()) == 3
    for ws in (connected_ws, waiting, refused):
        started = time.monotonic()
        assert ws.stop(5) is True
        assert time.monotonic() - started < 2
    assert ws_threads() == []
    assert connected_ws.state is ConnectionState.STOPPED
    assert server.wait_for(lambda: server.conns[0].closed)
    # Restartable.
    server.refuse = 0
    connected_ws.start()
    assert connected_ws.wait_connected(5)
    assert connected_ws.stop(5) and ws_threads() == []


def test_stop_from_a_callback_does_not_deadlock(server, make_ws):
    ws = make_ws()
    done = threading.Event()

    def on_connected(event: Any) -> None:
        ws.stop()
        done.set()

    ws.on("connected", on_connected)
    ws.start()
    assert done.wait(5)
    assert ws._thread is not None
    ws._thread.join(5)
    assert not ws._thread.is_alive()


def test_flood_of_100k_messages_loses_none(server, make_ws):
    n = 100_000
    ws = make_ws("a", stale_after=10.0)
    seqs: list[int] = []
    done = threading.Event()

    def on_bar(bar: Bar) -> None:
        seqs.append(seq(bar))
        if len(seqs) == n:
            done.set()

    ws.on("bar", on_bar)
    ws.start()
    assert ws.wait_connected(5)
    template = json.dumps(kline(0)).replace('"t": 0', '"t": %d')
    server.push_many(template % i for i in range(n))
    assert done.wait(20), f"received {len(seqs)} of {n}"
    assert seqs == list(range(n))
    assert ws.stats().parse_errors == 0


# ------------------------------------------------------------------------------ secrets


def test_repr_logs_and_errors_hide_url_secrets(server, make_ws, caplog):
    secret = "listenKeySECRET42"
    ws = make_ws("a", key=secret, address=f"ws://127.0.0.1:1/ws/{secret}?token={secret}", max_reconnect_attempts=1)
    errors, gave_up = Collector(), Collector()
    ws.on("error", errors)
    ws.on("max_reconnect", gave_up)
    with caplog.at_level(logging.DEBUG, logger="realtrade_core.websocket"):
        ws.start()
        assert gave_up.wait_count(1)
    assert repr(ws) == "<JsonWebSocket host=127.0.0.1:1 state=failed>"
    assert all(isinstance(e, ErrorEvent) and secret not in e.message for e in errors.items)
    assert secret not in caplog.text and secret not in repr(ws)

    live = make_ws("a", key=secret, address=server.url + f"?key={secret}")
    with caplog.at_level(logging.DEBUG, logger="realtrade_core.websocket"):
        live.start()
        assert live.wait_connected(5)
        server.push("garbage that fails to parse")
        assert poll_until(lambda: live.stats().parse_errors == 1)
    assert secret not in caplog.text
    assert repr(live) == f"<JsonWebSocket host=127.0.0.1:{server.port} state=connected>"


# ------------------------------------------------------------------------------ TLS


@pytest.fixture
def tls_server(tmp_path):
    """The same server behind TLS, with a throw-away self-signed certificate."""
    import datetime
    import ipaddress
    import ssl

    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    s = WSServer(ssl_context=context).start()
    yield s, str(cert_file)
    s.close()


def test_tls_connection(tls_server):
    import ssl

    server, ca_file = tls_server
    config = WebSocketConfig(**FAST, sslopt={"ca_certs": ca_file, "cert_reqs": ssl.CERT_REQUIRED})
    ws = JsonWebSocket(server.url, ["a"], config=config)
    seqs: list[int] = []
    done = threading.Event()
    n = 20_000

    def on_bar(bar: Bar) -> None:
        seqs.append(seq(bar))
        if len(seqs) == n + 1:
            done.set()

    ws.on("bar", on_bar)
    connected = Collector()
    ws.on("connected", connected)
    ws.start()
    try:
        assert connected.wait_count(1)
        assert server.wait_for(lambda: "a" in server.last.subscriptions)
        # Many messages per TLS record, then one message over many TLS records (16 KiB each).
        template = json.dumps(kline(0)).replace('"t": 0', '"t": %d')
        server.push_many(template % i for i in range(n))
        server.push(json.dumps({**kline(n), "pad": "z" * 200_000}))
        assert done.wait(15), f"received {len(seqs)}"
        assert seqs == list(range(n + 1))
        server.ping(b"tls")
        assert server.wait_for(lambda: [p for _, p in server.last.of_kind("pong")] == [b"tls"])
        server.drop()
        assert connected.wait_count(2)
        assert server.wait_for(lambda: len(server.conns) == 2 and "a" in server.last.subscriptions)
    finally:
        assert ws.stop(5)
    assert ws_threads() == []
