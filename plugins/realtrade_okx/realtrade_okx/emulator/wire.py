"""Pure translation helpers of the OKX v5 emulator dialect: engine records -> OKX payloads.

Nothing here touches the network, the engine or the hub, so every shape can be unit-tested with
plain records. Field names and conventions follow OKX's v5 documentation for spot in a cash
(non-margin) trading account: decimal strings, millisecond timestamps as strings, ``""`` for
fields that do not apply, fees written negative when charged.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from realtrade_core.emulator.memo import by_identity
from realtrade_core.emulator.model import (
    Balance,
    Candle,
    Fill,
    MarketSpec,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
)

from ..common import inst_id

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
_HK = 8 * HOUR_MS  # OKX's plain 6H/12H/1D/1W bars open at Hong Kong time (UTC+8) boundaries
_MONDAY = 4 * DAY_MS  # 1970-01-01 was a Thursday: weeks open on Monday

#: OKX candle bar -> (length ms, offset ms): a bar opens at ``offset + k * length``.
BARS: dict[str, tuple[int, int]] = {
    "1m": (MINUTE_MS, 0), "3m": (3 * MINUTE_MS, 0), "5m": (5 * MINUTE_MS, 0), "15m": (15 * MINUTE_MS, 0),
    "30m": (30 * MINUTE_MS, 0), "1H": (HOUR_MS, 0), "2H": (2 * HOUR_MS, 0), "4H": (4 * HOUR_MS, 0),
    "6H": (6 * HOUR_MS, -_HK % (6 * HOUR_MS)), "12H": (12 * HOUR_MS, -_HK % (12 * HOUR_MS)),
    "1D": (DAY_MS, -_HK % DAY_MS), "1W": (WEEK_MS, _MONDAY - _HK),
    "6Hutc": (6 * HOUR_MS, 0), "12Hutc": (12 * HOUR_MS, 0), "1Dutc": (DAY_MS, 0), "1Wutc": (WEEK_MS, _MONDAY),
}  # fmt: skip

# OKX's own codes (strings on the wire), named so the tables below read like its documentation.
OK = "0"
OPERATION_FAILED = "1"
RATE_LIMIT = "50011"
SYSTEM_BUSY = "50013"
TIMESTAMP_EXPIRED = "50102"
KEY_MISSING = "50103"
PASSPHRASE_MISSING = "50104"
PASSPHRASE_WRONG = "50105"
SIGN_MISSING = "50106"
TIMESTAMP_MISSING = "50107"
INVALID_KEY = "50111"
INVALID_TIMESTAMP = "50112"
INVALID_SIGN = "50113"
PARAMETER_ERROR = "51000"
NO_INSTRUMENT = "51001"
INSUFFICIENT_BALANCE = "51008"
DUPLICATE_CLIENT_ID = "51016"
BELOW_MINIMUM = "51020"
LOT_SIZE = "51121"
ABOVE_MAXIMUM = "51203"
CANCEL_FAILED = "51400"
ORDER_NOT_FOUND = "51603"


class OkxError(Exception):
    """A request the dialect refuses with OKX's ``code`` and ``msg``."""

    def __init__(self, code: str, message: str, http_status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


#: Engine rejections -> (code, msg) as OKX words them; ccxt's okx ``exceptions`` table maps each
#: to the class a user expects (InvalidOrder, InsufficientFunds, OrderNotFound, BadSymbol).
REJECT_CODES: dict[RejectReason, tuple[str, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (NO_INSTRUMENT, "Instrument ID does not exist"),
    RejectReason.INVALID_PARAMETER: (PARAMETER_ERROR, "Parameter error"),
    RejectReason.PRICE_PRECISION: (PARAMETER_ERROR, "Parameter px error"),
    RejectReason.AMOUNT_PRECISION: (LOT_SIZE, "Order quantity must be a multiple of the lot size."),
    RejectReason.MIN_AMOUNT: (BELOW_MINIMUM, "Your order should meet or exceed the minimum order amount."),
    RejectReason.MAX_AMOUNT: (ABOVE_MAXIMUM, "Order amount exceeds the limit."),
    RejectReason.MIN_NOTIONAL: (BELOW_MINIMUM, "Your order should meet or exceed the minimum order amount."),
    RejectReason.INSUFFICIENT_BALANCE: (INSUFFICIENT_BALANCE, "Order failed. Insufficient balance in account."),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (DUPLICATE_CLIENT_ID, "Duplicated client order ID"),
    RejectReason.ORDER_NOT_FOUND: (ORDER_NOT_FOUND, "Order does not exist"),
    RejectReason.ORDER_NOT_CANCELABLE: (
        CANCEL_FAILED,
        "Order cancellation failed as the order has been filled, canceled or does not exist.",
    ),
}


def reject_to_error(reason: RejectReason, message: str) -> OkxError:
    code, text = REJECT_CODES.get(reason, (PARAMETER_ERROR, "Parameter error"))
    if reason is RejectReason.INVALID_PARAMETER and message:
        text = f"Parameter error: {message}"
    return OkxError(code, text)


# --- numbers and times ---------------------------------------------------------------------------


def dec(value: Decimal | int | None) -> str:
    """A decimal as OKX writes it: plain notation, no exponent, no trailing zeros."""
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
    """A strictly positive finite decimal from a request field, or OKX's parameter error."""
    if isinstance(text, bool) or text is None or text == "":
        raise OkxError(PARAMETER_ERROR, f"Parameter {field} can not be empty")
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise OkxError(PARAMETER_ERROR, f"Parameter {field} error") from None
    if not value.is_finite() or value <= 0:
        raise OkxError(PARAMETER_ERROR, f"Parameter {field} error")
    return value


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def parse_iso_ms(text: str) -> int:
    """``2020-12-08T09:08:57.715Z`` (``OK-ACCESS-TIMESTAMP``) as epoch ms; ValueError if not one."""
    if not text.endswith("Z"):
        raise ValueError(text)
    moment = _dt.datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=_dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def bar_start(bar: str, time_ms: int) -> int:
    length, offset = BARS[bar]
    return (time_ms - offset) // length * length + offset


# --- markets and candles -------------------------------------------------------------------------


def instrument(spec: MarketSpec) -> dict[str, object]:
    """One spot entry of ``/api/v5/public/instruments?instType=SPOT``."""
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": spec.base, "category": "1", "ctMult": "", "ctType": "",
        "ctVal": "", "ctValCcy": "", "expTime": "", "instFamily": "", "instId": inst_id(spec.base, spec.quote),
        "instType": "SPOT", "lever": "", "listTime": "1548133413000", "lotSz": dec(spec.step_size),
        "maxIcebergSz": dec(spec.max_amount), "maxLmtAmt": "20000000", "maxLmtSz": dec(spec.max_amount),
        "maxMktAmt": "1000000", "maxMktSz": "1000000", "maxStopSz": "1000000", "maxTriggerSz": dec(spec.max_amount),
        "maxTwapSz": dec(spec.max_amount), "minSz": dec(spec.min_amount), "optType": "", "quoteCcy": spec.quote,
        "ruleType": "normal", "settleCcy": "", "state": "live", "stk": "", "tickSz": dec(spec.tick_size),
        "uly": "",
    }  # fmt: skip


#: :func:`dec` for market-stream payloads, which carry the same numbers again and again.
dec_market = by_identity(dec)


def candle_row(open_time: int, candle: Candle, closed: bool) -> list[str]:
    """``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``: volume in base, then in quote
    twice (spot), ``confirm`` ``"1"`` once the candle closed."""
    return [
        str(open_time), dec_market(candle.open), dec_market(candle.high), dec_market(candle.low),
        dec_market(candle.close), dec_market(candle.volume), dec_market(candle.quote_volume),
        dec_market(candle.quote_volume), "1" if closed else "0",
    ]  # fmt: skip


# --- orders and fills ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderExtra:
    """What OKX reports about an order that the engine does not model: ``ordType`` as sent
    (``post_only``, ``ioc``, ``fok``), ``sz`` as sent (a quote amount for a ``quote_ccy`` market
    buy, which the engine runs as the equivalent base amount), ``tgtCcy`` and the ``tag``."""

    ord_type: str
    sz: str
    tgt_ccy: str = ""
    tag: str = ""


def _state(order: Order) -> str:
    status = order.status
    if status is OrderStatus.NEW:
        return "live"
    if status is OrderStatus.PARTIALLY_FILLED:
        return "partially_filled"
    if status is OrderStatus.FILLED:
        return "filled"
    return "canceled"  # CANCELED, EXPIRED (IOC/FOK remainder), REJECTED


def _cancel_source(order: Order, extra: OrderExtra | None) -> tuple[str, str]:
    """OKX's ``cancelSource`` and its reason for a cancelled order."""
    if order.status is OrderStatus.CANCELED:
        return "1", "Order canceled by user"
    if order.status in (OrderStatus.EXPIRED, OrderStatus.REJECTED):
        if order.type is OrderType.MARKET:
            return "14", "Order canceled: IOC order was partially canceled due to insufficient liquidity"
        kind = extra.ord_type if extra is not None else "ioc"
        if kind == "fok":
            return "15", "Order canceled: FOK order was canceled due to insufficient liquidity"
        return "14", "Order canceled: IOC order was partially canceled due to unfilled amount"
    return "", ""


def order_record(order: Order, extra: OrderExtra | None, instrument_id: str) -> dict[str, object]:
    """An order of the market ``instrument_id`` as ``/api/v5/trade/order``, ``orders-pending``
    and ``orders-history`` list it."""
    market = order.type is OrderType.MARKET
    if extra is not None:
        ord_type, sz, tgt_ccy, tag = extra.ord_type, extra.sz, extra.tgt_ccy, extra.tag
    else:
        ord_type, sz, tgt_ccy, tag = ("market" if market else "limit"), dec(order.amount), "", ""
    last = order.fills[-1] if order.fills else None
    source, reason = _cancel_source(order, extra)
    fee_ccy = order.fee_asset or ""
    return {
        "accFillSz": dec(order.filled),
        "algoClOrdId": "",
        "algoId": "",
        "attachAlgoClOrdId": "",
        "attachAlgoOrds": [],
        "avgPx": dec(order.average_price) if order.filled else "",
        "cTime": str(order.created_time),
        "cancelSource": source,
        "cancelSourceReason": reason,
        "category": "normal",
        "ccy": "",
        "clOrdId": order.client_order_id,
        "fee": dec(-order.fee) if order.fee else "0",
        "feeCcy": fee_ccy,
        "fillPx": dec(last.price) if last is not None else "",
        "fillSz": dec(last.amount) if last is not None else "0",
        "fillTime": str(last.time) if last is not None else "",
        "instId": instrument_id,
        "instType": "SPOT",
        "isTpLimit": "false",
        "lever": "",
        "linkedAlgoOrd": {"algoId": ""},
        "ordId": str(order.order_id),
        "ordType": ord_type,
        "pnl": "0",
        "posSide": "net",
        "px": "" if market or order.price is None else dec(order.price),
        "pxType": "",
        "pxUsd": "",
        "pxVol": "",
        "quickMgnType": "",
        "rebate": "0",
        "rebateCcy": order.fee_asset or "",
        "reduceOnly": "false",
        "side": "buy" if order.side is Side.BUY else "sell",
        "slOrdPx": "",
        "slTriggerPx": "",
        "slTriggerPxType": "",
        "source": "",
        "state": _state(order),
        "stpId": "",
        "stpMode": "cancel_maker",
        "sz": sz,
        "tag": tag,
        "tdMode": "cash",
        "tgtCcy": tgt_ccy,
        "tpOrdPx": "",
        "tpTriggerPx": "",
        "tpTriggerPxType": "",
        "tradeId": str(last.trade_id) if last is not None else "",
        "tradeQuoteCcy": "",
        "uTime": str(order.updated_time),
    }


def order_push(order: Order, extra: OrderExtra | None, fill: Fill | None, instrument_id: str) -> dict[str, object]:
    """One item of the private ``orders`` channel: the REST record, with this push's trade
    (``tradeId``, ``fillSz``, ``fillPx``, ``fillFee``) or none (placed, cancelled)."""
    record = order_record(order, extra, instrument_id)
    record.update(
        {
            "tradeId": str(fill.trade_id) if fill is not None else "",
            "fillSz": dec(fill.amount) if fill is not None else "0",
            "fillPx": dec(fill.price) if fill is not None else "",
            "fillTime": str(fill.time) if fill is not None else "",
            "fillFee": dec(-fill.fee) if fill is not None and fill.fee else "0",
            "fillFeeCcy": fill.fee_asset if fill is not None else "",
            "execType": ("M" if fill.is_maker else "T") if fill is not None else "",
            "fillNotionalUsd": "",
            "fillPnl": "0",
            "notionalUsd": "",
            "amendResult": "",
            "reqId": "",
            "code": "0",
            "msg": "",
        }
    )
    return record


def fill_record(fill: Fill, spec: MarketSpec | None, instrument_id: str) -> dict[str, object]:
    """A trade as ``/api/v5/trade/fills`` and ``fills-history`` list it."""
    rate = ""
    if spec is not None:
        rate = dec(-(spec.maker_fee if fill.is_maker else spec.taker_fee))
    return {
        "instType": "SPOT",
        "instId": instrument_id,
        "tradeId": str(fill.trade_id),
        "ordId": str(fill.order_id),
        "clOrdId": fill.client_order_id,
        "billId": str(fill.trade_id),
        "subType": "1" if fill.side is Side.BUY else "2",
        "tag": "",
        "fillPx": dec(fill.price),
        "fillSz": dec(fill.amount),
        "fillIdxPx": "",
        "fillPnl": "0",
        "fillPxVol": "",
        "fillPxUsd": "",
        "fillMarkVol": "",
        "fillFwdPx": "",
        "fillMarkPx": "",
        "side": "buy" if fill.side is Side.BUY else "sell",
        "posSide": "net",
        "execType": "M" if fill.is_maker else "T",
        "feeCcy": fill.fee_asset,
        "fee": dec(-fill.fee) if fill.fee else "0",
        "feeRate": rate,
        "ts": str(fill.time),
        "fillTime": str(fill.time),
    }


# --- balances --------------------------------------------------------------------------------------


def balance_detail(balance: Balance, time_ms: int, usd_price: Decimal | None) -> dict[str, object]:
    """One currency of ``/api/v5/account/balance`` and of the ``account`` channel (cash account:
    equity is the cash balance; ``frozenBal`` what open orders hold)."""
    total = balance.total
    usd = dec(total * usd_price) if usd_price is not None else ""
    return {
        "availBal": dec(balance.free), "availEq": dec(balance.free), "borrowFroz": "", "cashBal": dec(total),
        "ccy": balance.asset, "crossLiab": "", "disEq": usd, "eq": dec(total), "eqUsd": usd, "fixedBal": "0",
        "frozenBal": dec(balance.locked), "imr": "", "interest": "", "isoEq": "", "isoLiab": "", "isoUpl": "",
        "liab": "", "maxLoan": "", "mgnRatio": "", "mmr": "", "notionalLever": "", "ordFrozen": dec(balance.locked),
        "rewardBal": "", "spotInUseAmt": "", "spotIsoBal": "0", "stgyEq": "0", "twap": "0",
        "uTime": str(time_ms), "upl": "", "uplLiab": "",
    }  # fmt: skip


def account_record(details: list[dict[str, object]], time_ms: int) -> dict[str, object]:
    total = sum((Decimal(str(d["eqUsd"])) for d in details if d["eqUsd"]), Decimal(0))
    return {
        "adjEq": "", "borrowFroz": "", "details": details, "imr": "", "isoEq": "", "mgnRatio": "", "mmr": "",
        "notionalUsd": "", "ordFroz": "", "totalEq": dec(total), "uTime": str(time_ms), "upl": "",
    }  # fmt: skip
