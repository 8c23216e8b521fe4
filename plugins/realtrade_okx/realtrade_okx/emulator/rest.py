"""REST plumbing of the OKX v5 emulator dialect (envelope, signatures) and its market-data and
account endpoints; the order endpoints are in :mod:`.orders`.

Every answer is OKX's envelope ``{"code", "msg", "data"}``: ``code`` ``"0"`` and a list in
``data`` on success, the error's code otherwise (HTTP 200, as OKX answers business errors; 401
for a refused signature, 429 for a rate limit). Private endpoints check OKX's headers first:
``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``, ``OK-ACCESS-TIMESTAMP`` (ISO 8601, within 30 s
of the exchange's clock) and ``OK-ACCESS-SIGN`` (Base64 HMAC-SHA256 of timestamp + method +
path with query + body). The engine's accounts have a key and a secret only: any non-empty
passphrase is taken, unless ``settings["passphrase"]`` names the one to require.

Clocks: the signature window and ``/api/v5/public/time`` are the wall clock plus any injected
skew (clients sign with the wall clock); candles, orders and fills are on the emulated market
clock.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from math import gcd
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.dialect import EmulatorDialect
from realtrade_core.emulator.model import EngineError, MarketSpec, Order

from ..common import inst_id, rest_signature
from .wire import (
    BARS,
    INVALID_KEY,
    INVALID_SIGN,
    INVALID_TIMESTAMP,
    KEY_MISSING,
    NO_INSTRUMENT,
    PARAMETER_ERROR,
    PASSPHRASE_MISSING,
    PASSPHRASE_WRONG,
    SIGN_MISSING,
    TIMESTAMP_EXPIRED,
    TIMESTAMP_MISSING,
    OkxError,
    OrderExtra,
    account_record,
    balance_detail,
    bar_start,
    candle_row,
    dec,
    instrument,
    parse_iso_ms,
    reject_to_error,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import ConnectionHub

log = logging.getLogger(__name__)

#: How far OKX lets a request's timestamp lie from its clock.
TIMESTAMP_WINDOW_MS = 30_000
_STABLE = ("USDT", "USDC", "USD")
_CONTRACT_TYPES = ("MARGIN", "SWAP", "FUTURES", "OPTION")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def int_param(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        raise OkxError(PARAMETER_ERROR, f"Parameter {name} error") from None


def limit_param(params: dict[str, Any], default: int, maximum: int) -> int:
    limit = int_param(params, "limit")
    if limit is None:
        return default
    if limit < 1:
        raise OkxError(PARAMETER_ERROR, "Parameter limit error")
    return min(limit, maximum)


class OkxRest(EmulatorDialect):
    """The REST endpoints of :class:`~realtrade_okx.emulator.OkxDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings if settings is not None else {})
        # (account, clOrdId) -> what OKX reports that the engine does not keep; written before
        # the engine sees the order, so the very first stream push already carries it.
        self._extras: dict[tuple[str, str], OrderExtra] = {}

    # --- markets by OKX id ---------------------------------------------------------------------

    def inst_id_of(self, symbol: str) -> str:
        spec = self.engine.markets[symbol]
        return inst_id(spec.base, spec.quote)

    def spec_for(self, instrument_id: object, *, required: bool = True) -> MarketSpec | None:
        """The engine market of an OKX ``instId`` (``BTC-USDT``)."""
        if not instrument_id:
            if required:
                raise OkxError(PARAMETER_ERROR, "Parameter instId can not be empty")
            return None
        for spec in self.engine.markets.values():
            if inst_id(spec.base, spec.quote) == instrument_id:
                return spec
        raise OkxError(NO_INSTRUMENT, "Instrument ID does not exist")

    @staticmethod
    def _spot_only(params: dict[str, Any], *, required: bool = False) -> bool:
        """False for an ``instType`` the emulator has no markets of (answered empty)."""
        kind = params.get("instType")
        if not kind:
            if required:
                raise OkxError(PARAMETER_ERROR, "Parameter instType can not be empty")
            return True
        if kind == "SPOT":
            return True
        if kind in _CONTRACT_TYPES:
            return False
        raise OkxError(PARAMETER_ERROR, "Parameter instType error")

    def _extra(self, order: Order) -> OrderExtra | None:
        return self._extras.get((order.account, order.client_order_id))

    def _usd_price(self, asset: str) -> Decimal | None:
        if asset in _STABLE:
            return Decimal(1)
        for quote in _STABLE:
            if f"{asset}{quote}" in self.engine.markets:
                return self.engine.last_price(f"{asset}{quote}")
        return None

    # --- envelopes, errors and signatures ----------------------------------------------------------

    @staticmethod
    def envelope(data: Any, code: str = "0", message: str = "") -> dict[str, Any]:
        return {"code": code, "msg": message, "data": data}

    @staticmethod
    def reply(body: Any, status: int = 200) -> web.Response:
        return web.Response(text=_dumps(body), status=status, content_type="application/json")

    def _wrap(self, fn: Callable[..., Any], *, private: bool = False) -> Handler:
        """An aiohttp handler around ``fn(params)`` (public) or ``fn(params, api_key, request)``
        (private); ``fn`` returns the ``data`` list, or a whole envelope for partial failures."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                if private:
                    api_key, params = await self._authenticate(request)
                    result = fn(params, api_key, request)
                else:
                    result = fn(self._query(request))
            except (OkxError, EngineError) as exc:
                error = exc if isinstance(exc, OkxError) else reject_to_error(exc.reason, exc.message)
                log.debug("okx emulator: %s %s -> %s %s", request.method, request.path, error.code, error.message)
                return self.reply(self.envelope([], error.code, error.message), error.http_status)
            if isinstance(result, dict) and "code" in result:
                return self.reply(result)
            return self.reply(self.envelope(result))

        return handler

    @staticmethod
    def _query(request: web.Request) -> dict[str, Any]:
        return {key: request.query.getone(key) for key in request.query}

    async def _authenticate(self, request: web.Request) -> tuple[str, Any]:
        """Check OKX's v5 headers and signature; returns the API key and the parameters (the
        query, or the JSON body: an object, or a list for batch endpoints)."""
        headers = request.headers
        api_key = headers.get("OK-ACCESS-KEY", "")
        passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
        timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        signature = headers.get("OK-ACCESS-SIGN", "")
        body = await request.text() if request.method == "POST" else ""
        if not api_key:
            raise OkxError(KEY_MISSING, 'Request header "OK-ACCESS-KEY" can not be empty.', 401)
        if not passphrase:
            raise OkxError(PASSPHRASE_MISSING, 'Request header "OK-ACCESS-PASSPHRASE" can not be empty.', 401)
        if not signature:
            raise OkxError(SIGN_MISSING, 'Request header "OK-ACCESS-SIGN" can not be empty.', 401)
        if not timestamp:
            raise OkxError(TIMESTAMP_MISSING, 'Request header "OK-ACCESS-TIMESTAMP" can not be empty.', 401)
        secret = self.engine.secret_for(api_key)
        if secret is None:
            raise OkxError(INVALID_KEY, "Invalid OK-ACCESS-KEY", 401)
        wanted = (self.settings or {}).get("passphrase")
        if wanted is not None and not hmac.compare_digest(str(wanted), passphrase):
            raise OkxError(PASSPHRASE_WRONG, "OK-ACCESS-PASSPHRASE incorrect.", 401)
        try:
            sent = parse_iso_ms(timestamp)
        except ValueError:
            raise OkxError(INVALID_TIMESTAMP, "Invalid OK-ACCESS-TIMESTAMP", 401) from None
        if abs(sent - self.auth_time()) > TIMESTAMP_WINDOW_MS:
            raise OkxError(TIMESTAMP_EXPIRED, "Timestamp request expired", 401)
        # The signature covers the path and query exactly as sent.
        expected = rest_signature(secret, timestamp, request.method, request.rel_url.raw_path_qs, body)
        if not hmac.compare_digest(expected, signature):
            raise OkxError(INVALID_SIGN, "Invalid Sign", 401)
        if request.method != "POST":
            return api_key, self._query(request)
        try:
            params = json.loads(body) if body.strip() else {}
        except ValueError:
            raise OkxError(PARAMETER_ERROR, "Parameter error: the body is not valid JSON") from None
        if not isinstance(params, (dict, list)):
            raise OkxError(PARAMETER_ERROR, "Parameter error: the body must be a JSON object")
        return api_key, params

    # --- routes ----------------------------------------------------------------------------------

    def rest_routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.get("/api/v5/public/time", w(self._time)),
            web.get("/api/v5/system/status", w(lambda params: [])),  # no maintenance scheduled
            web.get("/api/v5/public/instruments", w(self._instruments)),
            web.get("/api/v5/market/candles", w(self._candles)),
            web.get("/api/v5/market/history-candles", w(self._history_candles)),
            web.get("/api/v5/market/ticker", w(self._ticker)),
            web.get("/api/v5/market/tickers", w(self._tickers)),
            web.get("/api/v5/market/books", w(self._books)),
            web.get("/api/v5/market/trades", w(self._trades)),
            web.get("/api/v5/account/balance", w(self._balance, private=True)),
            web.get("/api/v5/account/config", w(self._config, private=True)),
            web.get("/api/v5/account/trade-fee", w(self._trade_fee, private=True)),
            web.get("/api/v5/asset/currencies", w(self._currencies, private=True)),
        ]

    # --- market data ------------------------------------------------------------------------------

    def _time(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return [{"ts": str(self.server_time())}]

    def _instruments(self, params: dict[str, Any]) -> list[dict[str, object]]:
        if not self._spot_only(params, required=True):
            return []
        specs = list(self.engine.markets.values())
        if params.get("instId"):
            specs = [s for s in specs if inst_id(s.base, s.quote) == params["instId"]]
        return [instrument(s) for s in specs]

    def _candles(self, params: dict[str, Any]) -> list[list[str]]:
        return self.candle_rows(params, 300)

    def _history_candles(self, params: dict[str, Any]) -> list[list[str]]:
        return self.candle_rows(params, 100)

    def candle_rows(self, params: dict[str, Any], maximum: int) -> list[list[str]]:
        """Candles newest first, as OKX pages them: ``after`` asks for candles older than a time,
        ``before`` for newer ones (both exclusive); of those, the newest ``limit``. The candle
        still forming is included, ``confirm`` ``"0"``."""
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        bar = str(params.get("bar") or "1m")
        if bar not in BARS:
            raise OkxError(PARAMETER_ERROR, f"Parameter bar error: one of {', '.join(BARS)}")
        length, offset = BARS[bar]
        source = self.engine.interval_ms(spec.symbol)
        step = gcd(length, offset) if offset else length
        if step % source:
            raise OkxError(
                PARAMETER_ERROR,
                f"Parameter bar error: {bar} is not made of the emulator's {source // 60_000}-minute candles",
            )
        limit = limit_param(params, 100, maximum)
        after, before = int_param(params, "after"), int_param(params, "before")
        now = self.engine.now()
        last = bar_start(bar, min(after - 1, now) if after is not None else now)
        first = last - (limit - 1) * length
        if before is not None:  # the candle containing "before" opened at or before it: excluded
            first = max(first, bar_start(bar, before) + length)
        if first > last:
            return []
        pieces = self.engine.candles(
            spec.symbol, step, start=first, end=last + length - 1, limit=(last + length - first) // step + 1
        )
        rows: list[list[str]] = []
        buckets: dict[int, list[Any]] = {}
        for piece in pieces:
            buckets.setdefault(bar_start(bar, piece.open_time), []).append(piece)
        for start in sorted(buckets, reverse=True):
            parts = buckets[start]
            merged = parts[0] if len(parts) == 1 else _merge(parts)
            rows.append(candle_row(start, merged, start + length <= now))
        return rows[:limit]

    def _ticker_record(self, spec: MarketSpec) -> dict[str, str]:
        stats = self.engine.ticker_24h(spec.symbol)
        bid, bid_size, ask, ask_size = self.engine.book(spec.symbol)
        now = str(self.engine.now())
        return {
            "instType": "SPOT", "instId": inst_id(spec.base, spec.quote), "last": dec(stats["last"]), "lastSz": "0",
            "askPx": dec(ask), "askSz": dec(ask_size), "bidPx": dec(bid), "bidSz": dec(bid_size),
            "open24h": dec(stats["open"]), "high24h": dec(stats["high"]), "low24h": dec(stats["low"]),
            "volCcy24h": dec(stats["quote_volume"]), "vol24h": dec(stats["volume"]), "sodUtc0": dec(stats["open"]),
            "sodUtc8": dec(stats["open"]), "ts": now,
        }  # fmt: skip

    def _ticker(self, params: dict[str, Any]) -> list[dict[str, str]]:
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        return [self._ticker_record(spec)]

    def _tickers(self, params: dict[str, Any]) -> list[dict[str, str]]:
        if not self._spot_only(params, required=True):
            return []
        return [self._ticker_record(s) for s in self.engine.markets.values()]

    def _books(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        bid, bid_size, ask, ask_size = self.engine.book(spec.symbol)
        return [
            {
                "asks": [[dec(ask), dec(ask_size), "0", "1"]],
                "bids": [[dec(bid), dec(bid_size), "0", "1"]],
                "ts": str(self.engine.now()),
            }
        ]

    def _trades(self, params: dict[str, Any]) -> list[dict[str, str]]:
        spec = self.spec_for(params.get("instId"))
        assert spec is not None
        trades = self.engine.public_trades(spec.symbol, limit_param(params, 100, 500))
        return [
            {
                "instId": inst_id(spec.base, spec.quote),
                "tradeId": str(t.trade_id),
                "px": dec(t.price),
                "sz": dec(t.amount),
                "side": "sell" if t.buyer_is_maker else "buy",
                "ts": str(t.time),
                "count": "1",
                "source": "0",
            }
            for t in reversed(trades)
        ]

    # --- account ------------------------------------------------------------------------------------

    def balance_details(self, api_key: str, assets: set[str] | None = None) -> list[dict[str, object]]:
        now = self.engine.now()
        details = []
        for balance in self.engine.balances(api_key):
            if assets is not None:
                if balance.asset not in assets:
                    continue
            elif balance.total == 0:
                continue
            details.append(balance_detail(balance, now, self._usd_price(balance.asset)))
        return details

    def _balance(self, params: dict[str, Any], api_key: str, request: web.Request) -> list[dict[str, object]]:
        wanted = {c for c in str(params.get("ccy", "")).split(",") if c} or None
        return [account_record(self.balance_details(api_key, wanted), self.engine.now())]

    def _config(self, params: dict[str, Any], api_key: str, request: web.Request) -> list[dict[str, object]]:
        # acctLv "1": the spot (cash) account mode, the only one the emulator has.
        return [
            {
                "acctLv": "1", "acctStpMode": "cancel_maker", "autoLoan": False, "ctIsoMode": "automatic",
                "enableSpotBorrow": False, "greeksType": "PA", "ip": "", "kycLv": "2", "label": "realtrade emulator",
                "level": "Lv1", "levelTmp": "", "liquidationGear": "-1", "mainUid": "100000001",
                "mgnIsoMode": "automatic", "opAuth": "0", "perm": "read_only,trade", "posMode": "net_mode",
                "roleType": "0", "spotBorrowAutoRepay": False, "spotOffsetType": "", "spotRoleType": "0",
                "spotTraderInsts": [], "traderInsts": [], "uid": "100000001",
            }
        ]  # fmt: skip

    def _trade_fee(self, params: dict[str, Any], api_key: str, request: web.Request) -> list[dict[str, object]]:
        if not self._spot_only(params, required=True):
            return []
        spec = self.spec_for(params.get("instId"), required=False)
        specs = [spec] if spec is not None else list(self.engine.markets.values())
        # OKX writes fees charged as negative rates.
        return [
            {
                "category": "1",
                "delivery": "",
                "exercise": "",
                "instType": "SPOT",
                "level": "Lv1",
                "maker": dec(-s.maker_fee),
                "taker": dec(-s.taker_fee),
                "makerU": "",
                "takerU": "",
                "ts": str(self.engine.now()),
            }
            for s in specs[:1]
        ]

    def _currencies(self, params: dict[str, Any], api_key: str, request: web.Request) -> list[dict[str, object]]:
        coins: list[str] = []
        for spec in self.engine.markets.values():
            for coin in (spec.base, spec.quote):
                if coin not in coins:
                    coins.append(coin)
        wanted = {c for c in str(params.get("ccy", "")).split(",") if c}
        # One internal chain each: the emulator has no deposits or withdrawals.
        return [
            {
                "ccy": c,
                "name": c,
                "chain": f"{c}-OKX",
                "canDep": False,
                "canWd": False,
                "canInternal": True,
                "minDep": "",
                "minWd": "0",
                "maxWd": "0",
                "wdTickSz": "8",
                "wdQuota": "0",
                "usedWdQuota": "0",
                "minFee": "0",
                "maxFee": "0",
                "mainNet": True,
                "needTag": False,
                "minDepArrivalConfirm": "",
                "minWdUnlockConfirm": "",
                "depQuotaFixed": "",
                "usedDepQuotaFixed": "",
                "depQuoteDailyLayer2": "",
                "logoLink": "",
            }
            for c in coins
            if not wanted or c in wanted
        ]


def _merge(parts: list[Any]) -> Any:
    """One candle from consecutive ones (open of the first, high, low, close of the last, sums)."""
    from dataclasses import replace

    first = parts[0]
    return replace(
        first,
        high=max(p.high for p in parts),
        low=min(p.low for p in parts),
        close=parts[-1].close,
        volume=sum((p.volume for p in parts), Decimal(0)),
        quote_volume=sum((p.quote_volume for p in parts), Decimal(0)),
        trades=sum(p.trades for p in parts),
    )
