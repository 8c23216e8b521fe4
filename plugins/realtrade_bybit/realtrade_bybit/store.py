"""Bybit spot store, data feed and broker: the core classes with Bybit's settings."""

from __future__ import annotations

from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class BybitStore(Store):
    exchange = "bybit"


class BybitData(Data):
    exchange = "bybit"


class BybitBroker(Broker):
    exchange = "bybit"
