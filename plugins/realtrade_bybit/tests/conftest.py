"""Fixtures of the Bybit plugin tests: an in-process emulator on a manual clock, helpers to wait.

Every integration test talks to a real server on 127.0.0.1 (port 0) with real ccxt and real
WebSocket clients; the manual clock (``speed=None``) makes the market move only when a test
steps it, so the tests are fast and deterministic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from realtrade_core.emulator.server import Emulator

BYBIT_SYMBOL = "BTCUSDT"


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with custom arguments (manual clock by default); all stop at teardown."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("speed", None)
        # By name, through the realtrade.exchanges entry point, as users do.
        emu = Emulator("bybit", **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A Bybit emulator for BTC/USDT on a manual clock."""
    return make_emulator()


@pytest.fixture
def exchange(emulator: Emulator) -> Any:
    """Unmodified ccxt.bybit talking to ``emulator``, markets loaded."""
    client = emulator.ccxt_client()
    client.load_markets()
    return client


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    return wait_for


class StreamClient:
    """A plain websocket-client connection with JSON helpers and bounded waits."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.timeout = timeout

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next JSON frame; raises WebSocketConnectionClosedException when the server closes."""
        self.ws.settimeout(timeout if timeout is not None else self.timeout)
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise websocket.WebSocketConnectionClosedException("the server closed the connection")
        return json.loads(data)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return the reply to it (the first frame carrying its ``op``)."""
        self.send(message)
        op = message["op"]
        expect = {"ping": ("ping", "pong")}.get(op, (op,))
        return self.recv_until(lambda m: m.get("op") in expect and "topic" not in m)

    def recv_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float | None = None) -> dict[str, Any]:
        """The first message matching ``predicate`` (others are skipped) within ``timeout``."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching stream message arrived in time")
            message = self.recv(left)
            if predicate(message):
                return message

    def collect(
        self, predicate: Callable[[dict[str, Any]], bool], count: int, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """The first ``count`` messages matching ``predicate``."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        found = []
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(found)} of {count} expected stream messages arrived in time")
            message = self.recv(left)
            if predicate(message):
                found.append(message)
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def stream() -> Iterator[Callable[[str], StreamClient]]:
    """Open WebSocket clients on a URL; all are closed at teardown."""
    clients: list[StreamClient] = []

    def connect(url: str) -> StreamClient:
        client = StreamClient(url)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        try:
            client.close()
        except Exception:
            pass
