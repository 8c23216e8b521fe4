"""Fixtures of the Binance emulator dialect's tests: a real emulator on 127.0.0.1 with a manual
clock, unmodified ccxt talking to it, and plain websocket-client connections.

Helpers are handed out as fixtures (``wait_until``, ``ws_connect``, ``recv_until``) because the
tests run with ``--import-mode=importlib``, where test modules cannot import this file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from realtrade_core.emulator import Emulator

SYMBOL = "BTC/USDT"
MARKET_ID = "BTCUSDT"


def _wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``predicate`` every 10 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what or predicate}")
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    return _wait_until


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start a Binance emulator (manual clock unless ``speed`` is given); stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("speed", None)
        kwargs.setdefault("symbols", (SYMBOL,))
        emulator = Emulator("binance", **kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


@pytest.fixture
def exchange(emulator: Emulator) -> Any:
    """Unmodified ccxt.binance with only ``urls["api"]`` pointed at the emulator, markets loaded."""
    client = emulator.ccxt_client()
    client.load_markets()
    return client


@pytest.fixture
def ws_connect() -> Iterator[Callable[[str], websocket.WebSocket]]:
    """Open a websocket-client connection (5 s socket timeout); closed after the test."""
    opened: list[websocket.WebSocket] = []

    def connect(url: str) -> websocket.WebSocket:
        ws = websocket.create_connection(url, timeout=5)
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        try:
            ws.close(timeout=0.5)
        except Exception:  # already closed by the server: nothing to release
            pass


def _recv_until(
    ws: websocket.WebSocket, predicate: Callable[[Any], bool], timeout: float = 5.0
) -> tuple[Any, list[Any]]:
    """Read JSON messages until one satisfies ``predicate``; returns it and everything read
    (it included). Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching message within {timeout:.1f} s; got {seen[-5:]}")
        ws.settimeout(remaining)
        try:
            message = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"no matching message within {timeout:.1f} s; got {seen[-5:]}") from None
        seen.append(message)
        if predicate(message):
            return message, seen


@pytest.fixture
def recv_until() -> Callable[..., tuple[Any, list[Any]]]:
    return _recv_until
