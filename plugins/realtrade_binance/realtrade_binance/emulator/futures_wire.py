"""Pure translation helpers of the Binance USDⓈ-M futures dialect: engine records -> ``fapi`` JSON.

The shapes Binance documents for ``/fapi/v1|v2|v3`` and the futures user-data stream (orders,
trades, positions, balances, income, ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``, ``MARGIN_CALL``,
``markPriceUpdate``); no sockets, engine or clock here. One-way mode only: every position and
order has ``positionSide`` ``BOTH``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from realtrade_core.emulator.model import (
    Balance,
    Candle,
    ExecutionType,
    Fill,
    Income,
    MarketSpec,
    Order,
    OrderType,
    Position,
    RejectReason,
    Side,
)

from .wire import BinanceError, fmt, fmt_market, kline_row

_ZERO = Decimal(0)
#: Futures ``exchangeInfo`` order types and time-in-force values of a USDT perpetual.
ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX", "GTD"]
#: Types the algo order service takes (``POST /fapi/v1/algoOrder``); ``/fapi/v1/order`` refuses them.
CONDITIONAL_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
PERPETUAL_ONBOARD = 1569398400000  # BTCUSDT's onboardDate
FAR_DELIVERY = 4133404800000  # deliveryDate of a perpetual

# Error answers of the futures API (code, msg).
MARGIN_INSUFFICIENT = (-2019, "Margin is insufficient.")
REDUCE_ONLY_REJECTED = (-2022, "ReduceOnly Order is rejected.")
WOULD_TRIGGER = (-2021, "Order would immediately trigger.")
NO_NEED_MARGIN_TYPE = (-4046, "No need to change margin type.")
MARGIN_TYPE_OPEN_ORDERS = (-4047, "Margin type cannot be changed if there exists open orders.")
MARGIN_TYPE_POSITION = (-4048, "Margin type cannot be changed if there exists position.")
NO_NEED_POSITION_SIDE = (-4059, "No need to change position side.")
ALGO_ONLY = (-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
ONE_WAY_ONLY = (-4061, "Order's position side does not match user's setting.")
#: The emulator trades one-way mode only: an account may be switched to hedge mode (and then
#: refuses one-way orders, as Binance does), but a hedge-mode order gets Binance's catch-all
#: code with a message that says so.
HEDGE_ORDERS_UNAVAILABLE = (
    -1000,
    "Hedge-mode orders (positionSide LONG or SHORT) are not available: this emulator trades in one-way mode.",
)
POSITION_SIDE_OPEN_ORDERS = (-4067, "Position side cannot be changed if there exists open orders.")
POSITION_SIDE_POSITION = (-4068, "Position side cannot be changed if there exists position.")
INVALID_LISTEN_KEY = (-1125, "This listenKey does not exist.")


def invalid_leverage(value: str) -> BinanceError:
    return BinanceError(-4028, f"Leverage {value} is not valid")


#: Engine rejections the futures API answers with a fixed code and message.
_FIXED_ANSWERS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    RejectReason.INSUFFICIENT_MARGIN: MARGIN_INSUFFICIENT,
    RejectReason.INSUFFICIENT_BALANCE: MARGIN_INSUFFICIENT,
    RejectReason.REDUCE_ONLY_REJECTED: REDUCE_ONLY_REJECTED,
    RejectReason.PRICE_PRECISION: (-1111, "Precision is over the maximum defined for this asset."),
    RejectReason.AMOUNT_PRECISION: (-1111, "Precision is over the maximum defined for this asset."),
    RejectReason.MIN_AMOUNT: (-4003, "Quantity less than or equal to zero."),
    RejectReason.MAX_AMOUNT: (-4005, "Quantity greater than max quantity."),
    RejectReason.WOULD_TRIGGER_IMMEDIATELY: WOULD_TRIGGER,
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-4015, "Client order id is not valid."),
    RejectReason.ORDER_NOT_FOUND: (-2013, "Order does not exist."),
    RejectReason.ORDER_NOT_CANCELABLE: (-2011, "Unknown order sent."),
    RejectReason.NOT_MODIFIED: NO_NEED_MARGIN_TYPE,
    RejectReason.POSITION_EXISTS: MARGIN_TYPE_POSITION,
    RejectReason.OPEN_ORDERS_EXIST: MARGIN_TYPE_OPEN_ORDERS,
}


def fapi_error(reason: RejectReason, message: str, min_notional: Decimal | None = None) -> BinanceError:
    """The futures API's answer to an engine rejection."""
    fixed = _FIXED_ANSWERS.get(reason)
    if fixed is not None:
        return BinanceError(*fixed)
    if reason is RejectReason.MIN_NOTIONAL:
        floor = fmt(min_notional).rstrip("0").rstrip(".") if min_notional is not None else "5"
        return BinanceError(-4164, f"Order's notional must be no smaller than {floor} (unless you choose reduce only).")
    if reason is RejectReason.INVALID_LEVERAGE:
        return invalid_leverage(message.split()[1] if message.startswith("leverage ") else "")
    return BinanceError(-1102, f"A mandatory parameter was not sent, was empty/null, or malformed. ({message})")


# --- markets ------------------------------------------------------------------------------------


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 8


def futures_symbol_info(spec: MarketSpec) -> dict[str, Any]:
    """One ``symbols`` entry of ``GET /fapi/v1/exchangeInfo``."""
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": FAR_DELIVERY,
        "onboardDate": PERPETUAL_ONBOARD,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": _decimals(spec.tick_size),
        "quantityPrecision": _decimals(spec.step_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(spec.tick_size),
                "maxPrice": "4529764",
                "tickSize": fmt(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(spec.min_amount),
                "maxQty": fmt(spec.max_amount),
                "stepSize": fmt(spec.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(spec.min_amount),
                "maxQty": fmt(spec.max_amount),
                "stepSize": fmt(spec.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(spec.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": list(ORDER_TYPES),
        "timeInForce": list(TIME_IN_FORCE),
        "permissionSets": ["GRID", "COPY"],
    }


def futures_exchange_info(specs: Iterable[MarketSpec], server_time: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [futures_symbol_info(spec) for spec in specs],
    }


def leverage_bracket(spec: MarketSpec) -> dict[str, Any]:
    """``GET /fapi/v1/leverageBracket``: one bracket covering every notional."""
    return {
        "symbol": spec.symbol,
        "notionalCoef": 1.0,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": spec.max_leverage,
                "notionalCap": 9_000_000_000,
                "notionalFloor": 0,
                "maintMarginRatio": float(spec.maintenance_margin_rate),
                "cum": 0.0,
            }
        ],
    }


# --- orders -------------------------------------------------------------------------------------


def futures_type(order: Order) -> str:
    """The futures order type: a stop that triggers on the move against the position it would
    close is STOP(_MARKET), one on the move in its favour TAKE_PROFIT(_MARKET)."""
    if order.type is OrderType.MARKET:
        return "MARKET"
    if order.type is OrderType.LIMIT:
        return "LIMIT"
    # A buy stop triggers on a rise, a buy take-profit on a fall (sells the other way round).
    stop = order.trigger_above if order.side is Side.BUY else not order.trigger_above
    if order.type is OrderType.STOP_MARKET:
        return "STOP_MARKET" if stop else "TAKE_PROFIT_MARKET"
    return "STOP" if stop else "TAKE_PROFIT"


def futures_status(order: Order) -> str:
    return order.status.name


def futures_order(order: Order, orig_type: str | None = None) -> dict[str, Any]:
    """``GET/POST/DELETE /fapi/v1/order`` and the rows of ``openOrders`` / ``allOrders``."""
    kind = futures_type(order)
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": futures_status(order),
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "avgPrice": fmt(order.average_price),
        "origQty": fmt(order.amount),
        "executedQty": fmt(order.filled),
        "cumQty": fmt(order.filled),
        "cumQuote": fmt(order.cost),
        "timeInForce": order.time_in_force.value,
        "type": kind if not order.triggered else ("MARKET" if order.type is OrderType.STOP_MARKET else "LIMIT"),
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side.value.upper(),
        "positionSide": "BOTH",
        "stopPrice": fmt(order.stop_price),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": orig_type or kind,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": order.created_time,
        "updateTime": order.updated_time,
    }


def futures_trade(fill: Fill) -> dict[str, Any]:
    """One row of ``GET /fapi/v1/userTrades``."""
    buyer = fill.side is Side.BUY
    return {
        "buyer": buyer,
        "commission": fmt(fill.fee),
        "commissionAsset": fill.fee_asset,
        "id": fill.trade_id,
        "maker": fill.is_maker,
        "orderId": fill.order_id,
        "price": fmt(fill.price),
        "qty": fmt(fill.amount),
        "quoteQty": fmt(fill.quote_amount),
        "realizedPnl": fmt(fill.realized_pnl),
        "side": "BUY" if buyer else "SELL",
        "positionSide": "BOTH",
        "symbol": fill.symbol,
        "time": fill.time,
    }


_EXECUTION = {
    ExecutionType.NEW: "NEW",
    ExecutionType.TRADE: "TRADE",
    ExecutionType.CANCELED: "CANCELED",
    ExecutionType.EXPIRED: "EXPIRED",
}


def order_trade_update(
    order: Order, execution: ExecutionType, fill: Fill | None, event_time: int
) -> dict[str, Any] | None:
    """The user-data ``ORDER_TRADE_UPDATE`` event (None for a stop's trigger: not reported). A
    liquidation's fill is execution type ``CALCULATED``."""
    x = _EXECUTION.get(execution)
    if x is None:
        return None
    if x == "TRADE" and order.client_order_id.startswith("autoclose-"):
        x = "CALCULATED"
    kind = futures_type(order)
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": event_time,
        "T": event_time,
        "o": {
            "s": order.symbol,
            "c": order.client_order_id,
            "S": order.side.value.upper(),
            "o": kind if not order.triggered else ("MARKET" if order.type is OrderType.STOP_MARKET else "LIMIT"),
            "f": order.time_in_force.value,
            "q": fmt(order.amount),
            "p": fmt(order.price),
            "ap": fmt(order.average_price),
            "sp": fmt(order.stop_price),
            "x": x,
            "X": futures_status(order),
            "i": order.order_id,
            "l": fmt(fill.amount if fill else None),
            "z": fmt(order.filled),
            "L": fmt(fill.price if fill else None),
            "N": fill.fee_asset if fill else "USDT",
            "n": fmt(fill.fee if fill else None),
            "T": fill.time if fill else order.updated_time,
            "t": fill.trade_id if fill else 0,
            "b": "0",
            "a": "0",
            "m": fill.is_maker if fill else False,
            "R": order.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": kind,
            "ps": "BOTH",
            "cp": False,
            "rp": fmt(fill.realized_pnl if fill else None),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        },
    }


# --- account ------------------------------------------------------------------------------------


def margin_type(position: Position) -> str:
    return "isolated" if position.isolated else "cross"


def position_risk_v2(p: Position) -> dict[str, Any]:
    """One row of ``GET /fapi/v2/positionRisk``."""
    return {
        "symbol": p.symbol,
        "positionAmt": fmt(p.size),
        "entryPrice": fmt(p.entry_price),
        "breakEvenPrice": fmt(p.entry_price),
        "markPrice": fmt(p.mark_price),
        "unRealizedProfit": fmt(p.unrealized_pnl),
        "liquidationPrice": fmt(p.liquidation_price),
        "leverage": str(p.leverage),
        "maxNotionalValue": "9000000000",
        "marginType": margin_type(p),
        "isolatedMargin": fmt(p.margin + p.unrealized_pnl if p.isolated else _ZERO),
        "isAutoAddMargin": "false",
        "positionSide": "BOTH",
        "notional": fmt(p.size * p.mark_price),
        "isolatedWallet": fmt(p.margin if p.isolated else _ZERO),
        "updateTime": p.updated_time,
    }


def position_risk_v3(p: Position) -> dict[str, Any]:
    """One row of ``GET /fapi/v3/positionRisk`` (positions that are open only)."""
    initial = abs(p.size) * p.mark_price / p.leverage
    return {
        "symbol": p.symbol,
        "positionSide": "BOTH",
        "positionAmt": fmt(p.size),
        "entryPrice": fmt(p.entry_price),
        "breakEvenPrice": fmt(p.entry_price),
        "markPrice": fmt(p.mark_price),
        "unRealizedProfit": fmt(p.unrealized_pnl),
        "liquidationPrice": fmt(p.liquidation_price),
        "isolatedMargin": fmt(p.margin + p.unrealized_pnl if p.isolated else _ZERO),
        "notional": fmt(p.size * p.mark_price),
        "marginAsset": "USDT",
        "isolatedWallet": fmt(p.margin if p.isolated else _ZERO),
        "initialMargin": fmt(initial),
        "maintMargin": fmt(p.maintenance_margin),
        "positionInitialMargin": fmt(initial),
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": p.updated_time,
    }


def wallet_figures(balance: Balance, positions: Sequence[Position]) -> dict[str, Decimal]:
    """Wallet, unrealised profit, margins and what is available, from the settle balance."""
    wallet = balance.total
    upnl = sum((p.unrealized_pnl for p in positions), _ZERO)
    cross_upnl = sum((p.unrealized_pnl for p in positions if not p.isolated), _ZERO)
    isolated = sum((p.margin for p in positions if p.isolated), _ZERO)
    position_margin = sum((p.margin for p in positions), _ZERO)
    maint = sum((p.maintenance_margin for p in positions), _ZERO)
    return {
        "wallet": wallet,
        "upnl": upnl,
        "margin_balance": wallet + upnl,
        "cross_wallet": wallet - isolated,
        "cross_upnl": cross_upnl,
        "position_margin": position_margin,
        "order_margin": balance.locked - position_margin,
        "maint": maint,
        "available": balance.free + min(cross_upnl, _ZERO),
    }


def balance_row(balance: Balance, positions: Sequence[Position], time_ms: int, alias: str) -> dict[str, Any]:
    """One row of ``GET /fapi/v2|v3/balance``."""
    f = wallet_figures(balance, positions)
    return {
        "accountAlias": alias,
        "asset": balance.asset,
        "balance": fmt(f["wallet"]),
        "crossWalletBalance": fmt(f["cross_wallet"]),
        "crossUnPnl": fmt(f["cross_upnl"]),
        "availableBalance": fmt(f["available"]),
        "maxWithdrawAmount": fmt(max(f["available"], _ZERO)),
        "marginAvailable": True,
        "updateTime": time_ms,
    }


def account_body(balance: Balance, positions: Sequence[Position], time_ms: int, version: int) -> dict[str, Any]:
    """``GET /fapi/v2/account`` (every symbol's position) or ``/fapi/v3/account`` (open ones)."""
    f = wallet_figures(balance, positions)
    asset = {
        "asset": balance.asset,
        "walletBalance": fmt(f["wallet"]),
        "unrealizedProfit": fmt(f["upnl"]),
        "marginBalance": fmt(f["margin_balance"]),
        "maintMargin": fmt(f["maint"]),
        "initialMargin": fmt(f["position_margin"] + f["order_margin"]),
        "positionInitialMargin": fmt(f["position_margin"]),
        "openOrderInitialMargin": fmt(f["order_margin"]),
        "crossWalletBalance": fmt(f["cross_wallet"]),
        "crossUnPnl": fmt(f["cross_upnl"]),
        "availableBalance": fmt(f["available"]),
        "maxWithdrawAmount": fmt(max(f["available"], _ZERO)),
        "marginAvailable": True,
        "updateTime": time_ms,
    }
    rows = []
    for p in positions:
        if version >= 3 and not p.size:
            continue
        row = {
            "symbol": p.symbol,
            "positionSide": "BOTH",
            "positionAmt": fmt(p.size),
            "unrealizedProfit": fmt(p.unrealized_pnl),
            "isolatedMargin": fmt(p.margin + p.unrealized_pnl if p.isolated else _ZERO),
            "notional": fmt(p.size * p.mark_price),
            "isolatedWallet": fmt(p.margin if p.isolated else _ZERO),
            "initialMargin": fmt(p.margin),
            "maintMargin": fmt(p.maintenance_margin),
            "updateTime": p.updated_time,
        }
        if version < 3:
            row.update(
                {
                    "leverage": str(p.leverage),
                    "isolated": p.isolated,
                    "entryPrice": fmt(p.entry_price),
                    "breakEvenPrice": fmt(p.entry_price),
                    "maxNotional": "9000000000",
                    "positionInitialMargin": fmt(p.margin),
                    "openOrderInitialMargin": "0",
                    "bidNotional": "0",
                    "askNotional": "0",
                }
            )
        rows.append(row)
    body: dict[str, Any] = {
        "totalInitialMargin": asset["initialMargin"],
        "totalMaintMargin": asset["maintMargin"],
        "totalWalletBalance": asset["walletBalance"],
        "totalUnrealizedProfit": asset["unrealizedProfit"],
        "totalMarginBalance": asset["marginBalance"],
        "totalPositionInitialMargin": asset["positionInitialMargin"],
        "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
        "totalCrossWalletBalance": asset["crossWalletBalance"],
        "totalCrossUnPnl": asset["crossUnPnl"],
        "availableBalance": asset["availableBalance"],
        "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "assets": [asset],
        "positions": rows,
    }
    if version < 3:
        body.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                     "multiAssetsMargin": False, "tradeGroupId": -1})  # fmt: skip
    return body


def income_row(income: Income) -> dict[str, Any]:
    """One row of ``GET /fapi/v1/income``."""
    return {
        "symbol": income.symbol,
        "incomeType": income.kind,
        "income": fmt(income.amount),
        "asset": income.asset,
        "info": income.kind,
        "time": income.time,
        "tranId": income.income_id,
        "tradeId": str(income.trade_id) if income.trade_id is not None else "",
    }


_REASONS = {"order": "ORDER", "funding_fee": "FUNDING_FEE", "liquidation": "ORDER", "leverage": "ORDER"}


def account_update(
    reason: str,
    balances: Sequence[Balance],
    positions: Sequence[Position],
    income: Sequence[Income],
    cross_wallet: Decimal,
    event_time: int,
) -> dict[str, Any]:
    """The user-data ``ACCOUNT_UPDATE`` event: ``m`` the reason (``ORDER``, ``FUNDING_FEE``,
    ``INSURANCE_CLEAR``), the settle balance and the positions that changed."""
    m = _REASONS.get(reason, "ORDER")
    if any(i.kind == "INSURANCE_CLEAR" for i in income):
        m = "INSURANCE_CLEAR"
    change = sum((i.amount for i in income if i.kind in ("FUNDING_FEE", "INSURANCE_CLEAR")), _ZERO)
    return {
        "e": "ACCOUNT_UPDATE",
        "E": event_time,
        "T": event_time,
        "a": {
            "m": m,
            "B": [{"a": b.asset, "wb": fmt(b.total), "cw": fmt(cross_wallet), "bc": fmt(change)} for b in balances],
            "P": [
                {
                    "s": p.symbol,
                    "pa": fmt(p.size),
                    "ep": fmt(p.entry_price),
                    "bep": fmt(p.entry_price),
                    "cr": fmt(p.realized_pnl),
                    "up": fmt(p.unrealized_pnl),
                    "mt": margin_type(p),
                    "iw": fmt(p.margin if p.isolated else _ZERO),
                    "ps": "BOTH",
                }
                for p in positions
            ],
        },
    }


def account_config_update(symbol: str, leverage: int, event_time: int) -> dict[str, Any]:
    """The user-data ``ACCOUNT_CONFIG_UPDATE`` event of a leverage change."""
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": event_time, "T": event_time, "ac": {"s": symbol, "l": leverage}}


def margin_call(positions: Sequence[Position], cross_wallet: Decimal, event_time: int) -> dict[str, Any]:
    """The user-data ``MARGIN_CALL`` event."""
    return {
        "e": "MARGIN_CALL",
        "E": event_time,
        "cw": fmt(cross_wallet),
        "p": [
            {
                "s": p.symbol,
                "ps": "BOTH",
                "pa": fmt(p.size),
                "mt": margin_type(p).upper(),
                "iw": fmt(p.margin if p.isolated else _ZERO),
                "mp": fmt(p.mark_price),
                "up": fmt(p.unrealized_pnl),
                "mm": fmt(p.maintenance_margin),
            }
            for p in positions
        ],
    }


def mark_price_update(
    symbol: str, mark: Decimal, index: Decimal, rate: Decimal, next_funding: int, event_time: int
) -> dict[str, Any]:
    """The ``<symbol>@markPrice`` stream payload."""
    return {
        "e": "markPriceUpdate",
        "E": event_time,
        "s": symbol,
        "p": fmt_market(mark),
        "i": fmt_market(index),
        "P": fmt_market(mark),
        "r": fmt_market(rate),
        "T": next_funding,
    }


def premium_index(symbol: str, mark: Decimal, rate: Decimal, next_funding: int, time_ms: int) -> dict[str, Any]:
    """One answer of ``GET /fapi/v1/premiumIndex``."""
    return {
        "symbol": symbol,
        "markPrice": fmt(mark),
        "indexPrice": fmt(mark),
        "estimatedSettlePrice": fmt(mark),
        "lastFundingRate": fmt(rate),
        "interestRate": "0.00010000",
        "nextFundingTime": next_funding,
        "time": time_ms,
    }


def mark_kline_row(candle: Candle) -> list[Any]:
    """One row of ``GET /fapi/v1/markPriceKlines``: the candle's prices and times as a kline row;
    Binance sends no volume (the volume and count columns are 0)."""
    row = kline_row(candle)
    row[5], row[7], row[8], row[9], row[10] = "0", "0", 0, "0", "0"
    return row
