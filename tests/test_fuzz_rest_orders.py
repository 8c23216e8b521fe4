"""Property-based fuzzing of the live broker's REST converters: ccxt orders and trades, mutated.

Whatever an exchange answers, ``ExchangeIO.order_update`` and ``ExchangeIO.fill`` either raise
(the worker thread that called them reports it and carries on) or give an event that the ledger
can judge: a fill whose numbers are not sound is flagged by ``invalid_fill`` and never counts.
"""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtrade_core.events import Fill, OrderUpdate
from realtrade_core.execution import ExecutionDialect
from realtrade_core.live.io import ExchangeIO
from realtrade_core.live.ledger import LedgerMixin

TRADE = {
    "id": "77", "order": "12", "clientOrderId": "rt-1", "symbol": "BTC/USDT", "side": "buy",
    "price": 60000.5, "amount": 0.01, "timestamp": 1_700_000_000_000, "takerOrMaker": "taker",
    "fee": {"cost": 0.00001, "currency": "BTC"}, "info": {"orderLinkId": "rt-1"},
}  # fmt: skip
ORDER = {
    "id": "12", "clientOrderId": "rt-1", "symbol": "BTC/USDT", "side": "buy", "type": "limit",
    "status": "open", "price": 60000.5, "amount": 0.01, "filled": 0.004, "average": 60000.5,
    "timestamp": 1_700_000_000_000, "triggerPrice": None,
}  # fmt: skip

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "NaN", "-0.01", "1e400", "abc", "closed", "canceled", "open", "buy", "sell", "0"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


class OrderLinkIds(ExecutionDialect):
    client_order_id_field = "orderLinkId"


def io() -> ExchangeIO:
    store = SimpleNamespace(client=None, exchange="x", venue="emulator", credentials=SimpleNamespace(api_key=None,
                            secret=None), exchange_ms=lambda: 1_700_000_000_000)  # fmt: skip
    broker = SimpleNamespace(p=SimpleNamespace(store=store), dialect=OrderLinkIds())
    conv = ExchangeIO.__new__(ExchangeIO)
    conv.broker, conv.store, conv.client, conv.exchange = broker, store, None, "x"
    conv.dialect = broker.dialect
    conv.stopping = threading.Event()
    return conv


CONVERTER = io()


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(sorted(base))
    return st.lists(st.tuples(keys, ODD, st.booleans()), max_size=4).map(
        lambda changes: {k: v for k, v in _apply(base, changes).items()}
    )


def _apply(base: dict[str, Any], changes: list) -> dict[str, Any]:
    out = dict(base)
    for key, value, drop in changes:
        if drop:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def sound(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(TRADE))
def test_a_mutated_trade_becomes_a_fill_the_ledger_can_judge_or_an_error(trade):
    try:
        fill = CONVERTER.fill(trade, None)
    except Exception:
        return  # the worker thread reports it and carries on
    assert isinstance(fill, Fill)
    if LedgerMixin.invalid_fill(fill) is None:
        assert sound(fill.amount) and sound(fill.price)
        assert fill.fee is None or (fill.fee.is_finite() and fill.fee >= 0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(ORDER))
def test_a_mutated_order_becomes_an_update_with_finite_numbers_or_nothing(order):
    try:
        update = CONVERTER.order_update(order)
    except Exception:
        return
    if update is None:
        return
    assert isinstance(update, OrderUpdate)
    for value in (update.amount, update.filled, update.price, update.average, update.stop_price):
        assert value is None or (value.is_finite() and not math.isnan(float(value)))


def test_the_unchanged_payloads_convert_as_they_are():
    fill = CONVERTER.fill(TRADE, None)
    assert (fill.amount, fill.price, fill.fee, fill.client_order_id) == (
        Decimal("0.01"), Decimal("60000.5"), Decimal("0.00001"), "rt-1")  # fmt: skip
    update = CONVERTER.order_update(ORDER)
    assert update.status.value == "partially_filled" and update.filled == Decimal("0.004")


def test_an_order_ccxt_calls_closed_with_part_filled_is_cancelled_not_filled():
    """ccxt reads Bybit's PartiallyFilledCanceled (a limit order cancelled, for its validity say,
    after part of it filled) as "closed": that is a cancelled order with what filled, not a fill
    of the whole amount, which would leave the order Partial in the broker for ever."""
    import ccxt

    bybit = ccxt.bybit()
    raw = {
        "orderId": "1", "orderLinkId": "rt-1", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
        "price": "30000", "qty": "0.013", "cumExecQty": "0.004", "cumExecValue": "120", "avgPrice": "30000",
        "orderStatus": "PartiallyFilledCanceled", "timeInForce": "GTC", "createdTime": "1700000000000",
        "updatedTime": "1700000060000", "category": "spot",
    }  # fmt: skip
    market = {"id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "spot": True,
              "type": "spot", "linear": None, "inverse": None, "contract": False, "settle": None}  # fmt: skip
    parsed = bybit.parse_order(raw, market)
    assert parsed["status"] == "closed"  # ccxt's reading, which realtrade must not take for "filled"
    update = CONVERTER.order_update(parsed)
    assert update is not None and update.status.value == "canceled"
    assert update.filled == Decimal("0.004") and "0.004 of 0.013" in update.reason
    filled = dict(parsed, status="closed", filled=0.013)
    assert CONVERTER.order_update(filled).status.value == "filled"
    market_buy = dict(parsed, type="market", filled=0.004)  # amount may be in the quote: not judged
    assert CONVERTER.order_update(market_buy).status.value == "filled"
