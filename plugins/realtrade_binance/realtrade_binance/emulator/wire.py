"""Pure translation helpers of the Binance emulator dialect: engine records -> Binance JSON.

Nothing here touches sockets, the engine or the clock: every function takes records and numbers
and returns the dicts Binance's spot API documents (REST ``/api/v3``, market streams, WebSocket
API user-data events), so the shapes are unit-tested without a server. Numbers follow Binance's
conventions: prices and quantities are decimal strings with (at least) 8 decimals, ids and times
are integers.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from realtrade_core.credentials import hmac_hex
from realtrade_core.emulator.memo import by_identity
from realtrade_core.emulator.model import (
    Balance,
    Candle,
    ExecutionType,
    Fill,
    MarketSpec,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    TradeEvent,
)

from ..common import ws_signature_payload  # noqa: F401 - signing is shared with the client

_ZERO = Decimal(0)
_Q8 = Decimal("1e-8")
_PRECISION = 8  # base/quote asset precision Binance reports for every market here


def signature_ok(secret: str, payload: str, signature: str) -> bool:
    """Whether ``signature`` signs ``payload`` (compared in constant time)."""
    return hmac.compare_digest(hmac_hex(secret, payload), signature.strip().lower())


# --- errors -------------------------------------------------------------------------------------


class BinanceError(Exception):
    """An error answer in Binance's shape: ``{"code": -NNNN, "msg": "..."}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
INVALID_INTERVAL = (-1120, "Invalid interval.")
UNKNOWN_ORDER = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
INSUFFICIENT_BALANCE_MSG = "Account has insufficient balance for requested action."
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
BAD_API_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
BAD_API_KEY_FORMAT = (-2014, "API-key format invalid.")
OCO_BAD_PRICES = (-2010, "The relationship of the prices for the orders is not correct.")
UNSUPPORTED_COMBINATION = (-1014, "Unsupported order combination.")
UNSUPPORTED_TYPE = (-2010, "Order type not supported for this symbol.")
NO_SUCH_ORDER_LIST = (-2013, "Order list does not exist.")


def engine_error(reason: RejectReason, message: str, *, market: bool = False) -> BinanceError:
    """The Binance answer to an engine rejection of a new order.

    ccxt maps these (on top of the codes) by message: "Account has insufficient balance ..." is
    InsufficientFunds, "Order would trigger immediately." OrderImmediatelyFillable, and any body
    naming PRICE_FILTER or LOT_SIZE InvalidOrder.
    """
    if reason is RejectReason.UNKNOWN_SYMBOL:
        return BinanceError(*INVALID_SYMBOL)
    if reason is RejectReason.PRICE_PRECISION:
        return BinanceError(-1013, "Filter failure: PRICE_FILTER")
    if reason in (RejectReason.AMOUNT_PRECISION, RejectReason.MIN_AMOUNT, RejectReason.MAX_AMOUNT):
        return BinanceError(-1013, "Filter failure: MARKET_LOT_SIZE" if market else "Filter failure: LOT_SIZE")
    if reason is RejectReason.MIN_NOTIONAL:
        return BinanceError(-1013, "Filter failure: NOTIONAL")
    if reason is RejectReason.INSUFFICIENT_BALANCE:
        return BinanceError(-2010, INSUFFICIENT_BALANCE_MSG)
    if reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
        return BinanceError(-2010, "Duplicate order sent.")
    if reason is RejectReason.WOULD_TRIGGER_IMMEDIATELY:
        return BinanceError(-2010, "Order would trigger immediately.")
    if reason is RejectReason.ORDER_NOT_FOUND:
        return BinanceError(*NO_SUCH_ORDER)
    if reason is RejectReason.ORDER_NOT_CANCELABLE:
        return BinanceError(*UNKNOWN_ORDER)
    # INVALID_PARAMETER: the dialect validates parameters first, so this is a corner the engine
    # sees differently (e.g. a client id valid for Binance but not for the engine).
    return BinanceError(-1102, f"A mandatory parameter was not sent, was empty/null, or malformed. ({message})")


def injected_error_body(status: int, retry_after: int | None, now_ms: int) -> tuple[int, dict[str, Any]]:
    """What Binance sends with an HTTP 429 / 418 / 5xx (fault injection)."""
    if status == 429:
        return 429, {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        }
    if status == 418:
        until = now_ms + 1000 * (retry_after if retry_after is not None else 120)
        return 418, {
            "code": -1003,
            "msg": f"Way too much request weight used; IP banned until {until}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
        }
    if status == 504:
        return 504, {
            "code": -1007,
            "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        }
    if status == 503:
        return 503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
    if status >= 500:
        return status, {"code": -1000, "msg": "An unknown error occurred while processing the request."}
    if status == 401:
        return 401, {"code": BAD_API_KEY[0], "msg": BAD_API_KEY[1]}
    if status == 403:
        return 403, {"code": -1002, "msg": "You are not authorized to execute this request."}
    return status, {"code": -1000, "msg": "An unknown error occurred while processing the request."}


# --- numbers ------------------------------------------------------------------------------------


def fmt(value: Decimal | None) -> str:
    """A Binance decimal string: 8 decimals ("0.01634790"), more only if the value needs them."""
    if value is None:
        value = _ZERO
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_PRECISION:
        # Never round: a sum of fills or a tiny fee must reach the client exactly.
        return format(value.normalize(), "f")
    try:
        return format(value.quantize(_Q8), "f")
    except InvalidOperation:  # too many digits for the context: exact is better than an error
        return format(value, "f")


#: :func:`fmt` for market-stream payloads, which carry the same numbers again and again.
fmt_market = by_identity(fmt)


def fmt_plain(value: Decimal) -> str:
    """A filter value as Binance writes filters ("0.01000000"); same rule as :func:`fmt`."""
    return fmt(value)


_DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_DECIMAL_LEGAL = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
_INT_RE = re.compile(r"^-?[0-9]{1,20}$")


def parse_decimal(params: Mapping[str, str], name: str, *, required: bool = False) -> Decimal | None:
    """A decimal parameter as Binance validates it: digits only, at most 8 significant decimals."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    if not _DECIMAL_RE.match(raw):
        raise illegal(name, _DECIMAL_LEGAL)
    value = Decimal(raw)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_PRECISION:
        raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
    return value


def parse_int(params: Mapping[str, str], name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    if not _INT_RE.match(raw):
        raise illegal(name, "^[0-9]{1,20}$")
    return int(raw)


def parse_limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    """``limit``: Binance answers at most ``maximum`` rows whatever is asked for."""
    limit = parse_int(params, "limit")
    if limit is None:
        return default
    if limit <= 0:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, maximum)


def parse_params(query: str, body: str) -> dict[str, str]:
    """The request's parameters from the raw query string and form body (query wins)."""
    params: dict[str, str] = {}
    for source in (query, body):
        if not source:
            continue
        for key, value in parse_qsl(source, keep_blank_values=True):
            params.setdefault(key, value)
    return params


# --- signatures ---------------------------------------------------------------------------------


def split_signature(query: str, body: str) -> tuple[str, str | None]:
    """Binance's signed payload (``totalParams``: query string then body, as sent, without the
    ``signature`` parameter) and the signature sent, if any."""
    signature: str | None = None
    parts: list[str] = []
    for source in (query, body):
        if not source:
            continue
        kept = []
        for item in source.split("&"):
            if item.startswith("signature="):
                if signature is None:
                    signature = item[len("signature=") :]
                continue
            kept.append(item)
        parts.append("&".join(kept))
    return "".join(parts), signature


_ID_ALPHABET = string.ascii_letters + string.digits


def new_client_order_id() -> str:
    """A client order id as Binance generates one: 22 random letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


CLIENT_ORDER_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
CLIENT_ORDER_ID_LEGAL = "^[a-zA-Z0-9-_]{1,36}$"


# --- intervals ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A kline interval: its length and where its buckets start (Binance weeks start on Monday)."""

    name: str
    ms: int
    offset: int = 0

    def align(self, t: int) -> int:
        """Open time of the bucket holding ``t``."""
        return t - (t - self.offset) % self.ms

    def align_up(self, t: int) -> int:
        """Open time of the first bucket opening at or after ``t``."""
        start = self.align(t)
        return start if start == t else start + self.ms


_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# 1970-01-01 was a Thursday; Binance's weekly klines open on Mondays, four days later.
_WEEK_OFFSET = 4 * _DAY

#: Every interval ccxt maps for Binance spot except "1M" (calendar months are not a fixed length).
INTERVALS: dict[str, Interval] = {
    iv.name: iv
    for iv in (
        Interval("1s", 1000),
        Interval("1m", _MINUTE),
        Interval("3m", 3 * _MINUTE),
        Interval("5m", 5 * _MINUTE),
        Interval("15m", 15 * _MINUTE),
        Interval("30m", 30 * _MINUTE),
        Interval("1h", _HOUR),
        Interval("2h", 2 * _HOUR),
        Interval("4h", 4 * _HOUR),
        Interval("6h", 6 * _HOUR),
        Interval("8h", 8 * _HOUR),
        Interval("12h", 12 * _HOUR),
        Interval("1d", _DAY),
        Interval("3d", 3 * _DAY),
        Interval("1w", 7 * _DAY, _WEEK_OFFSET),
    )
}


def intervals_for(source_ms: int) -> list[Interval]:
    """The intervals a market replayed at ``source_ms`` can serve: whole multiples of it whose
    buckets start on source candle boundaries."""
    return [iv for iv in INTERVALS.values() if iv.ms % source_ms == 0 and iv.offset % source_ms == 0]


def merge_candle(acc: Candle | None, candle: Candle, open_time: int, interval_ms: int) -> Candle:
    """``acc`` (the aggregate so far, or None) extended by the next source ``candle``: open of the
    first, max high, min low, close of the last, summed volumes and trades (the engine's rule)."""
    if acc is None:
        return Candle(
            open_time,
            interval_ms,
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.quote_volume,
            candle.trades,
        )
    return Candle(
        open_time,
        interval_ms,
        acc.open,
        max(acc.high, candle.high),
        min(acc.low, candle.low),
        candle.close,
        acc.volume + candle.volume,
        acc.quote_volume + candle.quote_volume,
        acc.trades + candle.trades,
    )


def group_candles(candles: Iterable[Candle], interval: Interval) -> list[Candle]:
    """Aggregate source candles (oldest first) into ``interval`` buckets, oldest first."""
    out: list[Candle] = []
    current: Candle | None = None
    for candle in candles:
        bucket = interval.align(candle.open_time)
        if current is not None and current.open_time != bucket:
            out.append(current)
            current = None
        current = merge_candle(current, candle, bucket, interval.ms)
    if current is not None:
        out.append(current)
    return out


def kline_row(candle: Candle) -> list[Any]:
    """One row of ``GET /api/v3/klines``. Taker-buy volumes are not replayed: sent as 0."""
    return [
        candle.open_time,
        fmt(candle.open),
        fmt(candle.high),
        fmt(candle.low),
        fmt(candle.close),
        fmt(candle.volume),
        candle.open_time + candle.interval_ms - 1,
        fmt(candle.quote_volume),
        candle.trades,
        "0.00000000",
        "0.00000000",
        "0",
    ]


def kline_event(
    symbol: str,
    interval_name: str,
    candle: Candle,
    closed: bool,
    event_time: int,
    first_trade: int = -1,
    last_trade: int = -1,
) -> dict[str, Any]:
    """A ``<symbol>@kline_<interval>`` stream payload."""
    return {
        "e": "kline",
        "E": event_time,
        "s": symbol,
        "k": {
            "t": candle.open_time,
            "T": candle.open_time + candle.interval_ms - 1,
            "s": symbol,
            "i": interval_name,
            "f": first_trade,
            "L": last_trade,
            "o": fmt_market(candle.open),
            "c": fmt_market(candle.close),
            "h": fmt_market(candle.high),
            "l": fmt_market(candle.low),
            "v": fmt_market(candle.volume),
            "n": candle.trades,
            "x": closed,
            "q": fmt_market(candle.quote_volume),
            "V": "0.00000000",
            "Q": "0.00000000",
            "B": "0",
        },
    }


def combined_text(stream: str, data: str) -> str:
    """``{"stream": stream, "data": payload}`` as a combined connection gets it, around ``data``,
    the payload already encoded: the same text as encoding the wrapper, without encoding twice."""
    return '{"stream":' + json.dumps(stream) + ',"data":' + data + "}"


def trade_event(trade: TradeEvent) -> dict[str, Any]:
    """A ``<symbol>@trade`` payload."""
    return {
        "e": "trade",
        "E": trade.time,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": fmt_market(trade.price),
        "q": fmt_market(trade.amount),
        "T": trade.time,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def agg_trade_event(trade: TradeEvent) -> dict[str, Any]:
    """A ``<symbol>@aggTrade`` payload: every replayed trade is its own aggregate."""
    return {
        "e": "aggTrade",
        "E": trade.time,
        "s": trade.symbol,
        "a": trade.trade_id,
        "p": fmt_market(trade.price),
        "q": fmt_market(trade.amount),
        "f": trade.trade_id,
        "l": trade.trade_id,
        "T": trade.time,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def book_ticker_event(
    symbol: str, update_id: int, bid: Decimal, bid_qty: Decimal, ask: Decimal, ask_qty: Decimal
) -> dict[str, Any]:
    """A ``<symbol>@bookTicker`` payload (spot sends no event type or time)."""
    f = fmt_market
    return {"u": update_id, "s": symbol, "b": f(bid), "B": f(bid_qty), "a": f(ask), "A": f(ask_qty)}


# --- exchangeInfo -------------------------------------------------------------------------------

ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
MAX_PRICE = Decimal(10_000_000)
MAX_NOTIONAL = Decimal(9_000_000)
#: Per-symbol limits of one account, as Binance sets them for its major spot markets. The
#: emulator enforces them (MAX_NUM_* and PERCENT_PRICE_BY_SIDE); icebergs and trailing stops are
#: refused, so ICEBERG_PARTS and TRAILING_DELTA only describe. The average price is the last
#: price here, as ``GET /api/v3/avgPrice`` answers.
MAX_NUM_ORDERS = 200
MAX_NUM_ALGO_ORDERS = 5  # STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT
MAX_NUM_ORDER_LISTS = 20
MAX_NUM_ORDER_AMENDS = 10
ICEBERG_PARTS = 10
PERCENT_PRICE_BY_SIDE = {
    "bidMultiplierUp": Decimal(5),
    "bidMultiplierDown": Decimal("0.2"),
    "askMultiplierUp": Decimal(5),
    "askMultiplierDown": Decimal("0.2"),
}
PERCENT_PRICE_AVG_MINS = 5
TRAILING_DELTA = {
    "minTrailingAboveDelta": 10,
    "maxTrailingAboveDelta": 2000,
    "minTrailingBelowDelta": 10,
    "maxTrailingBelowDelta": 2000,
}

RATE_LIMITS: list[dict[str, Any]] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def symbol_filters(spec: MarketSpec) -> list[dict[str, Any]]:
    """The filter objects of one market, built from its spec, in the order Binance lists them."""
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": fmt(spec.tick_size),
            "maxPrice": fmt(MAX_PRICE),
            "tickSize": fmt(spec.tick_size),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": fmt(spec.min_amount),
            "maxQty": fmt(spec.max_amount),
            "stepSize": fmt(spec.step_size),
        },
        {"filterType": "ICEBERG_PARTS", "limit": ICEBERG_PARTS},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": fmt(spec.min_amount),
            "maxQty": fmt(spec.max_amount),
            "stepSize": fmt(spec.step_size),
        },
        {"filterType": "TRAILING_DELTA", **TRAILING_DELTA},
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            # Binance writes these multipliers short ("5", "0.2"), not with 8 decimals.
            **{key: str(value) for key, value in PERCENT_PRICE_BY_SIDE.items()},
            "avgPriceMins": PERCENT_PRICE_AVG_MINS,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": fmt(spec.min_notional),
            "applyMinToMarket": True,
            "maxNotional": fmt(MAX_NOTIONAL),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
        {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": MAX_NUM_ORDER_LISTS},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS},
        {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": MAX_NUM_ORDER_AMENDS},
    ]


def symbol_info(spec: MarketSpec) -> dict[str, Any]:
    """One entry of ``exchangeInfo.symbols``."""
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": _PRECISION,
        "quoteAsset": spec.quote,
        "quotePrecision": _PRECISION,
        "quoteAssetPrecision": _PRECISION,
        "baseCommissionPrecision": _PRECISION,
        "quoteCommissionPrecision": _PRECISION,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": False,
        "ocoAllowed": True,
        "otoAllowed": False,
        "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": symbol_filters(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def exchange_info(specs: Sequence[MarketSpec], server_time: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(spec) for spec in specs],
    }


def empty_exchange_info(server_time: int) -> dict[str, Any]:
    """What the futures endpoints answer here: no markets (the emulator is spot only)."""
    return {"timezone": "UTC", "serverTime": server_time, "rateLimits": [], "exchangeFilters": [], "symbols": []}


# --- orders -------------------------------------------------------------------------------------

_STATUS = {
    OrderStatus.NEW: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
}
_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_MARKET: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
}
_EXECUTION = {
    ExecutionType.NEW: "NEW",
    ExecutionType.TRADE: "TRADE",
    ExecutionType.CANCELED: "CANCELED",
    ExecutionType.EXPIRED: "EXPIRED",
}
_STOP_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})


@dataclass(frozen=True, slots=True)
class OrderMeta:
    """What Binance reports about an order that the engine does not keep."""

    type_name: str | None = None  # "LIMIT_MAKER" for a post-only limit
    quote_order_qty: Decimal | None = None  # the quoteOrderQty a market order was sent with


def order_type_name(order: Order, meta: OrderMeta | None = None) -> str:
    if meta is not None and meta.type_name:
        return meta.type_name
    return _TYPE[order.type]


def list_id_of(order: Order) -> int:
    """Binance's ``orderListId`` / ``g``: the order list of the order, -1 when it has none."""
    return order.list_id if order.list_id is not None else -1


def status_name(status: OrderStatus) -> str:
    return _STATUS[status]


def execution_name(execution: ExecutionType) -> str | None:
    """Binance's ``x`` for an engine execution type; None for a stop trigger (not reported)."""
    return _EXECUTION.get(execution)


def is_working(order: Order) -> bool:
    """Binance's ``isWorking`` / ``w``: the order rests on the book (a stop only once triggered)."""
    if not order.status.is_open or order.type is OrderType.MARKET:
        return False
    return order.type is OrderType.LIMIT or order.triggered


def working_time(order: Order) -> int:
    """Binance's ``workingTime``: -1 for a stop not yet triggered."""
    if order.type in _STOP_TYPES:
        return order.updated_time if order.triggered else -1
    return order.created_time


def _qoq(meta: OrderMeta | None) -> str:
    return fmt(meta.quote_order_qty if meta is not None else None)


def _core(order: Order, meta: OrderMeta | None) -> dict[str, Any]:
    return {
        "price": fmt(order.price),
        "origQty": fmt(order.amount),
        "executedQty": fmt(order.filled),
        "origQuoteOrderQty": _qoq(meta),
        "cummulativeQuoteQty": fmt(order.cost),
        "status": _STATUS[order.status],
        "timeInForce": order.time_in_force.value,
        "type": order_type_name(order, meta),
        "side": order.side.value.upper(),
    }


def order_ack(order: Order, transact_time: int) -> dict[str, Any]:
    """``newOrderRespType=ACK``."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": list_id_of(order),
        "clientOrderId": order.client_order_id,
        "transactTime": transact_time,
    }


def order_result(order: Order, transact_time: int, meta: OrderMeta | None = None) -> dict[str, Any]:
    """``newOrderRespType=RESULT``."""
    body = order_ack(order, transact_time)
    body.update(_core(order, meta))
    if order.type in _STOP_TYPES:
        body["stopPrice"] = fmt(order.stop_price)
    body["workingTime"] = working_time(order)
    body["selfTradePreventionMode"] = "NONE"
    return body


def fill_row(fill: Fill) -> dict[str, Any]:
    return {
        "price": fmt(fill.price),
        "qty": fmt(fill.amount),
        "commission": fmt(fill.fee),
        "commissionAsset": fill.fee_asset,
        "tradeId": fill.trade_id,
    }


def order_full(order: Order, transact_time: int, meta: OrderMeta | None = None) -> dict[str, Any]:
    """``newOrderRespType=FULL``: the result plus the fills made on arrival."""
    body = order_result(order, transact_time, meta)
    body["fills"] = [fill_row(fill) for fill in order.fills]
    return body


def order_query(order: Order, meta: OrderMeta | None = None) -> dict[str, Any]:
    """``GET /api/v3/order`` and the rows of ``openOrders`` / ``allOrders``."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": list_id_of(order),
        "clientOrderId": order.client_order_id,
    }
    body.update(_core(order, meta))
    body["stopPrice"] = fmt(order.stop_price)
    body["icebergQty"] = "0.00000000"
    body["time"] = order.created_time
    body["updateTime"] = order.updated_time
    body["isWorking"] = is_working(order)
    body["workingTime"] = working_time(order)
    body["selfTradePreventionMode"] = "NONE"
    return body


def order_cancel(
    order: Order, cancel_client_order_id: str, transact_time: int, meta: OrderMeta | None = None
) -> dict[str, Any]:
    """``DELETE /api/v3/order``: ``clientOrderId`` is the cancel request's own id, the order's
    is ``origClientOrderId`` (Binance's convention)."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": list_id_of(order),
        "clientOrderId": cancel_client_order_id,
        "transactTime": transact_time,
    }
    body.update(_core(order, meta))
    if order.type in _STOP_TYPES:
        body["stopPrice"] = fmt(order.stop_price)
    body["selfTradePreventionMode"] = "NONE"
    return body


def my_trade(fill: Fill, list_id: int = -1) -> dict[str, Any]:
    """One row of ``GET /api/v3/myTrades`` (``list_id``: the order list of the fill's order)."""
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": list_id,
        "price": fmt(fill.price),
        "qty": fmt(fill.amount),
        "quoteQty": fmt(fill.quote_amount),
        "commission": fmt(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": fill.time,
        "isBuyer": fill.side.value == "buy",
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def execution_report(
    order: Order,
    execution: str,
    fill: Fill | None,
    event_time: int,
    execution_id: int,
    meta: OrderMeta | None = None,
    cancel_client_order_id: str | None = None,
) -> dict[str, Any]:
    """A user-data ``executionReport`` (the event inside ``{"subscriptionId", "event"}``)."""
    working = is_working(order)
    client_id = order.client_order_id
    original_id = ""
    if execution == "CANCELED" and cancel_client_order_id:
        # Binance reports a cancel under the cancel request's id, the order's own in "C".
        client_id, original_id = cancel_client_order_id, order.client_order_id
    event: dict[str, Any] = {
        "e": "executionReport",
        "E": event_time,
        "s": order.symbol,
        "c": client_id,
        "S": order.side.value.upper(),
        "o": order_type_name(order, meta),
        "f": order.time_in_force.value,
        "q": fmt(order.amount),
        "p": fmt(order.price),
        "P": fmt(order.stop_price),
        "F": "0.00000000",
        "g": list_id_of(order),
        "C": original_id,
        "x": execution,
        "X": _STATUS[order.status],
        "r": "NONE",
        "i": order.order_id,
        "l": fmt(fill.amount if fill else None),
        "z": fmt(order.filled),
        "L": fmt(fill.price if fill else None),
        "n": fmt(fill.fee) if fill else "0",
        "N": fill.fee_asset if fill else None,
        "T": fill.time if fill else event_time,
        "t": fill.trade_id if fill else -1,
        "I": execution_id,
        "w": working,
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": order.created_time,
        "Z": fmt(order.cost),
        "Y": fmt(fill.quote_amount if fill else None),
        "Q": _qoq(meta),
    }
    if working:
        event["W"] = working_time(order)
    event["V"] = "NONE"
    return event


# --- order lists (OCO) ----------------------------------------------------------------------------


@dataclass(slots=True)
class OrderList:
    """What Binance reports about an OCO order list beyond its orders: the engine keeps only the
    ``list_id`` both legs share. ``legs`` are ``(orderId, clientOrderId)``, oldest first."""

    list_id: int
    account: str
    symbol: str
    client_id: str  # listClientOrderId
    time: int  # transactionTime: when the list was placed
    legs: list[tuple[int, str]] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)  # order ids of legs no longer open
    done: bool = False  # the contingency has played out (ALL_DONE)

    @property
    def status(self) -> tuple[str, str]:
        """``(listStatusType, listOrderStatus)``."""
        return ("ALL_DONE", "ALL_DONE") if self.done else ("EXEC_STARTED", "EXECUTING")


def order_list_body(order_list: OrderList, reports: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An order list as REST answers it (``POST /api/v3/orderList/oco``, ``DELETE`` and ``GET
    /api/v3/orderList``); ``reports`` become ``orderReports`` when given."""
    status_type, order_status = order_list.status
    body: dict[str, Any] = {
        "orderListId": order_list.list_id,
        "contingencyType": "OCO",
        "listStatusType": status_type,
        "listOrderStatus": order_status,
        "listClientOrderId": order_list.client_id,
        "transactionTime": order_list.time,
        "symbol": order_list.symbol,
        "orders": [
            {"symbol": order_list.symbol, "orderId": order_id, "clientOrderId": client_id}
            for order_id, client_id in order_list.legs
        ],
    }
    if reports is not None:
        body["orderReports"] = list(reports)
    return body


def list_status_event(order_list: OrderList, event_time: int) -> dict[str, Any]:
    """A user-data ``listStatus`` event (sent beside the legs' ``executionReport`` events)."""
    status_type, order_status = order_list.status
    return {
        "e": "listStatus",
        "E": event_time,
        "s": order_list.symbol,
        "g": order_list.list_id,
        "c": "OCO",
        "l": status_type,
        "L": order_status,
        "r": "NONE",
        "C": order_list.client_id,
        "T": event_time,
        "O": [{"s": order_list.symbol, "i": order_id, "c": client_id} for order_id, client_id in order_list.legs],
    }


def account_position(balances: Iterable[Balance], event_time: int) -> dict[str, Any]:
    """A user-data ``outboundAccountPosition`` event."""
    return {
        "e": "outboundAccountPosition",
        "E": event_time,
        "u": event_time,
        "B": [{"a": b.asset, "f": fmt(b.free), "l": fmt(b.locked)} for b in balances],
    }


def account_info(
    balances: Iterable[Balance], maker_fee: Decimal, taker_fee: Decimal, update_time: int, uid: int
) -> dict[str, Any]:
    """``GET /api/v3/account``."""
    return {
        "makerCommission": int(maker_fee * 10_000),
        "takerCommission": int(taker_fee * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt(maker_fee),
            "taker": fmt(taker_fee),
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_time,
        "accountType": "SPOT",
        "balances": [{"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)} for b in balances],
        "permissions": ["SPOT"],
        "uid": uid,
    }


def ticker_24h(
    symbol: str,
    stats: Mapping[str, Decimal],
    book: tuple[Decimal, Decimal, Decimal, Decimal],
    last_trade: TradeEvent | None,
    now: int,
) -> dict[str, Any]:
    """``GET /api/v3/ticker/24hr`` (FULL)."""
    open_, last = stats["open"], stats["last"]
    change = last - open_
    percent = (change / open_ * 100) if open_ else _ZERO
    volume, quote_volume = stats["volume"], stats["quote_volume"]
    weighted = (quote_volume / volume) if volume else last
    bid, bid_qty, ask, ask_qty = book
    return {
        "symbol": symbol,
        "priceChange": fmt(change),
        "priceChangePercent": f"{percent:.3f}",
        "weightedAvgPrice": fmt(weighted.quantize(_Q8) if volume else weighted),
        "prevClosePrice": fmt(open_),
        "lastPrice": fmt(last),
        "lastQty": fmt(last_trade.amount if last_trade else None),
        "bidPrice": fmt(bid),
        "bidQty": fmt(bid_qty),
        "askPrice": fmt(ask),
        "askQty": fmt(ask_qty),
        "openPrice": fmt(open_),
        "highPrice": fmt(stats["high"]),
        "lowPrice": fmt(stats["low"]),
        "volume": fmt(volume),
        "quoteVolume": fmt(quote_volume),
        "openTime": now - _DAY,
        "closeTime": now,
        "firstId": -1,
        "lastId": last_trade.trade_id if last_trade else -1,
        "count": 0,
    }
