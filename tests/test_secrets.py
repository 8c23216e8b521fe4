"""Secrets never reach logs, reprs or error messages."""

from __future__ import annotations

import logging

from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store


def test_keys_appear_in_no_log_line_repr_or_error(caplog):
    with Emulator("binance", symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store("binance", "emulator", emulator=emulator)
        with caplog.at_level(logging.DEBUG):
            store.start()
            store.client.fetch_balance()
            try:
                store.client.fetch_order("12345", "BTC/USDT")
            except Exception as exc:  # the exchange answers "order does not exist"
                error = str(exc)
        text = caplog.text + repr(store) + str(store.credentials) + error
        store.stop()
    assert emulator.secret not in text
    assert emulator.api_key not in text
    assert "X-MBX-APIKEY" in caplog.text  # ccxt did log its request headers, redacted
