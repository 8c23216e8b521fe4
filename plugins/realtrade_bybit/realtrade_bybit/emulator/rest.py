"""REST plumbing of the Bybit v5 emulator dialect (envelope, signatures) and its market-data and
account endpoints; the order endpoints are in :mod:`.orders`.

Every handler answers Bybit's envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``
with HTTP 200, errors included, as Bybit does. Private endpoints check Bybit's v5 HMAC signature
(``X-BAPI-*`` headers) before anything else.

Clocks. The signature window and the ``time`` a client syncs its signing clock to (the envelope
``time`` and ``/v5/market/time``) are the wall clock plus any injected skew: ccxt signs with the
wall clock, and the emulated market clock may run at any speed or stand still (manual clock), so
checking signatures against it would reject every request once the market clock moved.
Everything about the market itself (candles, orders, fills, stream ``ts``) is on the emulated
clock.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.dialect import EmulatorDialect
from realtrade_core.emulator.model import (
    Candle,
    EngineError,
    MarketSpec,
    Order,
)

from .wire import (
    DAY_MS,
    FIXED_INTERVALS_MS,
    INTERVAL_CODES,
    INVALID_API_KEY,
    INVALID_SIGN,
    PARAMS_ERROR,
    TIMESTAMP_ERROR,
    BybitError,
    OrderExtra,
    agg_row,
    aggregate,
    bucket_next,
    bucket_start,
    candle_row,
    dec,
    instrument_info,
    reject_to_error,
    rest_signature,
    wallet_account,
    wallet_coin,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import ConnectionHub

log = logging.getLogger(__name__)

DEFAULT_RECV_WINDOW = 5000
#: Spot order create/cancel limit Bybit reports per UID (requests per second).
ORDER_RATE_LIMIT = 20
_STABLE = ("USDT", "USDC", "USD")
CONTRACT_CATEGORIES = ("linear", "inverse", "option")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise BybitError(PARAMS_ERROR, f"params error: {name} must be an integer") from None


def limit_param(params: dict[str, Any], default: int, maximum: int) -> int:
    limit = int_param(params, "limit", default)
    assert limit is not None
    if limit < 1:
        raise BybitError(PARAMS_ERROR, f"params error: limit must be between 1 and {maximum}")
    return min(limit, maximum)


class BybitRest(EmulatorDialect):
    """The REST endpoints of :class:`~realtrade_bybit.emulator.BybitDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings if settings is not None else {})
        # (account, orderLinkId) -> what Bybit reports that the engine does not keep. Written
        # before the engine sees the order, so the very first stream push already carries it.
        self._extras: dict[tuple[str, str], OrderExtra] = {}
        self._rate_lock = threading.Lock()
        self._rate_windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._uid = 100_000_001

    # --- clocks and envelopes -------------------------------------------------------------------

    def auth_time(self) -> int:
        """The clock signatures are checked against: wall-clock ms plus injected skew."""
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    def _envelope(self, result: Any, code: int = 0, message: str = "OK") -> dict[str, Any]:
        return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": self.auth_time()}

    def _reply(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(text=_dumps(body), content_type="application/json", headers=headers)

    def _wrap(
        self, fn: Callable[..., Any], *, private: bool = False, rate_limited: bool = False, places_order: bool = False
    ) -> Handler:
        """An aiohttp handler around ``fn(params)`` (public) or ``fn(params, api_key)`` (private).
        A ``places_order`` endpoint records every error answer as a refused order."""

        async def handler(request: web.Request) -> web.StreamResponse:
            headers: dict[str, str] | None = None
            try:
                if private:
                    api_key, params = await self._authenticate(request)
                    if rate_limited:
                        headers = self._rate_headers(api_key, request.path)
                    result = fn(params, api_key)
                else:
                    result = fn(self._query(request))
            except (BybitError, EngineError) as exc:
                error = exc if isinstance(exc, BybitError) else reject_to_error(exc.reason, exc.message)
                log.debug("bybit emulator: %s %s -> %s %s", request.method, request.path, error.code, error.message)
                if places_order:
                    await self._record_refused(request, error)
                return self._reply(self._envelope({}, error.code, error.message), headers)
            return self._reply(self._envelope(result), headers)

        return handler

    async def _record_refused(self, request: web.Request, error: BybitError) -> None:
        # The body was read while authenticating; aiohttp keeps it (can_read_body is False now).
        text = await request.text() if request.method == "POST" else ""
        try:
            params = json.loads(text) if text.strip() else {}
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            params = {}
        link_id = params.get("orderLinkId")
        self.record_refusal(  # type: ignore[attr-defined]  # EmulatorDialect's
            request.path,
            request.headers.get("X-BAPI-API-KEY", ""),
            params,
            error.code,
            error.message,
            client_order_id=str(link_id) if link_id else None,
        )

    @staticmethod
    def _query(request: web.Request) -> dict[str, Any]:
        return {key: request.query.getone(key) for key in request.query}

    async def _authenticate(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """Check Bybit's v5 signature; returns the API key and the request parameters."""
        headers = request.headers
        api_key = headers.get("X-BAPI-API-KEY", "")
        timestamp = headers.get("X-BAPI-TIMESTAMP", "")
        signature = headers.get("X-BAPI-SIGN", "")
        recv_window = headers.get("X-BAPI-RECV-WINDOW", "") or str(DEFAULT_RECV_WINDOW)
        if request.method == "POST":
            payload = await request.text()
        else:
            # The signature covers the query string exactly as sent, so use the raw one.
            payload = request.rel_url.raw_query_string
        if not api_key or not timestamp or not signature:
            raise BybitError(
                PARAMS_ERROR,
                f"empty value: apiTimestamp[{timestamp}] apiKey[{api_key}] apiSignature[{signature}]: "
                "openapi sign params error!",
            )
        secret = self.engine.secret_for(api_key)
        if secret is None:
            raise BybitError(INVALID_API_KEY, "API key is invalid.")
        now = self.auth_time()
        try:
            ts, window = int(timestamp), int(recv_window)
        except ValueError:
            raise BybitError(TIMESTAMP_ERROR, "invalid request, please check your timestamp and recv_window") from None
        # Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000.
        if not now - window <= ts < now + 1000:
            raise BybitError(
                TIMESTAMP_ERROR,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]",
            )
        expected = rest_signature(secret, timestamp, api_key, recv_window, payload)
        if not hmac.compare_digest(expected, signature.lower()):
            raise BybitError(INVALID_SIGN, f"error sign! origin_string[{timestamp}{api_key}{recv_window}{payload}]")
        if request.method == "POST":
            try:
                params = json.loads(payload) if payload.strip() else {}
            except ValueError:
                raise BybitError(PARAMS_ERROR, "params error: the body is not valid JSON") from None
            if not isinstance(params, dict):
                raise BybitError(PARAMS_ERROR, "params error: the body must be a JSON object")
            return api_key, params
        return api_key, self._query(request)

    def _rate_headers(self, api_key: str, path: str) -> dict[str, str]:
        """Bybit's per-UID, per-endpoint usage headers on order endpoints (1 s windows)."""
        now = int(time.time() * 1000)
        with self._rate_lock:
            window_start, used = self._rate_windows.get((api_key, path), (0, 0))
            if now - window_start >= 1000:
                window_start, used = now, 0
            used += 1
            self._rate_windows[(api_key, path)] = (window_start, used)
        return {
            "X-Bapi-Limit": str(ORDER_RATE_LIMIT),
            "X-Bapi-Limit-Status": str(max(0, ORDER_RATE_LIMIT - used)),
            "X-Bapi-Limit-Reset-Timestamp": str(window_start + 1000),
        }

    # --- routes -----------------------------------------------------------------------------------

    def rest_routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.get("/v5/market/time", w(self._market_time)),
            web.get("/v5/system/status", w(self._system_status)),
            web.get("/v5/market/instruments-info", w(self._instruments_info)),
            web.get("/v5/market/kline", w(self._kline)),
            web.get("/v5/market/tickers", w(self._tickers)),
            web.get("/v5/market/orderbook", w(self._orderbook)),
            web.get("/v5/market/recent-trade", w(self._recent_trade)),
            web.get("/v5/user/query-api", w(self._query_api, private=True)),
            web.get("/v5/account/info", w(self._account_info, private=True)),
            web.get("/v5/account/wallet-balance", w(self._wallet_balance, private=True)),
            web.get("/v5/account/fee-rate", w(self._fee_rate, private=True)),
            web.get("/v5/asset/coin/query-info", w(self._coin_info, private=True)),
            web.get("/v5/spot-margin-trade/state", w(self._spot_margin_state, private=True)),
        ]

    # --- shared lookups -----------------------------------------------------------------------------

    def _spot_market(self, params: dict[str, Any], *, required: bool = True) -> MarketSpec | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise BybitError(PARAMS_ERROR, "params error: symbol is required")
            return None
        spec = self.engine.markets.get(str(symbol))
        if spec is None or spec.contract:  # perpetuals are category=linear
            raise BybitError(PARAMS_ERROR, "params error: symbol invalid")
        return spec

    @staticmethod
    def _category(params: dict[str, Any], default: str | None = None) -> str:
        """``spot`` or a contract category (served empty); anything else is a params error."""
        category = params.get("category") or default
        if not category:
            raise BybitError(PARAMS_ERROR, "params error: category is required")
        if category != "spot" and category not in CONTRACT_CATEGORIES:
            raise BybitError(PARAMS_ERROR, f"params error: Illegal category {category!r}")
        return str(category)

    def _extra(self, order: Order) -> OrderExtra | None:
        return self._extras.get((order.account, order.client_order_id))

    def _usd_price(self, asset: str) -> Decimal | None:
        if asset in _STABLE:
            return Decimal(1)
        for quote in _STABLE:
            if f"{asset}{quote}" in self.engine.markets:
                return self.engine.last_price(f"{asset}{quote}")
        return None

    # --- market data --------------------------------------------------------------------------------

    def _market_time(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self.auth_time()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _system_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"list": []}  # no maintenance scheduled

    def _instruments_info(self, params: dict[str, Any]) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_instruments(params)  # type: ignore[attr-defined]  # BybitLinear's
        if category != "spot":
            # ccxt asks for every category while loading markets: answer "no such markets".
            return {"category": category, "list": [], "nextPageCursor": ""}
        specs = [spec for spec in self.engine.markets.values() if not spec.contract]
        if params.get("symbol"):
            specs = [s for s in specs if s.symbol == params["symbol"]]
        if params.get("baseCoin"):
            specs = [s for s in specs if s.base == params["baseCoin"]]
        if params.get("status") and params["status"] != "Trading":
            specs = []
        # symbolId: Bybit's integer id of a market, stable for the emulator's life.
        ids = {symbol: index for index, symbol in enumerate(self.engine.markets, start=1)}
        return {"category": "spot", "list": [instrument_info(s, ids[s.symbol]) for s in specs]}

    def _kline(self, params: dict[str, Any]) -> dict[str, Any]:
        # Bybit defaults the category of this endpoint to linear, of which the emulator has none.
        category = self._category(params, "linear")
        if category == "linear":
            code = str(params.get("interval", ""))
            if code not in INTERVAL_CODES:
                expected = list(INTERVAL_CODES)
                raise BybitError(PARAMS_ERROR, f"params error: interval invalid, expected one of {expected}")
            return self.linear_kline(params, code, limit_param(params, 200, 1000))  # type: ignore[attr-defined]
        spec = self._spot_market(params)
        assert spec is not None
        if category != "spot":
            raise BybitError(PARAMS_ERROR, "params error: symbol invalid")
        code = str(params.get("interval", ""))
        if code not in INTERVAL_CODES:
            raise BybitError(PARAMS_ERROR, f"params error: interval invalid, expected one of {list(INTERVAL_CODES)}")
        limit = limit_param(params, 200, 1000)
        start = int_param(params, "start")
        end = int_param(params, "end")
        rows = self.kline_rows(spec.symbol, code, start, end, limit)
        return {"symbol": spec.symbol, "category": "spot", "list": rows}

    def _check_interval(self, symbol: str, length_ms: int, code: str) -> None:
        source = self.engine.interval_ms(symbol)
        if length_ms % source:
            raise BybitError(
                PARAMS_ERROR,
                f"params error: interval {code} is not a whole multiple of the emulator's "
                f"{source // 60_000}-minute source candles",
            )

    def kline_rows(self, symbol: str, code: str, start: int | None, end: int | None, limit: int) -> list[list[str]]:
        """REST kline rows, newest first, as Bybit returns them.

        With ``start``, the ``limit`` oldest candles from the one containing ``start``; without,
        the latest ``limit`` candles up to ``end`` (or now). The candle still forming is included.
        """
        if start is not None:
            start = bucket_start(code, start)  # Bybit includes the candle that contains start
        if code in FIXED_INTERVALS_MS and code != "W":
            length = FIXED_INTERVALS_MS[code]
            self._check_interval(symbol, length, code)
            candles = self.engine.candles(symbol, length, start=start, end=end, limit=limit)
            return [candle_row(c) for c in reversed(candles)]
        # Weeks open on Monday and months on the 1st: aggregate the engine's daily candles.
        self._check_interval(symbol, DAY_MS, code)
        now = self.engine.now()
        if start is not None:
            first = start
            last = first
            for _ in range(limit - 1):
                nxt = bucket_next(code, last)
                if nxt > now or (end is not None and nxt > end):
                    break
                last = nxt
        else:
            last = bucket_start(code, min(end, now) if end is not None else now)
            first = last
            for _ in range(limit - 1):
                first = bucket_start(code, first - 1)
        stop = bucket_next(code, last) - 1
        days: list[Candle] = self.engine.candles(
            symbol, DAY_MS, start=first, end=stop, limit=(stop - first) // DAY_MS + 2
        )
        aggs = [a for a in aggregate(code, days) if a.start >= first and (end is None or a.start <= end)]
        aggs = aggs[:limit] if start is not None else aggs[-limit:]
        return [agg_row(a) for a in reversed(aggs)]

    def _tickers(self, params: dict[str, Any]) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_tickers(params)  # type: ignore[attr-defined]
        if category != "spot":
            return {"category": category, "list": []}
        spec = self._spot_market(params, required=False)
        specs = [spec] if spec is not None else [s for s in self.engine.markets.values() if not s.contract]
        return {"category": "spot", "list": [self.ticker_record(s.symbol, with_book=True) for s in specs]}

    def ticker_record(self, symbol: str, *, with_book: bool) -> dict[str, Any]:
        """A spot ticker: REST ``/v5/market/tickers`` (with the book) or the ``tickers`` stream."""
        stats = self.engine.ticker_24h(symbol)
        last, opened = stats["last"], stats["open"]
        change = ((last - opened) / opened).quantize(Decimal("0.0001")) if opened else Decimal(0)
        record: dict[str, Any] = {"symbol": symbol}
        if with_book:
            bid, bid_amount, ask, ask_amount = self.engine.book(symbol)
            record.update(
                {"bid1Price": dec(bid), "bid1Size": dec(bid_amount), "ask1Price": dec(ask), "ask1Size": dec(ask_amount)}
            )
        record.update(
            {
                "lastPrice": dec(last),
                "prevPrice24h": dec(opened),
                "price24hPcnt": dec(change),
                "highPrice24h": dec(stats["high"]),
                "lowPrice24h": dec(stats["low"]),
                "turnover24h": dec(stats["quote_volume"]),
                "volume24h": dec(stats["volume"]),
                "usdIndexPrice": dec(last) if symbol.endswith(_STABLE) else "",
            }
        )
        return record

    def _orderbook(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        spec = self._spot_market(params)
        assert spec is not None
        limit_param(params, 1, 200)  # validated; the emulator's book has one level anyway
        bid, bid_amount, ask, ask_amount = self.engine.book(spec.symbol)
        now = self.engine.now()
        return {
            "s": spec.symbol,
            "a": [[dec(ask), dec(ask_amount)]],
            "b": [[dec(bid), dec(bid_amount)]],
            "ts": now,
            "u": now,
            "seq": now,
            "cts": now,
        }

    def _recent_trade(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        spec = self._spot_market(params)
        assert spec is not None
        limit = limit_param(params, 60, 60)
        trades = self.engine.public_trades(spec.symbol, limit)
        return {
            "category": "spot",
            "list": [
                {
                    "execId": str(t.trade_id),
                    "symbol": t.symbol,
                    "price": dec(t.price),
                    "size": dec(t.amount),
                    "side": "Sell" if t.buyer_is_maker else "Buy",  # the taker's side
                    "time": str(t.time),
                    "isBlockTrade": False,
                    "isRPITrade": False,
                    "seq": str(t.trade_id),
                }
                for t in reversed(trades)
            ],
        }

    # --- account ------------------------------------------------------------------------------------

    def _query_api(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        # ccxt reads "uta" to decide it talks to a unified trading account (spot orders, balances).
        return {
            "id": "1",
            "note": "realtrade emulator",
            "apiKey": api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {
                "ContractTrade": [],
                "Spot": ["SpotTrade"],
                "Wallet": ["AccountTransfer"],
                "Options": [],
                "Derivatives": [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": -1,
            "expiredAt": "",
            "createdAt": "2026-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": self._uid,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def _account_info(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        return {
            "marginMode": "ISOLATED_MARGIN" if api_key in getattr(self, "_isolated_accounts", ()) else "REGULAR_MARGIN",
            "updatedTime": str(self.engine.now()),
            "unifiedMarginStatus": 6,  # UTA 2.0 Pro
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def wallet_coins(self, api_key: str, assets: set[str] | None = None) -> list[dict[str, Any]]:
        """Coins of the account's UNIFIED wallet: all non-zero ones, or exactly ``assets``."""
        coins = []
        for balance in self.engine.balances(api_key):
            if assets is not None:
                if balance.asset not in assets:
                    continue
            elif balance.total == 0:
                continue
            coins.append(wallet_coin(balance, self._usd_price(balance.asset)))
        return coins

    def _wallet_balance(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        account_type = params.get("accountType")
        if account_type != "UNIFIED":
            raise BybitError(PARAMS_ERROR, f"accountType only support UNIFIED, got {account_type!r}")
        wanted = {c for c in str(params.get("coin", "")).split(",") if c} or None
        return {"list": [wallet_account(self.wallet_coins(api_key, wanted))]}

    def _fee_rate(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        category = self._category(params)
        if category == "linear":
            return self.linear_fee_rates(params)  # type: ignore[attr-defined]
        if category != "spot":
            return {"category": category, "list": []}
        spec = self._spot_market(params, required=False)
        specs = [spec] if spec is not None else [s for s in self.engine.markets.values() if not s.contract]
        return {
            "category": "spot",
            "list": [
                # Spot records have no baseCoin (only options do).
                {"symbol": s.symbol, "takerFeeRate": dec(s.taker_fee), "makerFeeRate": dec(s.maker_fee)}
                for s in specs
            ],
        }

    def _coin_info(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        coins: list[str] = []
        for spec in self.engine.markets.values():
            for coin in (spec.base, spec.quote):
                if coin not in coins:
                    coins.append(coin)
        if params.get("coin"):
            coins = [c for c in coins if c == params["coin"]]
        # No chains: the emulator has no deposits or withdrawals.
        return {"rows": [{"name": c, "coin": c, "remainAmount": "0", "chains": []} for c in coins]}

    def _spot_margin_state(self, params: dict[str, Any], api_key: str) -> dict[str, Any]:
        return {"spotLeverage": "", "spotMarginMode": "0", "effectiveLeverage": ""}
