"""How Bybit spot wants its orders: conditional orders for stops and a bracket's exits, filed
apart until they trigger; client ids as ``orderLinkId``; waits from its limit-reset header."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from realtrade_core.execution import ErrorKind, ExecutionDialect
from realtrade_core.retry import header, retry_after_header

_CROSSED = re.compile(r'"retCode"\s*:\s*11009[23]\b')
# 110043: leverage not modified; 110026: cross/isolated margin mode is not modified
_UNCHANGED = re.compile(r'"retCode"\s*:\s*(110043|110026)\b')


class BybitExecution(ExecutionDialect):
    client_order_id_field = "orderLinkId"
    # ccxt refuses fetch_order on unified accounts unless told we know it only sees recent orders.
    fetch_order_params: ClassVar[Mapping[str, Any]] = {"acknowledged": True}
    # Spot conditional orders fire on a rise when placed above the last price, on a fall below it.
    stop_direction_from_market = True
    # Spot conditional orders hold no funds until they trigger: a bracket's take-profit and
    # stop can both rest on the exchange for the same coins.
    bracket_exits = "conditional"
    one_way_help = (
        "switch the contract to one-way mode (Position Mode in the derivatives settings, or POST "
        "/v5/position/switch-mode with mode=0), with no position or order open"
    )

    def contract_order_params(self, order_type: str, side: str, fires_on_rise: bool) -> dict[str, Any]:
        # Linear conditional orders need their direction: 1 (rise to the trigger) or 2 (fall).
        if order_type in ("stop", "stop_limit"):
            return {"triggerDirection": "ascending" if fires_on_rise else "descending"}
        return {}

    def setting_unchanged(self, exc: BaseException) -> bool:
        # Bybit refuses a leverage or margin mode the contract has already (ccxt: BadRequest).
        return bool(_UNCHANGED.search(str(exc))) or super().setting_unchanged(exc)

    def cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        # Bybit spot files conditional orders apart until they trigger (orderFilter=StopOrder):
        # try that first for stops, then as a plain order (it may have triggered meanwhile).
        if order_type in ("stop", "stop_limit"):
            return [{"trigger": True}, {}]
        return [{}]

    def classify(self, exc: BaseException) -> ErrorKind:
        # Bybit refuses a conditional order whose trigger the last price has passed with retCode
        # 110092 ("expect Rising") or 110093 ("expect Falling"); ccxt makes both an InvalidOrder.
        if _CROSSED.search(str(exc)):
            return ErrorKind.STOP_CROSSED
        return super().classify(exc)

    def retry_after(self, error: BaseException, headers: Mapping[str, str], exchange_ms: float) -> float | None:
        # Bybit's per-UID limits say when the window resets (X-Bapi-Limit-Reset-Timestamp, ms on
        # the exchange's clock); trusted only when the same answer says the limit is used up.
        asked = retry_after_header(headers)
        reset, left = header(headers, "X-Bapi-Limit-Reset-Timestamp"), header(headers, "X-Bapi-Limit-Status")
        if reset is not None and left in (None, "0"):
            try:
                wait = (int(reset) - exchange_ms) / 1000
            except ValueError:
                return asked
            if wait > 0:  # a reset already past (an older answer's header) says nothing
                return max(wait, asked or 0.0)
        return asked
