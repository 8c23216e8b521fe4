"""REST half of the Binance emulator dialect: ``/api/v3`` plus the few endpoints ccxt touches.

Handlers are plain synchronous functions ``(params, api_key) -> JSON``; :meth:`_endpoint` wraps
them into aiohttp handlers that read the raw query and form body, check keys and signatures the
way Binance does, count request weight (``X-MBX-USED-WEIGHT-1M``) and turn
:class:`~.wire.BinanceError` into Binance's ``{"code", "msg"}`` answers. Engine calls
are synchronous and thread-safe, so handlers call the engine directly on the server's loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.dialect import EmulatorDialect
from realtrade_core.emulator.model import (
    Candle,
    EngineError,
    Order,
)

from .wire import (
    BAD_API_KEY,
    BAD_API_KEY_FORMAT,
    BAD_SIGNATURE,
    INTERVALS,
    INVALID_INTERVAL,
    INVALID_SYMBOL,
    BinanceError,
    Interval,
    OrderList,
    OrderMeta,
    account_info,
    empty_exchange_info,
    engine_error,
    exchange_info,
    fmt,
    group_candles,
    illegal,
    intervals_for,
    kline_row,
    mandatory,
    new_client_order_id,
    parse_int,
    parse_limit,
    parse_params,
    signature_ok,
    split_signature,
    ticker_24h,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import ConnectionHub

log = logging.getLogger(__name__)

API = "/api/v3"
_DAY_MS = 86_400_000
_MAX_RECV_WINDOW = 60_000
_DEFAULT_RECV_WINDOW = 5_000
_MAX_FUTURE_MS = 1_000  # a timestamp may be at most this far ahead of the server's time
ALL_ROWS = 10**9  # "no limit" for engine list calls; Binance's own limits are applied afterwards

# Security types of Binance endpoints (the emulator serves no API-key-only endpoint).
NONE, SIGNED = "NONE", "SIGNED"

Handler = Callable[[dict[str, str], "str | None"], Any]
Weight = int | Callable[[dict[str, str]], int]
AiohttpHandler = Callable[[web.Request], Awaitable[web.Response]]


def weight_by_symbol(single: int, every: int) -> Callable[[dict[str, str]], int]:
    """Binance charges more for an answer covering every symbol."""
    return lambda params: single if params.get("symbol") else every


def _depth_weight(params: dict[str, str]) -> int:
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class BinanceRest(EmulatorDialect):
    """The REST endpoints; mixed into :class:`~realtrade_binance.emulator.BinanceDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        self._weight_lock = threading.Lock()
        self._weight_minute = 0
        self._weight_used = 0
        self._orders_10s: dict[str, deque[float]] = {}
        self._orders_day: dict[str, tuple[int, int]] = {}
        # What Binance reports about an order that the engine does not keep (LIMIT_MAKER,
        # quoteOrderQty). ``_pending_meta`` covers the placement itself: the engine emits the
        # order's first events before it returns the order id.
        self._order_meta: dict[int, OrderMeta] = {}
        self._pending_meta: dict[tuple[str, str], OrderMeta] = {}
        # The id of a cancel request, keyed by order id while the engine cancels (its event
        # reports the cancel under that id, as Binance does).
        self._cancel_ids: dict[int, str] = {}
        # OCO order lists by orderListId (the engine's list_id), filled in from the engine's
        # events; ``_pending_lists`` gives a leg's listClientOrderId while the list is placed.
        self._order_lists: dict[int, OrderList] = {}
        self._pending_lists: dict[tuple[str, str], str] = {}

    # --- routing --------------------------------------------------------------------------------

    def rest_routes(self) -> list[web.RouteDef]:
        e = self._endpoint
        return [
            web.get(API + "/ping", e(lambda p, k: {}, 1)),
            web.get(API + "/time", e(lambda p, k: {"serverTime": self.server_time()}, 1)),
            web.get(API + "/exchangeInfo", e(self._exchange_info, 20)),
            web.get(API + "/depth", e(self._depth, _depth_weight)),
            web.get(API + "/trades", e(self._trades, 25)),
            web.get(API + "/aggTrades", e(self._agg_trades, 4)),
            web.get(API + "/klines", e(self._klines, 2)),
            web.get(API + "/uiKlines", e(self._klines, 2)),
            web.get(API + "/avgPrice", e(self._avg_price, 2)),
            web.get(API + "/ticker/24hr", e(self._ticker_24h, weight_by_symbol(2, 80))),
            web.get(API + "/ticker/price", e(self._ticker_price, weight_by_symbol(2, 4))),
            web.get(API + "/ticker/bookTicker", e(self._book_ticker, weight_by_symbol(2, 4))),
            web.get(API + "/account", e(self._account, 20, SIGNED)),
            # ccxt's load_markets asks these too (futures markets, and with keys set, currencies
            # and margin pairs). USDⓈ-M perpetuals are served by .futures (its exchangeInfo lists
            # none when the emulator trades spot); the rest answer empty so ccxt works with its
            # options untouched.
            web.get("/dapi/v1/exchangeInfo", e(lambda p, k: empty_exchange_info(self.server_time()), 1)),
            web.get("/sapi/v1/capital/config/getall", e(lambda p, k: [], 10, SIGNED)),
            web.get("/sapi/v1/margin/allPairs", e(lambda p, k: [], 1, SIGNED)),
            web.get("/sapi/v1/margin/isolated/allPairs", e(lambda p, k: [], 10, SIGNED)),
            # fetch_status and fetch_trading_fee(s).
            web.get("/sapi/v1/system/status", e(lambda p, k: {"status": 0, "msg": "normal"}, 1)),
            web.get("/sapi/v1/asset/tradeFee", e(self._trade_fees, 1, SIGNED)),
        ]

    def _endpoint(self, fn: Handler, weight: Weight, security: str = NONE, *, orders: int = 0) -> AiohttpHandler:
        async def handler(request: web.Request) -> web.Response:
            query = request.rel_url.raw_query_string
            body = await request.text() if request.can_read_body else ""
            params = parse_params(query, body)
            used = self._use_weight(weight(params) if callable(weight) else weight)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            try:
                api_key = None
                if security == SIGNED:
                    api_key = self._authenticate(request, params, query, body)
                if orders and api_key is not None:
                    headers.update(self._count_order(api_key, orders))
                result, status = fn(params, api_key), 200
            except BinanceError as exc:
                result, status = exc.body(), exc.status
            except EngineError as exc:  # a rejection a handler did not map itself
                error = engine_error(exc.reason, exc.message)
                result, status = error.body(), error.status
            except Exception:
                log.exception("Binance emulator: %s %s failed", request.method, request.path)
                result, status = {"code": -1000, "msg": "An unknown error occurred while processing the request."}, 500
            if orders and status != 200:
                self.record_refusal(
                    request.path, request.headers.get("X-MBX-APIKEY", ""), params, result["code"], result["msg"],
                    http_status=status,
                    client_order_id=params.get("newClientOrderId") or params.get("listClientOrderId"),
                )  # fmt: skip
            return web.Response(
                text=json.dumps(result, separators=(",", ":")),
                status=status,
                headers=headers,
                content_type="application/json",
            )

        return handler

    # --- weight and order counters -------------------------------------------------------------

    def _use_weight(self, weight: int) -> int:
        """Add ``weight`` to this minute's counter (wall clock, as the header is) and return it."""
        minute = int(time.time() // 60)
        with self._weight_lock:
            if minute != self._weight_minute:
                self._weight_minute, self._weight_used = minute, 0
            self._weight_used += weight
            return self._weight_used

    def _count_order(self, api_key: str, orders: int = 1) -> dict[str, str]:
        now = time.monotonic()
        day = int(time.time() // 86_400)
        with self._weight_lock:
            recent = self._orders_10s.setdefault(api_key, deque())
            recent.extend([now] * orders)
            while recent and recent[0] <= now - 10:
                recent.popleft()
            known_day, count = self._orders_day.get(api_key, (day, 0))
            count = count + orders if known_day == day else orders
            self._orders_day[api_key] = (day, count)
            return {"X-MBX-ORDER-COUNT-10S": str(len(recent)), "X-MBX-ORDER-COUNT-1D": str(count)}

    # --- authentication -------------------------------------------------------------------------

    def _api_key(self, request: web.Request) -> tuple[str, str]:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise BinanceError(*BAD_API_KEY_FORMAT, status=401)
        secret = self.engine.secret_for(key)
        if secret is None:
            raise BinanceError(*BAD_API_KEY, status=401)
        return key, secret

    def _authenticate(self, request: web.Request, params: dict[str, str], query: str, body: str) -> str:
        """A SIGNED endpoint's checks: API key, signature over the raw parameters, timestamp."""
        key, secret = self._api_key(request)
        timestamp = parse_int(params, "timestamp", required=True)
        payload, signature = split_signature(query, body)
        if not signature:
            raise mandatory("signature")
        recv_window = parse_int(params, "recvWindow")
        if not signature_ok(secret, payload, signature):
            raise BinanceError(*BAD_SIGNATURE)
        assert timestamp is not None
        self._check_timestamp(timestamp, recv_window)
        return key

    def _check_timestamp(self, timestamp: int, recv_window: int | None) -> None:
        window = _DEFAULT_RECV_WINDOW if recv_window is None else recv_window
        if window > _MAX_RECV_WINDOW:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        if window <= 0:
            raise BinanceError(-1130, "Data sent for parameter 'recvWindow' is not valid.")
        if timestamp > 10**14:  # Binance also takes microseconds
            timestamp //= 1000
        now = self.auth_time()  # signatures use the wall clock, not the replay clock
        if timestamp - now > _MAX_FUTURE_MS:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # --- helpers --------------------------------------------------------------------------------

    def _symbol(self, params: dict[str, str], *, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return None
        spec = self.engine.markets.get(symbol)
        if spec is None or spec.contract:  # perpetuals are served under /fapi only
            raise BinanceError(*INVALID_SYMBOL)
        return symbol

    def _spot_markets(self) -> dict[str, Any]:
        return {s: spec for s, spec in self.engine.markets.items() if not spec.contract}

    def _symbols(self, params: dict[str, str]) -> list[str]:
        """``symbol=X``, ``symbols=["X","Y"]`` or every market."""
        single = self._symbol(params, required=False)
        if single is not None:
            return [single]
        raw = params.get("symbols")
        if not raw:
            return list(self._spot_markets())
        try:
            wanted = json.loads(raw)
        except ValueError:
            raise illegal("symbols", '["SYMBOL1","SYMBOL2"]') from None
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
            raise illegal("symbols", '["SYMBOL1","SYMBOL2"]')
        markets = self._spot_markets()
        if any(s not in markets for s in wanted):
            raise BinanceError(*INVALID_SYMBOL)
        return wanted

    def _meta(self, order: Order) -> OrderMeta | None:
        return self._order_meta.get(order.order_id)

    def _order_list(self, order: Order) -> OrderList:
        """The order list of ``order`` (an OCO leg), registered when its first event is seen."""
        assert order.list_id is not None
        order_list = self._order_lists.get(order.list_id)
        if order_list is None:
            client_id = self._pending_lists.get((order.account, order.client_order_id)) or new_client_order_id()
            order_list = OrderList(order.list_id, order.account, order.symbol, client_id, order.created_time)
            self._order_lists[order.list_id] = order_list
        return order_list

    # --- market data ----------------------------------------------------------------------------

    def _exchange_info(self, params: dict[str, str], api_key: str | None) -> Any:
        markets = self.engine.markets
        return exchange_info([markets[s] for s in self._symbols(params)], self.server_time())

    def _depth(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._symbol(params)
        assert symbol is not None
        parse_limit(params, 100, 5000)
        bid, bid_qty, ask, ask_qty = self.engine.book(symbol)
        trades = self.engine.public_trades(symbol, 1)
        bids = [[fmt(bid), fmt(bid_qty)]] if bid > 0 else []
        return {
            "lastUpdateId": trades[-1].trade_id if trades else 0,
            "bids": bids,
            "asks": [[fmt(ask), fmt(ask_qty)]],
        }

    def _trades(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._symbol(params)
        assert symbol is not None
        limit = parse_limit(params, 500, 1000)
        return [
            {
                "id": t.trade_id,
                "price": fmt(t.price),
                "qty": fmt(t.amount),
                "quoteQty": fmt(t.price * t.amount),
                "time": t.time,
                "isBuyerMaker": t.buyer_is_maker,
                "isBestMatch": True,
            }
            for t in self.engine.public_trades(symbol, limit)
        ]

    def _agg_trades(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._symbol(params)
        assert symbol is not None
        limit = parse_limit(params, 500, 1000)
        from_id = parse_int(params, "fromId")
        start = parse_int(params, "startTime")
        end = parse_int(params, "endTime")
        trades = self.engine.public_trades(symbol, 1000)
        if from_id is not None:
            trades = [t for t in trades if t.trade_id >= from_id][:limit]
        elif start is not None or end is not None:
            trades = [t for t in trades if (start is None or t.time >= start) and (end is None or t.time <= end)][
                :limit
            ]
        else:
            trades = trades[-limit:]
        return [
            {
                "a": t.trade_id,
                "p": fmt(t.price),
                "q": fmt(t.amount),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time,
                "m": t.buyer_is_maker,
                "M": True,
            }
            for t in trades
        ]

    def _interval(self, symbol: str, name: str | None) -> Interval:
        if not name:
            raise mandatory("interval")
        interval = INTERVALS.get(name)
        if interval is None or interval not in intervals_for(self.engine.interval_ms(symbol)):
            raise BinanceError(*INVALID_INTERVAL)
        return interval

    def _klines(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._symbol(params)
        assert symbol is not None
        interval = self._interval(symbol, params.get("interval"))
        start = parse_int(params, "startTime")
        end = parse_int(params, "endTime")
        limit = parse_limit(params, 500, 1000)
        zone = params.get("timeZone")
        if zone not in (None, "", "0", "+0", "-0", "0:00", "00:00", "+00:00", "-00:00"):
            # Binance shifts kline buckets by the zone; the emulator serves UTC buckets only.
            raise BinanceError(-1130, "Data sent for parameter 'timeZone' is not valid.")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        return [kline_row(c) for c in self.kline_candles(symbol, interval, start, end, limit)]

    def kline_candles(
        self, symbol: str, interval: Interval, start: int | None, end: int | None, limit: int
    ) -> list[Candle]:
        """The candles ``GET /api/v3/klines`` serves: open time in [start, end], the forming one
        included; without ``start`` the latest ``limit``."""
        engine = self.engine
        if not interval.offset:
            return engine.candles(symbol, interval.ms, start, end, limit)
        # Weeks open on Monday, not on multiples of 7 days since the (Thursday) epoch: group the
        # engine's daily candles here.
        source = engine.interval_ms(symbol)
        base = _DAY_MS if _DAY_MS % source == 0 else source
        per_bucket = interval.ms // base
        # A week is served whole even when ``end`` falls inside it.
        until = None if end is None else interval.align(end) + interval.ms - 1
        if start is not None:
            first = interval.align_up(start)
            rows = engine.candles(symbol, base, first, until, limit * per_bucket)
            weeks = group_candles(rows, interval)[:limit]
        else:
            reference = engine.now() if end is None else end
            first = interval.align(reference) - (limit - 1) * interval.ms
            rows = engine.candles(symbol, base, first, until, limit * per_bucket)
            weeks = group_candles(rows, interval)[-limit:]
        return [w for w in weeks if end is None or w.open_time <= end]

    def _avg_price(self, params: dict[str, str], api_key: str | None) -> Any:
        symbol = self._symbol(params)
        assert symbol is not None
        return {"mins": 5, "price": fmt(self.engine.last_price(symbol)), "closeTime": self.engine.now()}

    def _ticker_24h(self, params: dict[str, str], api_key: str | None) -> Any:
        rows = [self._ticker_row(s) for s in self._symbols(params)]
        single = params.get("symbol")
        return rows[0] if single else rows

    def _ticker_row(self, symbol: str) -> dict[str, Any]:
        engine = self.engine
        now = engine.now()
        trades = engine.public_trades(symbol, 1000)
        window = [t for t in trades if t.time > now - _DAY_MS]
        row = ticker_24h(symbol, engine.ticker_24h(symbol), engine.book(symbol), trades[-1] if trades else None, now)
        if window:
            row["firstId"] = window[0].trade_id
            row["count"] = window[-1].trade_id - window[0].trade_id + 1
        return row

    def _ticker_price(self, params: dict[str, str], api_key: str | None) -> Any:
        rows = [{"symbol": s, "price": fmt(self.engine.last_price(s))} for s in self._symbols(params)]
        return rows[0] if params.get("symbol") else rows

    def _book_ticker(self, params: dict[str, str], api_key: str | None) -> Any:
        rows = []
        for symbol in self._symbols(params):
            bid, bid_qty, ask, ask_qty = self.engine.book(symbol)
            rows.append(
                {
                    "symbol": symbol,
                    "bidPrice": fmt(bid),
                    "bidQty": fmt(bid_qty),
                    "askPrice": fmt(ask),
                    "askQty": fmt(ask_qty),
                }
            )
        return rows[0] if params.get("symbol") else rows

    # --- account --------------------------------------------------------------------------------

    def _account(self, params: dict[str, str], api_key: str | None) -> Any:
        assert api_key is not None
        balances = self.engine.balances(api_key)
        if params.get("omitZeroBalances") == "true":
            balances = [b for b in balances if b.total > 0]
        specs = list(self.engine.markets.values())
        maker = specs[0].maker_fee if specs else Decimal(0)
        taker = specs[0].taker_fee if specs else Decimal(0)
        uid = int(hashlib.sha256(api_key.encode()).hexdigest()[:8], 16)
        return account_info(balances, maker, taker, self.engine.now(), uid)

    def _trade_fees(self, params: dict[str, str], api_key: str | None) -> Any:
        markets = self.engine.markets
        return [
            {
                "symbol": symbol,
                "makerCommission": str(markets[symbol].maker_fee),
                "takerCommission": str(markets[symbol].taker_fee),
            }
            for symbol in self._symbols(params)
        ]
