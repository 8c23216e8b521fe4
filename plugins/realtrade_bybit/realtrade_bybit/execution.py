"""Bybit spot orders: the core broker with Bybit's order rules (conditional orders for stops and a
bracket's exits, filed apart until they trigger)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from realtrade_core.broker import Broker

_CROSSED = re.compile(r'"retCode"\s*:\s*11009[23]\b')


class BybitBroker(Broker):
    exchange = "bybit"
    client_order_id_field: ClassVar[str] = "orderLinkId"
    # ccxt refuses fetch_order on unified accounts unless told we know it only sees recent orders.
    fetch_order_params: ClassVar[dict[str, Any]] = {"acknowledged": True}
    # Spot conditional orders fire on a rise when placed above the last price, on a fall below it.
    stop_direction_from_market: ClassVar[bool] = True
    # Spot conditional orders hold no funds until they trigger: a bracket's take-profit and
    # stop can both rest on the exchange for the same coins.
    bracket_exits: ClassVar[str] = "conditional"

    def cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        # Bybit spot files conditional orders apart until they trigger (orderFilter=StopOrder):
        # try that first for stops, then as a plain order (it may have triggered meanwhile).
        if order_type in ("stop", "stop_limit"):
            return [{"trigger": True}, {}]
        return [{}]

    def stop_already_crossed(self, exc: BaseException) -> bool:
        # Bybit refuses a conditional order whose trigger the last price has passed with retCode
        # 110092 ("expect Rising") or 110093 ("expect Falling"); ccxt makes both an InvalidOrder.
        return super().stop_already_crossed(exc) or _CROSSED.search(str(exc)) is not None
