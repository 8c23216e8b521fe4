"""Fixtures shared by the live-broker tests: one emulator and one store of its own per exchange."""

from __future__ import annotations

import pytest
from test_broker_live import make_emulator, new_store


@pytest.fixture(params=["binance", "bybit"])
def exchange(request) -> str:
    return request.param


@pytest.fixture
def emulator(exchange):
    with make_emulator(exchange) as emu:
        yield emu


@pytest.fixture
def store(exchange, emulator):
    store = new_store(exchange, emulator)
    yield store
    store.stop()


@pytest.fixture
def journal_path(tmp_path):
    return str(tmp_path / "journal.sqlite3")
