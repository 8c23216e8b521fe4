"""Bybit spot store and data feed: the core classes with Bybit's name (its order rules are in
:mod:`.execution`)."""

from __future__ import annotations

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BybitStore(Store):
    exchange = "bybit"


class BybitData(Data):
    exchange = "bybit"
