"""Binance spot store and data feed: the core classes with Binance's settings (the broker is in
:mod:`.execution`)."""

from __future__ import annotations

import re
import time

from realtrade_core.feed import Data
from realtrade_core.retry import retry_after_header
from realtrade_core.store import Store

from .execution import BinanceBroker  # noqa: F401 - its old home: importing it from here still works

_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")


class BinanceStore(Store):
    exchange = "binance"

    def retry_after(self, error: BaseException, headers: dict[str, str]) -> float | None:
        # A 418 says how long the IP ban lasts in its message ("IP banned until <ms>", on the
        # exchange's clock); Retry-After may be shorter than the ban. Wait for the later one.
        waits = [retry_after_header(headers)]
        match = _BANNED_UNTIL.search(str(error))
        if match:
            exchange_now = time.time() * 1000 + self.time_offset_ms
            waits.append(max(0.0, (int(match.group(1)) - exchange_now) / 1000))
        known = [w for w in waits if w is not None]
        return max(known) if known else None


class BinanceData(Data):
    exchange = "binance"
