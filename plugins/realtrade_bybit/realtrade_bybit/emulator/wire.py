"""Pure translation helpers of the Bybit v5 emulator dialect: engine records -> Bybit payloads.

Nothing here touches the network, the engine or the hub, so every shape can be unit-tested with
plain records. Field names and value conventions follow Bybit's v5 documentation for the spot
category of a unified trading account (UTA): decimal strings, millisecond timestamps as strings
in REST order/execution records, ``"0"`` / ``""`` for fields that do not apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal, InvalidOperation

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
    Side,
)

from ..common import ws_auth_signature  # noqa: F401 - signing is shared with the client

MINUTE_MS = 60_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
# 1970-01-01 was a Thursday; Bybit's weekly candles open on Monday 00:00 UTC (1970-01-05).
_MONDAY_OFFSET_MS = 4 * DAY_MS

#: Bybit kline interval codes with a fixed length. "M" (calendar month) is handled apart.
FIXED_INTERVALS_MS: dict[str, int] = {
    "1": MINUTE_MS,
    "3": 3 * MINUTE_MS,
    "5": 5 * MINUTE_MS,
    "15": 15 * MINUTE_MS,
    "30": 30 * MINUTE_MS,
    "60": 60 * MINUTE_MS,
    "120": 120 * MINUTE_MS,
    "240": 240 * MINUTE_MS,
    "360": 360 * MINUTE_MS,
    "720": 720 * MINUTE_MS,
    "D": DAY_MS,
    "W": WEEK_MS,
}
INTERVAL_CODES: tuple[str, ...] = (*FIXED_INTERVALS_MS, "M")

#: ``orderLinkId``: at most 36 characters of letters, digits, ``_`` and ``-``.
ORDER_LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")

# Bybit's own retCodes. Kept as names so the tables below read like the documentation.
OK = 0
PARAMS_ERROR = 10001
TIMESTAMP_ERROR = 10002
INVALID_API_KEY = 10003
INVALID_SIGN = 10004
TOO_MANY_VISITS = 10006
IP_RATE_LIMIT = 10018
INSUFFICIENT_BALANCE = 170131
PRICE_DECIMALS = 170134
QTY_TOO_LARGE = 170135
QTY_TOO_SMALL = 170136
QTY_DECIMALS = 170137
ORDER_VALUE_TOO_SMALL = 170140
DUPLICATE_LINK_ID = 170141
MARKET_AMOUNT_DECIMALS = 170148
INVALID_ORDER_FILTER = 170202
TPSL_PRICE_REQUIRED = 170203
ORDER_NOT_EXISTS = 170213
INVALID_TIF = 170115
INVALID_ORDER_TYPE = 170116
INVALID_SIDE = 170117
POST_ONLY_WOULD_TAKE = 170218
EXPECT_RISING = 110092
EXPECT_FALLING = 110093


class BybitError(Exception):
    """A request the dialect answers with a non-zero ``retCode`` (HTTP 200, as Bybit does)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


#: Engine rejection kinds -> (retCode, retMsg). Spot-category codes where Bybit has them; each is
#: mapped by ccxt's bybit ``exceptions`` table to the class a user expects (InvalidOrder,
#: InsufficientFunds, OrderNotFound, BadRequest).
REJECT_CODES: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (PARAMS_ERROR, "params error: symbol invalid"),
    RejectReason.INVALID_PARAMETER: (PARAMS_ERROR, "params error"),
    RejectReason.PRICE_PRECISION: (PRICE_DECIMALS, "Order price decimal too long."),
    RejectReason.AMOUNT_PRECISION: (QTY_DECIMALS, "Order quantity has too many decimals."),
    RejectReason.MIN_AMOUNT: (QTY_TOO_SMALL, "Order quantity lower than the minimum."),
    RejectReason.MAX_AMOUNT: (QTY_TOO_LARGE, "Order quantity too large."),
    RejectReason.MIN_NOTIONAL: (ORDER_VALUE_TOO_SMALL, "Order value exceeded lower limit."),
    RejectReason.INSUFFICIENT_BALANCE: (INSUFFICIENT_BALANCE, "Insufficient balance."),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (DUPLICATE_LINK_ID, "Duplicate clientOrderId."),
    RejectReason.ORDER_NOT_FOUND: (ORDER_NOT_EXISTS, "Order does not exist."),
    RejectReason.ORDER_NOT_CANCELABLE: (ORDER_NOT_EXISTS, "Order does not exist."),
    # Resolved with the trigger price and the last price by the caller (expect Rising/Falling).
    RejectReason.WOULD_TRIGGER_IMMEDIATELY: (EXPECT_RISING, "trigger price already crossed"),
    # Perpetuals (category=linear; .linear_wire maps the ones it answers with its own codes).
    RejectReason.INSUFFICIENT_MARGIN: (110007, "ab not enough for new order"),
    RejectReason.REDUCE_ONLY_REJECTED: (110017, "Reduce-only rule not satisfied"),
    RejectReason.INVALID_LEVERAGE: (PARAMS_ERROR, "leverage invalid"),
    RejectReason.NOT_MODIFIED: (110026, "Cross/isolated margin mode is not modified"),
    RejectReason.POSITION_EXISTS: (3400045, "Set margin mode failed"),
    RejectReason.OPEN_ORDERS_EXIST: (3400045, "Set margin mode failed"),
}


def reject_to_error(reason: RejectReason, message: str) -> BybitError:
    """The Bybit error for an engine rejection; parameter errors keep the engine's detail."""
    code, text = REJECT_CODES.get(reason, (PARAMS_ERROR, "params error"))
    if reason is RejectReason.INVALID_PARAMETER and message:
        text = f"params error: {message}"
    return BybitError(code, text)


# --- numbers ------------------------------------------------------------------------------------


def dec(value: Decimal | int | None) -> str:
    """A decimal as Bybit writes it: plain notation, no exponent, no trailing zeros."""
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        value = Decimal(value)
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_decimal(text: object, field: str) -> Decimal:
    """A strictly positive finite decimal from a request field, or a params error naming it."""
    if isinstance(text, bool) or text is None or text == "":
        raise BybitError(PARAMS_ERROR, f"params error: {field} is required")
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise BybitError(PARAMS_ERROR, f"params error: {field} invalid") from None
    if not value.is_finite() or value <= 0:
        raise BybitError(PARAMS_ERROR, f"params error: {field} must be positive")
    return value


#: :func:`dec` for market-stream payloads, which carry the same numbers again and again.
dec_market = by_identity(dec)


def decimals_of(step: Decimal) -> int:
    """Number of decimal places of a step such as ``0.001`` (3) or ``1`` (0)."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def quote_precision(spec: MarketSpec) -> Decimal:
    """Smallest quote increment: a price times a quantity never has more decimals than this."""
    return Decimal(1).scaleb(-(decimals_of(spec.tick_size) + decimals_of(spec.step_size)))


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and value % step == 0


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


# --- time and klines --------------------------------------------------------------------------


def bucket_start(code: str, time_ms: int) -> int:
    """Open time of the Bybit candle of interval ``code`` that contains ``time_ms``."""
    if code == "M":
        moment = datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc)
        first = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)
        return int(first.timestamp() * 1000)
    if code == "W":
        return (time_ms - _MONDAY_OFFSET_MS) // WEEK_MS * WEEK_MS + _MONDAY_OFFSET_MS
    length = FIXED_INTERVALS_MS[code]
    return time_ms // length * length


def bucket_next(code: str, start_ms: int) -> int:
    """Open time of the candle after the one opening at ``start_ms``."""
    if code == "M":
        moment = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp() * 1000)
    return start_ms + FIXED_INTERVALS_MS[code]


def calendar_aligned(code: str) -> bool:
    """True for intervals the engine's epoch-aligned aggregation cannot produce (week, month)."""
    return code in ("W", "M")


@dataclass(slots=True)
class KlineAgg:
    """An aggregated candle being built from source candles, oldest first."""

    start: int
    end: int  # exclusive
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal

    @classmethod
    def of(cls, code: str, candle: Candle) -> KlineAgg:
        start = bucket_start(code, candle.open_time)
        return cls(
            start,
            bucket_next(code, start),
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.quote_volume,
        )

    def add(self, candle: Candle) -> KlineAgg:
        """A new aggregate with ``candle`` (a later source candle of the same bucket) folded in."""
        return KlineAgg(
            self.start,
            self.end,
            self.open,
            max(self.high, candle.high),
            min(self.low, candle.low),
            candle.close,
            self.volume + candle.volume,
            self.turnover + candle.quote_volume,
        )


def aggregate(code: str, candles: list[Candle]) -> list[KlineAgg]:
    """Fold source candles (oldest first) into calendar buckets of interval ``code``."""
    out: list[KlineAgg] = []
    for candle in candles:
        if out and out[-1].start == bucket_start(code, candle.open_time):
            out[-1] = out[-1].add(candle)
        else:
            out.append(KlineAgg.of(code, candle))
    return out


def kline_row(start: int, o: Decimal, h: Decimal, low: Decimal, c: Decimal, v: Decimal, t: Decimal) -> list[str]:
    """One REST kline row: ``[startTime, open, high, low, close, volume, turnover]``, strings."""
    return [str(start), dec(o), dec(h), dec(low), dec(c), dec(v), dec(t)]


def candle_row(candle: Candle) -> list[str]:
    return kline_row(
        candle.open_time, candle.open, candle.high, candle.low, candle.close, candle.volume, candle.quote_volume
    )


def agg_row(agg: KlineAgg) -> list[str]:
    return kline_row(agg.start, agg.open, agg.high, agg.low, agg.close, agg.volume, agg.turnover)


def kline_item(code: str, agg: KlineAgg, confirm: bool, time_ms: int) -> dict[str, object]:
    """One item of a ``kline.{interval}.{symbol}`` push."""
    return {
        "start": agg.start,
        "end": agg.end - 1,
        "interval": code,
        "open": dec_market(agg.open),
        "close": dec_market(agg.close),
        "high": dec_market(agg.high),
        "low": dec_market(agg.low),
        "volume": dec_market(agg.volume),
        "turnover": dec_market(agg.turnover),
        "confirm": confirm,
        "timestamp": time_ms,
    }


# --- markets --------------------------------------------------------------------------------------


def instrument_info(spec: MarketSpec, symbol_id: int) -> dict[str, object]:
    """One entry of ``/v5/market/instruments-info?category=spot`` (``symbol_id``: Bybit's
    integer ``symbolId`` of the market)."""
    return {
        "symbolId": symbol_id,
        "symbol": spec.symbol,
        "baseCoin": spec.base,
        "quoteCoin": spec.quote,
        "innovation": "0",
        "status": "Trading",
        # The emulator has no margin trading; "none" also keeps ccxt's market["margin"] False.
        "marginTrading": "none",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": dec(spec.step_size),
            "quotePrecision": dec(quote_precision(spec)),
            "minOrderQty": dec(spec.min_amount),
            "maxOrderQty": dec(spec.max_amount),
            "minOrderAmt": dec(spec.min_notional),
            "maxOrderAmt": "1000000000",
            "maxLimitOrderQty": dec(spec.max_amount),
            "maxMarketOrderQty": dec(spec.max_amount),
            "postOnlyMaxLimitOrderSize": dec(spec.max_amount),
        },
        "priceFilter": {"tickSize": dec(spec.tick_size)},
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
        "symbolType": "",
    }


# --- orders and executions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderExtra:
    """What Bybit reports about an order that the engine does not model.

    ``qty`` / ``market_unit`` are the quantity as the client sent it (a quote amount for a
    ``quoteCoin`` market order, which the engine executes as the equivalent base amount);
    ``time_in_force`` keeps ``PostOnly``, which the engine runs as GTC after the dialect checked
    that the order would rest. ``order_filter`` is the ``orderFilter`` the order was placed with
    (``StopOrder`` conditional orders take their funds only when they trigger);
    ``cancel_by_user`` is set when the client cancels the order, which tells a conditional order
    the client deactivated from one the exchange cancelled at its trigger. ``base_price`` is the
    last price when the order was placed.
    """

    qty: str
    market_unit: str  # "baseCoin", "quoteCoin" or "" (not a market order)
    time_in_force: str  # "GTC", "IOC", "FOK", "PostOnly"
    order_filter: str = "Order"  # "Order", "StopOrder" or "tpslOrder"
    cancel_by_user: bool = False
    base_price: str = ""  # the last price when the order was placed (Bybit's basePrice)


def cancelled_at_trigger(order: Order, extra: OrderExtra | None) -> bool:
    """True for a ``StopOrder`` conditional order cancelled when it triggered because the account
    could not cover it (Bybit: such an order "does not occupy the margin" until then)."""
    return (
        extra is not None
        and extra.order_filter == "StopOrder"
        and not extra.cancel_by_user
        and order.stop_price is not None
        and not order.triggered
        and order.status is OrderStatus.CANCELED
    )


def order_status(order: Order, execution: ExecutionType | None = None, extra: OrderExtra | None = None) -> str:
    """Bybit's ``orderStatus`` for an engine order (UTA spot, conditional orders included)."""
    if execution is ExecutionType.TRIGGERED:
        return "Triggered"
    conditional = order.stop_price is not None
    status = order.status
    if conditional and not order.triggered:
        if status is OrderStatus.NEW:
            return "Untriggered"
        if cancelled_at_trigger(order, extra):
            return "Cancelled"  # fired, but the funds were no longer there
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            return "Deactivated"  # a conditional order cancelled before it fired
    if status is OrderStatus.NEW:
        return "New"
    if status is OrderStatus.PARTIALLY_FILLED:
        return "PartiallyFilled"
    if status is OrderStatus.FILLED:
        return "Filled"
    if status is OrderStatus.REJECTED:
        return "Rejected"
    # CANCELED, EXPIRED (IOC/FOK remainder, market order without liquidity)
    return "PartiallyFilledCanceled" if order.filled > 0 else "Cancelled"


def _is_market(order: Order) -> bool:
    return order.type in (OrderType.MARKET, OrderType.STOP_MARKET)


def order_record(order: Order, extra: OrderExtra | None, execution: ExecutionType | None = None) -> dict[str, object]:
    """An order as ``/v5/order/realtime`` and ``/v5/order/history`` list it (spot, UTA).

    As Bybit documents the spot category: no ``tpslMode`` and no ``createType`` (ccxt takes the
    presence of ``tpslMode`` as the mark of a contract order), ``avgPrice`` "" until something
    filled, ``basePrice`` the last price when the order was placed (``lastPriceOnCreated`` does
    not apply to spot), and ``cumFeeDetail`` (fee per coin, ``{}`` before any fee) in place of
    the deprecated ``cumExecFee``.
    """
    market = _is_market(order)
    conditional = order.stop_price is not None
    is_open = order.status.is_open
    leaves = order.remaining if is_open else Decimal(0)
    if extra is not None and market:
        qty, unit = extra.qty, extra.market_unit
    elif market:
        qty, unit = dec(order.amount), "baseCoin"
    else:
        qty, unit = dec(order.amount), ""
    if market:
        tif = "IOC"  # Bybit runs every spot market order as IOC
    elif extra is not None:
        tif = extra.time_in_force
    else:
        tif = order.time_in_force.value
    price = order.price if order.price is not None and not market else None
    at_trigger = cancelled_at_trigger(order, extra)
    cancel_type = "CancelByUser" if order.status is OrderStatus.CANCELED and not at_trigger else "UNKNOWN"
    rising = order.trigger_above if order.trigger_above is not None else order.side is Side.BUY
    stop_type = ""
    if conditional:
        stop_type = "tpslOrder" if extra is not None and extra.order_filter == "tpslOrder" else "Stop"
    record: dict[str, object] = {
        "orderId": str(order.order_id),
        "orderLinkId": order.client_order_id,
        "blockTradeId": "",
        "symbol": order.symbol,
        "price": dec(price) if price is not None else "0",
        "qty": qty,
        "side": "Buy" if order.side is Side.BUY else "Sell",
        "isLeverage": "0",
        "positionIdx": 0,
        "orderStatus": order_status(order, execution, extra),
        "cancelType": cancel_type,
        "rejectReason": "EC_Others" if at_trigger else "EC_NoError",
        "avgPrice": dec(order.average_price) if order.filled else "",
        "leavesQty": dec(leaves),
        "leavesValue": dec(leaves * price) if price is not None else "0",
        "cumExecQty": dec(order.filled),
        "cumExecValue": dec(order.cost),
        "cumExecFee": dec(order.fee),
        "timeInForce": tif,
        "orderType": "Market" if market else "Limit",
        "stopOrderType": stop_type,
        "orderIv": "",
        "marketUnit": unit,
        "slippageToleranceType": "UNKNOWN",
        "slippageTolerance": "0",
        "triggerPrice": dec(order.stop_price) if conditional else "0",
        "takeProfit": "",
        "stopLoss": "",
        "ocoTriggerBy": "OcoTriggerByUnknown",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        # 1: fires when the price rises to triggerPrice, 2: when it falls to it (spot: decided
        # from where the trigger lay against the last price when the order was placed).
        "triggerDirection": (1 if rising else 2) if conditional else 0,
        "triggerBy": "LastPrice" if conditional else "",
        "lastPriceOnCreated": "",
        "basePrice": extra.base_price if extra is not None else "",
        "reduceOnly": False,
        "closeOnTrigger": False,
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "placeType": "",
        "createdTime": str(order.created_time),
        "updatedTime": str(order.updated_time),
        "extraFees": "",
        "cumFeeDetail": {order.fee_asset: dec(order.fee)} if order.fee_asset and order.fee else {},
        "rpiTakerAccess": False,
        "rpiMatchedQty": "0",
    }
    return record


def order_push(order: Order, extra: OrderExtra | None, execution: ExecutionType | None) -> dict[str, object]:
    """One item of the private ``order`` topic: the REST record plus stream-only fields (the
    stream has ``lastPriceOnCreated`` where REST has ``basePrice``, and no ``extraFees``)."""
    record = order_record(order, extra, execution)
    record["lastPriceOnCreated"] = record.pop("basePrice")
    del record["extraFees"]
    record["category"] = "spot"
    record["feeCurrency"] = order.fee_asset or ""
    record["closedPnl"] = "0"
    return record


def fee_rate(spec: MarketSpec | None, is_maker: bool) -> str:
    if spec is None:
        return ""
    return dec(spec.maker_fee if is_maker else spec.taker_fee)


def execution_record(fill: Fill, order: Order | None, spec: MarketSpec | None) -> dict[str, object]:
    """A fill as ``/v5/execution/list`` lists it (spot). ``feeCurrency`` names the fee asset."""
    if order is not None:
        market = _is_market(order)
        order_price = "0" if market or order.price is None else dec(order.price)
        order_qty = dec(order.amount)
        order_type = "Market" if market else "Limit"
        stop_type = "Stop" if order.stop_price is not None else ""
        leaves = dec(order.remaining if order.status.is_open else Decimal(0))
    else:
        order_price, order_qty, order_type, stop_type, leaves = "", "", "UNKNOWN", "", ""
    return {
        "symbol": fill.symbol,
        "orderId": str(fill.order_id),
        "orderLinkId": fill.client_order_id,
        "side": "Buy" if fill.side is Side.BUY else "Sell",
        "orderPrice": order_price,
        "orderQty": order_qty,
        "leavesQty": leaves,
        "orderType": order_type,
        "stopOrderType": stop_type,
        "execFee": dec(fill.fee),
        "feeCurrency": fill.fee_asset,
        "execId": str(fill.trade_id),
        "execPrice": dec(fill.price),
        "execQty": dec(fill.amount),
        "execType": "Trade",
        "execValue": dec(fill.quote_amount),
        "execTime": str(fill.time),
        "isMaker": fill.is_maker,
        "feeRate": fee_rate(spec, fill.is_maker),
        "tradeIv": "",
        "markIv": "",
        "markPrice": "",
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": "",
        "seq": fill.trade_id,
        "extraFees": "",
    }


def execution_push(fill: Fill, order: Order | None, spec: MarketSpec | None) -> dict[str, object]:
    """One item of the private ``execution`` topic (spot: no ``createType``; ``extraFees`` is a
    list on the stream, a string over REST)."""
    record = execution_record(fill, order, spec)
    record["category"] = "spot"
    record["execPnl"] = "0"
    record["isLeverage"] = "0"
    record["marketUnit"] = ""
    record["extraFees"] = []
    return record


# --- wallet ---------------------------------------------------------------------------------------


def wallet_coin(balance: Balance, usd_price: Decimal | None) -> dict[str, object]:
    """One coin of a UNIFIED wallet. ``availableToWithdraw`` is empty, as Bybit deprecated it for
    UTA: ccxt then derives ``used`` from ``locked`` (+ IM fields, zero on spot) and ``free`` from
    ``walletBalance - used``, which is exactly the engine's free / locked split."""
    total = balance.total
    usd = total * usd_price if usd_price is not None else Decimal(0)
    return {
        "coin": balance.asset,
        "equity": dec(total),
        "usdValue": dec(usd),
        "walletBalance": dec(total),
        "locked": dec(balance.locked),
        "availableToWithdraw": "",
        "availableToBorrow": "",
        "borrowAmount": "0",
        "accruedInterest": "0",
        "totalOrderIM": "0",
        "totalPositionIM": "0",
        "totalPositionMM": "0",
        "unrealisedPnl": "0",
        "cumRealisedPnl": "0",
        "bonus": "0",
        "collateralSwitch": True,
        "marginCollateral": True,
        "spotHedgingQty": "0",
        "spotBorrow": "0",
    }


def wallet_account(coins: list[dict[str, object]]) -> dict[str, object]:
    """The UNIFIED account record around ``coins``, with USD totals summed from them."""
    total = sum((Decimal(str(c["usdValue"])) for c in coins), Decimal(0))
    return {
        "accountType": "UNIFIED",
        "totalEquity": dec(total),
        "totalWalletBalance": dec(total),
        "totalMarginBalance": dec(total),
        "totalAvailableBalance": dec(total),
        "totalPerpUPL": "0",
        "totalInitialMargin": "0",
        "totalInitialMarginByMp": "0",
        "totalMaintenanceMargin": "0",
        "totalMaintenanceMarginByMp": "0",
        "accountIMRate": "0",
        "accountIMRateByMp": "0",
        "accountMMRate": "0",
        "accountMMRateByMp": "0",
        "accountLTV": "0",
        "coin": coins,
    }


# --- signatures -----------------------------------------------------------------------------------


def rest_signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """``X-BAPI-SIGN``: HMAC-SHA256 of timestamp + key + recv_window + (query string | JSON body)."""
    return hmac_hex(secret, f"{timestamp}{api_key}{recv_window}{payload}")


def tick_direction(previous: Decimal | None, price: Decimal, last_direction: str) -> str:
    """Bybit's ``L`` of a public trade: PlusTick / ZeroPlusTick / MinusTick / ZeroMinusTick."""
    if previous is None or price > previous:
        return "PlusTick"
    if price < previous:
        return "MinusTick"
    return "ZeroPlusTick" if last_direction in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"
