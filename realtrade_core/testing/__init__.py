"""Testing helpers and the plugin conformance suite any exchange plugin runs to prove its contract.

An exchange plugin subclasses :class:`ExchangeConformance` in its own tests and names its
exchange; pytest collects the inherited numbered cases (RT-101 ... RT-802, listed in
:mod:`.cases` and in docs/plugins.md). What the plugin's ``Capabilities`` declare absent (no
emulator dialect, no public stream, no stop orders ...) is skipped with the reason::

    # tests/test_conformance.py of the plugin
    from realtrade_core.testing import ExchangeConformance

    class TestKrakenConformance(ExchangeConformance):
        exchange = "kraken"

The cases run against the plugin's own emulator dialect on 127.0.0.1 with a manual clock (real
ccxt, real sockets, real threads, no network), or, for a plugin without one, against REST
answers it recorded (:mod:`.replay`). Importing this module needs neither pytest nor backtrader:
the suite (:mod:`.suite`) is loaded when ``ExchangeConformance`` is first asked for, and the
waiting helpers below work anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .cases import CASES, Case
from .waiting import EventRecorder, wait_until

__all__ = ["CASES", "Case", "EventRecorder", "ExchangeConformance", "emulated_store", "stop_connections", "wait_until"]

MINUTE = 60_000


def emulated_store(exchange: str, symbol: str, **emulator_options: Any) -> Iterator[Any]:
    """A started store on a fresh in-process emulator with a manual clock (a fixture body:
    ``yield from emulated_store("bybit", "BTC/USDT")``); the store cache is cleared after."""
    from ..store import clear_stores, get_store

    clear_stores()
    options = {"speed": None, "symbols": (symbol,), "history": 50, "future": 400, **emulator_options}
    store = get_store(exchange, "emulator", emulator_options=options)
    store.start()
    try:
        yield store
    finally:
        clear_stores()


def stop_connections(opened: Iterable[Any]) -> None:
    """Stop the connections a test started and check none left a thread behind."""
    opened = list(opened)
    for ws in opened:
        assert ws.stop(5.0), f"{ws.name} did not stop"
    names = {f"realtrade-ws-{ws.name}" for ws in opened} | {f"realtrade-ws-age-{ws.name}" for ws in opened}
    alive = [t.name for t in threading.enumerate() if t.name in names]
    assert not alive, f"threads left running: {alive}"


def __getattr__(name: str) -> Any:
    # The suite needs pytest and backtrader: loaded only when a plugin's tests ask for it.
    if name == "ExchangeConformance":
        from .suite import ExchangeConformance

        return ExchangeConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
