"""Bybit spot store, data feed and broker: the core classes with Bybit's settings."""

from __future__ import annotations

from typing import Any, ClassVar

from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class BybitStore(Store):
    exchange = "bybit"


class BybitData(Data):
    exchange = "bybit"


class BybitBroker(Broker):
    exchange = "bybit"
    # ccxt refuses fetch_order on unified accounts unless told we know it only sees recent orders.
    fetch_order_params: ClassVar[dict[str, Any]] = {"acknowledged": True}

    def cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        # Bybit spot files conditional orders apart until they trigger (orderFilter=StopOrder):
        # try that first for stops, then as a plain order (it may have triggered meanwhile).
        if order_type in ("stop", "stop_limit"):
            return [{"trigger": True}, {}]
        return [{}]
