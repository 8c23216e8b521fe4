"""Pure translation helpers of Bybit's ``category=linear`` (USDT perpetuals): engine records -> v5 JSON.

Instruments, tickers, orders, executions (trades and funding), positions, transaction-log rows
and the wallet of a unified account holding positions, in the shapes Bybit's v5 documentation
gives for the linear category; no sockets, engine or clock here. One-way mode: ``positionIdx`` 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from realtrade_core.emulator.model import (
    Balance,
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

from .wire import PARAMS_ERROR, BybitError, OrderExtra, dec, decimals_of, order_record

_ZERO = Decimal(0)

# retCodes of the contract (linear) category.
ORDER_NOT_EXISTS = 110001
AB_NOT_ENOUGH = 110007  # "ab not enough for new order": the available balance cannot cover the margin
REDUCE_ONLY_RULE = 110017
POSITION_MODE_NOT_MODIFIED = 110025
POSITION_MODE_OPEN = 110024  # a position (or an order) is open: the mode cannot be switched
LEVERAGE_NOT_MODIFIED = 110043
DUPLICATE_LINK_ID = 110072
NOTIONAL_TOO_LOW = 110094
UTA_NOT_ALLOWED = 100028
SET_MARGIN_MODE_FAILED = 3400045

LINEAR_REJECTS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_SYMBOL: (PARAMS_ERROR, "params error: symbol invalid"),
    RejectReason.PRICE_PRECISION: (PARAMS_ERROR, "params error: price invalid"),
    RejectReason.AMOUNT_PRECISION: (PARAMS_ERROR, "params error: Qty invalid"),
    RejectReason.MIN_AMOUNT: (PARAMS_ERROR, "The number of contracts exceeds minimum limit allowed"),
    RejectReason.MAX_AMOUNT: (PARAMS_ERROR, "The number of contracts exceeds maximum limit allowed"),
    RejectReason.MIN_NOTIONAL: (NOTIONAL_TOO_LOW, "Order notional value below the lower limit"),
    RejectReason.INSUFFICIENT_MARGIN: (AB_NOT_ENOUGH, "ab not enough for new order"),
    RejectReason.INSUFFICIENT_BALANCE: (AB_NOT_ENOUGH, "ab not enough for new order"),
    RejectReason.REDUCE_ONLY_REJECTED: (REDUCE_ONLY_RULE, "Reduce-only rule not satisfied"),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (DUPLICATE_LINK_ID, "OrderLinkedID is duplicate"),
    RejectReason.ORDER_NOT_FOUND: (ORDER_NOT_EXISTS, "Order does not exist."),
    RejectReason.ORDER_NOT_CANCELABLE: (ORDER_NOT_EXISTS, "Order does not exist."),
    RejectReason.INVALID_LEVERAGE: (PARAMS_ERROR, "leverage invalid"),
}


def linear_error(reason: RejectReason, message: str) -> BybitError:
    code, text = LINEAR_REJECTS.get(reason, (PARAMS_ERROR, f"params error: {message}"))
    return BybitError(code, text)


def linear_instrument(spec: MarketSpec) -> dict[str, Any]:
    """One entry of ``/v5/market/instruments-info?category=linear``."""
    return {
        "symbol": spec.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": spec.base,
        "quoteCoin": spec.quote,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(decimals_of(spec.tick_size)),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": f"{spec.max_leverage}.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": dec(spec.tick_size), "maxPrice": "1999999.80", "tickSize": dec(spec.tick_size)},
        "lotSizeFilter": {
            "maxOrderQty": dec(spec.max_amount),
            "minOrderQty": dec(spec.min_amount),
            "qtyStep": dec(spec.step_size),
            "postOnlyMaxOrderQty": dec(spec.max_amount),
            "maxMktOrderQty": dec(spec.max_amount),
            "minNotionalValue": dec(spec.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": spec.quote,
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "symbolType": "",
    }


def linear_ticker_fields(mark: Decimal, rate: Decimal, next_funding: int) -> dict[str, Any]:
    """What a linear ticker adds to a spot one (REST ``/v5/market/tickers`` and ``tickers.*``)."""
    return {
        "markPrice": dec(mark),
        "indexPrice": dec(mark),
        "openInterest": "0",
        "openInterestValue": "0",
        "fundingRate": dec(rate) if rate else "0",
        "nextFundingTime": str(next_funding),
        "fundingIntervalHour": "8",
        "fundingCap": "0.00375",
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "basis": "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }


def _stop_order_type(order: Order) -> str:
    """A linear conditional order is a plain ``Stop`` order with a trigger direction."""
    return "Stop" if order.stop_price is not None else ""


def linear_order(order: Order, extra: OrderExtra | None, execution: ExecutionType | None = None) -> dict[str, Any]:
    """An order as ``/v5/order/realtime`` and ``/history`` list it in the linear category."""
    record = order_record(order, extra, execution)
    market = order.type in (OrderType.MARKET, OrderType.STOP_MARKET)
    record.update(
        {
            "qty": dec(order.amount),
            "marketUnit": "",
            "isLeverage": "",
            "positionIdx": 0,
            "reduceOnly": order.reduce_only,
            "closeOnTrigger": False,
            "stopOrderType": _stop_order_type(order),
            "tpslMode": "UNKNOWN",
            "createType": "CreateByLiquidate" if order.client_order_id.startswith("autoclose-") else "CreateByUser",
            "lastPriceOnCreated": record.get("basePrice", ""),
            "timeInForce": "IOC" if market else record["timeInForce"],
            "cumFeeDetail": {},
        }
    )
    record.pop("basePrice", None)
    return record


def linear_order_push(order: Order, extra: OrderExtra | None, execution: ExecutionType | None) -> dict[str, Any]:
    record = linear_order(order, extra, execution)
    record.pop("extraFees", None)
    record["category"] = "linear"
    record["feeCurrency"] = ""
    realized = sum((f.realized_pnl for f in order.fills), _ZERO)
    record["closedPnl"] = dec(realized)
    return record


def linear_execution(fill: Fill, order: Order | None, spec: MarketSpec | None, mark: Decimal | None) -> dict[str, Any]:
    """A trade as ``/v5/execution/list`` (and the ``execution`` topic) give it for linear."""
    market = order is not None and order.type in (OrderType.MARKET, OrderType.STOP_MARKET)
    closed = abs(fill.realized_pnl) > 0 or (order is not None and order.reduce_only)
    return {
        "symbol": fill.symbol,
        "orderId": str(fill.order_id),
        "orderLinkId": fill.client_order_id,
        "side": "Buy" if fill.side is Side.BUY else "Sell",
        "orderPrice": "0" if market or order is None or order.price is None else dec(order.price),
        "orderQty": dec(order.amount) if order is not None else "",
        "leavesQty": dec(order.remaining if order is not None and order.status.is_open else _ZERO),
        "createType": "CreateByLiquidate" if fill.client_order_id.startswith("autoclose-") else "CreateByUser",
        "orderType": "Market" if market else "Limit",
        "stopOrderType": _stop_order_type(order) if order is not None else "",
        "execFee": dec(fill.fee),
        "feeCurrency": fill.fee_asset,
        "execId": str(fill.trade_id),
        "execPrice": dec(fill.price),
        "execQty": dec(fill.amount),
        "execPnl": dec(fill.realized_pnl),
        "execType": "BustTrade" if fill.client_order_id.startswith("autoclose-") else "Trade",
        "execValue": dec(fill.quote_amount),
        "execTime": str(fill.time),
        "isMaker": fill.is_maker,
        "feeRate": dec(spec.maker_fee if fill.is_maker else spec.taker_fee) if spec is not None else "",
        "tradeIv": "",
        "markIv": "",
        "markPrice": dec(mark) if mark is not None else "",
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": dec(fill.amount) if closed else "0",
        "seq": fill.trade_id,
        "extraFees": "",
    }


def funding_execution(income: Income, size: Decimal, mark: Decimal) -> dict[str, Any]:
    """A funding payment as an execution (``execType`` Funding): ``execFee`` is what the account
    paid (received: negative), ``feeRate`` the funding rate, ``execQty`` the position size."""
    return {
        "symbol": income.symbol,
        "orderId": "",
        "orderLinkId": "",
        "side": "Buy" if size > 0 else "Sell",
        "orderPrice": "0",
        "orderQty": "0",
        "leavesQty": "0",
        "createType": "",
        "orderType": "UNKNOWN",
        "stopOrderType": "UNKNOWN",
        "execFee": dec(-income.amount),
        "feeCurrency": income.asset,
        "execId": f"funding-{income.income_id}",
        "execPrice": dec(mark),
        "execQty": dec(abs(size)),
        "execPnl": "0",
        "execType": "Funding",
        "execValue": dec(abs(size) * mark),
        "execTime": str(income.time),
        "isMaker": False,
        "feeRate": dec(income.rate) if income.rate is not None else "0",
        "tradeIv": "",
        "markIv": "",
        "markPrice": dec(mark),
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": "0",
        "seq": income.income_id,
        "extraFees": "",
    }


def linear_position(p: Position, seq: int = 0) -> dict[str, Any]:
    """One position of ``/v5/position/list`` (and, with ``category``, of the ``position`` topic)."""
    side = "Buy" if p.size > 0 else "Sell" if p.size < 0 else ""
    return {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": p.symbol,
        "side": side,
        "size": dec(abs(p.size)),
        "avgPrice": dec(p.entry_price),
        "positionValue": dec(abs(p.size) * p.entry_price),
        "tradeMode": 1 if p.isolated else 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": str(p.leverage),
        "markPrice": dec(p.mark_price),
        "liqPrice": dec(p.liquidation_price) if p.liquidation_price else "",
        "bustPrice": "",
        "positionIM": dec(p.margin),
        "positionMM": dec(p.maintenance_margin),
        "positionBalance": dec(p.margin),
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "sessionAvgPrice": "",
        "delta": "",
        "gamma": "",
        "vega": "",
        "theta": "",
        "unrealisedPnl": dec(p.unrealized_pnl),
        "curRealisedPnl": dec(p.realized_pnl),
        "cumRealisedPnl": dec(p.realized_pnl),
        "adlRankIndicator": 2 if p.size else 0,
        "createdTime": str(p.updated_time),
        "updatedTime": str(p.updated_time),
        "seq": seq,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "tpslMode": "Full",
    }


def transaction_row(flows: Sequence[Income], fill: Fill | None) -> dict[str, Any]:
    """One row of ``/v5/account/transaction-log``: ``type`` TRADE (one per fill: its realised
    profit as ``cashFlow`` and its fee, ``change`` the two together), SETTLEMENT (funding) or
    LIQUIDATION (what a liquidation cleared); ``cashBalance`` the wallet after it."""
    income = flows[-1]
    kind = {"FUNDING_FEE": "SETTLEMENT", "INSURANCE_CLEAR": "LIQUIDATION"}.get(income.kind, "TRADE")
    fee = -sum((i.amount for i in flows if i.kind == "COMMISSION"), _ZERO)
    cash_flow = sum((i.amount for i in flows if i.kind in ("REALIZED_PNL", "INSURANCE_CLEAR")), _ZERO)
    change = sum((i.amount for i in flows), _ZERO)
    row = {
        "id": str(income.income_id),
        "symbol": income.symbol,
        "category": "linear",
        "side": ("Buy" if fill.side is Side.BUY else "Sell") if fill is not None else "None",
        "transactionTime": str(income.time),
        "type": kind,
        "qty": dec(fill.amount) if fill is not None else "0",
        "size": "0",
        "currency": income.asset,
        "tradePrice": dec(fill.price) if fill is not None else "0",
        "funding": dec(-income.amount) if income.kind == "FUNDING_FEE" else "0",
        "fee": dec(fee),
        "cashFlow": dec(cash_flow),
        "change": dec(change),
        "cashBalance": dec(income.balance) if income.balance is not None else "",
        "feeRate": dec(income.rate) if income.rate is not None else "",
        "bonusChange": "",
        "tradeId": str(income.trade_id) if income.trade_id is not None else "",
        "orderId": str(fill.order_id) if fill is not None else "",
        "orderLinkId": fill.client_order_id if fill is not None else "",
        "extraFees": "",
    }
    return row


def contract_coin_fields(balance: Balance, positions: Sequence[Position]) -> dict[str, Any]:
    """What positions add to the settle coin of a UNIFIED wallet: position and order initial
    margin (ccxt counts them as ``used``; ``locked`` is then only what spot orders hold), the
    maintenance margin, unrealised and realised profit, equity."""
    position_im = sum((p.margin for p in positions), _ZERO)
    order_im = balance.locked - position_im
    upnl = sum((p.unrealized_pnl for p in positions), _ZERO)
    return {
        "equity": dec(balance.total + upnl),
        "locked": "0",
        "totalOrderIM": dec(order_im),
        "totalPositionIM": dec(position_im),
        "totalPositionMM": dec(sum((p.maintenance_margin for p in positions), _ZERO)),
        "unrealisedPnl": dec(upnl),
        "cumRealisedPnl": dec(sum((p.realized_pnl for p in positions), _ZERO)),
    }


def mark_kline_row(row: Sequence[str]) -> list[str]:
    """A ``/v5/market/kline`` row as ``/v5/market/mark-price-kline`` gives it: start and prices,
    no volume or turnover."""
    return list(row[:5])
