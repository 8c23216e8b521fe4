"""Order half of the Bybit v5 emulator's REST dialect: create, cancel, query orders and fills.

Spot category of a unified trading account. What Bybit reports about an order but the engine does
not model (the quantity as sent for ``marketUnit=quoteCoin``, ``PostOnly``) is kept per
``(account, orderLinkId)`` in :class:`~.wire.OrderExtra` records, written *before* the
engine sees the order so that the stream pushes emitted while it is placed already carry it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
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

from .rest import BybitRest, int_param, limit_param
from .wire import (
    DAY_MS,
    DUPLICATE_LINK_ID,
    EXPECT_FALLING,
    EXPECT_RISING,
    INVALID_ORDER_FILTER,
    INVALID_ORDER_TYPE,
    INVALID_SIDE,
    INVALID_TIF,
    MARKET_AMOUNT_DECIMALS,
    ORDER_LINK_ID_RE,
    ORDER_NOT_EXISTS,
    ORDER_VALUE_TOO_SMALL,
    PARAMS_ERROR,
    POST_ONLY_WOULD_TAKE,
    QTY_TOO_SMALL,
    TPSL_PRICE_REQUIRED,
    BybitError,
    OrderExtra,
    dec,
    execution_record,
    floor_to_step,
    is_multiple,
    order_record,
    parse_decimal,
    quote_precision,
)

log = logging.getLogger(__name__)

SEVEN_DAYS_MS = 7 * DAY_MS
#: Closed orders ``/v5/order/realtime`` still shows (Bybit keeps the recent 500 per category).
RECENT_CLOSED = 500
_ALL = 10**9  # "no limit" for engine queries; Bybit's own limits are applied afterwards
_CONDITIONAL_FILTERS = ("StopOrder", "tpslOrder")
#: ``orderFilter`` values Bybit documents for a spot cancel-all.
_CANCEL_ALL_FILTERS = ("Order", *_CONDITIONAL_FILTERS, "OcoOrder", "BidirectionalTpslOrder")


def _order_id_param(value: object) -> int | None:
    """An ``orderId`` as the engine's integer, or None when it cannot be one of ours."""
    try:
        return int(str(value))
    except ValueError:
        return None


def _is_untriggered_conditional(order: Order) -> bool:
    return order.stop_price is not None and not order.triggered


def _matches_filter(order: Order, order_filter: str | None) -> bool:
    """Bybit's spot ``orderFilter``: ``Order`` lists plain (or already fired) orders, ``StopOrder``
    and ``tpslOrder`` conditional orders still waiting for their trigger; absent lists all."""
    if not order_filter:
        return True
    if order_filter == "Order":
        return not _is_untriggered_conditional(order)
    if order_filter in _CONDITIONAL_FILTERS:
        return _is_untriggered_conditional(order)
    return False


def _page(items: list[Any], key: Callable[[Any], int], cursor: str | None, limit: int) -> tuple[list[Any], str]:
    """One page of ``items`` (newest first) after ``cursor``; returns it and the next cursor.

    The cursor is the key of the last item served, so new items arriving at the head of the list
    never shift later pages (Bybit's cursors are opaque too)."""
    if cursor:
        try:
            after = int(cursor)
        except ValueError:
            raise BybitError(PARAMS_ERROR, "params error: cursor invalid") from None
        items = [item for item in items if key(item) < after]
    page = items[:limit]
    next_cursor = str(key(page[-1])) if len(items) > limit else ""
    return page, next_cursor


@dataclass(frozen=True, slots=True)
class _CreateRequest:
    """A validated order request, in engine terms."""

    spec: MarketSpec
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    trigger: Decimal | None
    trigger_above: bool | None  # a conditional order fires on a rise to ``trigger`` (else a fall)
    lock_on_trigger: bool  # StopOrder: no funds held until it triggers
    time_in_force: TimeInForce
    link_id: str
    extra: OrderExtra


class BybitOrders(BybitRest):
    """The order endpoints of :class:`~realtrade_bybit.emulator.BybitDialect`."""

    def order_routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.post("/v5/order/create", w(self._order_create, private=True, rate_limited=True, places_order=True)),
            web.post("/v5/order/cancel", w(self._order_cancel, private=True, rate_limited=True)),
            web.post("/v5/order/cancel-all", w(self._order_cancel_all, private=True, rate_limited=True)),
            web.get("/v5/order/realtime", w(self._order_realtime, private=True)),
            web.get("/v5/order/history", w(self._order_history, private=True)),
            web.get("/v5/execution/list", w(self._execution_list, private=True)),
        ]

    def _parse_create(self, params: dict[str, Any], api_key: str) -> _CreateRequest:
        """Validate a ``/v5/order/create`` body the way Bybit spot does, before the engine sees it."""
        category = self._category(params)
        if category != "spot":
            raise BybitError(PARAMS_ERROR, f"params error: category {category!r} is not served (spot only)")
        spec = self._spot_market(params)
        assert spec is not None
        side_text = params.get("side")
        if side_text not in ("Buy", "Sell"):
            raise BybitError(INVALID_SIDE, "Invalid side.")
        side = Side.BUY if side_text == "Buy" else Side.SELL
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise BybitError(INVALID_ORDER_TYPE, "Invalid orderType.")
        market = order_type == "Market"
        qty = parse_decimal(params.get("qty"), "qty")
        link_id = params.get("orderLinkId") or None
        if link_id is not None and not ORDER_LINK_ID_RE.match(str(link_id)):
            raise BybitError(PARAMS_ERROR, "params error: orderLinkId must be 1-36 characters of [A-Za-z0-9_-]")
        if str(params.get("isLeverage", "0") or "0") != "0":
            raise BybitError(PARAMS_ERROR, "params error: isLeverage=1 (spot margin) is not supported by the emulator")
        if params.get("takeProfit") or params.get("stopLoss"):
            raise BybitError(PARAMS_ERROR, "params error: attached takeProfit/stopLoss is not supported")
        trigger, order_filter = self._trigger(params)
        tif = params.get("timeInForce") or "GTC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise BybitError(INVALID_TIF, "Invalid timeInForce.")
        price = None if market else parse_decimal(params.get("price"), "price")
        amount, market_unit = qty, ""
        if market:
            # Bybit's default unit of a spot market order: quote coin to buy, base coin to sell.
            market_unit = params.get("marketUnit") or ("quoteCoin" if side is Side.BUY else "baseCoin")
            if market_unit not in ("baseCoin", "quoteCoin"):
                raise BybitError(PARAMS_ERROR, "params error: marketUnit must be baseCoin or quoteCoin")
            if market_unit == "quoteCoin":
                amount = self._base_amount(spec, qty, trigger)
            tif = "IOC"  # Bybit runs every spot market order as IOC
        if link_id is not None:
            self._reject_duplicate(api_key, str(link_id))
        if tif == "PostOnly" and trigger is None:
            assert price is not None
            last = self.engine.last_price(spec.symbol)
            if (side is Side.BUY and price >= last) or (side is Side.SELL and price <= last):
                raise BybitError(POST_ONLY_WOULD_TAKE, "The LIMIT-MAKER order is rejected due to invalid price.")
        trigger_above: bool | None = None
        if trigger is not None:
            engine_type = OrderType.STOP_MARKET if market else OrderType.STOP_LIMIT
            trigger_above = self._trigger_direction(params, spec, side, trigger)
        else:
            engine_type = OrderType.MARKET if market else OrderType.LIMIT
        return _CreateRequest(
            spec=spec,
            side=side,
            type=engine_type,
            amount=amount,
            price=price,
            trigger=trigger,
            trigger_above=trigger_above,
            lock_on_trigger=order_filter == "StopOrder",
            # PostOnly rests as GTC once checked above; a market order's IOC is the engine's rule.
            time_in_force=TimeInForce(tif) if tif in ("IOC", "FOK") and not market else TimeInForce.GTC,
            link_id=str(link_id) if link_id is not None else uuid.uuid4().hex,
            extra=OrderExtra(
                dec(qty), market_unit, tif, order_filter, base_price=dec(self.engine.last_price(spec.symbol))
            ),
        )

    @staticmethod
    def _trigger(params: dict[str, Any]) -> tuple[Decimal | None, str]:
        """The trigger price of a conditional order (``orderFilter`` StopOrder/tpslOrder) or None,
        and the order filter."""
        order_filter = str(params.get("orderFilter") or "Order")
        if order_filter not in ("Order", *_CONDITIONAL_FILTERS):
            raise BybitError(INVALID_ORDER_FILTER, "Invalid orderFilter parameter.")
        text = params.get("triggerPrice")
        trigger = parse_decimal(text, "triggerPrice") if text not in (None, "") else None
        if trigger is not None and order_filter == "Order":
            raise BybitError(INVALID_ORDER_FILTER, "Invalid orderFilter parameter: triggerPrice needs StopOrder.")
        if trigger is None and order_filter != "Order":
            raise BybitError(TPSL_PRICE_REQUIRED, "Please enter the TP/SL price.")
        return trigger, order_filter

    def _trigger_direction(self, params: dict[str, Any], spec: MarketSpec, side: Side, trigger: Decimal) -> bool:
        """Whether a spot conditional order fires on a rise (True) or a fall (False).

        Bybit spot decides it from where the trigger lies against the last price when the order
        is placed: above fires on a rise to it, below on a fall. A trigger at the last price
        would fire at once and is refused; a ``triggerDirection`` the client sends anyway must
        agree with the trigger's side of the market.
        """
        direction = params.get("triggerDirection")
        requested: bool | None = None
        if direction not in (None, "", 0, "0"):
            if str(direction) not in ("1", "2"):
                raise BybitError(PARAMS_ERROR, "params error: triggerDirection must be 1 (rise) or 2 (fall)")
            requested = str(direction) == "1"
        last = self.engine.last_price(spec.symbol)
        if trigger == last:
            rising = requested if requested is not None else side is Side.BUY
            raise self._crossed(rising, trigger, last)
        above = trigger > last
        if requested is not None and requested != above:
            where = "above" if above else "below"
            raise BybitError(
                PARAMS_ERROR,
                f"params error: triggerDirection {direction} contradicts triggerPrice {dec(trigger)}, which is "
                f"{where} the last price {dec(last)}",
            )
        return above

    def _order_create(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        if params.get("category") == "linear":
            return self.linear_create(params, api_key)  # type: ignore[attr-defined]  # BybitLinear's
        request = self._parse_create(params, api_key)
        key = (api_key, request.link_id)
        self._extras[key] = request.extra
        try:
            order = self.engine.place_order(
                api_key,
                request.spec.symbol,
                request.side,
                request.type,
                request.amount,
                price=request.price,
                stop_price=request.trigger,
                time_in_force=request.time_in_force,
                client_order_id=request.link_id,
                trigger_above=request.trigger_above,
                lock_on_trigger=request.lock_on_trigger,
            )
        except EngineError as exc:
            self._extras.pop(key, None)
            if exc.reason is RejectReason.WOULD_TRIGGER_IMMEDIATELY:
                raise self._already_crossed(request) from None
            raise
        log.debug("bybit emulator: order %s (%s) accepted for %s", order.order_id, request.link_id, order.symbol)
        return {"orderId": str(order.order_id), "orderLinkId": order.client_order_id}

    def _already_crossed(self, request: _CreateRequest) -> BybitError:
        """Bybit's answer to a conditional order whose trigger the last price passed meanwhile."""
        assert request.trigger is not None
        rising = request.trigger_above if request.trigger_above is not None else request.side is Side.BUY
        return self._crossed(rising, request.trigger, self.engine.last_price(request.spec.symbol))

    @staticmethod
    def _crossed(rising: bool, trigger: Decimal, last: Decimal) -> BybitError:
        """Bybit's refusal of a trigger the last price has reached (110092 rising, 110093 falling)."""
        price, current = dec(trigger), dec(last)
        if rising:
            return BybitError(EXPECT_RISING, f"expect Rising, but trigger_price[{price}] <= current[{current}]")
        return BybitError(EXPECT_FALLING, f"expect Falling, but trigger_price[{price}] >= current[{current}]")

    def _base_amount(self, spec: MarketSpec, quote_qty: Decimal, trigger: Decimal | None) -> Decimal:
        """The base amount the engine executes for a ``marketUnit=quoteCoin`` market order.

        The engine trades base amounts: the quote amount is converted at the last price (the
        trigger price for a conditional order) and rounded down to the step size, so the order
        never spends more than the client asked for.
        """
        if not is_multiple(quote_qty, quote_precision(spec)):
            raise BybitError(MARKET_AMOUNT_DECIMALS, "Market order amount decimal too long.")
        if quote_qty < spec.min_notional:
            raise BybitError(ORDER_VALUE_TOO_SMALL, "Order value exceeded lower limit.")
        reference = trigger if trigger is not None else self.engine.last_price(spec.symbol)
        amount = floor_to_step(quote_qty / reference, spec.step_size)
        if amount <= 0:
            raise BybitError(QTY_TOO_SMALL, "Order quantity lower than the minimum.")
        return amount

    def _reject_duplicate(self, api_key: str, link_id: str) -> None:
        """Bybit refuses an orderLinkId already used by any order of the account, open or not."""
        try:
            self.engine.get_order(api_key, client_order_id=link_id)
        except EngineError as exc:
            if exc.reason is RejectReason.ORDER_NOT_FOUND:
                return
            raise
        raise BybitError(DUPLICATE_LINK_ID, "Duplicate clientOrderId.")

    def _find_order(self, params: dict[str, Any], api_key: str, symbol: str | None) -> Order | None:
        """The order named by ``orderId`` / ``orderLinkId``, or None if the account has none such."""
        order_id = params.get("orderId") or None
        link_id = params.get("orderLinkId") or None
        kwargs: dict[str, Any] = {}
        if order_id is not None:
            parsed = _order_id_param(order_id)
            if parsed is None:
                return None
            kwargs["order_id"] = parsed
        if link_id is not None:
            kwargs["client_order_id"] = str(link_id)
        try:
            return self.engine.get_order(api_key, symbol, **kwargs)
        except EngineError as exc:
            if exc.reason in (RejectReason.ORDER_NOT_FOUND, RejectReason.UNKNOWN_SYMBOL):
                return None
            raise

    def _order_cancel(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_cancel(params, api_key)  # type: ignore[attr-defined]
        if category != "spot":
            raise BybitError(PARAMS_ERROR, f"params error: category {category!r} is not served (spot only)")
        spec = self._spot_market(params)
        assert spec is not None
        if not params.get("orderId") and not params.get("orderLinkId"):
            raise BybitError(PARAMS_ERROR, "params error: orderId or orderLinkId is required")
        order_filter = params.get("orderFilter") or "Order"
        order = self._find_order(params, api_key, spec.symbol)
        # As on Bybit spot, a conditional order waiting for its trigger is only found with
        # orderFilter=StopOrder (ccxt: params={"trigger": True}), a plain one only without it.
        if order is None or not order.status.is_open or not _matches_filter(order, order_filter):
            raise BybitError(ORDER_NOT_EXISTS, "Order does not exist.")
        cancelled = self._cancel_by_user(api_key, order)
        return {"orderId": str(cancelled.order_id), "orderLinkId": cancelled.client_order_id}

    def _order_cancel_all(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        """``POST /v5/order/cancel-all``, spot: the open orders of ``symbol`` (else of ``baseCoin``,
        else every spot order) of one kind, ``orderFilter``: ``Order`` (the default: plain orders
        and conditional orders that already fired), ``StopOrder`` or ``tpslOrder`` (conditional
        orders still waiting, placed with that filter); ``OcoOrder`` and ``BidirectionalTpslOrder``
        orders do not exist here, so they cancel nothing. Answers the cancelled orders' ids."""
        category = self._category(params)
        order_filter = str(params.get("orderFilter") or "Order")
        if category == "linear":
            return self.linear_cancel_all(params, api_key)  # type: ignore[attr-defined]
        if category != "spot":
            return {"list": [], "success": "1"}  # the emulator has no contract orders
        if order_filter not in _CANCEL_ALL_FILTERS:
            raise BybitError(INVALID_ORDER_FILTER, "Invalid orderFilter parameter.")
        spec = self._spot_market(params, required=False)
        if spec is None and not params.get("baseCoin") and params.get("settleCoin"):
            raise BybitError(PARAMS_ERROR, "params error: settleCoin is not supported for spot")
        orders = self.engine.open_orders(api_key, spec.symbol if spec is not None else None)
        if spec is None and params.get("baseCoin"):
            markets = self.engine.markets
            orders = [o for o in orders if markets[o.symbol].base == params["baseCoin"]]
        cancelled = []
        for order in sorted(orders, key=lambda o: o.order_id):
            if self._kind(order) != order_filter:
                continue
            try:
                cancelled.append(self._cancel_by_user(api_key, order))
            except EngineError:
                continue  # it filled or was cancelled meanwhile: nothing left to cancel
        return {
            "list": [{"orderId": str(o.order_id), "orderLinkId": o.client_order_id} for o in cancelled],
            "success": "1",
        }

    def _kind(self, order: Order) -> str:
        """The ``orderFilter`` an open order answers to: ``Order`` unless it is a conditional order
        still waiting for its trigger, which answers to the filter it was placed with."""
        if not _is_untriggered_conditional(order):
            return "Order"
        extra = self._extra(order)
        return extra.order_filter if extra is not None else "StopOrder"

    def _cancel_by_user(self, api_key: str, order: Order) -> Order:
        """Cancel ``order`` at the client's request (a conditional order ends Deactivated)."""
        key = (api_key, order.client_order_id)
        extra = self._extras.get(key)
        if extra is not None:
            # Marked before the engine emits the cancellation, so its push already says so.
            self._extras[key] = replace(extra, cancel_by_user=True)
        try:
            return self.engine.cancel_order(api_key, order.symbol, order_id=order.order_id)
        except EngineError:
            if extra is not None:
                self._extras[key] = extra  # it closed otherwise meanwhile
            raise

    def _order_realtime(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_realtime(params, api_key)  # type: ignore[attr-defined]
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        spec = self._spot_market(params, required=False)
        symbol = spec.symbol if spec is not None else None
        limit = limit_param(params, 20, 50)
        orders: list[Order]
        if params.get("orderId") or params.get("orderLinkId"):
            # Bybit also finds a recent closed order when it is asked for by id.
            found = self._find_order(params, api_key, symbol)
            orders = [found] if found is not None else []
        else:
            orders = self.engine.open_orders(api_key, symbol)
            if int_param(params, "openOnly", 0) == 1:
                closed = [o for o in self.engine.all_orders(api_key, symbol, limit=_ALL) if not o.status.is_open]
                orders += closed[-RECENT_CLOSED:]
        if params.get("baseCoin"):
            markets = self.engine.markets
            orders = [o for o in orders if markets[o.symbol].base == params["baseCoin"]]
        orders = [o for o in orders if _matches_filter(o, params.get("orderFilter"))]
        orders.sort(key=lambda o: o.order_id, reverse=True)
        page, cursor = _page(orders, lambda o: o.order_id, params.get("cursor"), limit)
        return {
            "category": "spot",
            "list": [order_record(o, self._extra(o)) for o in page],
            "nextPageCursor": cursor,
        }

    def _time_range(self, params: dict[str, Any]) -> tuple[int, int]:
        """Bybit's history window: at most 7 days, the last 7 days when none is given."""
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        if start is None and end is None:
            end = self.engine.now()
            start = end - SEVEN_DAYS_MS
        elif start is None:
            assert end is not None
            start = end - SEVEN_DAYS_MS
        elif end is None:
            end = start + SEVEN_DAYS_MS
        if end < start:
            raise BybitError(PARAMS_ERROR, "params error: endTime must not be before startTime")
        if end - start > SEVEN_DAYS_MS:
            raise BybitError(PARAMS_ERROR, "params error: startTime and endTime must be at most 7 days apart")
        return start, end

    def _order_history(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_history(params, api_key)  # type: ignore[attr-defined]
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        spec = self._spot_market(params, required=False)
        symbol = spec.symbol if spec is not None else None
        limit = limit_param(params, 20, 50)
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._find_order(params, api_key, symbol)
            orders = [found] if found is not None and not found.status.is_open else []
        else:
            start, end = self._time_range(params)
            orders = [
                o
                for o in self.engine.all_orders(api_key, symbol, limit=_ALL)
                if not o.status.is_open and start <= o.created_time <= end
            ]
        orders = [o for o in orders if _matches_filter(o, params.get("orderFilter"))]
        wanted = {s for s in str(params.get("orderStatus", "")).split(",") if s}
        records = [(o, order_record(o, self._extra(o))) for o in orders]
        if wanted:
            records = [(o, r) for o, r in records if r["orderStatus"] in wanted]
        records.sort(key=lambda pair: pair[0].order_id, reverse=True)
        page, cursor = _page(records, lambda pair: pair[0].order_id, params.get("cursor"), limit)
        return {"category": "spot", "list": [r for _, r in page], "nextPageCursor": cursor}

    def _execution_list(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_executions(params, api_key)  # type: ignore[attr-defined]
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        spec = self._spot_market(params, required=False)
        symbol = spec.symbol if spec is not None else None
        limit = limit_param(params, 50, 100)
        exec_type = params.get("execType")
        if exec_type not in (None, "", "Trade"):
            return {"category": "spot", "list": [], "nextPageCursor": ""}  # the emulator only trades
        order_id: int | None = None
        if params.get("orderId") or params.get("orderLinkId"):
            order = self._find_order(params, api_key, symbol)
            if order is None:
                return {"category": "spot", "list": [], "nextPageCursor": ""}
            order_id = order.order_id
            fills = self.engine.fills(api_key, symbol, order_id=order_id, limit=_ALL)
        else:
            start, end = self._time_range(params)
            fills = self.engine.fills(api_key, symbol, start=start, end=end, limit=_ALL)
        fills = sorted(fills, key=lambda f: f.trade_id, reverse=True)
        page, cursor = _page(fills, lambda f: f.trade_id, params.get("cursor"), limit)
        return {"category": "spot", "list": self.execution_records(api_key, page), "nextPageCursor": cursor}

    def execution_records(self, api_key: str, fills: list[Fill]) -> list[dict[str, Any]]:
        orders: dict[int, Order | None] = {}
        markets = self.engine.markets
        records = []
        for fill in fills:
            if fill.order_id not in orders:
                try:
                    orders[fill.order_id] = self.engine.get_order(api_key, fill.symbol, order_id=fill.order_id)
                except EngineError:
                    orders[fill.order_id] = None
            records.append(execution_record(fill, orders[fill.order_id], markets.get(fill.symbol)))
        return records
