"""How Binance spot wants its orders: a bracket's exits as one OCO order list, and a ban's end
read from its message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from realtrade_core.execution import ErrorKind, ExecutionDialect
from realtrade_core.retry import retry_after_header

_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
# USDⓈ-M futures answers ccxt leaves as a plain ExchangeError: -2019 "Margin is insufficient."
# and -2021 "Order would immediately trigger."
_NO_MARGIN = re.compile(r'"code"\s*:\s*-2019\b')
_WOULD_TRIGGER = re.compile(r'"code"\s*:\s*-2021\b')


class BinanceExecution(ExecutionDialect):
    #: a bracket's two exits go to Binance as one OCO order list (one lock of the funds)
    bracket_exits = "oco"
    # USDⓈ-M futures file stop orders apart (the algo order service) until they trigger: open
    # orders are listed twice, plain and conditional; a stop is cancelled as one first.
    contract_open_order_params = ({}, {"trigger": True})
    one_way_help = (
        "set Position Mode to One-way in the futures settings (or POST /fapi/v1/positionSide/dual with "
        "dualSidePosition=false), with no position or order open"
    )

    def contract_cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        if order_type in ("stop", "stop_limit"):
            return [{"trigger": True}, {}]  # once triggered it is a plain order
        return [{}]

    def classify(self, exc: BaseException) -> ErrorKind:
        if _NO_MARGIN.search(str(exc)):
            return ErrorKind.INSUFFICIENT_FUNDS
        if _WOULD_TRIGGER.search(str(exc)):
            return ErrorKind.STOP_CROSSED
        return super().classify(exc)

    def retry_after(self, error: BaseException, headers: Mapping[str, str], exchange_ms: float) -> float | None:
        # A 418 says how long the IP ban lasts in its message ("IP banned until <ms>", on the
        # exchange's clock); Retry-After may be shorter than the ban. Wait for the later one.
        waits = [retry_after_header(headers)]
        match = _BANNED_UNTIL.search(str(error))
        if match:
            waits.append(max(0.0, (int(match.group(1)) - exchange_ms) / 1000))
        known = [w for w in waits if w is not None]
        return max(known) if known else None

    def create_oco_orders(
        self,
        client: Any,
        symbol: str,
        side: str,
        amount: Decimal,
        limit_price: Decimal,
        stop_price: Decimal,
        stop_limit_price: Decimal | None,
        limit_client_order_id: str,
        stop_client_order_id: str,
    ) -> list[dict]:
        """Send a Binance OCO order list (side "sell": take-profit LIMIT_MAKER above, STOP_LOSS[_LIMIT]
        below; "buy": the mirror). Returns the two legs as ccxt order dicts, limit leg first.

        ``POST /api/v3/orderList/oco`` through ccxt's implicit API, so errors arrive as ccxt's own
        exceptions (a price on the wrong side of the last price is ``InvalidOrder``).
        """
        market = client.market(symbol)
        ccxt_symbol = market["symbol"]
        side = side.lower()
        if side not in ("buy", "sell"):
            raise ValueError(f"an OCO side is 'buy' or 'sell', not {side!r}")
        limit_leg: dict[str, Any] = {
            "Type": "LIMIT_MAKER",
            "Price": client.price_to_precision(ccxt_symbol, str(limit_price)),
            "ClientOrderId": limit_client_order_id,
        }
        stop_leg: dict[str, Any] = {
            "Type": "STOP_LOSS",
            "StopPrice": client.price_to_precision(ccxt_symbol, str(stop_price)),
            "ClientOrderId": stop_client_order_id,
        }
        if stop_limit_price is not None:
            stop_leg["Type"] = "STOP_LOSS_LIMIT"
            stop_leg["Price"] = client.price_to_precision(ccxt_symbol, str(stop_limit_price))
            stop_leg["TimeInForce"] = "GTC"
        above, below = (limit_leg, stop_leg) if side == "sell" else (stop_leg, limit_leg)
        request: dict[str, Any] = {
            "symbol": market["id"],
            "side": side.upper(),
            "quantity": client.amount_to_precision(ccxt_symbol, str(amount)),
            "newOrderRespType": "RESULT",
        }
        request.update({"above" + key: value for key, value in above.items()})
        request.update({"below" + key: value for key, value in below.items()})
        response = client.privatePostOrderListOco(request)
        reports = response.get("orderReports") or []
        by_client_id = {report.get("clientOrderId"): report for report in reports}
        limit_report = by_client_id.get(limit_client_order_id)
        stop_report = by_client_id.get(stop_client_order_id)
        if limit_report is None or stop_report is None:
            import ccxt

            raise ccxt.BadResponse(f"{client.id} answered an OCO order list without both order reports: {response}")
        return [client.parse_order(limit_report, market), client.parse_order(stop_report, market)]
