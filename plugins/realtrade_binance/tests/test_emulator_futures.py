"""The Binance USDⓈ-M futures dialect with unmodified ccxt.binanceusdm and a plain websocket-client:
perpetual markets, leverage, one-way positions, reduce-only and margin refusals, funding at
00:00/08:00/16:00 UTC, liquidation, and the user-data stream behind a listen key."""

from __future__ import annotations

import json
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
def futures(make_emulator, tmp_path):
    """A Binance emulator trading BTCUSDT perpetuals from known candles, manual clock, 10,000 USDT."""

    def make(**kwargs: Any):
        kwargs.setdefault("balances", {"USDT": 10_000})
        emu = make_emulator(symbols=(PERP,), data=_write_candles(tmp_path / "btc.csv"), history=HISTORY, **kwargs)
        client = emu.ccxt_client()
        client.load_markets()
        return emu, client

    return make


def _subscribed(ws, recv_until) -> list[str]:
    """The connection's streams, once the server has them (its answer comes after it subscribed)."""
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 99}))
    return recv_until(ws, lambda m: m.get("id") == 99)[0]["result"]


def _code(exc: Exception) -> int:
    return json.loads(str(exc).split(" ", 1)[1])["code"]


def test_markets_klines_and_funding_rate_read_by_ccxt_binanceusdm(futures):
    _emu, ex = futures()
    assert type(ex).__name__ == "binanceusdm"
    market = ex.market(PERP)
    assert (market["type"], market["linear"], market["settle"], market["id"]) == ("swap", True, "USDT", MARKET_ID)
    assert list(ex.markets) == [PERP]
    candles = ex.fetch_ohlcv(PERP, "1m", limit=3)
    assert [c[4] for c in candles] == [60_990.0, 61_000.0, 61_000.0]  # the last one forms at its open
    rate = ex.fetch_funding_rate(PERP)
    assert rate["fundingRate"] == 0.0001 and rate["markPrice"] == 61_000.0
    assert rate["fundingTimestamp"] == T0 + 2 * HOUR  # 08:00 UTC


def test_mark_price_klines_are_the_trade_candles_prices_without_volume(futures):
    _emu, ex = futures()
    raw = ex.fapiPublicGetMarkPriceKlines({"symbol": MARKET_ID, "interval": "1m", "limit": 3})
    trade = ex.fapiPublicGetKlines({"symbol": MARKET_ID, "interval": "1m", "limit": 3})
    assert [row[:5] for row in raw] == [row[:5] for row in trade]  # open time, o, h, l, c
    assert [row[6] for row in raw] == [row[6] for row in trade]  # close time
    assert all(len(row) == 12 and row[5] == "0" and row[8] == 0 for row in raw)  # no volume, no trades
    marks = ex.fetch_mark_ohlcv(PERP, "1m", limit=3)
    assert [c[4] for c in marks] == [60_990.0, 61_000.0, 61_000.0] and {c[5] for c in marks} == {0.0}


def test_leverage_is_set_and_a_leverage_above_the_maximum_is_refused(futures):
    spec = MarketSpec(MARKET_ID, "BTC", "USDT", tick_size=Decimal("0.1"), step_size=Decimal("0.001"),
                      min_amount=Decimal("0.001"), contract=True, max_leverage=50)  # fmt: skip
    emu, ex = futures(markets=[spec])
    assert ex.set_leverage(10, PERP)["leverage"] == 10
    with pytest.raises(ccxt.BaseError) as refused:
        ex.set_leverage(75, PERP)
    assert _code(refused.value) == -4028 and "Leverage 75 is not valid" in str(refused.value)
    assert emu.position(PERP).leverage == 10
    risk = ex.fapiPrivateV2GetPositionRisk({"symbol": MARKET_ID})
    assert risk[0]["leverage"] == "10" and risk[0]["marginType"] == "cross"


def test_long_then_reversed_to_short_with_entry_price_and_realised_profit(futures):
    emu, ex = futures()
    ex.set_leverage(10, PERP)
    buy = ex.create_order(PERP, "market", "buy", 0.1)
    assert (buy["status"], buy["filled"], buy["average"]) == ("closed", 0.1, 61_000.0)
    long = ex.fetch_positions([PERP])[0]
    assert (long["side"], long["contracts"], long["entryPrice"], long["marginMode"]) == ("long", 0.1, 61_000.0, "cross")
    emu.step(5)  # five candles later the price is 61,050
    long = ex.fetch_positions([PERP])[0]
    assert long["markPrice"] == 61_050.0 and long["unrealizedPnl"] == pytest.approx(5.0)
    ex.create_order(PERP, "market", "sell", 0.3)
    short = ex.fetch_positions([PERP])[0]
    assert (short["side"], short["contracts"], short["entryPrice"]) == ("short", 0.2, 61_050.0)
    trade = ex.fetch_my_trades(PERP)[-1]
    assert trade["info"]["realizedPnl"] == "5.00000000"
    # Wallet: 10,000 + 5 profit - taker fees 0.05 % of 6,100 and of 18,315.
    assert emu.balances()["USDT"].total == Decimal("10000") + 5 - Decimal("3.05") - Decimal("9.1575")
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.2 * 61_050 / 10)


def test_reduce_only_violation_and_insufficient_margin_are_refused_with_binance_codes(futures):
    emu, ex = futures()
    with pytest.raises(ccxt.BaseError) as reduce_only:
        ex.create_order(PERP, "market", "sell", 0.1, params={"reduceOnly": True})
    assert _code(reduce_only.value) == -2022
    with pytest.raises(ccxt.BaseError) as margin:
        ex.create_order(PERP, "market", "buy", 5)  # 305,000 USDT at 20x needs 15,250 of margin
    assert _code(margin.value) == -2019
    assert [(r.code, r.reason) for r in emu.refused_orders()] == [
        (-2022, "ReduceOnly Order is rejected."), (-2019, "Margin is insufficient."),
    ]  # fmt: skip
    assert emu.positions()[0].size == 0 and emu.balances()["USDT"].total == 10_000


def test_limit_orders_rest_are_listed_cancelled_and_fetched(futures):
    _emu, ex = futures()
    order = ex.create_order(PERP, "limit", "buy", 0.01, 50_000)
    assert [o["id"] for o in ex.fetch_open_orders(PERP)] == [order["id"]]
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.01 * 50_000 / 20)  # its margin
    assert ex.cancel_order(order["id"], PERP)["status"] == "canceled"
    assert ex.fetch_order(order["id"], PERP)["status"] == "canceled"
    assert ex.fetch_open_orders(PERP) == [] and ex.fetch_balance()["USDT"]["used"] == 0


def test_take_profit_algo_order_closes_the_position_when_the_price_gets_there(futures):
    emu, ex = futures()
    ex.create_order(PERP, "market", "buy", 0.1)
    tp = ex.create_order(PERP, "market", "sell", 0.1, params={"takeProfitPrice": 61_030, "reduceOnly": True})
    assert tp["info"]["orderType"] == "TAKE_PROFIT_MARKET" and tp["status"] == "open"
    assert [o["id"] for o in ex.fetch_open_orders(PERP, params={"trigger": True})] == [tp["id"]]
    assert ex.fetch_open_orders(PERP) == []  # not on the book until it triggers
    emu.step(4)
    assert emu.positions()[0].size == 0
    assert ex.fetch_order(tp["id"], PERP, params={"trigger": True})["info"]["algoStatus"] == "FINISHED"
    assert ex.fetch_my_trades(PERP)[-1]["info"]["realizedPnl"] == "3.00000000"  # sold at 61,030


def test_isolated_position_shows_liquidation_price_and_is_liquidated_at_it(futures):
    emu, ex = futures()
    ex.set_margin_mode("isolated", PERP)
    ex.create_order(PERP, "market", "buy", 0.1)  # 6,100 USDT at 20x: 305 of isolated margin
    position = ex.fetch_positions([PERP])[0]
    assert position["marginMode"] == "isolated"
    expected = (Decimal("6100") - Decimal("305")) / (Decimal("0.1") * (1 - Decimal("0.004")))
    assert Decimal(position["info"]["liquidationPrice"]) == expected.quantize(Decimal("1e-8"), "ROUND_DOWN")
    wallet = emu.balances()["USDT"].total
    emu.set_mark_price(PERP, 58_400)  # above the liquidation price: still open
    assert emu.position(PERP).size == Decimal("0.1")
    emu.set_mark_price(PERP, 58_150)
    assert emu.position(PERP).size == 0
    assert emu.balances()["USDT"].total == wallet - 305  # the isolated margin is gone
    closing = emu.orders(PERP)[-1]
    assert closing.client_order_id.startswith("autoclose-") and closing.reduce_only
    assert [i.kind for i in emu.incomes(PERP)][-2:] == ["COMMISSION", "INSURANCE_CLEAR"]


def test_hedge_mode_switches_only_with_nothing_open_and_then_refuses_one_way_orders(futures):
    _, ex = futures()
    assert ex.fetch_position_mode(PERP)["hedged"] is False
    ex.create_order(PERP, "market", "buy", 0.1)
    with pytest.raises(ccxt.BaseError) as mode:
        ex.set_position_mode(True)
    assert _code(mode.value) == -4068
    ex.create_order(PERP, "market", "sell", 0.1, params={"reduceOnly": True})
    ex.set_position_mode(True)
    assert ex.fetch_position_mode(PERP)["hedged"] is True
    with pytest.raises(ccxt.BaseError) as order:
        ex.create_order(PERP, "market", "buy", 0.1)
    assert _code(order.value) == -4061
    ex.set_position_mode(False)
    assert ex.fetch_position_mode(PERP)["hedged"] is False


def test_funding_is_paid_at_eight_utc_and_listed_as_income(futures):
    emu, ex = futures()
    ex.create_order(PERP, "market", "sell", 0.5)  # short: receives funding at a positive rate
    emu.set_funding_rate(PERP, "0.0002")
    emu.step(19)  # 07:59
    assert ex.fetch_funding_history(PERP) == []
    emu.step(1)  # 08:00
    funding = ex.fetch_funding_history(PERP)
    assert len(funding) == 1 and funding[0]["timestamp"] == T0 + 2 * HOUR
    assert funding[0]["amount"] == pytest.approx(0.5 * 61_200 * 0.0002)  # mark 61,200 at 08:00
    history = ex.fetch_funding_rate_history(PERP)
    assert [(h["timestamp"], h["fundingRate"]) for h in history] == [(T0 + 2 * HOUR, 0.0002)]
    emu.advance(8 * HOUR)  # past the last candle the price stands still; 16:00 pays again
    assert [i.time for i in emu.incomes(PERP, kind="FUNDING_FEE")] == [T0 + 2 * HOUR, T0 + 4 * HOUR + 6 * HOUR]


def test_user_data_stream_reports_orders_funding_margin_call_and_liquidation(futures, ws_connect, recv_until):
    emu, ex = futures()
    key = ex.fapiPrivatePostListenKey()["listenKey"]
    assert ex.fapiPrivatePutListenKey()["listenKey"] == key
    ws = ws_connect(f"{emu.base_ws}/fstream/ws/{key}")
    assert _subscribed(ws, recv_until) == [key]
    ex.set_leverage(50, PERP)
    config, _ = recv_until(ws, lambda m: m["e"] == "ACCOUNT_CONFIG_UPDATE")
    assert config["ac"] == {"s": MARKET_ID, "l": 50}
    ex.create_order(PERP, "market", "buy", 1, params={"clientOrderId": "long-1"})
    trade, _ = recv_until(ws, lambda m: m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "TRADE")
    o = trade["o"]
    assert (o["c"], o["X"], o["l"], o["L"], o["ps"], o["R"]) == ("long-1", "FILLED", "1.00000000", "61000.00000000",
                                                                 "BOTH", False)  # fmt: skip
    update, _ = recv_until(ws, lambda m: m["e"] == "ACCOUNT_UPDATE")
    assert update["a"]["m"] == "ORDER" and update["a"]["P"][0]["pa"] == "1.00000000"
    emu.step(20)
    funding, _ = recv_until(ws, lambda m: m["e"] == "ACCOUNT_UPDATE" and m["a"]["m"] == "FUNDING_FEE")
    assert funding["a"]["B"][0]["bc"] == "-6.12000000"  # 1 BTC at 61,200 pays 0.01 %
    # Cross: the whole wallet backs the position; 10 USDT above the liquidation price the
    # maintenance margin is most of what is left, 10 below the position is gone.
    liquidation_price = Decimal(ex.fetch_positions([PERP])[0]["info"]["liquidationPrice"])
    assert 51_000 < liquidation_price < 51_300
    emu.set_mark_price(PERP, liquidation_price + 10)
    call, _ = recv_until(ws, lambda m: m["e"] == "MARGIN_CALL")
    assert call["p"][0]["s"] == MARKET_ID and call["p"][0]["mt"] == "CROSS"
    assert emu.position(PERP).size == 1
    emu.set_mark_price(PERP, liquidation_price - 10)
    liquidation, _ = recv_until(ws, lambda m: m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "CALCULATED")
    assert liquidation["o"]["c"].startswith("autoclose-") and liquidation["o"]["X"] == "FILLED"
    assert emu.position(PERP).size == 0


def test_kline_and_mark_price_streams(futures, ws_connect, recv_until):
    emu, _ex = futures()
    ws = ws_connect(f"{emu.base_ws}/fstream/stream?streams=btcusdt@kline_1m/btcusdt@markPrice")
    assert _subscribed(ws, recv_until) == ["btcusdt@kline_1m", "btcusdt@markPrice"]
    emu.step(1)
    kline, _ = recv_until(ws, lambda m: m["stream"] == "btcusdt@kline_1m" and m["data"]["k"]["x"])
    assert (kline["data"]["k"]["c"], kline["data"]["k"]["t"]) == ("61010.00000000", T0 + HISTORY * 60_000)
    mark, _ = recv_until(ws, lambda m: m["stream"] == "btcusdt@markPrice")
    assert mark["data"]["e"] == "markPriceUpdate" and mark["data"]["T"] == T0 + 2 * HOUR


def test_a_longer_kline_stream_folds_the_replayed_candles(futures, ws_connect, recv_until):
    emu, _ex = futures()
    ws = ws_connect(f"{emu.base_ws}/fstream/ws/btcusdt@kline_5m")
    assert _subscribed(ws, recv_until) == ["btcusdt@kline_5m"]
    emu.step(5)  # 07:40 to 07:45: five one-minute candles, 61,000 up to 61,050
    final, seen = recv_until(ws, lambda m: m.get("e") == "kline" and m["k"]["x"])
    k = final["k"]
    assert (k["i"], k["t"], k["T"]) == ("5m", T0 + HISTORY * 60_000, T0 + HISTORY * 60_000 + 300_000 - 1)
    assert (k["o"], k["h"], k["l"], k["c"], k["v"]) == (
        "61000.00000000", "61055.00000000", "60995.00000000", "61050.00000000", "50.00000000")  # fmt: skip
    assert all(not m["k"]["x"] for m in seen[:-1]) and len(seen) > 5  # updates while it formed
