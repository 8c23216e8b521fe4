"""Order half of the OKX v5 emulator's REST dialect: place, cancel, query orders and fills.

Spot orders of a cash account (``tdMode`` ``cash``). What OKX reports about an order that the
engine does not model (``ordType`` as sent, ``sz`` of a ``quote_ccy`` market buy) is kept per
``(account, clOrdId)`` in :class:`~.wire.OrderExtra` records, written *before* the engine sees
the order so the stream pushes emitted while it is placed already carry it.

Order model:

=====================================  =========================================================
OKX request                            engine order
=====================================  =========================================================
``ordType=market``                     MARKET; ``sz`` in ``tgtCcy`` (default: quote for a buy,
                                       base for a sell); a quote amount is converted at the
                                       last price, rounded down to the lot size
``ordType=limit``                      LIMIT GTC
``ordType=ioc`` / ``fok``              LIMIT IOC / FOK (the rest ``canceled``)
``ordType=post_only``                  LIMIT GTC; refused (51000) if it would take at once
=====================================  =========================================================

Algo orders (``/api/v5/trade/order-algo``: trigger, conditional, OCO) are not served: the
plugin declares stop orders off. ``orders-history`` keeps every closed order for 7 days (OKX
drops cancelled orders that never filled after 2 hours).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from realtrade_core.emulator.model import (
    EngineError,
    Fill,
    MarketSpec,
    Order,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

from ..common import CLIENT_ORDER_ID_RE, inst_id
from .rest import OkxRest, int_param, limit_param
from .wire import (
    BELOW_MINIMUM,
    CANCEL_FAILED,
    DAY_MS,
    OPERATION_FAILED,
    ORDER_NOT_FOUND,
    PARAMETER_ERROR,
    OkxError,
    OrderExtra,
    dec,
    fill_record,
    floor_to_step,
    order_record,
    parse_decimal,
    reject_to_error,
)

log = logging.getLogger(__name__)

_ORD_TYPES = ("market", "limit", "post_only", "fok", "ioc")
_ALL = 10**9  # "no limit" for engine queries; OKX's own limits are applied afterwards
BATCH_MAX = 20


@dataclass(frozen=True, slots=True)
class _CreateRequest:
    spec: MarketSpec
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    client_order_id: str
    extra: OrderExtra


class OkxOrders(OkxRest):
    """The order endpoints of :class:`~realtrade_okx.emulator.OkxDialect`."""

    def order_routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.post("/api/v5/trade/order", w(self._place_one, private=True)),
            web.post("/api/v5/trade/batch-orders", w(self._place_batch, private=True)),
            web.get("/api/v5/trade/order", w(self._order_details, private=True)),
            web.post("/api/v5/trade/cancel-order", w(self._cancel_one, private=True)),
            web.post("/api/v5/trade/cancel-batch-orders", w(self._cancel_batch, private=True)),
            web.get("/api/v5/trade/orders-pending", w(self._orders_pending, private=True)),
            web.get("/api/v5/trade/orders-history", w(self._orders_history(7), private=True)),
            web.get("/api/v5/trade/orders-history-archive", w(self._orders_history(90), private=True)),
            web.get("/api/v5/trade/fills", w(self._fills(3), private=True)),
            web.get("/api/v5/trade/fills-history", w(self._fills(90), private=True)),
        ]

    # --- placing ------------------------------------------------------------------------------------

    def _parse(self, params: Any, api_key: str) -> _CreateRequest:
        if not isinstance(params, dict):
            raise OkxError(PARAMETER_ERROR, "Parameter error: an order must be a JSON object")
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        mode = params.get("tdMode")
        if mode != "cash":
            raise OkxError(
                PARAMETER_ERROR, f"Parameter tdMode error: the emulator trades spot with tdMode=cash, got {mode!r}"
            )
        side_text = params.get("side")
        if side_text not in ("buy", "sell"):
            raise OkxError(PARAMETER_ERROR, "Parameter side error")
        side = Side.BUY if side_text == "buy" else Side.SELL
        ord_type = params.get("ordType")
        if ord_type not in _ORD_TYPES:
            raise OkxError(PARAMETER_ERROR, f"Parameter ordType error: one of {', '.join(_ORD_TYPES)}")
        cid = params.get("clOrdId") or None
        if cid is not None and not CLIENT_ORDER_ID_RE.match(str(cid)):
            raise OkxError(PARAMETER_ERROR, "Parameter clOrdId error: up to 32 letters and digits")
        sz = parse_decimal(params.get("sz"), "sz")
        market = ord_type == "market"
        price = None if market else parse_decimal(params.get("px"), "px")
        amount = sz
        tgt_ccy = ""
        if market:
            tgt_ccy = str(params.get("tgtCcy") or ("quote_ccy" if side is Side.BUY else "base_ccy"))
            if tgt_ccy not in ("base_ccy", "quote_ccy"):
                raise OkxError(PARAMETER_ERROR, "Parameter tgtCcy error")
            if tgt_ccy == "quote_ccy":
                amount = floor_to_step(sz / self.engine.last_price(spec.symbol), spec.step_size)
                if amount <= 0:
                    raise OkxError(BELOW_MINIMUM, "Your order should meet or exceed the minimum order amount.")
        elif ord_type == "post_only":
            assert price is not None
            last = self.engine.last_price(spec.symbol)
            if (side is Side.BUY and price >= last) or (side is Side.SELL and price <= last):
                raise OkxError(PARAMETER_ERROR, "Parameter px error: a post_only order may not take liquidity")
        tif = {"ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}.get(str(ord_type), TimeInForce.GTC)
        return _CreateRequest(
            spec=spec,
            side=side,
            type=OrderType.MARKET if market else OrderType.LIMIT,
            amount=amount,
            price=price,
            time_in_force=tif,
            # OKX's own ids are numbers; the engine needs one per order.
            client_order_id=str(cid) if cid is not None else uuid.uuid4().hex,
            extra=OrderExtra(str(ord_type), dec(sz), tgt_ccy, str(params.get("tag") or "")),
        )

    def _place(self, params: Any, api_key: str, request: web.Request) -> dict[str, str]:
        """One order: OKX's per-order answer (``sCode`` ``"0"`` or the refusal's code)."""
        cid = str(params.get("clOrdId") or "") if isinstance(params, dict) else ""
        tag = str(params.get("tag") or "") if isinstance(params, dict) else ""
        now = str(self.auth_time())
        try:
            req = self._parse(params, api_key)
            key = (api_key, req.client_order_id)
            self._extras[key] = req.extra
            try:
                order = self.engine.place_order(
                    api_key, req.spec.symbol, req.side, req.type, req.amount,
                    price=req.price, time_in_force=req.time_in_force, client_order_id=req.client_order_id,
                )  # fmt: skip
            except EngineError:
                self._extras.pop(key, None)
                raise
        except (OkxError, EngineError) as exc:
            error = exc if isinstance(exc, OkxError) else reject_to_error(exc.reason, exc.message)
            self.record_refusal(
                request.path, api_key, self._refused_params(params), int(error.code), error.message,
                client_order_id=cid or None,
            )  # fmt: skip
            return {"clOrdId": cid, "ordId": "", "tag": tag, "ts": now, "sCode": error.code, "sMsg": error.message}
        log.debug("okx emulator: order %s (%s) accepted for %s", order.order_id, cid, order.symbol)
        return {
            "clOrdId": cid,
            "ordId": str(order.order_id),
            "tag": tag,
            "ts": now,
            "sCode": "0",
            "sMsg": "Order placed",
        }

    def _refused_params(self, params: Any) -> dict[str, Any]:
        """A refused order's parameters, with the engine's ``symbol`` of its ``instId`` (read by
        ``Emulator.refused_orders()``) when it names a market."""
        if not isinstance(params, dict):
            return {}
        for spec in self.engine.markets.values():
            if inst_id(spec.base, spec.quote) == params.get("instId"):
                return {**params, "symbol": spec.symbol}
        return dict(params)

    @staticmethod
    def _batch_envelope(results: list[dict[str, str]]) -> dict[str, Any]:
        failed = sum(1 for r in results if r["sCode"] != "0")
        if failed == 0:
            code, message = "0", ""
        elif failed == len(results):
            code, message = OPERATION_FAILED, "All operations failed"
        else:
            code, message = "2", "Bulk operation partially succeeded"
        return {"code": code, "msg": message, "data": results}

    def _place_one(self, params: Any, api_key: str, request: web.Request) -> dict[str, Any]:
        if isinstance(params, list):
            raise OkxError(PARAMETER_ERROR, "Parameter error: one order, not a list (use batch-orders)")
        return self._batch_envelope([self._place(params, api_key, request)])

    def _place_batch(self, params: Any, api_key: str, request: web.Request) -> dict[str, Any]:
        orders = params if isinstance(params, list) else [params]
        if not orders or len(orders) > BATCH_MAX:
            raise OkxError(PARAMETER_ERROR, f"Parameter error: 1 to {BATCH_MAX} orders a request")
        return self._batch_envelope([self._place(p, api_key, request) for p in orders])

    # --- looking orders up ------------------------------------------------------------------------

    def _find(self, params: dict[str, Any], api_key: str, symbol: str) -> Order | None:
        """The order named by ``ordId`` (wins) or ``clOrdId``, or None if the account has none."""
        order_id, cid = params.get("ordId") or None, params.get("clOrdId") or None
        if order_id is None and cid is None:
            raise OkxError(PARAMETER_ERROR, "Parameter ordId or clOrdId can not be empty")
        kwargs: dict[str, Any] = {}
        if order_id is not None:
            try:
                kwargs["order_id"] = int(str(order_id))
            except ValueError:
                return None
        else:
            kwargs["client_order_id"] = str(cid)
        try:
            return self.engine.get_order(api_key, symbol, **kwargs)
        except EngineError as exc:
            if exc.reason in (RejectReason.ORDER_NOT_FOUND, RejectReason.UNKNOWN_SYMBOL):
                return None
            raise

    def record(self, order: Order) -> dict[str, object]:
        return order_record(order, self._extra(order), self.inst_id_of(order.symbol))

    def _order_details(self, params: Any, api_key: str, request: web.Request) -> list[dict[str, object]]:
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        order = self._find(params, api_key, spec.symbol)
        if order is None:
            raise OkxError(ORDER_NOT_FOUND, "Order does not exist")
        return [self.record(order)]

    # --- cancelling -----------------------------------------------------------------------------------

    def _cancel(self, params: Any, api_key: str) -> dict[str, str]:
        cid = str(params.get("clOrdId") or "") if isinstance(params, dict) else ""
        order_id = str(params.get("ordId") or "") if isinstance(params, dict) else ""
        now = str(self.auth_time())
        try:
            if not isinstance(params, dict):
                raise OkxError(PARAMETER_ERROR, "Parameter error: a cancel must be a JSON object")
            spec = self.spec_for(params.get("instId"))
            assert spec is not None
            order = self._find(params, api_key, spec.symbol)
            if order is None or not order.status.is_open:
                raise OkxError(
                    CANCEL_FAILED, "Order cancellation failed as the order has been filled, canceled or does not exist."
                )
            cancelled = self.engine.cancel_order(api_key, spec.symbol, order_id=order.order_id)
        except (OkxError, EngineError) as exc:
            error = exc if isinstance(exc, OkxError) else reject_to_error(exc.reason, exc.message)
            return {"clOrdId": cid, "ordId": order_id, "ts": now, "sCode": error.code, "sMsg": error.message}
        return {
            "clOrdId": cancelled.client_order_id,
            "ordId": str(cancelled.order_id),
            "ts": now,
            "sCode": "0",
            "sMsg": "",
        }

    def _cancel_one(self, params: Any, api_key: str, request: web.Request) -> dict[str, Any]:
        return self._batch_envelope([self._cancel(params, api_key)])

    def _cancel_batch(self, params: Any, api_key: str, request: web.Request) -> dict[str, Any]:
        items = params if isinstance(params, list) else [params]
        if not items or len(items) > BATCH_MAX:
            raise OkxError(PARAMETER_ERROR, f"Parameter error: 1 to {BATCH_MAX} orders a request")
        return self._batch_envelope([self._cancel(p, api_key) for p in items])

    # --- lists --------------------------------------------------------------------------------------

    def _market_filter(self, params: dict[str, Any]) -> str | None:
        spec = self.spec_for(params.get("instId"), required=False)
        return spec.symbol if spec is not None else None

    @staticmethod
    def _page(items: list[Any], key: Any, params: dict[str, Any], limit: int) -> list[Any]:
        """Newest first; ``after`` (an id) asks for older items, ``before`` for newer ones."""
        after, before = int_param(params, "after"), int_param(params, "before")
        if after is not None:
            items = [i for i in items if key(i) < after]
        if before is not None:
            items = [i for i in items if key(i) > before]
        return items[:limit]

    def _orders_pending(self, params: Any, api_key: str, request: web.Request) -> list[dict[str, object]]:
        if not self._spot_only(params):
            return []
        orders = self.engine.open_orders(api_key, self._market_filter(params))
        orders = [o for o in orders if self._type_matches(o, params.get("ordType"))]
        if params.get("state"):
            orders = [o for o in orders if self.record(o)["state"] == params["state"]]
        orders.sort(key=lambda o: o.order_id, reverse=True)
        return [self.record(o) for o in self._page(orders, lambda o: o.order_id, params, limit_param(params, 100, 100))]

    def _type_matches(self, order: Order, wanted: object) -> bool:
        if not wanted:
            return True
        return self.record(order)["ordType"] in str(wanted).split(",")

    def _window(self, params: dict[str, Any], days: int) -> tuple[int, int]:
        """``begin`` / ``end`` (ms) within the endpoint's reach of ``days`` before now."""
        now = self.engine.now()
        begin, end = int_param(params, "begin"), int_param(params, "end")
        oldest = now - days * DAY_MS
        return max(begin if begin is not None else oldest, oldest), end if end is not None else now

    def _orders_history(self, days: int) -> Any:
        def handler(params: Any, api_key: str, request: web.Request) -> list[dict[str, object]]:
            if not self._spot_only(params, required=True):
                return []
            begin, end = self._window(params, days)
            orders = [
                o
                for o in self.engine.all_orders(api_key, self._market_filter(params), limit=_ALL)
                if not o.status.is_open and begin <= o.updated_time <= end
            ]
            records = [(o, self.record(o)) for o in orders if self._type_matches(o, params.get("ordType"))]
            if params.get("state"):
                records = [(o, r) for o, r in records if r["state"] == params["state"]]
            records.sort(key=lambda pair: pair[0].order_id, reverse=True)
            page = self._page(records, lambda pair: pair[0].order_id, params, limit_param(params, 100, 100))
            return [r for _, r in page]

        return handler

    def _fills(self, days: int) -> Any:
        def handler(params: Any, api_key: str, request: web.Request) -> list[dict[str, object]]:
            if not self._spot_only(params, required=days > 3):
                return []
            symbol = self._market_filter(params)
            begin, end = self._window(params, days)
            order_id = int_param(params, "ordId")
            fills = self.engine.fills(api_key, symbol, order_id=order_id, start=begin, end=end, limit=_ALL)
            fills.sort(key=lambda f: f.trade_id, reverse=True)
            page = self._page(fills, lambda f: f.trade_id, params, limit_param(params, 100, 100))
            return [self.fill_record(f) for f in page]

        return handler

    def fill_record(self, fill: Fill) -> dict[str, object]:
        return fill_record(fill, self.engine.markets.get(fill.symbol), self.inst_id_of(fill.symbol))
