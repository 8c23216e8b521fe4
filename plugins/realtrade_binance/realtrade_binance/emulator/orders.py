"""Order endpoints of the Binance emulator dialect: orders, OCO order lists, open orders and trades.

Placement checks what Binance checks before an order reaches the book (types and their
mandatory parameters, ``newClientOrderId``, ``newOrderRespType``, PERCENT_PRICE_BY_SIDE, the
open-order and algo-order caps) and answers ACK, RESULT or FULL; the engine matches. An OCO list
pairs a LIMIT_MAKER with a stop loss; when one leg trades or triggers the other expires.
"""

from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aiohttp import web

from realtrade_core.emulator.model import (
    EngineError,
    MarketSpec,
    Order,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

from .rest import ALL_ROWS, API, SIGNED, BinanceRest, weight_by_symbol
from .wire import (
    CLIENT_ORDER_ID_LEGAL,
    CLIENT_ORDER_ID_RE,
    MAX_NUM_ALGO_ORDERS,
    MAX_NUM_ORDER_LISTS,
    MAX_NUM_ORDERS,
    MAX_PRICE,
    NO_SUCH_ORDER,
    NO_SUCH_ORDER_LIST,
    OCO_BAD_PRICES,
    PERCENT_PRICE_BY_SIDE,
    UNKNOWN_ORDER,
    UNSUPPORTED_COMBINATION,
    BinanceError,
    OrderList,
    OrderMeta,
    engine_error,
    fmt,
    illegal,
    mandatory,
    my_trade,
    new_client_order_id,
    not_required,
    order_ack,
    order_cancel,
    order_full,
    order_list_body,
    order_query,
    order_result,
    parse_decimal,
    parse_int,
    parse_limit,
)

log = logging.getLogger(__name__)

_ENGINE_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP_MARKET,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT": OrderType.STOP_MARKET,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}
#: Types reported under their own name (the engine knows them as a limit or a stop).
_NAMED_TYPES = frozenset({"LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_TAKE_PROFIT_TYPES = frozenset({"TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_NEEDS_TIF = frozenset({"LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
_NEEDS_PRICE = frozenset({"LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"})
_NEEDS_STOP = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_RESP_TYPES = ("ACK", "RESULT", "FULL")
_STOP_LOSS_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT"})
#: Leg types Binance accepts in an OCO; the emulator pairs a LIMIT_MAKER with a stop loss only.
_OCO_LEG_TYPES = frozenset({"LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_OCO_UNSUPPORTED = ("IcebergQty", "TrailingDelta", "PegPriceType", "PegOffsetType", "PegOffsetValue")


class BinanceOrders(BinanceRest):
    """The order endpoints; mixed into :class:`~realtrade_binance.emulator.BinanceDialect`."""

    def order_routes(self) -> list[web.RouteDef]:
        e = self._endpoint
        return [
            web.post(API + "/order", e(self._new_order, 1, SIGNED, orders=1)),
            web.post(API + "/orderList/oco", e(self._new_oco, 1, SIGNED, orders=2)),
            web.get(API + "/orderList", e(self._get_order_list, 4, SIGNED)),
            web.delete(API + "/orderList", e(self._cancel_order_list, 1, SIGNED)),
            web.get(API + "/openOrderList", e(self._open_order_lists, 6, SIGNED)),
            web.post(API + "/order/test", e(self._test_order, 1, SIGNED)),
            web.get(API + "/order", e(self._get_order, 4, SIGNED)),
            web.delete(API + "/order", e(self._cancel_order, 1, SIGNED)),
            web.get(API + "/openOrders", e(self._open_orders, weight_by_symbol(6, 80), SIGNED)),
            web.delete(API + "/openOrders", e(self._cancel_all, 1, SIGNED)),
            web.get(API + "/allOrders", e(self._all_orders, 20, SIGNED)),
            web.get(API + "/myTrades", e(self._my_trades, 20, SIGNED)),
        ]

    # --- orders ---------------------------------------------------------------------------------

    def _order_request(self, params: dict[str, str], api_key: str) -> dict[str, Any]:
        """Validate a new order as Binance does; returns the engine's arguments and the extras."""
        symbol = self._symbol(params)
        assert symbol is not None
        spec = self.engine.market(symbol)
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        kind = params.get("type")
        if not kind:
            raise mandatory("type")
        if kind not in _ENGINE_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        tif = params.get("timeInForce") or None
        quantity = parse_decimal(params, "quantity")
        quote_qty = parse_decimal(params, "quoteOrderQty")
        price = parse_decimal(params, "price")
        stop = parse_decimal(params, "stopPrice")
        for unsupported in ("icebergQty", "trailingDelta"):
            if params.get(unsupported) not in (None, "", "0"):
                raise not_required(unsupported)

        if kind in _NEEDS_TIF:
            if tif is None:
                raise mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(-1115, "Invalid timeInForce.")
        elif tif is not None:
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        if kind in _NEEDS_PRICE:
            if price is None:
                raise mandatory("price")
        elif price is not None:
            raise not_required("price")
        if kind in _NEEDS_STOP:
            if stop is None:
                raise mandatory("stopPrice")
        elif stop is not None:
            raise not_required("stopPrice")
        if kind == "MARKET":
            if quantity is None and quote_qty is None:
                raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if quantity is not None and quote_qty is not None:
                raise not_required("quoteOrderQty")
        else:
            if quote_qty is not None:
                raise not_required("quoteOrderQty")
            if quantity is None:
                raise mandatory("quantity")
        for value in (price, stop):
            if value is not None and not spec.tick_size <= value <= MAX_PRICE:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        self._check_percent_price(symbol, side, price)

        client_id = params.get("newClientOrderId") or None
        if client_id is not None and not CLIENT_ORDER_ID_RE.match(client_id):
            raise illegal("newClientOrderId", CLIENT_ORDER_ID_LEGAL)
        resp_type = params.get("newOrderRespType") or ("FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        if resp_type not in _RESP_TYPES:
            raise illegal("newOrderRespType", ", ".join(_RESP_TYPES))

        last = self.engine.last_price(symbol)
        if quote_qty is not None:
            quantity = self._quantity_for(spec, quote_qty, last)
        if kind == "LIMIT_MAKER":
            assert price is not None
            # The engine's own rule for "marketable on arrival" decides what would take.
            if (price >= last) if side == "BUY" else (price <= last):
                raise BinanceError(-2010, "Order would immediately match and take.")
        assert quantity is not None
        # Only an order that can rest adds to the open orders (a MARKET, IOC or FOK order cannot).
        rests = kind != "MARKET" and tif not in ("IOC", "FOK")
        self._check_open_limits(api_key, symbol, orders=int(rests), algo=1 if kind in _NEEDS_STOP else 0)
        return {
            "symbol": symbol,
            "side": Side.BUY if side == "BUY" else Side.SELL,
            "type": _ENGINE_TYPES[kind],
            "amount": quantity,
            "price": price,
            "stop_price": stop,
            # A take-profit fires when the price moves in the order's favour: a SELL on a rise
            # to stopPrice, a BUY on a fall (a stop loss the other way round, the engine's default).
            "trigger_above": (side == "SELL") if kind in _TAKE_PROFIT_TYPES else None,
            "time_in_force": TimeInForce(tif) if tif else TimeInForce.GTC,
            "client_order_id": client_id or new_client_order_id(),
            "kind": kind,
            "resp_type": resp_type,
            "meta": OrderMeta(kind if kind in _NAMED_TYPES else None, quote_qty),
            "spec": spec,
            "last": last,
        }

    def _check_percent_price(self, symbol: str, side: str, price: Decimal | None) -> None:
        """PERCENT_PRICE_BY_SIDE: a limit price within the multipliers of the average price (here
        the last price, as ``avgPrice`` answers)."""
        if price is None:
            return
        average = self.engine.last_price(symbol)
        prefix = "bid" if side == "BUY" else "ask"
        low = average * PERCENT_PRICE_BY_SIDE[prefix + "MultiplierDown"]
        high = average * PERCENT_PRICE_BY_SIDE[prefix + "MultiplierUp"]
        if not low <= price <= high:
            raise BinanceError(-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")

    def _check_open_limits(self, api_key: str, symbol: str, *, orders: int, algo: int, lists: int = 0) -> None:
        """MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS / MAX_NUM_ORDER_LISTS for ``orders`` more open
        orders (``algo`` of them stops or take-profits) and ``lists`` more order lists."""
        open_orders = self.engine.open_orders(api_key, symbol)
        # Binance answers these account-state filters as a rejected order (-2010), unlike the
        # -1013 of filters on the request itself.
        if orders and len(open_orders) + orders > MAX_NUM_ORDERS:
            raise BinanceError(-2010, "Filter failure: MAX_NUM_ORDERS")
        waiting = sum(1 for o in open_orders if o.stop_price is not None and not o.triggered)
        if algo and waiting + algo > MAX_NUM_ALGO_ORDERS:
            raise BinanceError(-2010, "Filter failure: MAX_NUM_ALGO_ORDERS")
        if lists:
            live = [ol for ol in list(self._order_lists.values()) if ol.account == api_key and ol.symbol == symbol]
            if sum(1 for ol in live if not ol.done) + lists > MAX_NUM_ORDER_LISTS:
                raise BinanceError(-2010, "Filter failure: MAX_NUM_ORDER_LISTS")

    @staticmethod
    def _quantity_for(spec: MarketSpec, quote_qty: Decimal, last: Decimal) -> Decimal:
        """A market order by quote amount: the base quantity it buys or sells at the last price,
        rounded down to the step (the engine fills market orders at the last price)."""
        if quote_qty < spec.min_notional:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        quantity = (quote_qty / last).quantize(spec.step_size, rounding=ROUND_DOWN)
        if quantity < spec.min_amount:
            raise BinanceError(-1013, "Filter failure: MARKET_LOT_SIZE")
        return quantity

    def _new_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        req = self._order_request(params, api_key)
        meta: OrderMeta = req["meta"]
        has_meta = meta.type_name is not None or meta.quote_order_qty is not None
        pending = (api_key, req["client_order_id"])
        if has_meta:
            self._pending_meta[pending] = meta
        try:
            order = self.engine.place_order(
                api_key,
                req["symbol"],
                req["side"],
                req["type"],
                req["amount"],
                price=req["price"],
                stop_price=req["stop_price"],
                time_in_force=req["time_in_force"],
                client_order_id=req["client_order_id"],
                trigger_above=req["trigger_above"],
            )
        except EngineError as exc:
            raise engine_error(exc.reason, exc.message, market=req["kind"] == "MARKET") from None
        finally:
            if has_meta:
                self._pending_meta.pop(pending, None)
        if has_meta:
            self._order_meta[order.order_id] = meta
        log.debug("order %d %s %s accepted", order.order_id, req["kind"], req["symbol"])
        transact = order.created_time
        if req["resp_type"] == "ACK":
            return order_ack(order, transact)
        if req["resp_type"] == "RESULT":
            return order_result(order, transact, meta if has_meta else None)
        return order_full(order, transact, meta if has_meta else None)

    def _test_order(self, params: dict[str, str], api_key: str | None) -> Any:
        """``POST /api/v3/order/test``: parameters and filters checked, nothing placed."""
        assert api_key is not None
        req = self._order_request(params, api_key)
        spec: MarketSpec = req["spec"]
        amount: Decimal = req["amount"]
        market = req["kind"] == "MARKET"
        for value in (req["price"], req["stop_price"]):
            if value is not None and value % spec.tick_size:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if amount % spec.step_size or not spec.min_amount <= amount <= spec.max_amount:
            raise engine_error(RejectReason.AMOUNT_PRECISION, "", market=market)
        reference = req["price"] or req["stop_price"] or req["last"]
        if amount * reference < spec.min_notional:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        if params.get("computeCommissionRates") == "true":
            rates = {"maker": fmt(spec.maker_fee), "taker": fmt(spec.taker_fee)}
            zero = {"maker": "0.00000000", "taker": "0.00000000"}
            return {
                "standardCommissionForOrder": rates,
                "specialCommissionForOrder": zero,
                "taxCommissionForOrder": zero,
                "discount": {
                    "enabledForAccount": False,
                    "enabledForSymbol": False,
                    "discountAsset": "BNB",
                    "discount": "0.00000000",
                },
            }
        return {}

    def _find_order(self, params: dict[str, str], api_key: str, not_found: tuple[int, str]) -> Order:
        symbol = self._symbol(params)
        order_id = parse_int(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        try:
            return self.engine.get_order(api_key, symbol, order_id=order_id, client_order_id=client_id)
        except EngineError as exc:
            if exc.reason is RejectReason.ORDER_NOT_FOUND:
                raise BinanceError(*not_found) from None
            raise engine_error(exc.reason, exc.message) from None

    def _get_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        order = self._find_order(params, api_key, NO_SUCH_ORDER)
        return order_query(order, self._meta(order))

    def _cancel_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        cancel_id = params.get("newClientOrderId") or None
        if cancel_id is not None and not CLIENT_ORDER_ID_RE.match(cancel_id):
            raise illegal("newClientOrderId", CLIENT_ORDER_ID_LEGAL)
        order = self._find_order(params, api_key, UNKNOWN_ORDER)
        return self._cancel(api_key, order, cancel_id or new_client_order_id())

    def _cancel(self, api_key: str, order: Order, cancel_id: str) -> dict[str, Any]:
        if not order.status.is_open:
            raise BinanceError(*UNKNOWN_ORDER)
        ids = {order.order_id: cancel_id}
        if order.list_id is not None:
            # Cancelling one leg of an OCO cancels the list: the other leg is reported cancelled
            # under a cancel id of its own.
            for order_id, _ in self._order_list(order).legs:
                ids.setdefault(order_id, new_client_order_id())
        self._cancel_ids.update(ids)
        try:
            canceled = self.engine.cancel_order(api_key, order.symbol, order_id=order.order_id)
        except EngineError:
            raise BinanceError(*UNKNOWN_ORDER) from None
        finally:
            for order_id in ids:
                self._cancel_ids.pop(order_id, None)
        return order_cancel(canceled, cancel_id, canceled.updated_time, self._meta(canceled))

    def _cancel_all(self, params: dict[str, str], api_key: str | None) -> Any:
        """Every open order of the symbol; an OCO is answered as its order list, as Binance does."""
        assert api_key is not None
        symbol = self._symbol(params)
        orders = self.engine.open_orders(api_key, symbol)
        if not orders:
            raise BinanceError(*UNKNOWN_ORDER)
        answers: list[dict[str, Any]] = []
        lists_done: set[int] = set()
        for order in orders:
            if order.list_id is None:
                answers.append(self._cancel(api_key, order, new_client_order_id()))
            elif order.list_id not in lists_done:
                lists_done.add(order.list_id)
                order_list = self._order_list(order)
                if order_list.done:  # a partly filled limit leg outlives its list
                    answers.append(self._cancel(api_key, order, new_client_order_id()))
                else:
                    answers.append(self._cancel_list(api_key, order_list))
        return answers

    # --- order lists (OCO) ------------------------------------------------------------------------

    def _oco_leg(self, params: dict[str, str], pos: str, spec: MarketSpec) -> dict[str, Any]:
        """One leg of an OCO request (``pos``: "above" or "below"), checked as Binance checks it."""
        kind = params.get(pos + "Type")
        if not kind:
            raise mandatory(pos + "Type")
        if kind not in _OCO_LEG_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        for suffix in _OCO_UNSUPPORTED:
            if params.get(pos + suffix) not in (None, "", "0"):
                raise not_required(pos + suffix)
        price = parse_decimal(params, pos + "Price")
        stop = parse_decimal(params, pos + "StopPrice")
        tif = params.get(pos + "TimeInForce") or None
        if kind in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            if tif is None:
                raise mandatory(pos + "TimeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(-1115, "Invalid timeInForce.")
            if tif != "GTC":  # the emulator's OCO stop-limit rests once triggered
                raise BinanceError(*UNSUPPORTED_COMBINATION)
        elif tif is not None:
            raise not_required(pos + "TimeInForce")
        if kind in _NEEDS_PRICE:
            if price is None:
                raise mandatory(pos + "Price")
        elif price is not None:
            raise not_required(pos + "Price")
        if kind in _NEEDS_STOP:
            if stop is None:
                raise mandatory(pos + "StopPrice")
        elif stop is not None:
            raise not_required(pos + "StopPrice")
        for value in (price, stop):
            if value is not None and not spec.tick_size <= value <= MAX_PRICE:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        client_id = params.get(pos + "ClientOrderId") or None
        if client_id is not None and not CLIENT_ORDER_ID_RE.match(client_id):
            raise illegal(pos + "ClientOrderId", CLIENT_ORDER_ID_LEGAL)
        return {"kind": kind, "price": price, "stop": stop, "client_id": client_id or new_client_order_id()}

    @staticmethod
    def _oco_error(exc: EngineError) -> BinanceError:
        """Binance's answer to an engine rejection of an OCO: a stop already crossed, or prices on
        the wrong sides of the last price, is Binance's OCO price-relationship error."""
        reason = exc.reason
        relationship = exc.message.lower().startswith("the relationship of the prices")
        if reason is RejectReason.WOULD_TRIGGER_IMMEDIATELY or (
            reason is RejectReason.INVALID_PARAMETER and relationship
        ):
            return BinanceError(*OCO_BAD_PRICES)
        return engine_error(reason, exc.message)

    def _new_oco(self, params: dict[str, str], api_key: str | None) -> Any:
        """``POST /api/v3/orderList/oco``: a LIMIT_MAKER and a STOP_LOSS / STOP_LOSS_LIMIT for one
        quantity. SELL: the LIMIT_MAKER above the last price (take-profit), the stop below; BUY:
        the stop above, the LIMIT_MAKER below. Other combinations are refused (-1014)."""
        assert api_key is not None
        symbol = self._symbol(params)
        assert symbol is not None
        spec = self.engine.market(symbol)
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        quantity = parse_decimal(params, "quantity", required=True)
        assert quantity is not None
        above = self._oco_leg(params, "above", spec)
        below = self._oco_leg(params, "below", spec)
        limit, stop = (above, below) if side == "SELL" else (below, above)
        if limit["kind"] != "LIMIT_MAKER" or stop["kind"] not in _STOP_LOSS_TYPES:
            raise BinanceError(*UNSUPPORTED_COMBINATION)
        for leg in (limit, stop):
            self._check_percent_price(symbol, side, leg["price"])
        self._check_open_limits(api_key, symbol, orders=2, algo=1, lists=1)
        list_client_id = params.get("listClientOrderId") or None
        if list_client_id is not None:
            if not CLIENT_ORDER_ID_RE.match(list_client_id):
                raise illegal("listClientOrderId", CLIENT_ORDER_ID_LEGAL)
            # Binance takes a listClientOrderId again only once its list is over.
            if any(
                ol.account == api_key and ol.client_id == list_client_id and not ol.done
                for ol in list(self._order_lists.values())
            ):
                raise BinanceError(-2010, "Duplicate order sent.")
        resp_type = params.get("newOrderRespType") or "FULL"
        if resp_type not in _RESP_TYPES:
            raise illegal("newOrderRespType", ", ".join(_RESP_TYPES))

        list_client_id = list_client_id or new_client_order_id()
        meta = OrderMeta("LIMIT_MAKER")
        keys = [(api_key, limit["client_id"]), (api_key, stop["client_id"])]
        for key in keys:
            self._pending_lists[key] = list_client_id
        self._pending_meta[keys[0]] = meta
        try:
            placed = self.engine.place_oco(
                api_key,
                symbol,
                Side.BUY if side == "BUY" else Side.SELL,
                quantity,
                limit_price=limit["price"],
                stop_price=stop["stop"],
                stop_limit_price=stop["price"],
                limit_client_order_id=limit["client_id"],
                stop_client_order_id=stop["client_id"],
            )
            self._order_meta[placed[0].order_id] = meta
        except EngineError as exc:
            raise self._oco_error(exc) from None
        finally:
            for key in keys:
                self._pending_lists.pop(key, None)
            self._pending_meta.pop(keys[0], None)
        order_list = self._order_list(placed[0])
        log.debug("order list %d (OCO %s %s) accepted", order_list.list_id, side, symbol)
        reports = []
        for order in sorted(placed, key=lambda o: o.order_id):
            order_meta = self._meta(order)
            if resp_type == "ACK":
                reports.append(order_ack(order, order.created_time))
            elif resp_type == "RESULT":
                reports.append(order_result(order, order.created_time, order_meta))
            else:
                reports.append(order_full(order, order.created_time, order_meta))
        return order_list_body(order_list, reports)

    def _find_order_list(
        self, params: dict[str, str], api_key: str, client_param: str, not_found: tuple[int, str]
    ) -> OrderList:
        """The account's order list named by ``orderListId`` or ``client_param``."""
        list_id = parse_int(params, "orderListId")
        client_id = params.get(client_param) or None
        if list_id is None and client_id is None:
            raise BinanceError(
                -1102, f"Param '{client_param}' or 'orderListId' must be sent, but both were empty/null!"
            )
        found: OrderList | None = None
        if list_id is not None:
            found = self._order_lists.get(list_id)
            if found is not None and client_id is not None and found.client_id != client_id:
                found = None
        else:
            for candidate in reversed(list(self._order_lists.values())):
                if candidate.account == api_key and candidate.client_id == client_id:
                    found = candidate
                    break
        if found is None or found.account != api_key:
            raise BinanceError(*not_found)
        return found

    def _cancel_list(self, api_key: str, order_list: OrderList) -> dict[str, Any]:
        """Cancel an OCO (the engine cancels both legs with either); answered as the list."""
        ids = {order_id: new_client_order_id() for order_id, _ in order_list.legs}
        symbol = order_list.symbol
        self._cancel_ids.update(ids)
        try:
            for order_id in ids:
                if self.engine.get_order(api_key, symbol, order_id=order_id).status.is_open:
                    self.engine.cancel_order(api_key, symbol, order_id=order_id)
                    break
            else:
                raise BinanceError(*UNKNOWN_ORDER)
        except EngineError:
            raise BinanceError(*UNKNOWN_ORDER) from None
        finally:
            for order_id in ids:
                self._cancel_ids.pop(order_id, None)
        orders = [self.engine.get_order(api_key, symbol, order_id=order_id) for order_id in ids]
        reports = [order_cancel(o, ids[o.order_id], o.updated_time, self._meta(o)) for o in orders]
        return order_list_body(order_list, reports)

    def _cancel_order_list(self, params: dict[str, str], api_key: str | None) -> Any:
        """``DELETE /api/v3/orderList``: cancel an OCO still executing."""
        assert api_key is not None
        symbol = self._symbol(params)
        cancel_id = params.get("newClientOrderId") or None
        if cancel_id is not None and not CLIENT_ORDER_ID_RE.match(cancel_id):
            raise illegal("newClientOrderId", CLIENT_ORDER_ID_LEGAL)
        order_list = self._find_order_list(params, api_key, "listClientOrderId", UNKNOWN_ORDER)
        if order_list.symbol != symbol or order_list.done:
            raise BinanceError(*UNKNOWN_ORDER)
        return self._cancel_list(api_key, order_list)

    def _get_order_list(self, params: dict[str, str], api_key: str | None) -> Any:
        """``GET /api/v3/orderList`` (by ``orderListId`` or ``origClientOrderId``)."""
        assert api_key is not None
        return order_list_body(self._find_order_list(params, api_key, "origClientOrderId", NO_SUCH_ORDER_LIST))

    def _open_order_lists(self, params: dict[str, str], api_key: str | None) -> Any:
        """``GET /api/v3/openOrderList``: the account's order lists still executing."""
        assert api_key is not None
        return [order_list_body(ol) for ol in list(self._order_lists.values()) if ol.account == api_key and not ol.done]

    def _open_orders(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._symbol(params, required=False)
        return [order_query(o, self._meta(o)) for o in self.engine.open_orders(api_key, symbol)]

    def _all_orders(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._symbol(params)
        order_id = parse_int(params, "orderId")
        start = parse_int(params, "startTime")
        end = parse_int(params, "endTime")
        limit = parse_limit(params, 500, 1000)
        orders = self.engine.all_orders(api_key, symbol, start=start, end=end, limit=ALL_ROWS)
        if order_id is not None:
            orders = [o for o in orders if o.order_id >= order_id][:limit]
        elif start is not None:
            orders = orders[:limit]
        else:
            orders = orders[-limit:]
        return [order_query(o, self._meta(o)) for o in orders]

    def _my_trades(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._symbol(params)
        order_id = parse_int(params, "orderId")
        start = parse_int(params, "startTime")
        end = parse_int(params, "endTime")
        from_id = parse_int(params, "fromId")
        limit = parse_limit(params, 500, 1000)
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        fills = self.engine.fills(api_key, symbol, order_id=order_id, start=start, end=end, limit=ALL_ROWS)
        if from_id is not None:
            fills = [f for f in fills if f.trade_id >= from_id][:limit]
        elif start is not None:
            fills = fills[:limit]
        else:
            fills = fills[-limit:]
        list_ids = {
            order_id: ol.list_id
            for ol in list(self._order_lists.values())
            if ol.account == api_key
            for order_id, _ in ol.legs
        }
        return [my_trade(f, list_ids.get(f.order_id, -1)) for f in fills]
