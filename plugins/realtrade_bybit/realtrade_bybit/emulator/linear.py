"""``category=linear`` half of the Bybit v5 emulator dialect: USDT perpetuals, REST and streams.

Serves the engine's contract markets (``MarketSpec(contract=True)``; positions, margin, funding
and liquidation are :mod:`realtrade_core.emulator.contracts`) on the same ``/v5`` endpoints as
spot, with ``category=linear``, the way unmodified ``ccxt.bybit`` calls them for ``BTC/USDT:USDT``:

- public: ``market/instruments-info``, ``market/kline``, ``market/mark-price-kline`` (the trade
  candles' prices: the engine keeps no mark history), ``market/tickers`` (``markPrice``,
  ``fundingRate``, ``nextFundingTime``), ``market/funding/history``;
- private: ``order/create`` (Market / Limit, GTC / IOC / FOK / PostOnly, ``reduceOnly``,
  conditional orders with ``triggerPrice`` and ``triggerDirection``), ``order/cancel``,
  ``order/cancel-all``, ``order/realtime``, ``order/history``, ``execution/list`` (``execType``
  Trade, BustTrade for a liquidation, Funding), ``position/list``, ``position/set-leverage``,
  ``position/switch-mode`` (an account in hedge mode refuses one-way
  orders; hedge-mode orders are not served), ``account/set-margin-mode`` (REGULAR_MARGIN /
  ISOLATED_MARGIN for the account's perpetuals), ``account/transaction-log``, and the wallet's
  USDT with its position and order margin, unrealised and realised profit.
  ``position/switch-isolated`` answers 100028, as for any unified account.

Streams: ``/v5/public/linear`` carries ``kline.*``, ``publicTrade.*``, ``orderbook.*`` and
``tickers.*`` (with the mark price and funding); on ``/v5/private`` the ``order``, ``execution``,
``position`` and ``wallet`` topics (and ``order.linear``, ``execution.linear``,
``position.linear``) report the account's perpetuals: fills, funding, liquidation.

A unified account is one wallet: perpetuals are margined in the account's USDT, which spot
shares. Error codes: 110007 (margin), 110017 (reduce-only), 110043 / 10001 (leverage),
110025 (position mode), 110001 (no such order), 110094 (order value), 3400045 (margin mode).
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from realtrade_core.emulator.model import (
    BalanceEvent,
    EngineError,
    EngineEvent,
    KlineEvent,
    MarkPriceEvent,
    Order,
    OrderEvent,
    OrderType,
    PositionEvent,
    RejectReason,
    Side,
    TimeInForce,
)

from .linear_wire import (
    LEVERAGE_NOT_MODIFIED,
    POSITION_MODE_NOT_MODIFIED,
    POSITION_MODE_OPEN,
    SET_MARGIN_MODE_FAILED,
    UTA_NOT_ALLOWED,
    contract_coin_fields,
    funding_execution,
    linear_error,
    linear_execution,
    linear_instrument,
    linear_order,
    linear_order_push,
    linear_position,
    linear_ticker_fields,
    mark_kline_row,
    transaction_row,
)
from .rest import BybitRest, int_param, limit_param
from .wire import (
    INTERVAL_CODES,
    INVALID_ORDER_TYPE,
    INVALID_SIDE,
    INVALID_TIF,
    ORDER_LINK_ID_RE,
    PARAMS_ERROR,
    BybitError,
    OrderExtra,
    dec,
    parse_decimal,
    wallet_account,
    wallet_coin,
)

if TYPE_CHECKING:
    from aiohttp import web

    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import ConnectionHub

log = logging.getLogger(__name__)

_ALL = 10**9
_SEVEN_DAYS_MS = 7 * 86_400_000


class BybitLinear(BybitRest):
    """The linear category; mixed into :class:`~realtrade_bybit.emulator.BybitDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        self._contracts = {s for s, spec in engine.markets.items() if spec.contract} if engine is not None else set()
        self._isolated_accounts: set[str] = set()  # accounts switched to ISOLATED_MARGIN
        self._hedge_accounts: set[str] = set()  # accounts switched to hedge mode (both sides)
        self._position_seq = 0

    def linear_routes(self) -> list[web.RouteDef]:
        from aiohttp import web

        w = self._wrap
        return [
            web.get("/v5/market/funding/history", w(self._funding_history)),
            web.get("/v5/market/mark-price-kline", w(self._mark_price_kline)),
            web.get("/v5/position/list", w(self._position_list, private=True)),
            web.post("/v5/position/set-leverage", w(self._set_leverage, private=True, rate_limited=True)),
            web.post("/v5/position/switch-isolated", w(self._switch_isolated, private=True)),
            web.post("/v5/position/switch-mode", w(self._switch_mode, private=True)),
            web.post("/v5/account/set-margin-mode", w(self._set_margin_mode, private=True)),
            web.get("/v5/account/transaction-log", w(self._transaction_log, private=True)),
            web.get("/v5/public/linear", self._public_stream),  # type: ignore[attr-defined]  # BybitStreams'
        ]

    # --- lookups ------------------------------------------------------------------------------

    def _linear_symbol(self, params: dict[str, Any], *, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise BybitError(PARAMS_ERROR, "params error: symbol is required")
            return None
        if str(symbol) not in self._contracts:
            raise BybitError(PARAMS_ERROR, "params error: symbol invalid")
        return str(symbol)

    def _linear_category(self, params: dict[str, Any]) -> None:
        category = params.get("category")
        if not category:
            raise BybitError(PARAMS_ERROR, "params error: category is required")
        if category != "linear":
            raise BybitError(PARAMS_ERROR, f"params error: category {category!r} is not served here (linear only)")

    @staticmethod
    def _engine_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EngineError as exc:
            raise linear_error(exc.reason, exc.message) from None

    # --- market data --------------------------------------------------------------------------

    def linear_instruments(self, params: dict[str, Any]) -> dict[str, Any]:
        markets = self.engine.markets
        specs = [markets[s] for s in sorted(self._contracts)]
        if params.get("symbol"):
            specs = [s for s in specs if s.symbol == params["symbol"]]
        if params.get("baseCoin"):
            specs = [s for s in specs if s.base == params["baseCoin"]]
        return {"category": "linear", "list": [linear_instrument(s) for s in specs], "nextPageCursor": ""}

    def linear_kline(self, params: dict[str, Any], code: str, limit: int) -> dict[str, Any]:
        symbol = self._linear_symbol(params)
        assert symbol is not None
        rows = self.kline_rows(symbol, code, int_param(params, "start"), int_param(params, "end"), limit)  # type: ignore[attr-defined]
        return {"symbol": symbol, "category": "linear", "list": rows}

    def _mark_price_kline(self, params: dict[str, Any]) -> dict[str, Any]:
        """Mark-price candles. The engine keeps no mark history (its mark price is the last price
        of the replayed path, see :mod:`~realtrade_core.emulator.contracts`), so these are the
        trade candles' prices: a mark price held by hand (``set_mark_price``) is not in them."""
        params = {"category": "linear", **params}  # Bybit's default category here
        self._linear_category(params)
        code = str(params.get("interval", ""))
        if code not in INTERVAL_CODES:
            raise BybitError(PARAMS_ERROR, f"params error: interval invalid, expected one of {list(INTERVAL_CODES)}")
        body = self.linear_kline(params, code, limit_param(params, 200, 1000))
        body["list"] = [mark_kline_row(r) for r in body["list"]]
        return body

    def linear_ticker(self, symbol: str, *, with_book: bool) -> dict[str, Any]:
        record = BybitRest.ticker_record(self, symbol, with_book=with_book)
        record.pop("usdIndexPrice", None)
        engine = self.engine
        record.update(linear_ticker_fields(engine.mark_price(symbol), engine.funding_rate(symbol),
                                           engine.next_funding_time))  # fmt: skip
        record["prevPrice1h"] = record["lastPrice"]
        return record

    def ticker_record(self, symbol: str, *, with_book: bool) -> dict[str, Any]:
        if symbol in self._contracts:
            return self.linear_ticker(symbol, with_book=with_book)
        return BybitRest.ticker_record(self, symbol, with_book=with_book)

    def linear_tickers(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        symbols = [symbol] if symbol else sorted(self._contracts)
        return {"category": "linear", "list": [self.linear_ticker(s, with_book=True) for s in symbols]}

    def _funding_history(self, params: dict[str, Any]) -> dict[str, Any]:
        self._linear_category(params)
        symbol = self._linear_symbol(params)
        assert symbol is not None
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        limit = limit_param(params, 200, 200)
        rows = [
            {"symbol": symbol, "fundingRate": dec(rate) if rate else "0", "fundingRateTimestamp": str(t)}
            for t, rate, _mark in self.engine.funding_history(symbol)
            if (start is None or t >= start) and (end is None or t <= end)
        ]
        rows.reverse()  # newest first
        return {"category": "linear", "list": rows[:limit]}

    # --- orders -------------------------------------------------------------------------------

    def linear_create(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params)
        assert symbol is not None
        side_text = params.get("side")
        if side_text not in ("Buy", "Sell"):
            raise BybitError(INVALID_SIDE, "Invalid side.")
        side = Side.BUY if side_text == "Buy" else Side.SELL
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise BybitError(INVALID_ORDER_TYPE, "Invalid orderType.")
        market = order_type == "Market"
        qty = parse_decimal(params.get("qty"), "qty")
        hedged = api_key in self._hedge_accounts
        if (str(params.get("positionIdx", 0) or 0) != "0") != hedged:
            raise BybitError(PARAMS_ERROR, "position idx not match position mode")
        if hedged:
            raise BybitError(PARAMS_ERROR, "params error: hedge-mode orders are not available: this emulator trades "
                                           "in one-way mode")  # fmt: skip
        if params.get("takeProfit") or params.get("stopLoss"):
            raise BybitError(PARAMS_ERROR, "params error: attached takeProfit/stopLoss is not supported")
        link_id = params.get("orderLinkId") or None
        if link_id is not None and not ORDER_LINK_ID_RE.match(str(link_id)):
            raise BybitError(PARAMS_ERROR, "params error: orderLinkId must be 1-36 characters of [A-Za-z0-9_-]")
        tif = params.get("timeInForce") or ("IOC" if market else "GTC")
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise BybitError(INVALID_TIF, "Invalid timeInForce.")
        price = None if market else parse_decimal(params.get("price"), "price")
        reduce_only = params.get("reduceOnly") in (True, "true", "True", 1, "1")
        close_on_trigger = params.get("closeOnTrigger") in (True, "true", "True", 1, "1")
        reduce_only = reduce_only or close_on_trigger
        trigger_text = params.get("triggerPrice")
        trigger = parse_decimal(trigger_text, "triggerPrice") if trigger_text not in (None, "", "0") else None
        above: bool | None = None
        if trigger is not None:
            direction = str(params.get("triggerDirection") or "")
            if direction not in ("1", "2"):
                raise BybitError(PARAMS_ERROR, "params error: triggerDirection is required for a conditional order")
            above = direction == "1"
            last = self.engine.last_price(symbol)
            if above and trigger <= last:
                raise BybitError(110092, f"expect Rising, but trigger_price[{dec(trigger)}] <= current[{dec(last)}]")
            if not above and trigger >= last:
                raise BybitError(110093, f"expect Falling, but trigger_price[{dec(trigger)}] >= current[{dec(last)}]")
        if tif == "PostOnly" and trigger is None:
            assert price is not None
            last = self.engine.last_price(symbol)
            if (side is Side.BUY and price >= last) or (side is Side.SELL and price <= last):
                raise BybitError(PARAMS_ERROR, "params error: a PostOnly order at this price would take liquidity")
        if trigger is not None:
            engine_type = OrderType.STOP_MARKET if market else OrderType.STOP_LIMIT
        else:
            engine_type = OrderType.MARKET if market else OrderType.LIMIT
        link = str(link_id) if link_id is not None else uuid.uuid4().hex
        if link_id is not None:
            try:
                self.engine.get_order(api_key, client_order_id=link)
            except EngineError:
                pass
            else:
                raise BybitError(110072, "OrderLinkedID is duplicate")
        key = (api_key, link)
        self._extras[key] = OrderExtra(dec(qty), "", tif, "StopOrder" if trigger is not None else "Order",
                                       base_price=dec(self.engine.last_price(symbol)))  # fmt: skip
        try:
            order = self._engine_call(
                self.engine.place_order, api_key, symbol, side, engine_type, qty, price=price, stop_price=trigger,
                time_in_force=TimeInForce(tif) if tif in ("IOC", "FOK") and not market else TimeInForce.GTC,
                client_order_id=link, trigger_above=above, reduce_only=reduce_only,
            )  # fmt: skip
        except BybitError:
            self._extras.pop(key, None)
            raise
        return {"orderId": str(order.order_id), "orderLinkId": order.client_order_id}

    def _linear_find(self, params: dict[str, Any], api_key: str, symbol: str | None) -> Order | None:
        kwargs: dict[str, Any] = {}
        if params.get("orderId"):
            try:
                kwargs["order_id"] = int(str(params["orderId"]))
            except ValueError:
                return None
        if params.get("orderLinkId"):
            kwargs["client_order_id"] = str(params["orderLinkId"])
        if not kwargs:
            return None
        try:
            order = self.engine.get_order(api_key, symbol, **kwargs)
        except EngineError:
            return None
        return order if order.symbol in self._contracts else None

    def linear_cancel(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params)
        if not params.get("orderId") and not params.get("orderLinkId"):
            raise BybitError(PARAMS_ERROR, "params error: orderId or orderLinkId is required")
        order = self._linear_find(params, api_key, symbol)
        if order is None or not order.status.is_open:
            raise BybitError(110001, "Order does not exist.")
        cancelled = self._cancel_by_user(api_key, order)  # type: ignore[attr-defined]  # BybitOrders'
        return {"orderId": str(cancelled.order_id), "orderLinkId": cancelled.client_order_id}

    def linear_cancel_all(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise BybitError(PARAMS_ERROR, "params error: symbol, baseCoin or settleCoin is required")
        wanted = str(params.get("orderFilter") or "")
        cancelled = []
        for order in sorted(self.engine.open_orders(api_key, symbol), key=lambda o: o.order_id):
            if order.symbol not in self._contracts:
                continue
            conditional = order.stop_price is not None and not order.triggered
            if (wanted == "StopOrder" and not conditional) or (wanted == "Order" and conditional):
                continue
            try:
                cancelled.append(self._cancel_by_user(api_key, order))  # type: ignore[attr-defined]
            except EngineError:
                continue
        return {"list": [{"orderId": str(o.order_id), "orderLinkId": o.client_order_id} for o in cancelled],
                "success": "1"}  # fmt: skip

    def _orders_page(self, orders: list[Order], params: dict[str, Any]) -> dict[str, Any]:
        order_filter = params.get("orderFilter")
        if order_filter == "StopOrder":
            orders = [o for o in orders if o.stop_price is not None and not o.triggered]
        elif order_filter == "Order":
            orders = [o for o in orders if o.stop_price is None or o.triggered]
        orders.sort(key=lambda o: o.order_id, reverse=True)
        limit = limit_param(params, 20, 50)
        return {
            "category": "linear",
            "list": [linear_order(o, self._extra(o)) for o in orders[:limit]],
            "nextPageCursor": "",
        }

    def linear_realtime(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._linear_find(params, api_key, symbol)
            return self._orders_page([found] if found is not None else [], params)
        orders = [o for o in self.engine.open_orders(api_key, symbol) if o.symbol in self._contracts]
        if int_param(params, "openOnly", 0) == 1:
            orders += [o for o in self.engine.all_orders(api_key, symbol, limit=_ALL)
                       if o.symbol in self._contracts and not o.status.is_open][-500:]  # fmt: skip
        return self._orders_page(orders, params)

    def linear_history(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._linear_find(params, api_key, symbol)
            return self._orders_page([found] if found is not None and not found.status.is_open else [], params)
        start, end = self._time_range(params)  # type: ignore[attr-defined]  # BybitOrders'
        orders = [
            o for o in self.engine.all_orders(api_key, symbol, limit=_ALL)
            if o.symbol in self._contracts and not o.status.is_open and start <= o.created_time <= end
        ]  # fmt: skip
        return self._orders_page(orders, params)

    def linear_executions(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        exec_type = params.get("execType") or None
        limit = limit_param(params, 50, 100)
        records: list[tuple[int, dict[str, Any]]] = []
        if exec_type in (None, "Trade", "BustTrade"):
            if params.get("orderId") or params.get("orderLinkId"):
                order = self._linear_find(params, api_key, symbol)
                fills = self.engine.fills(api_key, symbol, order_id=order.order_id, limit=_ALL) if order else []
            else:
                start, end = self._time_range(params)  # type: ignore[attr-defined]
                fills = self.engine.fills(api_key, symbol, start=start, end=end, limit=_ALL)
            markets = self.engine.markets
            for fill in fills:
                if fill.symbol not in self._contracts:
                    continue
                order = self.engine.get_order(api_key, fill.symbol, order_id=fill.order_id)
                record = linear_execution(fill, order, markets.get(fill.symbol), None)
                if exec_type is None or record["execType"] == exec_type:
                    records.append((fill.time, record))
        if exec_type in (None, "Funding"):
            start, end = self._time_range(params)  # type: ignore[attr-defined]
            for income in self.engine.incomes(api_key, symbol, "FUNDING_FEE", start=start, end=end, limit=_ALL):
                size, mark = self._funding_basis(income)
                records.append((income.time, funding_execution(income, size, mark)))
        records.sort(key=lambda pair: pair[0], reverse=True)
        return {"category": "linear", "list": [r for _, r in records[:limit]], "nextPageCursor": ""}

    def _funding_basis(self, income: Any) -> tuple[Decimal, Decimal]:
        """The position size and mark price a funding payment was computed from."""
        mark = next((m for t, _r, m in self.engine.funding_history(income.symbol) if t == income.time), Decimal(0))
        try:
            size = -income.amount / (mark * income.rate) if mark and income.rate else Decimal(0)
        except (InvalidOperation, ZeroDivisionError):
            size = Decimal(0)
        step = self.engine.markets[income.symbol].step_size
        return size.quantize(step) if size else size, mark

    # --- positions and account ----------------------------------------------------------------

    def _position_list(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        self._linear_category(params)
        symbol = self._linear_symbol(params, required=False)
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise BybitError(PARAMS_ERROR, "params error: symbol, baseCoin or settleCoin is required")
        positions = self.engine.positions(api_key, symbol)
        if symbol is None:
            positions = [p for p in positions if p.size]
        limit = limit_param(params, 20, 200)
        rows = [linear_position(p) for p in positions[:limit]]
        if api_key in self._hedge_accounts:  # flat (it switched with nothing open): one row a side
            rows = [{**row, "positionIdx": idx, "side": ""} for row in rows for idx in (1, 2)]
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def _set_leverage(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        self._linear_category(params)
        symbol = self._linear_symbol(params)
        assert symbol is not None
        buy, sell = str(params.get("buyLeverage") or ""), str(params.get("sellLeverage") or "")
        if not buy or not sell:
            raise BybitError(PARAMS_ERROR, "params error: buyLeverage and sellLeverage are required")
        if buy != sell:
            raise BybitError(PARAMS_ERROR, "params error: buy leverage must equal sell leverage in one-way mode")
        try:
            value = Decimal(buy)
        except InvalidOperation:
            raise BybitError(PARAMS_ERROR, "leverage invalid") from None
        if value != value.to_integral_value():
            raise BybitError(PARAMS_ERROR, "params error: the emulator takes whole leverage values")
        if int(value) == self.engine.leverage(api_key, symbol):
            raise BybitError(LEVERAGE_NOT_MODIFIED, "leverage not modified")
        self._engine_call(self.engine.set_leverage, api_key, symbol, int(value))
        return {}

    def _switch_isolated(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        raise BybitError(UTA_NOT_ALLOWED, "The API cannot be accessed by unified account users.")

    def _switch_mode(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        self._linear_category(params)
        mode = str(params.get("mode", ""))
        if mode not in ("0", "3"):
            raise BybitError(PARAMS_ERROR, "params error: mode must be 0 (one-way) or 3 (both sides)")
        hedge = mode == "3"
        if hedge == (api_key in self._hedge_accounts):
            raise BybitError(POSITION_MODE_NOT_MODIFIED, "Position mode is not modified")
        if any(p.size for p in self.engine.positions(api_key) if p.symbol in self._contracts) or any(
            o.symbol in self._contracts for o in self.engine.open_orders(api_key)
        ):
            raise BybitError(POSITION_MODE_OPEN, "Position mode cannot be switched with a position or an open order")
        (self._hedge_accounts.add if hedge else self._hedge_accounts.discard)(api_key)
        return {}

    def _set_margin_mode(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        mode = params.get("setMarginMode")
        if mode not in ("ISOLATED_MARGIN", "REGULAR_MARGIN", "PORTFOLIO_MARGIN"):
            raise BybitError(PARAMS_ERROR, "params error: setMarginMode invalid")
        if mode == "PORTFOLIO_MARGIN":
            raise BybitError(SET_MARGIN_MODE_FAILED, "Set margin mode failed")
        wanted = "isolated" if mode == "ISOLATED_MARGIN" else "cross"
        for symbol in sorted(self._contracts):
            if self.engine.margin_mode(api_key, symbol) == wanted:
                continue
            try:
                self.engine.set_margin_mode(api_key, symbol, wanted)
            except EngineError as exc:
                raise BybitError(SET_MARGIN_MODE_FAILED, f"Set margin mode failed: {exc.message}") from None
        if wanted == "isolated":
            self._isolated_accounts.add(api_key)
        else:
            self._isolated_accounts.discard(api_key)
        return {"reasons": []}

    def _transaction_log(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = params.get("category")
        if category not in (None, "", "linear"):
            return {"list": [], "nextPageCursor": ""}
        symbol = params.get("symbol") or None
        if symbol is not None and symbol not in self._contracts:
            return {"list": [], "nextPageCursor": ""}
        start, end = self._time_range(params)  # type: ignore[attr-defined]
        limit = limit_param(params, 20, 50)
        wanted = params.get("type") or None
        fills = {f.trade_id: f for f in self.engine.fills(api_key, symbol, limit=_ALL)}
        # A fill's profit and fee are one TRADE row; funding and liquidation rows stand alone.
        groups: list[list[Any]] = []
        for income in self.engine.incomes(api_key, symbol, start=start, end=end, limit=_ALL):
            last = groups[-1][-1] if groups else None
            if last is not None and income.trade_id is not None and last.trade_id == income.trade_id:
                groups[-1].append(income)
            else:
                groups.append([income])
        rows = []
        for flows in groups:
            trade_id = flows[0].trade_id
            row = transaction_row(flows, fills.get(trade_id) if trade_id is not None else None)
            if wanted is None or row["type"] == wanted:
                rows.append(row)
        rows.reverse()
        return {"list": rows[:limit], "nextPageCursor": ""}

    def wallet_coins(self, api_key: str, assets: set[str] | None = None) -> list[dict[str, Any]]:
        coins = BybitRest.wallet_coins(self, api_key, assets)
        if self._contracts:
            settle = {self.engine.markets[s].quote for s in self._contracts}
            balances = {b.asset: b for b in self.engine.balances(api_key)}
            for coin in coins:
                if coin["coin"] in settle and coin["coin"] in balances:
                    coin.update(self.linear_wallet_fields(api_key, balances[coin["coin"]]))
        return coins

    def linear_fee_rates(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._linear_symbol(params, required=False)
        markets = self.engine.markets
        symbols = [symbol] if symbol else sorted(self._contracts)
        return {"category": "linear", "list": [
            {"symbol": s, "takerFeeRate": dec(markets[s].taker_fee), "makerFeeRate": dec(markets[s].maker_fee)}
            for s in symbols]}  # fmt: skip

    def linear_wallet_fields(self, api_key: str, balance: Any) -> dict[str, Any]:
        """The settle coin's contract fields (position and order margin, profit) for the wallet."""
        positions = [p for p in self.engine.positions(api_key) if p.size]
        return contract_coin_fields(balance, positions)

    # --- streams ------------------------------------------------------------------------------

    def linear_event(self, event: EngineEvent) -> bool:
        """Publish a perpetual's event; True when ``event`` belonged to one."""
        hub = self.hub
        if isinstance(event, OrderEvent):
            order = event.order
            if order.symbol not in self._contracts:
                return False
            push = linear_order_push(order, self._extra(order), event.execution)
            for topic in ("order", "order.linear"):
                if hub.subscribers(topic):
                    self._private_push(topic, order.account, event.time, push)  # type: ignore[attr-defined]
            if event.fill is not None:
                record = linear_execution(event.fill, order, self.engine.markets.get(order.symbol),
                                          self.engine._mark(self.engine._markets[order.symbol]))  # fmt: skip
                record["category"] = "linear"
                for topic in ("execution", "execution.linear"):
                    if hub.subscribers(topic):
                        self._private_push(topic, order.account, event.time, record)  # type: ignore[attr-defined]
            return True
        if isinstance(event, PositionEvent):
            self._position_seq += 1
            for p in event.positions:
                item = linear_position(p, self._position_seq)
                item["category"] = "linear"
                for topic in ("position", "position.linear"):
                    if hub.subscribers(topic):
                        self._private_push(topic, event.account, event.time, item)  # type: ignore[attr-defined]
            for income in event.income:
                if income.kind == "FUNDING_FEE" and event.positions:
                    p = event.positions[0]
                    record = funding_execution(income, p.size, p.mark_price)
                    record["category"] = "linear"
                    for topic in ("execution", "execution.linear"):
                        if hub.subscribers(topic):
                            self._private_push(topic, event.account, event.time, record)  # type: ignore[attr-defined]
            self._push_wallet(event.account, event.balances, event.time)
            return True
        if isinstance(event, BalanceEvent) and self._contracts:
            # The wallet, its settle coin with the perpetuals' margins (an order placed or cancelled).
            self._push_wallet(event.account, event.balances, event.time)
            return True
        if isinstance(event, MarkPriceEvent):
            return True  # reported on the tickers topic with each trade
        if isinstance(event, KlineEvent):
            return False  # the kline topics are the same for spot and linear
        return False

    def _push_wallet(self, account: str, balances: Any, time_ms: int) -> None:
        if not self.hub.subscribers("wallet"):
            return
        settle = {self.engine.markets[s].quote for s in self._contracts}
        coins = []
        for balance in balances:
            coin = wallet_coin(balance, self._usd_price(balance.asset))
            if balance.asset in settle:
                coin.update(self.linear_wallet_fields(account, balance))
            coins.append(coin)
        self._private_push("wallet", account, time_ms, wallet_account(coins))  # type: ignore[attr-defined]

    def contract_order(self, order: Order) -> bool:
        return order.symbol in self._contracts


__all__ = ["BybitLinear", "RejectReason"]
