"""Clocks a connection works with: ours, the exchange's as a store measured it, the market's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wall_ms() -> int:
    """Epoch milliseconds on this machine's clock."""
    return int(time.time() * 1000)


def exchange_clock(store: Any) -> Callable[[], int]:
    """Epoch milliseconds on the exchange's clock as ``store`` measured it: what a private
    stream signs its login with."""
    return lambda: wall_ms() + store.time_offset_ms


def market_clock(store: Any) -> Callable[[], int] | None:
    """The clock the exchange's market data runs on, for checking candle times: an in-process
    emulator's market clock (it may run fast, stand still or replay the past), else the
    exchange clock as ``store`` measured it. ``None`` for an emulator in another process, whose
    market clock can run at any speed: candles are then checked against absolute bounds here,
    and against the emulator's clock by the feed."""
    emulator = getattr(store, "emulator", None)
    if emulator is not None:
        engine = emulator.engine
        return lambda: int(engine.now())
    if store.venue == "emulator":
        return None
    return exchange_clock(store)
