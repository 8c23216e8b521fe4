"""Binance spot store and data feed: the core classes with Binance's name (its order rules are
in :mod:`.execution`)."""

from __future__ import annotations

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BinanceStore(Store):
    exchange = "binance"


class BinanceData(Data):
    exchange = "binance"
