"""Bybit's linear category (USDT perpetuals) with unmodified ccxt.bybit and a plain websocket-client:
markets, leverage, one-way positions, reduce-only and margin refusals, funding at
00:00/08:00/16:00 UTC, liquidation, and the private order/execution/position/wallet topics."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from realtrade_core.emulator.model import MarketSpec

PERP = "BTC/USDT:USDT"
MARKET_ID = "BTCUSDT"
HOUR = 3_600_000
T0 = 1_704_088_800_000  # 2024-01-01T06:00:00Z
HISTORY = 100  # the clock starts at 07:40, twenty candles before the 08:00 funding


def _write_candles(path: Path, count: int = 400) -> Path:
    """One-minute candles climbing 10 USDT a minute from 60,000 (low/high 5 below/above)."""
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(count):
        o, c = 60_000 + 10 * i, 60_000 + 10 * (i + 1)
        rows.append(f"{T0 + i * 60_000},{o},{c + 5},{o - 5},{c},10")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def linear(make_emulator, tmp_path):
    """A Bybit emulator trading BTCUSDT perpetuals from known candles, manual clock, 10,000 USDT."""

    def make(**kwargs: Any):
        kwargs.setdefault("balances", {"USDT": 10_000})
        emu = make_emulator(symbols=(PERP,), data=_write_candles(tmp_path / "btc.csv"), history=HISTORY, **kwargs)
        client = emu.ccxt_client()
        client.load_markets()
        return emu, client

    return make


def _ret_code(exc: Exception) -> int:
    return json.loads(str(exc).split(" ", 1)[1])["retCode"]


def _private(emu, stream, *topics: str):
    client = stream(emu.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    signature = hmac.new(emu.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    assert client.request({"op": "auth", "args": [emu.api_key, expires, signature]})["success"] is True
    assert client.request({"op": "subscribe", "args": list(topics)})["success"] is True
    return client


def _topic(topic: str):
    return lambda message: message.get("topic") == topic


def test_linear_markets_klines_and_funding_rate_read_by_ccxt_bybit(linear):
    _emu, ex = linear()
    market = ex.market(PERP)
    assert (market["type"], market["linear"], market["settle"], market["id"]) == ("swap", True, "USDT", MARKET_ID)
    assert list(ex.markets) == [PERP]  # the spot category lists nothing
    candles = ex.fetch_ohlcv(PERP, "1m", limit=3)
    assert [c[4] for c in candles] == [60_990.0, 61_000.0, 61_000.0]
    rate = ex.fetch_funding_rate(PERP)
    assert rate["fundingRate"] == 0.0001 and rate["markPrice"] == 61_000.0
    assert rate["fundingTimestamp"] == T0 + 2 * HOUR  # 08:00 UTC


def test_mark_price_klines_are_the_trade_candles_prices_without_volume(linear):
    _emu, ex = linear()
    raw = ex.publicGetV5MarketMarkPriceKline({"category": "linear", "symbol": MARKET_ID, "interval": "1", "limit": 3})
    trade = ex.publicGetV5MarketKline({"category": "linear", "symbol": MARKET_ID, "interval": "1", "limit": 3})
    assert raw["result"]["category"] == "linear" and raw["result"]["symbol"] == MARKET_ID
    assert raw["result"]["list"] == [row[:5] for row in trade["result"]["list"]]  # start, o, h, l, c: newest first
    marks = ex.fetch_mark_ohlcv(PERP, "1m", limit=3)
    assert [c[4] for c in marks] == [60_990.0, 61_000.0, 61_000.0] and {c[5] for c in marks} == {None}


def test_leverage_is_set_and_a_leverage_above_the_maximum_is_refused(linear):
    spec = MarketSpec(MARKET_ID, "BTC", "USDT", tick_size=Decimal("0.1"), step_size=Decimal("0.001"),
                      min_amount=Decimal("0.001"), contract=True, max_leverage=100)  # fmt: skip
    emu, ex = linear(markets=[spec])
    assert ex.market(PERP)["limits"]["leverage"]["max"] == 100
    assert ex.set_leverage(10, PERP)["retCode"] == 0
    with pytest.raises(ccxt.BaseError) as refused:
        ex.set_leverage(150, PERP)
    assert _ret_code(refused.value) == 10001
    with pytest.raises(ccxt.BaseError) as same:
        ex.set_leverage(10, PERP)
    assert _ret_code(same.value) == 110043
    assert ex.fetch_leverage(PERP)["longLeverage"] == 10 and emu.position(PERP).leverage == 10


def test_long_then_reversed_to_short_with_entry_price_and_realised_profit(linear):
    emu, ex = linear()
    ex.set_leverage(10, PERP)
    created = ex.create_order(PERP, "market", "buy", 0.1)
    bought = ex.fetch_order(created["id"], PERP, params={"acknowledged": True})
    assert (bought["status"], bought["filled"], bought["average"]) == ("closed", 0.1, 61_000.0)
    long = ex.fetch_positions([PERP])[0]
    assert (long["side"], long["contracts"], long["entryPrice"], long["leverage"]) == ("long", 0.1, 61_000.0, 10)
    emu.step(5)  # five candles later the price is 61,050
    long = ex.fetch_positions([PERP])[0]
    assert long["markPrice"] == 61_050.0 and long["unrealizedPnl"] == pytest.approx(5.0)
    ex.create_order(PERP, "market", "sell", 0.3)
    short = ex.fetch_positions([PERP])[0]
    assert (short["side"], short["contracts"], short["entryPrice"]) == ("short", 0.2, 61_050.0)
    trade = ex.fetch_my_trades(PERP)[-1]
    assert trade["info"]["execPnl"] == "5" and trade["info"]["closedSize"] == "0.3"
    # Fees at 0.06 %, the taker rate ccxt lists for Bybit's linear contracts.
    assert emu.balances()["USDT"].total == Decimal("10000") + 5 - Decimal("3.66") - Decimal("10.989")
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.2 * 61_050 / 10)


def test_reduce_only_violation_and_insufficient_margin_are_refused_with_bybit_codes(linear):
    emu, ex = linear()
    with pytest.raises(ccxt.InvalidOrder) as reduce_only:
        ex.create_order(PERP, "market", "sell", 0.1, params={"reduceOnly": True})
    assert _ret_code(reduce_only.value) == 110017
    with pytest.raises(ccxt.InsufficientFunds) as margin:
        ex.create_order(PERP, "market", "buy", 5)
    assert _ret_code(margin.value) == 110007
    assert [(r.code, r.reason) for r in emu.refused_orders()] == [
        (110017, "Reduce-only rule not satisfied"), (110007, "ab not enough for new order"),
    ]  # fmt: skip
    assert emu.positions()[0].size == 0 and emu.balances()["USDT"].total == 10_000


def test_limit_orders_rest_are_listed_cancelled_and_fetched(linear):
    _emu, ex = linear()
    order = ex.create_order(PERP, "limit", "buy", 0.01, 50_000)
    assert [o["id"] for o in ex.fetch_open_orders(PERP)] == [order["id"]]
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.01 * 50_000 / 20)
    ex.cancel_order(order["id"], PERP)
    assert ex.fetch_open_orders(PERP) == []
    assert ex.fetch_canceled_and_closed_orders(PERP)[0]["status"] == "canceled"
    assert ex.fetch_balance()["USDT"]["used"] == 0


def test_stop_loss_closes_the_short_when_the_price_rises_to_it(linear):
    emu, ex = linear()
    ex.create_order(PERP, "market", "sell", 0.1)
    stop = ex.create_order(PERP, "market", "buy", 0.1, params={"stopLossPrice": 61_030, "reduceOnly": True})
    waiting = ex.fetch_open_orders(PERP, params={"trigger": True})
    assert [o["id"] for o in waiting] == [stop["id"]] and waiting[0]["triggerPrice"] == 61_030
    emu.step(4)
    assert emu.positions()[0].size == 0
    assert ex.fetch_my_trades(PERP)[-1]["info"]["execPnl"] == "-3"  # bought back at 61,030


def test_isolated_margin_liquidation_price_and_liquidation(linear):
    emu, ex = linear()
    ex.set_margin_mode("isolated", PERP)
    ex.create_order(PERP, "market", "buy", 0.1)  # 6,100 USDT at 20x: 305 of isolated margin
    position = ex.fetch_positions([PERP])[0]
    assert position["info"]["tradeMode"] == 1
    expected = (Decimal("6100") - Decimal("305")) / (Decimal("0.1") * (1 - Decimal("0.004")))
    assert Decimal(position["info"]["liqPrice"]) == expected.quantize(Decimal("1e-8"), "ROUND_DOWN")
    wallet = emu.balances()["USDT"].total
    emu.set_mark_price(PERP, 58_150)
    assert emu.position(PERP).size == 0 and emu.balances()["USDT"].total == wallet - 305
    trades = ex.privateGetV5ExecutionList({"category": "linear", "symbol": MARKET_ID})["result"]["list"]
    assert sorted((t["execType"], t["createType"]) for t in trades) == [
        ("BustTrade", "CreateByLiquidate"), ("Trade", "CreateByUser"),
    ]  # fmt: skip


def test_hedge_mode_switches_only_with_nothing_open_and_then_refuses_one_way_orders(linear):
    _, ex = linear()
    ex.create_order(PERP, "market", "buy", 0.1)
    with pytest.raises(ccxt.BaseError) as mode:
        ex.set_position_mode(True, PERP)
    assert _ret_code(mode.value) == 110024
    ex.create_order(PERP, "market", "sell", 0.1, params={"reduceOnly": True})
    ex.set_position_mode(True, PERP)
    assert [p["hedged"] for p in ex.fetch_positions([PERP])] == [True, True]  # one row a side
    with pytest.raises(ccxt.BaseError) as order:
        ex.create_order(PERP, "market", "buy", 0.1)
    assert _ret_code(order.value) == 10001 and "position idx not match position mode" in str(order.value)
    ex.set_position_mode(False, PERP)
    assert [p["hedged"] for p in ex.fetch_positions([PERP])] == [False]


def test_funding_is_paid_at_eight_utc_and_listed(linear):
    emu, ex = linear()
    ex.create_order(PERP, "market", "sell", 0.5)
    emu.set_funding_rate(PERP, "0.0002")
    emu.step(19)  # 07:59
    assert ex.fetch_funding_history(PERP) == []
    emu.step(1)  # 08:00
    funding = ex.fetch_funding_history(PERP)
    assert len(funding) == 1 and funding[0]["timestamp"] == T0 + 2 * HOUR
    # The short receives 0.5 * 61,200 * 0.0002; Bybit's execFee is what the account paid.
    assert funding[0]["info"]["execFee"] == "-6.12" and funding[0]["info"]["feeRate"] == "0.0002"
    history = ex.fetch_funding_rate_history(PERP)
    assert [(h["timestamp"], h["fundingRate"]) for h in history] == [(T0 + 2 * HOUR, 0.0002)]
    log = ex.privateGetV5AccountTransactionLog({"accountType": "UNIFIED", "category": "linear", "type": "SETTLEMENT"})
    assert [row["funding"] for row in log["result"]["list"]] == ["-6.12"]
    # The wallet's ledger as ccxt reads it: the sale's fee, then the funding received.
    ledger = ex.fetch_ledger("USDT")
    assert [(e["info"]["type"], e["direction"], e["amount"], e["after"]) for e in ledger] == [
        ("TRADE", "out", 18.3, 9981.7), ("SETTLEMENT", "in", 6.12, 9987.82),
    ]  # fmt: skip


def test_private_topics_report_orders_positions_wallet_funding_and_liquidation(linear, stream):
    emu, ex = linear()
    client = _private(emu, stream, "order", "execution", "position", "wallet")
    ex.set_leverage(50, PERP)
    ex.create_order(PERP, "market", "buy", 1, params={"clientOrderId": "long-1"})
    order = client.recv_until(lambda m: m.get("topic") == "order" and m["data"][0]["orderStatus"] == "Filled")
    item = order["data"][0]
    assert (item["category"], item["orderLinkId"], item["positionIdx"], item["reduceOnly"]) == (
        "linear", "long-1", 0, False)  # fmt: skip
    execution = client.recv_until(_topic("execution"))["data"][0]
    assert (execution["execType"], execution["execPrice"], execution["execQty"]) == ("Trade", "61000", "1")
    position = client.recv_until(_topic("position"))["data"][0]
    assert (position["side"], position["size"], position["avgPrice"], position["leverage"]) == (
        "Buy", "1", "61000", "50")  # fmt: skip
    wallet = client.recv_until(_topic("wallet"))["data"][0]["coin"][0]
    assert wallet["coin"] == "USDT" and wallet["totalPositionIM"] == "1220"
    emu.step(20)
    funding = client.recv_until(lambda m: m.get("topic") == "execution" and m["data"][0]["execType"] == "Funding")
    assert funding["data"][0]["execFee"] == "6.12"  # 1 BTC long at 61,200 pays 0.01 %
    liquidation_price = Decimal(ex.fetch_positions([PERP])[0]["info"]["liqPrice"])
    emu.set_mark_price(PERP, liquidation_price - 10)
    bust = client.recv_until(lambda m: m.get("topic") == "execution" and m["data"][0]["execType"] == "BustTrade")
    assert bust["data"][0]["createType"] == "CreateByLiquidate"
    flat = client.recv_until(lambda m: m.get("topic") == "position" and m["data"][0]["size"] == "0")
    assert flat["data"][0]["side"] == ""


def test_linear_public_stream_carries_klines_and_mark_price_tickers(linear, stream):
    emu, _ex = linear()
    public = stream(emu.urls["ws_linear"])
    reply = public.request({"op": "subscribe", "args": [f"kline.1.{MARKET_ID}", f"tickers.{MARKET_ID}"]})
    assert reply["success"] is True
    emu.set_mark_price(PERP, 61_111)
    emu.step(1)
    kline = public.recv_until(lambda m: m.get("topic") == f"kline.1.{MARKET_ID}" and m["data"][0]["confirm"])
    assert (kline["data"][0]["close"], kline["data"][0]["start"]) == ("61010", T0 + HISTORY * 60_000)
    ticker = public.recv_until(_topic(f"tickers.{MARKET_ID}"))["data"]
    assert (ticker["markPrice"], ticker["fundingRate"], ticker["nextFundingTime"]) == (
        "61111", "0.0001", str(T0 + 2 * HOUR))  # fmt: skip
