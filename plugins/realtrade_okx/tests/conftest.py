"""Fixtures of the OKX plugin tests: an in-process OKX emulator on a manual clock and unmodified
ccxt.okx on it.

Every integration test talks to a real server on 127.0.0.1 (port 0) with real ccxt and real
WebSocket clients; the manual clock (``speed=None``) moves the market only when a test steps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from realtrade_core.emulator.server import Emulator

PASSPHRASE = "test-passphrase"


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start OKX emulators (by name, through the entry point; manual clock); all stop at teardown."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("speed", None)
        kwargs.setdefault("symbols", ["BTC/USDT"])
        kwargs.setdefault("balances", {"USDT": 10_000, "BTC": 0})
        emu = Emulator("okx", **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An OKX emulator for BTC/USDT on a manual clock, 10,000 USDT on the account."""
    return make_emulator()


@pytest.fixture
def exchange(emulator: Emulator) -> Any:
    """Unmodified ccxt.okx talking to ``emulator`` (key, secret and a passphrase), markets loaded."""
    client = emulator.ccxt_client(password=PASSPHRASE)
    client.load_markets()
    return client
