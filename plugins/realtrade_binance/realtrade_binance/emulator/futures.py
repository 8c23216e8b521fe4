"""Binance USDⓈ-M futures (``fapi``) half of the Binance emulator dialect: REST and streams.

Serves the USDT perpetuals of the engine (markets with ``contract=True``; the engine's
:mod:`~realtrade_core.emulator.contracts` keeps positions, margin, funding and liquidation) the
way unmodified ``ccxt.binanceusdm`` calls them:

- public: ``/fapi/v1/ping``, ``time``, ``exchangeInfo``, ``klines``, ``markPriceKlines`` (the
  trade candles' prices: the engine keeps no mark history), ``premiumIndex`` (mark
  price, funding rate, next funding time), ``fundingRate`` (history), ``ticker/price``,
  ``ticker/24hr``, ``depth``;
- SIGNED: ``/fapi/v1/order`` (POST, GET, DELETE; LIMIT and MARKET, ``reduceOnly``),
  ``/fapi/v1/algoOrder`` (POST, GET, DELETE: STOP_MARKET, TAKE_PROFIT_MARKET, STOP,
  TAKE_PROFIT with ``triggerPrice``; ``/fapi/v1/order`` answers them -4120 as Binance does),
  ``openOrders``, ``openOrder``, ``allOrders``, ``openAlgoOrders``, ``allOpenOrders`` (DELETE),
  ``userTrades``, ``/fapi/v2|v3/balance``, ``/fapi/v2|v3/account``, ``/fapi/v2|v3/positionRisk``,
  ``leverage``, ``marginType``, ``positionSide/dual`` (an account in hedge mode refuses one-way
  orders; hedge-mode orders are not served), ``income``,
  ``leverageBracket``, ``commissionRate``;
- ``/fapi/v1/listenKey`` (POST / PUT / DELETE with the API key header) for the user-data stream.

Streams live under ``/fstream`` (``fstream.binance.com``): ``/fstream/ws/<name>``,
``/fstream/stream?streams=a/b`` and the split routes ``/fstream/market/...``,
``/fstream/public/...``, ``/fstream/private/...``; SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS on
an open connection. Market streams: ``<symbol>@kline_<interval>`` (the replayed interval and its
multiples up to a day, folded from the replayed candles as ``/fapi/v1/klines`` folds them) and
``<symbol>@markPrice`` / ``@markPrice@1s`` (one update per price-path step). A listen key as a
stream name carries the account's ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE`` (reasons ``ORDER``,
``FUNDING_FEE``, ``INSURANCE_CLEAR``), ``ACCOUNT_CONFIG_UPDATE`` (leverage) and ``MARGIN_CALL``
events, unwrapped (wrapped as ``{"stream", "data"}`` on ``/stream``).

Not served: hedge-mode orders (``positionSide`` LONG / SHORT), trailing stops, ``closePosition``,
``priceMatch``, GTD, batch orders and order amendment. The futures wallet is the account's
USDT balance (one wallet with spot, which an emulator serving perpetuals does not trade).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.model import (
    EngineError,
    EngineEvent,
    KlineEvent,
    MarginCallEvent,
    MarkPriceEvent,
    Order,
    OrderEvent,
    OrderType,
    PositionEvent,
    RejectReason,
    Side,
    TimeInForce,
)

from .futures_wire import (
    ALGO_ONLY,
    CONDITIONAL_TYPES,
    HEDGE_ORDERS_UNAVAILABLE,
    INVALID_LISTEN_KEY,
    NO_NEED_POSITION_SIDE,
    ONE_WAY_ONLY,
    POSITION_SIDE_OPEN_ORDERS,
    POSITION_SIDE_POSITION,
    account_body,
    account_config_update,
    account_update,
    balance_row,
    fapi_error,
    futures_exchange_info,
    futures_order,
    futures_trade,
    futures_type,
    income_row,
    invalid_leverage,
    leverage_bracket,
    margin_call,
    mark_kline_row,
    mark_price_update,
    order_trade_update,
    position_risk_v2,
    position_risk_v3,
    premium_index,
)
from .rest import ALL_ROWS, SIGNED, BinanceRest
from .wire import (
    CLIENT_ORDER_ID_LEGAL,
    CLIENT_ORDER_ID_RE,
    INTERVALS,
    BinanceError,
    Interval,
    combined_text,
    empty_exchange_info,
    illegal,
    kline_event,
    kline_row,
    mandatory,
    new_client_order_id,
    parse_decimal,
    parse_int,
    parse_limit,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import Connection, ConnectionHub, TopicWatch

log = logging.getLogger(__name__)

FAPI = "/fapi/v1"
FSTREAM = "/fstream"
_TOPIC = "fapi:"  # hub topics of futures streams: "fapi:" + stream name (raw) ...
_COMBINED = "fapi|"  # ... and "fapi|" + stream name (wrapped for /stream)
_USER = "@user"  # the internal stream name suffix of a listen key
_TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class BinanceFutures(BinanceRest):
    """The ``fapi`` endpoints and ``fstream`` streams; mixed into the Binance dialect."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        self._contracts = {s for s, spec in engine.markets.items() if spec.contract} if engine is not None else set()
        self._listen_keys: dict[str, str] = {}  # listen key -> account
        self._keys_by_account: dict[str, str] = {}
        self._keys_lock = threading.Lock()
        self._hedge_accounts: set[str] = set()  # accounts switched to hedge (dual-side) position mode
        # Conditional orders placed through the algo service: order id -> (algo id, client algo id).
        self._algo_ids: dict[int, str] = {}
        # symbol -> its kline streams of every interval the source candles can make.
        self._f_kline_watch: dict[str, TopicWatch[tuple[str, Interval]]] = {}
        for symbol in self._contracts:
            low, source = symbol.lower(), engine.interval_ms(symbol)
            intervals = [iv for iv in INTERVALS.values() if not iv.offset and not iv.ms % source]
            streams = [(f"{low}@kline_{iv.name}", iv) for iv in intervals]
            self._f_kline_watch[symbol] = hub.watch(((s, iv), (_TOPIC + s, _COMBINED + s)) for s, iv in streams)

    # --- routing --------------------------------------------------------------------------------

    def futures_routes(self) -> list[web.RouteDef]:
        e, f = self._endpoint, self._futures
        routes = [
            web.get(FAPI + "/ping", e(lambda p, k: {}, 1)),
            web.get(FAPI + "/time", e(lambda p, k: {"serverTime": self.server_time()}, 1)),
            web.get(FAPI + "/exchangeInfo", e(f(self._f_exchange_info), 1)),
            web.get(FAPI + "/klines", e(f(self._f_klines), 5)),
            web.get(FAPI + "/markPriceKlines", e(f(self._f_mark_klines), 5)),
            web.get(FAPI + "/premiumIndex", e(f(self._f_premium_index), 1)),
            web.get(FAPI + "/fundingRate", e(f(self._f_funding_rate), 1)),
            web.get(FAPI + "/ticker/price", e(f(self._f_ticker_price), 1)),
            web.get(FAPI + "/ticker/24hr", e(f(self._f_ticker_24h), 1)),
            web.get(FAPI + "/depth", e(f(self._f_depth), 2)),
            web.post(FAPI + "/order", e(f(self._f_new_order), 1, SIGNED, orders=1)),
            web.get(FAPI + "/order", e(f(self._f_get_order), 1, SIGNED)),
            web.delete(FAPI + "/order", e(f(self._f_cancel_order), 1, SIGNED)),
            web.post(FAPI + "/algoOrder", e(f(self._f_new_algo), 1, SIGNED, orders=1)),
            web.get(FAPI + "/algoOrder", e(f(self._f_get_algo), 1, SIGNED)),
            web.delete(FAPI + "/algoOrder", e(f(self._f_cancel_algo), 1, SIGNED)),
            web.get(FAPI + "/openAlgoOrders", e(f(self._f_open_algo), 1, SIGNED)),
            web.get(FAPI + "/openOrder", e(f(self._f_get_order), 1, SIGNED)),
            web.get(FAPI + "/openOrders", e(f(self._f_open_orders), 1, SIGNED)),
            web.delete(FAPI + "/allOpenOrders", e(f(self._f_cancel_all), 1, SIGNED)),
            web.get(FAPI + "/allOrders", e(f(self._f_all_orders), 5, SIGNED)),
            web.get(FAPI + "/userTrades", e(f(self._f_user_trades), 5, SIGNED)),
            web.post(FAPI + "/leverage", e(f(self._f_leverage), 1, SIGNED)),
            web.post(FAPI + "/marginType", e(f(self._f_margin_type), 1, SIGNED)),
            web.get(FAPI + "/positionSide/dual", e(f(self._f_get_position_side), 30, SIGNED)),
            web.post(FAPI + "/positionSide/dual", e(f(self._f_position_side), 1, SIGNED)),
            web.get(FAPI + "/income", e(f(self._f_income), 30, SIGNED)),
            web.get(FAPI + "/leverageBracket", e(f(self._f_leverage_bracket), 1, SIGNED)),
            web.get(FAPI + "/commissionRate", e(f(self._f_commission_rate), 20, SIGNED)),
            web.post(FAPI + "/listenKey", self._listen_key_handler),
            web.put(FAPI + "/listenKey", self._listen_key_handler),
            web.delete(FAPI + "/listenKey", self._listen_key_handler),
        ]
        versions = (
            ("/fapi/v2", self._f_account_v2, self._f_position_risk_v2),
            ("/fapi/v3", self._f_account_v3, self._f_position_risk_v3),
        )
        for version, account, risk in versions:
            routes += [
                web.get(version + "/balance", e(f(self._f_balance), 5, SIGNED)),
                web.get(version + "/account", e(f(account), 5, SIGNED)),
                web.get(version + "/positionRisk", e(f(risk), 5, SIGNED)),
            ]
        for prefix in ("", "/market", "/public", "/private"):
            routes += [
                web.get(f"{FSTREAM}{prefix}/ws", self._fstream_handler),
                web.get(f"{FSTREAM}{prefix}/ws/{{name}}", self._fstream_handler),
                web.get(f"{FSTREAM}{prefix}/stream", self._fstream_handler),
            ]
        return routes

    def _futures(self, fn: Any) -> Any:
        """A handler whose engine rejections get the futures API's codes."""

        def handler(params: dict[str, str], api_key: str | None) -> Any:
            try:
                return fn(params, api_key)
            except EngineError as exc:
                spec = self.engine.markets.get(params.get("symbol", ""))
                raise fapi_error(exc.reason, exc.message, spec.min_notional if spec else None) from None

        return handler

    # --- helpers --------------------------------------------------------------------------------

    def _f_symbol(self, params: dict[str, str], *, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return None
        if symbol not in self._contracts:
            raise BinanceError(-1121, "Invalid symbol.")
        return symbol

    def _f_symbols(self, params: dict[str, str]) -> list[str]:
        single = self._f_symbol(params, required=False)
        return [single] if single else sorted(self._contracts)

    # --- market data ----------------------------------------------------------------------------

    def _f_exchange_info(self, params: dict[str, str], api_key: str | None) -> Any:
        if not self._contracts:  # a spot emulator: what ccxt.binance's load_markets asks, answered empty
            return empty_exchange_info(self.server_time())
        markets = self.engine.markets
        return futures_exchange_info([markets[s] for s in sorted(self._contracts)], self.server_time())

    def _f_candles(self, params: dict[str, str]) -> list[Any]:
        """The candles a klines request asks for (symbol, interval, time range, limit)."""
        symbol = self._f_symbol(params)
        assert symbol is not None
        interval = self._interval(symbol, params.get("interval"))
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        limit = parse_limit(params, 500, 1500)
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        return self.kline_candles(symbol, interval, start, end, limit)

    def _f_klines(self, params: dict[str, str], api_key: str | None) -> Any:
        return [kline_row(c) for c in self._f_candles(params)]

    def _f_mark_klines(self, params: dict[str, str], api_key: str | None) -> Any:
        """Mark-price candles. The engine keeps no mark history (its mark price is the last price
        of the replayed path, see :mod:`~realtrade_core.emulator.contracts`), so these are the
        trade candles' prices: a mark price held by hand (``set_mark_price``) is not in them."""
        return [mark_kline_row(c) for c in self._f_candles(params)]

    def _f_premium_index(self, params: dict[str, str], api_key: str | None) -> Any:
        engine = self.engine
        rows = [
            premium_index(s, engine.mark_price(s), engine.funding_rate(s), engine.next_funding_time, engine.now())
            for s in self._f_symbols(params)
        ]
        return rows[0] if params.get("symbol") else rows

    def _f_funding_rate(self, params: dict[str, str], api_key: str | None) -> Any:
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        limit = parse_limit(params, 100, 1000)
        rows = []
        for symbol in self._f_symbols(params):
            for time_ms, rate, mark in self.engine.funding_history(symbol):
                if (start is None or time_ms >= start) and (end is None or time_ms <= end):
                    rows.append({"symbol": symbol, "fundingRate": f"{rate:.8f}", "fundingTime": time_ms,
                                 "markPrice": f"{mark:.8f}"})  # fmt: skip
        rows.sort(key=lambda r: r["fundingTime"])
        return rows[:limit] if start is not None else rows[-limit:]

    def _f_ticker_price(self, params: dict[str, str], api_key: str | None) -> Any:
        now = self.engine.now()
        rows = [{"symbol": s, "price": f"{self.engine.last_price(s):f}", "time": now} for s in self._f_symbols(params)]
        return rows[0] if params.get("symbol") else rows

    def _f_ticker_24h(self, params: dict[str, str], api_key: str | None) -> Any:
        rows = []
        now = self.engine.now()
        for symbol in self._f_symbols(params):
            t = self.engine.ticker_24h(symbol)
            change = t["last"] - t["open"]
            rows.append({
                "symbol": symbol, "priceChange": f"{change:f}",
                "priceChangePercent": f"{(change / t['open'] * 100 if t['open'] else 0):.3f}",
                "weightedAvgPrice": f"{(t['quote_volume'] / t['volume'] if t['volume'] else t['last']):f}",
                "lastPrice": f"{t['last']:f}", "lastQty": "0", "openPrice": f"{t['open']:f}",
                "highPrice": f"{t['high']:f}", "lowPrice": f"{t['low']:f}", "volume": f"{t['volume']:f}",
                "quoteVolume": f"{t['quote_volume']:f}", "openTime": now - 86_400_000, "closeTime": now,
                "firstId": 0, "lastId": 0, "count": 0,
            })  # fmt: skip
        return rows[0] if params.get("symbol") else rows

    def _f_depth(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._f_symbol(params)
        assert symbol is not None
        bid, bid_qty, ask, ask_qty = self.engine.book(symbol)
        now = self.engine.now()
        return {"lastUpdateId": now, "E": now, "T": now, "bids": [[f"{bid:f}", f"{bid_qty:f}"]] if bid > 0 else [],
                "asks": [[f"{ask:f}", f"{ask_qty:f}"]]}  # fmt: skip

    # --- orders ---------------------------------------------------------------------------------

    def _order_basics(self, params: dict[str, str], api_key: str | None) -> tuple[str, Side, Decimal, bool, str | None]:
        symbol = self._f_symbol(params)
        assert symbol is not None
        side_name = params.get("side")
        if not side_name:
            raise mandatory("side")
        if side_name not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        position_side = params.get("positionSide", "BOTH")
        hedged = api_key in self._hedge_accounts
        if position_side == "BOTH" and hedged:
            raise BinanceError(*ONE_WAY_ONLY)
        if position_side != "BOTH":
            raise BinanceError(*(HEDGE_ORDERS_UNAVAILABLE if hedged else ONE_WAY_ONLY))
        quantity = parse_decimal(params, "quantity", required=True)
        assert quantity is not None
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        return symbol, Side(side_name.lower()), quantity, reduce_only, None

    def _client_id(self, params: dict[str, str], name: str) -> str:
        client_id = params.get(name) or new_client_order_id()
        if not CLIENT_ORDER_ID_RE.match(client_id):
            raise illegal(name, CLIENT_ORDER_ID_LEGAL)
        return client_id

    def _tif(self, params: dict[str, str]) -> TimeInForce:
        name = params.get("timeInForce") or "GTC"
        tif = _TIFS.get(name)
        if tif is None:
            raise BinanceError(-1116, "Invalid timeInForce.")
        return tif

    def _f_new_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        kind = params.get("type")
        if not kind:
            raise mandatory("type")
        if kind in CONDITIONAL_TYPES:
            raise BinanceError(*ALGO_ONLY)
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        symbol, side, quantity, reduce_only, _ = self._order_basics(params, api_key)
        client_id = self._client_id(params, "newClientOrderId")
        price = None
        tif = TimeInForce.GTC
        if kind == "LIMIT":
            price = parse_decimal(params, "price", required=True)
            tif = self._tif(params)
        order = self.engine.place_order(
            api_key,
            symbol,
            side,
            OrderType(kind.lower()),
            quantity,
            price=price,
            time_in_force=tif,
            client_order_id=client_id,
            reduce_only=reduce_only,
        )
        return futures_order(order)

    def _f_find(self, params: dict[str, str], api_key: str) -> Order:
        symbol = self._f_symbol(params)
        order_id = parse_int(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        try:
            return self.engine.get_order(api_key, symbol, order_id=order_id, client_order_id=client_id)
        except EngineError:
            raise BinanceError(-2013, "Order does not exist.") from None

    def _f_get_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        order = self._f_find(params, api_key)
        if order.order_id in self._algo_ids and not order.triggered:
            raise BinanceError(-2013, "Order does not exist.")
        return futures_order(order)

    def _f_cancel_order(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        order = self._f_find(params, api_key)
        if not order.status.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        return futures_order(self.engine.cancel_order(api_key, order.symbol, order_id=order.order_id))

    def _f_open_orders(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params, required=False)
        return [futures_order(o) for o in self._contract_orders(api_key, symbol, open_only=True)
                if o.order_id not in self._algo_ids or o.triggered]  # fmt: skip

    def _contract_orders(self, api_key: str, symbol: str | None, *, open_only: bool) -> list[Order]:
        if open_only:
            orders = self.engine.open_orders(api_key, symbol)
        else:
            orders = self.engine.all_orders(api_key, symbol, limit=ALL_ROWS)
        return [o for o in orders if o.symbol in self._contracts]

    def _f_cancel_all(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params)
        for order in self.engine.open_orders(api_key, symbol):
            self.engine.cancel_order(api_key, order.symbol, order_id=order.order_id)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _f_all_orders(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params)
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        from_id = parse_int(params, "orderId")
        limit = parse_limit(params, 500, 1000)
        orders = [
            o
            for o in self._contract_orders(api_key, symbol, open_only=False)
            if (from_id is None or o.order_id >= from_id)
            and (start is None or o.created_time >= start)
            and (end is None or o.created_time <= end)
            and (o.order_id not in self._algo_ids or o.triggered)
        ]
        orders = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return [futures_order(o) for o in orders]

    def _f_user_trades(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params)
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        order_id = parse_int(params, "orderId")
        from_id = parse_int(params, "fromId")
        limit = parse_limit(params, 500, 1000)
        fills = self.engine.fills(api_key, symbol, order_id=order_id, start=start, end=end, limit=ALL_ROWS)
        if from_id is not None:
            fills = [f for f in fills if f.trade_id >= from_id]
        fills = fills[:limit] if from_id is not None or start is not None else fills[-limit:]
        return [futures_trade(f) for f in fills]

    # --- algo (conditional) orders --------------------------------------------------------------

    def _f_new_algo(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        algo_type = params.get("algoType")
        if not algo_type:
            raise mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise BinanceError(-1116, "Invalid algoType.")
        kind = params.get("type")
        if not kind:
            raise mandatory("type")
        if kind not in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        symbol, side, quantity, reduce_only, _ = self._order_basics(params, api_key)
        client_id = self._client_id(params, "clientAlgoId")
        trigger = parse_decimal(params, "triggerPrice", required=True)
        price = parse_decimal(params, "price", required=True) if kind in ("STOP", "TAKE_PROFIT") else None
        tif = self._tif(params)
        stop = kind.startswith("STOP")
        # A buy stop fires on a rise, a buy take-profit on a fall; sells the other way round.
        above = stop if side is Side.BUY else not stop
        engine_type = OrderType.STOP_MARKET if price is None else OrderType.STOP_LIMIT
        order = self.engine.place_order(api_key, symbol, side, engine_type, quantity, price=price, stop_price=trigger,
                                        time_in_force=tif, client_order_id=client_id, trigger_above=above,
                                        reduce_only=reduce_only)  # fmt: skip
        self._algo_ids[order.order_id] = client_id
        return self._algo_body(order)

    @staticmethod
    def _algo_status(order: Order) -> str:
        if order.status.is_open and not order.triggered:
            return "NEW"
        if order.triggered:
            return "TRIGGERED" if order.status.is_open else "FINISHED"
        return order.status.name  # CANCELED / EXPIRED before the trigger

    def _algo_body(self, order: Order) -> dict[str, Any]:
        return {
            "algoId": order.order_id,
            "clientAlgoId": order.client_order_id,
            "algoType": "CONDITIONAL",
            "orderType": futures_type(order),
            "symbol": order.symbol,
            "side": order.side.value.upper(),
            "positionSide": "BOTH",
            "timeInForce": order.time_in_force.value,
            "quantity": f"{order.amount:f}",
            "algoStatus": self._algo_status(order),
            "triggerPrice": f"{order.stop_price:f}",
            "price": f"{order.price or 0:f}",
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": order.reduce_only,
            "activatePrice": "",
            "callbackRate": "",
            "createTime": order.created_time,
            "updateTime": order.updated_time,
            "triggerTime": order.updated_time if order.triggered else 0,
            "goodTillDate": 0,
            "actualOrderId": str(order.order_id) if order.triggered else "",
            "actualPrice": f"{order.average_price or 0:f}",
        }

    def _f_find_algo(self, params: dict[str, str], api_key: str) -> Order:
        algo_id = parse_int(params, "algoId")
        client_id = params.get("clientAlgoId")
        if algo_id is None and not client_id:
            raise BinanceError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        try:
            order = self.engine.get_order(api_key, order_id=algo_id, client_order_id=client_id)
        except EngineError:
            raise BinanceError(-2013, "Order does not exist.") from None
        if order.order_id not in self._algo_ids:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def _f_get_algo(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        return self._algo_body(self._f_find_algo(params, api_key))

    def _f_cancel_algo(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        order = self._f_find_algo(params, api_key)
        if not order.status.is_open or order.triggered:
            raise BinanceError(-2011, "Unknown order sent.")
        self.engine.cancel_order(api_key, order.symbol, order_id=order.order_id)
        return {"algoId": order.order_id, "clientAlgoId": order.client_order_id, "code": "200", "msg": "success"}

    def _f_open_algo(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params, required=False)
        return [self._algo_body(o) for o in self._contract_orders(api_key, symbol, open_only=True)
                if o.order_id in self._algo_ids and not o.triggered]  # fmt: skip

    # --- account --------------------------------------------------------------------------------

    def _settle_balance(self, api_key: str) -> Any:
        from realtrade_core.emulator.model import Balance

        for balance in self.engine.balances(api_key):
            if balance.asset == "USDT":
                return balance
        return Balance("USDT", Decimal(0), Decimal(0))

    def _alias(self, api_key: str) -> str:
        return "Su" + api_key[:6]

    def _f_balance(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        positions = self.engine.positions(api_key)
        return [balance_row(self._settle_balance(api_key), positions, self.engine.now(), self._alias(api_key))]

    def _f_account_v2(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        return account_body(self._settle_balance(api_key), self.engine.positions(api_key), self.engine.now(), 2)

    def _f_account_v3(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        return account_body(self._settle_balance(api_key), self.engine.positions(api_key), self.engine.now(), 3)

    def _f_position_risk_v2(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        return [position_risk_v2(p) for p in self.engine.positions(api_key, self._f_symbol(params, required=False))]

    def _f_position_risk_v3(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        positions = self.engine.positions(api_key, self._f_symbol(params, required=False))
        return [position_risk_v3(p) for p in positions if p.size]

    def _f_leverage(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params)
        assert symbol is not None
        raw = params.get("leverage")
        if not raw:
            raise mandatory("leverage")
        try:
            leverage = int(raw)
        except ValueError:
            raise invalid_leverage(raw) from None
        if leverage < 1:
            raise invalid_leverage(raw)
        value = self.engine.set_leverage(api_key, symbol, leverage)
        return {"leverage": value, "maxNotionalValue": "9000000000", "symbol": symbol}

    def _f_margin_type(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params)
        assert symbol is not None
        kind = params.get("marginType")
        if not kind:
            raise mandatory("marginType")
        if kind.upper() not in ("ISOLATED", "CROSSED"):
            raise BinanceError(-4044, "The marginType is not valid.")
        self.engine.set_margin_mode(api_key, symbol, "isolated" if kind.upper() == "ISOLATED" else "cross")
        return {"code": 200, "msg": "success"}

    def _f_get_position_side(self, params: dict[str, str], api_key: str | None) -> Any:
        return {"dualSidePosition": api_key in self._hedge_accounts}

    def _f_position_side(self, params: dict[str, str], api_key: str | None) -> Any:
        """Switch the account between one-way and hedge mode (with nothing open, as Binance
        asks). A hedge-mode account refuses one-way orders; hedge orders are not served."""
        raw = params.get("dualSidePosition")
        if not raw:
            raise mandatory("dualSidePosition")
        if raw.lower() not in ("true", "false"):
            raise illegal("dualSidePosition", "true, false")
        assert api_key is not None
        hedge = raw.lower() == "true"
        if hedge == (api_key in self._hedge_accounts):
            raise BinanceError(*NO_NEED_POSITION_SIDE)
        if self._contract_orders(api_key, None, open_only=True):
            raise BinanceError(*POSITION_SIDE_OPEN_ORDERS)
        if any(p.size for p in self.engine.positions(api_key) if p.symbol in self._contracts):
            raise BinanceError(*POSITION_SIDE_POSITION)
        (self._hedge_accounts.add if hedge else self._hedge_accounts.discard)(api_key)
        return {"code": 200, "msg": "success"}

    def _f_income(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        symbol = self._f_symbol(params, required=False)
        kind = params.get("incomeType") or None
        start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
        limit = parse_limit(params, 100, 1000)
        rows = self.engine.incomes(api_key, symbol, kind, start=start, end=end, limit=limit)
        return [income_row(i) for i in rows]

    def _f_leverage_bracket(self, params: dict[str, str], api_key: str | None) -> Any:
        markets = self.engine.markets
        rows = [leverage_bracket(markets[s]) for s in self._f_symbols(params)]
        return rows[0] if params.get("symbol") else rows

    def _f_commission_rate(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._f_symbol(params)
        assert symbol is not None
        spec = self.engine.markets[symbol]
        return {"symbol": symbol, "makerCommissionRate": f"{spec.maker_fee:f}",
                "takerCommissionRate": f"{spec.taker_fee:f}"}  # fmt: skip

    # --- listen keys ----------------------------------------------------------------------------

    async def _listen_key_handler(self, request: web.Request) -> web.Response:
        try:
            api_key, _ = self._api_key(request)
            with self._keys_lock:
                key = self._keys_by_account.get(api_key)
                if request.method == "POST":
                    if key is None:  # Binance hands out the account's live key again
                        key = secrets.token_urlsafe(48)[:64]
                        self._keys_by_account[api_key] = key
                        self._listen_keys[key] = api_key
                    body: Any = {"listenKey": key}
                elif key is None:
                    raise BinanceError(*INVALID_LISTEN_KEY)
                elif request.method == "PUT":
                    body = {"listenKey": key}
                else:
                    del self._keys_by_account[api_key]
                    del self._listen_keys[key]
                    body = {}
            status = 200
        except BinanceError as exc:
            body, status = exc.body(), exc.status
        return web.json_response(body, status=status)

    # --- streams --------------------------------------------------------------------------------

    def _stream_kind(self, name: str) -> str | None:
        """``kline`` / ``mark`` / ``user`` for a stream this emulator serves, else None."""
        if name in self._listen_keys:
            return "user"
        symbol, _, rest = name.partition("@")
        if symbol.upper() not in self._contracts:
            return None
        if rest in ("markPrice", "markPrice@1s"):
            return "mark"
        if rest.startswith("kline_"):
            interval = INTERVALS.get(rest[len("kline_") :])
            source = self.engine.interval_ms(symbol.upper())
            if interval is not None and not interval.offset and interval.ms % source == 0:
                return "kline"
        return None

    async def _fstream_handler(self, request: web.Request) -> web.StreamResponse:
        combined = request.path.endswith("/stream")
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            name = request.match_info.get("name")
            names = [name] if name else []
        unknown = [n for n in names if self._stream_kind(n) is None]
        if unknown:
            return web.json_response({"code": -1121, "msg": f"Invalid stream name: {unknown[0]}"}, status=400)

        def on_open(conn: Connection) -> None:
            conn.state = {"combined": combined, "streams": []}
            for n in names:
                self._f_subscribe(conn, n)

        return await self.hub.serve(request, "fstream", self._fstream_message, on_open=on_open, timeout=1.0)

    def _f_topic(self, conn: Connection, name: str) -> str:
        if name in self._listen_keys:
            name = self._listen_keys[name] + _USER  # an account's events: one topic per account
        return (_COMBINED if conn.state["combined"] else _TOPIC) + name

    def _f_subscribe(self, conn: Connection, name: str) -> None:
        streams = conn.state["streams"]
        if name not in streams:
            streams.append(name)
            if name in self._listen_keys:
                conn.account = self._listen_keys[name]
            conn.subscribe(self._f_topic(conn, name))

    def _fstream_message(self, conn: Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            conn.send({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
            return
        if not isinstance(message, dict):
            conn.send({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        method, request_id = message.get("method"), message.get("id")
        params = message.get("params") or []
        if method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": list(conn.state["streams"]), "id": request_id})
            return
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            conn.send({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": request_id})
            return
        for name in params:
            if not isinstance(name, str) or self._stream_kind(name) is None:
                conn.send({"error": {"code": 2, "msg": f"Invalid request: unknown stream {name!r}"}, "id": request_id})
                return
        for name in params:
            if method == "SUBSCRIBE":
                self._f_subscribe(conn, name)
            elif name in conn.state["streams"]:
                conn.state["streams"].remove(name)
                conn.unsubscribe(self._f_topic(conn, name))
        conn.send({"result": None, "id": request_id})

    def _f_publish(self, name: str, payload: dict[str, Any], stream_name: str | None = None) -> None:
        hub = self.hub
        raw, combined = hub.subscribers(_TOPIC + name), hub.subscribers(_COMBINED + name)
        if not (raw or combined):
            return
        text = _dumps(payload)
        if raw:
            hub.publish(_TOPIC + name, text)
        if combined:
            hub.publish(_COMBINED + name, combined_text(stream_name or name, text))

    def _f_user(self, account: str, payload: dict[str, Any]) -> None:
        name = account + _USER
        hub = self.hub
        if not (hub.subscribers(_TOPIC + name) or hub.subscribers(_COMBINED + name)):
            return
        with self._keys_lock:
            listen_key = self._keys_by_account.get(account, "")
        self._f_publish(name, payload, listen_key)

    def _f_kline_streams(self, event: KlineEvent) -> None:
        """Each subscribed kline stream of the symbol: the source candle, or the candle of a longer
        interval folded from the source candles of its bucket so far (final with the bucket's last
        source candle), as ``/fapi/v1/klines`` aggregates them."""
        candle = event.candle
        source = candle.interval_ms
        for stream, iv in self._f_kline_watch[event.symbol].live():
            bucket = iv.align(candle.open_time)
            if iv.ms == source:
                current = candle
            else:  # under the engine lock: the bucket's candles as they stand, this one included
                rows = self.engine.candles(event.symbol, iv.ms, bucket, bucket, 1)
                if not rows:
                    continue
                current = rows[0]
            closed = event.closed and candle.open_time + source >= bucket + iv.ms
            self._f_publish(stream, kline_event(event.symbol, iv.name, current, closed, event.time))

    def futures_event(self, event: EngineEvent) -> bool:
        """Publish a futures event; True when ``event`` belonged to a perpetual."""
        if isinstance(event, KlineEvent):
            if event.symbol not in self._contracts:
                return False
            self._f_kline_streams(event)
            return True
        if isinstance(event, MarkPriceEvent):
            payload = mark_price_update(event.symbol, event.mark_price, event.index_price, event.funding_rate,
                                        event.next_funding_time, event.time)  # fmt: skip
            low = event.symbol.lower()
            self._f_publish(f"{low}@markPrice", payload)
            self._f_publish(f"{low}@markPrice@1s", payload)
            return True
        if isinstance(event, OrderEvent):
            if event.order.symbol not in self._contracts:
                return False
            payload = order_trade_update(event.order, event.execution, event.fill, event.time)
            if payload is not None:
                self._f_user(event.order.account, payload)
            return True
        if isinstance(event, PositionEvent) and event.reason == "leverage":
            for position in event.positions:
                self._f_user(event.account, account_config_update(position.symbol, position.leverage, event.time))
            return True
        if isinstance(event, PositionEvent):
            wallet, _, _ = self.engine._cross(self.engine._account(event.account))  # under the engine lock
            self._f_user(event.account, account_update(event.reason, event.balances, event.positions, event.income,
                                                        wallet, event.time))  # fmt: skip
            return True
        if isinstance(event, MarginCallEvent):
            wallet, _, _ = self.engine._cross(self.engine._account(event.account))
            self._f_user(event.account, margin_call(event.positions, wallet, event.time))
            return True
        return False


__all__ = ["FAPI", "FSTREAM", "BinanceFutures", "RejectReason"]
