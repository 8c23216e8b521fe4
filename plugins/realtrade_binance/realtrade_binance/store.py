"""Binance spot store, data feed and broker: the core classes with Binance's settings."""

from __future__ import annotations

from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class BinanceStore(Store):
    exchange = "binance"


class BinanceData(Data):
    exchange = "binance"


class BinanceBroker(Broker):
    exchange = "binance"
