"""Bybit spot store and data feed: the core classes with Bybit's settings (the broker is in
:mod:`.execution`)."""

from __future__ import annotations

import time

from realtrade_core.feed import Data
from realtrade_core.retry import header, retry_after_header
from realtrade_core.store import Store

from .execution import BybitBroker  # noqa: F401 - its old home: importing it from here still works


class BybitStore(Store):
    exchange = "bybit"

    def retry_after(self, error: BaseException, headers: dict[str, str]) -> float | None:
        # Bybit's per-UID limits say when the window resets (X-Bapi-Limit-Reset-Timestamp, ms on
        # the exchange's clock); trusted only when the same answer says the limit is used up.
        asked = retry_after_header(headers)
        reset, left = header(headers, "X-Bapi-Limit-Reset-Timestamp"), header(headers, "X-Bapi-Limit-Status")
        if reset is not None and left in (None, "0"):
            try:
                wait = (int(reset) - (time.time() * 1000 + self.time_offset_ms)) / 1000
            except ValueError:
                return asked
            if wait > 0:  # a reset already past (an older answer's header) says nothing
                return max(wait, asked or 0.0)
        return asked


class BybitData(Data):
    exchange = "bybit"
