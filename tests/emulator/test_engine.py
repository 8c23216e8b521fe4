"""The emulator's matching engine: replay, market data, orders, fills, balances and events."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal as D

import pytest

from realtrade_core.emulator.clock import EmulatedClock
from realtrade_core.emulator.engine import Engine
from realtrade_core.emulator.model import (
    AccountConfig,
    BalanceEvent,
    BookEvent,
    Candle,
    EngineError,
    ExecutionType,
    KlineEvent,
    MarketSpec,
    OrderEvent,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TradeEvent,
)

MINUTE = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a whole day, so every bucket size aligns here
KEY = "test-key"
SYMBOL = "BTCUSDT"


def candle(index: int, o: str, h: str, low: str, c: str, volume: str = "4", interval: int = MINUTE) -> Candle:
    return Candle(T0 + index * interval, interval, D(o), D(h), D(low), D(c), D(volume))


def spec(**overrides: object) -> MarketSpec:
    fields: dict = {
        "symbol": SYMBOL,
        "base": "BTC",
        "quote": "USDT",
        "tick_size": D("0.01"),
        "step_size": D("0.001"),
        "min_amount": D("0.001"),
        "max_amount": D("100"),
        "min_notional": D("5"),
        "maker_fee": D("0.001"),
        "taker_fee": D("0.002"),
    }
    fields.update(overrides)
    return MarketSpec(**fields)


# Two candles of past, then an up candle (path 100 -> 98 -> 102 -> 101), a down candle
# (101 -> 103 -> 97 -> 99), a one-minute hole, and a down candle (99 -> 100 -> 95 -> 96).
CANDLES = [
    candle(0, "100", "101", "99", "100.5"),
    candle(1, "100", "101", "99", "100"),
    candle(2, "100", "102", "98", "101"),
    candle(3, "101", "103", "97", "99"),
    candle(5, "99", "100", "95", "96"),
]
LIVE = T0 + 2 * MINUTE  # open of CANDLES[2], where the clock starts


def make_engine(
    candles: list[Candle] | None = None,
    *,
    start: int = LIVE,
    market: MarketSpec | None = None,
    balances: dict[str, D] | None = None,
    **kwargs: object,
) -> Engine:
    account = AccountConfig(KEY, "secret", {"USDT": D("10000"), "BTC": D("10")} if balances is None else balances)
    return Engine(
        [(market or spec(), CANDLES if candles is None else candles)],
        clock=EmulatedClock(start, speed=None),
        accounts=[account],
        **kwargs,
    )


def record(engine: Engine) -> list:
    events: list = []
    engine.subscribe(events.append)
    return events


def of_type(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def balance(engine: Engine, asset: str) -> tuple[D, D]:
    for row in engine.balances(KEY):
        if row.asset == asset:
            return row.free, row.locked
    return D(0), D(0)


# --- price path and klines ---------------------------------------------------------------------


def test_up_candle_walks_open_low_high_close() -> None:
    engine = make_engine(start=T0 + 2 * MINUTE - 1)
    events = record(engine)
    engine.advance_to(T0 + 2 * MINUTE + 45_000)
    assert [t.price for t in of_type(events, TradeEvent)] == [D("100"), D("98"), D("102"), D("101")]


def test_down_candle_walks_open_high_low_close() -> None:
    engine = make_engine(start=T0 + 3 * MINUTE - 1)
    events = record(engine)
    engine.advance_to(T0 + 3 * MINUTE + 45_000)
    assert [t.price for t in of_type(events, TradeEvent)] == [D("101"), D("103"), D("97"), D("99")]


def test_steps_are_evenly_spaced_within_the_candle() -> None:
    engine = make_engine(start=T0 + 2 * MINUTE - 1)
    events = record(engine)
    engine.advance_to(T0 + 2 * MINUTE + 45_000)
    assert [t.time - LIVE for t in of_type(events, TradeEvent)] == [0, 15_000, 30_000, 45_000]


def test_each_step_emits_trade_then_book_then_forming_kline() -> None:
    engine = make_engine()
    events = record(engine)
    engine.advance_to(LIVE + 15_000)
    assert [type(e) for e in events] == [TradeEvent, BookEvent, KlineEvent]
    assert events[2].closed is False


def test_book_is_one_tick_around_the_last_price() -> None:
    engine = make_engine()
    events = record(engine)
    engine.advance_to(LIVE + 15_000)
    book = of_type(events, BookEvent)[0]
    assert (book.bid, book.ask) == (D("97.99"), D("98.01"))
    assert engine.book(SYMBOL)[0::2] == (D("97.99"), D("98.01"))


def test_exactly_one_closed_kline_per_candle_equal_to_the_source() -> None:
    engine = make_engine(start=T0)
    events = record(engine)
    engine.advance_to(T0 + 10 * MINUTE)
    closed = [e.candle for e in of_type(events, KlineEvent) if e.closed]
    assert closed == CANDLES


def test_closed_kline_comes_at_candle_end_before_the_next_open() -> None:
    engine = make_engine()
    events = record(engine)
    engine.advance_to(LIVE + MINUTE)
    close_index = next(i for i, e in enumerate(events) if isinstance(e, KlineEvent) and e.closed)
    assert events[close_index].time == LIVE + MINUTE
    assert isinstance(events[close_index + 1], TradeEvent)
    assert events[close_index + 1].price == D("101")  # the next candle's open


def test_forming_kline_carries_running_values() -> None:
    engine = make_engine()
    events = record(engine)
    engine.advance_to(LIVE + 45_000)
    forming = [e.candle for e in of_type(events, KlineEvent)]
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in forming] == [
        (D("100"), D("100"), D("98"), D("98"), D("2")),
        (D("100"), D("102"), D("98"), D("102"), D("3")),
        (D("100"), D("102"), D("98"), D("101"), D("4")),
    ]


def test_public_trade_amounts_add_up_to_candle_volume() -> None:
    engine = make_engine(start=T0 + 2 * MINUTE - 1, candles=[*CANDLES[:2], candle(2, "100", "102", "98", "101", "1.5")])
    events = record(engine)
    engine.advance_to(T0 + 3 * MINUTE)
    assert sum(t.amount for t in of_type(events, TradeEvent)) == D("1.5")


def test_hole_emits_no_events_during_the_gap() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 4 * MINUTE)  # the close of candle 3, where the hole begins
    events = record(engine)
    engine.advance_to(T0 + 5 * MINUTE - 1)
    assert events == []


def test_hole_resumes_with_the_next_candle() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 4 * MINUTE)
    events = record(engine)
    engine.advance_to(T0 + 5 * MINUTE)
    assert next((type(e), e.time) for e in events) == (TradeEvent, T0 + 5 * MINUTE)


def test_public_trade_ids_increase_across_a_hole() -> None:
    engine = make_engine()
    events = record(engine)
    engine.advance_to(T0 + 6 * MINUTE)
    ids = [t.trade_id for t in of_type(events, TradeEvent)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_replay_stands_still_after_the_last_candle() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 6 * MINUTE)
    events = record(engine)
    engine.advance_to(T0 + 60 * MINUTE)
    assert events == [] and engine.last_price(SYMBOL) == D("96")


def test_several_symbols_advance_in_global_time_order() -> None:
    eth = [candle(i, "10", "11", "9", "10.5", interval=2 * MINUTE) for i in range(4)]
    eth_spec = spec(symbol="ETHUSDT", base="ETH")
    engine = Engine(
        [(spec(), CANDLES), (eth_spec, eth)],
        clock=EmulatedClock(T0, speed=None),
    )
    events = record(engine)
    engine.advance_to(T0 + 6 * MINUTE)
    times = [e.time for e in events]
    assert times == sorted(times)
    assert {e.symbol for e in of_type(events, TradeEvent)} == {SYMBOL, "ETHUSDT"}
    assert [e.candle for e in of_type(events, KlineEvent) if e.closed and e.symbol == "ETHUSDT"] == eth[:3]


def test_step_candles_moves_by_the_shortest_interval() -> None:
    hourly = [candle(i, "10", "11", "9", "10.5", interval=60 * MINUTE) for i in range(3)]
    engine = Engine(
        [(spec(), CANDLES), (spec(symbol="ETHUSDT", base="ETH"), hourly)],
        clock=EmulatedClock(T0, speed=None),
    )
    engine.step_candles(2)
    assert engine.now() == T0 + 2 * MINUTE


def test_advance_to_moves_a_manual_clock() -> None:
    engine = make_engine()
    engine.advance_to(LIVE + 30_000)
    assert engine.now() == LIVE + 30_000


def test_requests_catch_up_with_the_clock_first() -> None:
    engine = make_engine()
    engine.clock.advance(15_000)
    assert engine.last_price(SYMBOL) == D("98")


def test_more_steps_interpolate_inside_the_candle() -> None:
    engine = make_engine(start=T0 + 2 * MINUTE - 1, steps_per_candle=7)
    events = record(engine)
    engine.advance_to(T0 + 3 * MINUTE)  # the close, and the next candle's open
    prices = [t.price for t in of_type(events, TradeEvent)]
    assert prices == [D("100"), D("99"), D("98"), D("100"), D("102"), D("101.5"), D("101"), D("101")]
    assert [e.candle for e in of_type(events, KlineEvent) if e.closed][-1] == CANDLES[2]


def test_fewer_than_four_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="steps_per_candle"):
        make_engine(steps_per_candle=3)


def test_overlapping_candles_are_refused() -> None:
    with pytest.raises(ValueError, match="before the previous one"):
        make_engine(candles=[candle(0, "1", "1", "1", "1"), Candle(T0 + 1, MINUTE, D(1), D(1), D(1), D(1), D(1))])


def test_default_clock_starts_at_candle_number_history() -> None:
    engine = Engine([(spec(), CANDLES)], history=2)
    assert engine.clock.now() >= CANDLES[2].open_time


# --- candles() ---------------------------------------------------------------------------------


def long_history(count: int = 1000) -> list[Candle]:
    # A steady 1m market with a hole every 97 minutes.
    return [candle(i, "100", "101", "99", "100") for i in range(count) if i % 97 != 50]


def test_candles_page_forward_with_since_and_limit_without_gaps_or_duplicates() -> None:
    source = long_history()
    engine = make_engine(candles=source, start=source[-1].open_time + MINUTE)
    pages: list[Candle] = []
    since = T0
    while True:
        page = engine.candles(SYMBOL, MINUTE, start=since, limit=100)
        if not page:
            break
        pages.extend(page)
        since = page[-1].open_time + 1
    assert pages == source


def test_candles_without_start_return_the_latest_limit() -> None:
    source = long_history()
    engine = make_engine(candles=source, start=source[-1].open_time + MINUTE)
    assert engine.candles(SYMBOL, MINUTE, limit=3) == source[-3:]


def test_candles_end_bound_is_inclusive() -> None:
    engine = make_engine()
    assert engine.candles(SYMBOL, MINUTE, end=T0 + MINUTE, limit=10) == CANDLES[:2]


def test_candles_include_the_forming_candle_with_values_so_far() -> None:
    engine = make_engine()
    engine.advance_to(LIVE + 15_000)
    latest = engine.candles(SYMBOL, MINUTE, limit=1)[0]
    assert (latest.open_time, latest.open, latest.high, latest.low, latest.close) == (
        LIVE,
        D("100"),
        D("100"),
        D("98"),
        D("98"),
    )


def test_candles_exclude_the_future() -> None:
    engine = make_engine()
    rows = engine.candles(SYMBOL, MINUTE, start=T0, limit=100)
    assert [c.open_time for c in rows] == [T0, T0 + MINUTE, LIVE]


def test_candles_skip_a_hole() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 6 * MINUTE)
    times = [c.open_time for c in engine.candles(SYMBOL, MINUTE, start=T0, limit=100)]
    assert T0 + 4 * MINUTE not in times and len(times) == 5


def test_candles_aggregate_aligned_to_the_epoch() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 6 * MINUTE)
    rows = engine.candles(SYMBOL, 2 * MINUTE, start=T0, limit=10)
    assert rows[0] == Candle(T0, 2 * MINUTE, D("100"), D("101"), D("99"), D("100"), D("8"))
    assert rows[1] == Candle(T0 + 2 * MINUTE, 2 * MINUTE, D("100"), D("103"), D("97"), D("99"), D("8"))
    assert rows[2] == Candle(T0 + 4 * MINUTE, 2 * MINUTE, D("99"), D("100"), D("95"), D("96"), D("4"))


def test_aggregated_candles_page_by_bucket() -> None:
    source = long_history()
    engine = make_engine(candles=source, start=source[-1].open_time + MINUTE)
    first = engine.candles(SYMBOL, 5 * MINUTE, start=T0 + 1, limit=2)
    assert [c.open_time for c in first] == [T0 + 5 * MINUTE, T0 + 10 * MINUTE]
    assert first[0].volume == D("20")


def test_aggregated_latest_include_the_forming_bucket() -> None:
    engine = make_engine()
    engine.advance_to(LIVE + MINUTE + 15_000)  # second step of candle 3, the second minute of its bucket
    latest = engine.candles(SYMBOL, 2 * MINUTE, limit=2)
    assert [c.open_time for c in latest] == [T0, LIVE]
    assert (latest[1].high, latest[1].low, latest[1].close) == (D("103"), D("98"), D("103"))


def test_aggregated_end_includes_its_whole_bucket() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 6 * MINUTE)
    rows = engine.candles(SYMBOL, 2 * MINUTE, end=T0 + 2 * MINUTE, limit=10)
    assert [c.open_time for c in rows] == [T0, T0 + 2 * MINUTE] and rows[1].close == D("99")


def test_candles_refuse_an_interval_that_is_not_a_multiple() -> None:
    engine = make_engine()
    with pytest.raises(EngineError) as err:
        engine.candles(SYMBOL, 90_000)
    assert err.value.reason is RejectReason.INVALID_PARAMETER


def test_candles_of_an_unknown_symbol_are_refused() -> None:
    with pytest.raises(EngineError) as err:
        make_engine().candles("NOPE", MINUTE)
    assert err.value.reason is RejectReason.UNKNOWN_SYMBOL


def test_ticker_covers_the_last_day() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 6 * MINUTE)
    ticker = engine.ticker_24h(SYMBOL)
    assert ticker["open"] == D("100") and ticker["high"] == D("103") and ticker["low"] == D("95")
    assert ticker["last"] == D("96") and ticker["volume"] == D("20")


def test_public_trades_include_the_past_and_are_oldest_first() -> None:
    engine = make_engine()
    trades = engine.public_trades(SYMBOL, limit=5)
    # Candle 1's path (100, 99, 101, 100), then candle 2's open, printed at the start.
    assert [t.price for t in trades] == [D("100"), D("99"), D("101"), D("100"), D("100")]
    assert trades[-1].time == LIVE


# --- orders: fills and prices ----------------------------------------------------------------


def test_market_buy_fills_at_last_price_as_taker_with_fee_in_base() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    assert order.status is OrderStatus.FILLED
    fill = order.fills[0]
    assert (fill.price, fill.is_maker, fill.fee, fill.fee_asset) == (D("100"), False, D("0.002"), "BTC")
    assert balance(engine, "BTC") == (D("10.998"), D(0))
    assert balance(engine, "USDT") == (D("9900"), D(0))


def test_market_sell_charges_fee_in_quote() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.MARKET, D("1"))
    assert (order.fee, order.fee_asset) == (D("0.2"), "USDT")
    assert balance(engine, "USDT") == (D("10099.8"), D(0))
    assert balance(engine, "BTC") == (D("9"), D(0))


def test_market_buy_locks_with_margin_and_releases_the_rest() -> None:
    engine = make_engine()
    events = record(engine)
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    locks = [b.balances for b in of_type(events, BalanceEvent)]
    assert locks[0][0].locked == D("105")  # 1 * 100 * 1.05
    assert next(b for b in locks[1] if b.asset == "USDT").locked == 0


def test_marketable_limit_buy_fills_at_last_price_as_taker() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("105"))
    assert (order.status, order.fills[0].price, order.fills[0].is_maker) == (OrderStatus.FILLED, D("100"), False)
    assert balance(engine, "USDT") == (D("9900"), D(0))


def test_resting_limit_buy_fills_at_its_price_as_maker_when_reached() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("98.5"))
    assert order.status is OrderStatus.NEW
    engine.advance_to(LIVE + 15_000)  # the path dips to 98
    filled = engine.get_order(KEY, SYMBOL, order_id=order.order_id)
    fill = filled.fills[0]
    assert (filled.status, fill.price, fill.is_maker, fill.fee, fill.time) == (
        OrderStatus.FILLED,
        D("98.5"),
        True,
        D("0.001"),
        LIVE + 15_000,
    )


def test_resting_limit_sell_fills_when_price_rises_to_it() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("101.5"))
    engine.advance_to(LIVE + 30_000)
    fill = engine.get_order(KEY, order_id=order.order_id).fills[0]
    assert (fill.price, fill.time, fill.fee, fill.fee_asset) == (D("101.5"), LIVE + 30_000, D("0.1015"), "USDT")


def test_resting_limit_stays_open_while_price_does_not_reach_it() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"))
    engine.advance_to(T0 + 6 * MINUTE)
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.NEW


def test_partial_fills_respect_max_fill_per_step() -> None:
    engine = make_engine(market=spec(max_fill_per_step=D("0.4")))
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("101"))
    engine.advance_to(LIVE + 30_000)  # 102 reaches it
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.PARTIALLY_FILLED
    engine.advance_to(LIVE + MINUTE + 15_000)  # 101 (close), 101 (next open), 103
    final = engine.get_order(KEY, order_id=order.order_id)
    assert [f.amount for f in final.fills] == [D("0.4"), D("0.4"), D("0.2")]
    assert final.status is OrderStatus.FILLED
    assert balance(engine, "BTC") == (D("9"), D(0))


def test_partial_fill_keeps_the_rest_locked() -> None:
    engine = make_engine(market=spec(max_fill_per_step=D("0.4")))
    engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("101"))
    engine.advance_to(LIVE + 30_000)
    assert balance(engine, "BTC") == (D("9"), D("0.6"))


def test_ioc_limit_that_cannot_fill_expires_and_releases_funds() -> None:
    engine = make_engine()
    order = engine.place_order(
        KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("99"), time_in_force=TimeInForce.IOC
    )
    assert order.status is OrderStatus.EXPIRED
    assert balance(engine, "USDT") == (D("10000"), D(0))


def test_ioc_limit_that_is_marketable_fills() -> None:
    engine = make_engine()
    order = engine.place_order(
        KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("99"), time_in_force=TimeInForce.IOC
    )
    assert (order.status, order.filled) == (OrderStatus.FILLED, D("1"))


def test_fok_limit_that_cannot_fill_expires() -> None:
    engine = make_engine()
    order = engine.place_order(
        KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("100.5"), time_in_force=TimeInForce.FOK
    )
    assert (order.status, order.filled) == (OrderStatus.EXPIRED, D(0))
    assert balance(engine, "BTC") == (D("10"), D(0))


def test_fok_limit_that_is_marketable_fills_completely() -> None:
    engine = make_engine()
    order = engine.place_order(
        KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("2"), price=D("100"), time_in_force=TimeInForce.FOK
    )
    assert (order.status, order.filled, order.fills[0].price) == (OrderStatus.FILLED, D("2"), D("100"))


def test_stop_market_buy_triggers_when_price_rises_and_fills_at_its_stop_price() -> None:
    engine = make_engine()
    events = record(engine)
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.STOP_MARKET, D("1"), stop_price=D("101.5"))
    engine.advance_to(LIVE + 15_000)
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.NEW
    engine.advance_to(LIVE + 30_000)  # 98 -> 102 passes through 101.5
    done = engine.get_order(KEY, order_id=order.order_id)
    assert (done.status, done.triggered, done.fills[0].price, done.fills[0].is_maker) == (
        OrderStatus.FILLED,
        True,
        D("101.5"),
        False,
    )
    executions = [e.execution for e in of_type(events, OrderEvent)]
    assert executions == [ExecutionType.NEW, ExecutionType.TRIGGERED, ExecutionType.TRADE]
    assert balance(engine, "USDT") == (D("9898.5"), D(0))


def test_stop_market_sell_triggers_when_price_falls() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_MARKET, D("1"), stop_price=D("98.5"))
    engine.advance_to(LIVE + 15_000)  # 100 -> 98 passes through 98.5
    done = engine.get_order(KEY, order_id=order.order_id)
    assert (done.status, done.fills[0].price, done.fee_asset) == (OrderStatus.FILLED, D("98.5"), "USDT")


def test_stop_crossed_by_a_gap_at_the_open_fills_at_the_open() -> None:
    gapped = [*CANDLES[:3], candle(3, "97", "98", "96", "97.5")]  # opens 4 below the previous close
    engine = make_engine(gapped)
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_MARKET, D("1"), stop_price=D("97.5"))
    engine.advance_to(LIVE + 45_000)  # candle 2 never falls below 98
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.NEW
    engine.advance_to(LIVE + MINUTE)  # candle 3 opens at 97: past the stop before any trade there
    done = engine.get_order(KEY, order_id=order.order_id)
    assert (done.status, done.fills[0].price) == (OrderStatus.FILLED, D("97"))


def test_stop_market_buy_locks_at_the_stop_price_with_margin() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.STOP_MARKET, D("1"), stop_price=D("110"))
    assert balance(engine, "USDT") == (D("9884.5"), D("115.5"))


def test_stop_limit_sell_triggers_then_rests_at_its_limit() -> None:
    engine = make_engine()
    order = engine.place_order(
        KEY, SYMBOL, Side.SELL, OrderType.STOP_LIMIT, D("1"), price=D("99.5"), stop_price=D("99")
    )
    engine.advance_to(LIVE + 15_000)  # triggers at 99; 99.5 is above the market, so it rests
    triggered = engine.get_order(KEY, order_id=order.order_id)
    assert (triggered.triggered, triggered.status) == (True, OrderStatus.NEW)
    engine.advance_to(LIVE + 30_000)  # 102 reaches the limit
    fill = engine.get_order(KEY, order_id=order.order_id).fills[0]
    assert (fill.price, fill.is_maker) == (D("99.5"), True)


def test_stop_limit_marketable_on_trigger_fills_as_taker() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_LIMIT, D("1"), price=D("97"), stop_price=D("99"))
    engine.advance_to(LIVE + 15_000)  # the market passes 99 on its way to 98: a sell at 97 takes there
    fill = engine.get_order(KEY, order_id=order.order_id).fills[0]
    assert (fill.price, fill.is_maker) == (D("99"), False)


def test_a_sell_stop_limit_triggering_on_a_rise_is_a_take_profit_at_its_price() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_LIMIT, D("1"), price=D("101.5"),
                               stop_price=D("101.5"), trigger_above=True)  # fmt: skip
    assert order.trigger_above is True
    engine.advance_to(LIVE + 15_000)  # 98: the wrong way
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.NEW
    engine.advance_to(LIVE + 30_000)  # 98 -> 102 passes 101.5
    fill = engine.get_order(KEY, order_id=order.order_id).fills[0]
    assert (fill.price, fill.is_maker) == (D("101.5"), False)


def test_lock_on_trigger_takes_no_funds_until_the_stop_triggers() -> None:
    engine = make_engine(balances={"USDT": D("10000"), "BTC": D("1")})
    stop = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_MARKET, D("1"), stop_price=D("98.5"),
                              lock_on_trigger=True)  # fmt: skip
    take = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.STOP_LIMIT, D("1"), price=D("101.5"),
                              stop_price=D("101.5"), trigger_above=True, lock_on_trigger=True)  # fmt: skip
    assert balance(engine, "BTC") == (D("1"), D(0))  # both rest, neither holds the coin
    engine.advance_to(LIVE + 15_000)  # falls through 98.5: the stop takes the coin and sells it
    assert engine.get_order(KEY, order_id=stop.order_id).fills[0].price == D("98.5")
    engine.advance_to(LIVE + 30_000)  # rises through 101.5: nothing left to sell, so it is cancelled
    assert engine.get_order(KEY, order_id=take.order_id).status is OrderStatus.CANCELED
    assert balance(engine, "BTC") == (D(0), D(0))


def test_oco_locks_once_and_the_limit_trading_expires_the_stop() -> None:
    engine = make_engine(balances={"USDT": D("0"), "BTC": D("1")})
    events = record(engine)
    limit, stop = engine.place_oco(KEY, SYMBOL, Side.SELL, D("1"), limit_price=D("101.5"), stop_price=D("97.5"),
                                   limit_client_order_id="tp", stop_client_order_id="sl")  # fmt: skip
    assert limit.list_id == stop.list_id is not None
    assert balance(engine, "BTC") == (D(0), D("1"))
    engine.advance_to(LIVE + 30_000)  # 102 reaches the take-profit
    assert engine.get_order(KEY, order_id=limit.order_id).fills[0].price == D("101.5")
    assert engine.get_order(KEY, order_id=stop.order_id).status is OrderStatus.EXPIRED
    assert balance(engine, "BTC") == (D(0), D(0)) and balance(engine, "USDT")[0] == D("101.5") - D("0.1015")
    assert [(e.order.client_order_id, e.execution) for e in of_type(events, OrderEvent)][-2:] == [
        ("tp", ExecutionType.TRADE),
        ("sl", ExecutionType.EXPIRED),
    ]


def test_oco_stop_triggering_expires_the_limit_and_sells_at_the_stop_price() -> None:
    engine = make_engine(balances={"USDT": D("0"), "BTC": D("1")})
    limit, stop = engine.place_oco(KEY, SYMBOL, Side.SELL, D("1"), limit_price=D("103.5"), stop_price=D("98.5"))
    engine.advance_to(LIVE + 15_000)  # falls through 98.5
    assert engine.get_order(KEY, order_id=limit.order_id).status is OrderStatus.EXPIRED
    done = engine.get_order(KEY, order_id=stop.order_id)
    assert (done.status, done.fills[0].price) == (OrderStatus.FILLED, D("98.5"))
    assert balance(engine, "BTC") == (D(0), D(0))


def test_cancelling_one_order_of_an_oco_cancels_both() -> None:
    engine = make_engine(balances={"USDT": D("0"), "BTC": D("1")})
    limit, stop = engine.place_oco(KEY, SYMBOL, Side.SELL, D("1"), limit_price=D("103.5"), stop_price=D("97.5"))
    engine.cancel_order(KEY, SYMBOL, order_id=stop.order_id)
    statuses = {o.order_id: o.status for o in engine.all_orders(KEY)}
    assert statuses == {limit.order_id: OrderStatus.CANCELED, stop.order_id: OrderStatus.CANCELED}
    assert balance(engine, "BTC") == (D("1"), D(0))


@pytest.mark.parametrize(("limit", "stop"), [("99.5", "97.5"), ("103.5", "100.5"), ("100", "97.5")])
def test_oco_prices_on_the_wrong_side_of_the_market_are_rejected(limit: str, stop: str) -> None:
    engine = make_engine()
    with pytest.raises(EngineError) as caught:
        engine.place_oco(KEY, SYMBOL, Side.SELL, D("1"), limit_price=D(limit), stop_price=D(stop))
    assert caught.value.reason in (RejectReason.INVALID_PARAMETER, RejectReason.WOULD_TRIGGER_IMMEDIATELY)
    assert "relationship" in caught.value.message or "crossed" in caught.value.message
    assert engine.open_orders(KEY) == [] and balance(engine, "BTC") == (D("10"), D(0))


def test_orders_do_not_match_during_a_hole() -> None:
    engine = make_engine()
    engine.advance_to(T0 + 4 * MINUTE)
    order = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("99.5"))
    engine.advance_to(T0 + 5 * MINUTE - 1)
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.NEW
    engine.advance_to(T0 + 5 * MINUTE + 15_000)  # the next candle reaches 100
    assert engine.get_order(KEY, order_id=order.order_id).status is OrderStatus.FILLED


# --- events and balances -----------------------------------------------------------------------


def test_order_events_come_before_their_balance_events() -> None:
    engine = make_engine()
    events = record(engine)
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    kinds = [(type(e), getattr(e, "execution", None)) for e in events]
    assert kinds == [
        (OrderEvent, ExecutionType.NEW),
        (BalanceEvent, None),
        (OrderEvent, ExecutionType.TRADE),
        (BalanceEvent, None),
    ]


def test_maker_fill_events_follow_the_step_events() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("98.5"))
    events = record(engine)
    engine.advance_to(LIVE + 15_000)
    assert [type(e) for e in events] == [TradeEvent, BookEvent, KlineEvent, OrderEvent, BalanceEvent]
    assert events[3].fill is not None and events[4].account == KEY


def test_fill_balance_event_holds_base_and_quote() -> None:
    engine = make_engine()
    events = record(engine)
    engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.MARKET, D("1"))
    last = of_type(events, BalanceEvent)[-1]
    assert {(b.asset, b.free, b.locked) for b in last.balances} == {
        ("BTC", D("9"), D(0)),
        ("USDT", D("10099.8"), D(0)),
    }


def test_limit_buy_locks_quote_at_its_price() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("2"), price=D("90"))
    assert balance(engine, "USDT") == (D("9820"), D("180"))


def test_limit_sell_locks_base() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("2"), price=D("110"))
    assert balance(engine, "BTC") == (D("8"), D("2"))


def test_taker_fill_below_a_limit_buy_releases_the_unused_lock() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("120"))
    assert balance(engine, "USDT") == (D("9900"), D(0))


def test_first_receipt_of_an_asset_creates_its_balance_row() -> None:
    engine = make_engine(balances={"USDT": D("1000")})
    assert [b.asset for b in engine.balances(KEY)] == ["USDT"]
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    assert balance(engine, "BTC") == (D("0.998"), D(0))


def test_set_balance_emits_a_balance_event() -> None:
    engine = make_engine()
    events = record(engine)
    engine.set_balance(KEY, "ETH", D("3"))
    assert events[0].balances[0].asset == "ETH" and events[0].balances[0].free == D("3")


def test_fee_is_rounded_down_to_eight_decimals() -> None:
    engine = make_engine(market=spec(taker_fee=D("0.00075"), step_size=D("0.00001"), min_amount=D("0.00001")))
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("0.05001"))
    assert order.fee == D("0.00003750")  # 0.0000375075 rounded down


def test_concurrent_orders_and_advancing_keep_balances_consistent() -> None:
    engine = make_engine(start=T0, balances={"USDT": D("100000"), "BTC": D("100")})
    barrier = threading.Barrier(4)

    def trade(side: Side) -> None:
        barrier.wait()
        for _ in range(50):
            engine.place_order(KEY, SYMBOL, side, OrderType.MARKET, D("0.1"))

    def advance() -> None:
        barrier.wait()
        for step in range(1, 25):
            engine.advance_to(T0 + step * 15_000)

    threads = [threading.Thread(target=trade, args=(side,)) for side in (Side.BUY, Side.SELL, Side.BUY)]
    threads.append(threading.Thread(target=advance))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fills = engine.fills(KEY, limit=1000)
    base = sum((f.amount - f.fee if f.side is Side.BUY else -f.amount for f in fills), D(0))
    quote = sum((-f.quote_amount if f.side is Side.BUY else f.quote_amount - f.fee for f in fills), D(0))
    assert len(fills) == 150
    assert balance(engine, "BTC") == (D("100") + base, D(0))
    assert balance(engine, "USDT") == (D("100000") + quote, D(0))


# --- rejections ---------------------------------------------------------------------------------

REJECTIONS = {
    "unknown_symbol": (RejectReason.UNKNOWN_SYMBOL, dict(symbol="ETHUSDT", type=OrderType.MARKET, amount="1")),
    "unknown_side": (RejectReason.INVALID_PARAMETER, dict(side="up", type=OrderType.MARKET, amount="1")),
    "negative_amount": (RejectReason.INVALID_PARAMETER, dict(type=OrderType.MARKET, amount="-1")),
    "limit_without_price": (RejectReason.INVALID_PARAMETER, dict(type=OrderType.LIMIT, amount="1")),
    "stop_without_stop_price": (RejectReason.INVALID_PARAMETER, dict(type=OrderType.STOP_MARKET, amount="1")),
    "long_client_id": (
        RejectReason.INVALID_PARAMETER,
        dict(type=OrderType.MARKET, amount="1", client_order_id="x" * 37),
    ),
    "price_off_tick": (RejectReason.PRICE_PRECISION, dict(type=OrderType.LIMIT, amount="1", price="90.005")),
    "stop_off_tick": (RejectReason.PRICE_PRECISION, dict(type=OrderType.STOP_MARKET, amount="1", stop_price="110.001")),
    "amount_off_step": (RejectReason.AMOUNT_PRECISION, dict(type=OrderType.MARKET, amount="0.0015")),
    "below_min_amount": (RejectReason.MIN_AMOUNT, dict(type=OrderType.MARKET, amount="0.01")),
    "above_max_amount": (RejectReason.MAX_AMOUNT, dict(type=OrderType.MARKET, amount="101")),
    "below_min_notional": (RejectReason.MIN_NOTIONAL, dict(type=OrderType.LIMIT, amount="0.1", price="40")),
    "stop_already_crossed": (
        RejectReason.WOULD_TRIGGER_IMMEDIATELY,
        dict(type=OrderType.STOP_MARKET, amount="1", stop_price="99"),
    ),
    "insufficient_balance": (RejectReason.INSUFFICIENT_BALANCE, dict(type=OrderType.LIMIT, amount="99", price="200")),
    "duplicate_client_id": (
        RejectReason.DUPLICATE_CLIENT_ORDER_ID,
        dict(type=OrderType.LIMIT, amount="1", price="90", client_order_id="resting"),
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS), ids=list(REJECTIONS))
def test_rejection_has_its_reason_and_changes_nothing(case: str) -> None:
    reason, request = REJECTIONS[case]
    engine = make_engine(market=spec(min_amount=D("0.05")))
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"), client_order_id="resting")
    before = (engine.balances(KEY), engine.open_orders(KEY), engine.all_orders(KEY))
    events = record(engine)
    args = {"symbol": SYMBOL, "side": Side.BUY, **request}
    for name in ("amount", "price", "stop_price"):
        if name in args:
            args[name] = D(args[name])
    with pytest.raises(EngineError) as err:
        engine.place_order(KEY, **args)
    assert err.value.reason is reason
    assert (engine.balances(KEY), engine.open_orders(KEY), engine.all_orders(KEY)) == before
    assert events == []


def test_min_amount_is_checked_after_precision() -> None:
    engine = make_engine(market=spec(min_amount=D("0.05")))
    with pytest.raises(EngineError) as err:
        engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("0.0001"))
    assert err.value.reason is RejectReason.AMOUNT_PRECISION


def test_unknown_api_key_is_an_invalid_parameter() -> None:
    engine = make_engine()
    with pytest.raises(EngineError) as err:
        engine.balances("who")
    assert err.value.reason is RejectReason.INVALID_PARAMETER and "API key" in err.value.message


def test_insufficient_balance_message_names_the_asset() -> None:
    engine = make_engine()
    with pytest.raises(EngineError, match="BTC"):
        engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.MARKET, D("11"))


# --- cancel, lookup, ids --------------------------------------------------------------------------


def test_cancel_releases_the_lock_and_emits_canceled() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"))
    events = record(engine)
    canceled = engine.cancel_order(KEY, SYMBOL, order_id=order.order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert [type(e) for e in events] == [OrderEvent, BalanceEvent]
    assert events[0].execution is ExecutionType.CANCELED
    assert balance(engine, "USDT") == (D("10000"), D(0))
    assert engine.open_orders(KEY) == []


def test_cancel_by_client_order_id() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.LIMIT, D("1"), price=D("110"), client_order_id="mine")
    assert engine.cancel_order(KEY, SYMBOL, client_order_id="mine").status is OrderStatus.CANCELED


def test_cancel_of_a_filled_order_is_not_cancelable() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    with pytest.raises(EngineError) as err:
        engine.cancel_order(KEY, SYMBOL, order_id=order.order_id)
    assert err.value.reason is RejectReason.ORDER_NOT_CANCELABLE


def test_cancel_of_an_unknown_order_is_not_found() -> None:
    engine = make_engine()
    with pytest.raises(EngineError) as err:
        engine.cancel_order(KEY, SYMBOL, order_id=999)
    assert err.value.reason is RejectReason.ORDER_NOT_FOUND


def test_get_order_of_another_symbol_is_not_found() -> None:
    engine = Engine(
        [(spec(), CANDLES), (spec(symbol="ETHUSDT", base="ETH"), CANDLES)],
        clock=EmulatedClock(LIVE, speed=None),
        accounts=[AccountConfig(KEY, "s", {"USDT": D("1000")})],
    )
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"))
    with pytest.raises(EngineError) as err:
        engine.get_order(KEY, "ETHUSDT", order_id=order.order_id)
    assert err.value.reason is RejectReason.ORDER_NOT_FOUND


def test_missing_client_order_id_is_generated() -> None:
    engine = make_engine()
    order = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"))
    assert order.client_order_id == f"emu-{order.order_id}"
    assert engine.get_order(KEY, client_order_id=order.client_order_id).order_id == order.order_id


def test_client_order_id_is_reusable_once_the_order_is_closed() -> None:
    engine = make_engine()
    first = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"), client_order_id="c1")
    engine.cancel_order(KEY, SYMBOL, order_id=first.order_id)
    second = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("91"), client_order_id="c1")
    assert engine.get_order(KEY, client_order_id="c1").order_id == second.order_id


def test_order_ids_and_trade_ids_increase() -> None:
    engine = make_engine()
    orders = [engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("0.1")) for _ in range(3)]
    assert [o.order_id for o in orders] == sorted({o.order_id for o in orders})
    trade_ids = [f.trade_id for f in engine.fills(KEY)]
    assert trade_ids == sorted(set(trade_ids)) and len(trade_ids) == 3


def test_all_orders_without_start_are_the_latest_oldest_first() -> None:
    engine = make_engine()
    ids = [engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("0.1")).order_id for _ in range(4)]
    assert [o.order_id for o in engine.all_orders(KEY, SYMBOL, limit=2)] == ids[-2:]


def test_fills_filter_by_order() -> None:
    engine = make_engine()
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("0.1"))
    second = engine.place_order(KEY, SYMBOL, Side.SELL, OrderType.MARKET, D("0.2"))
    assert [f.amount for f in engine.fills(KEY, SYMBOL, order_id=second.order_id)] == [D("0.2")]


def test_open_orders_list_only_open_ones() -> None:
    engine = make_engine()
    resting = engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.LIMIT, D("1"), price=D("90"))
    engine.place_order(KEY, SYMBOL, Side.BUY, OrderType.MARKET, D("1"))
    assert [o.order_id for o in engine.open_orders(KEY, SYMBOL)] == [resting.order_id]


def test_secret_for_unknown_key_is_none() -> None:
    engine = make_engine()
    assert (engine.secret_for(KEY), engine.secret_for("other")) == ("secret", None)


# --- subscribers ---------------------------------------------------------------------------------


def test_failing_subscriber_is_logged_and_does_not_stop_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine()

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    engine.subscribe(broken)
    events = record(engine)
    with caplog.at_level(logging.ERROR, logger="realtrade_core.emulator.engine"):
        engine.advance_to(LIVE + 15_000)
    assert len(events) == 3
    assert "subscriber" in caplog.text and "boom" in caplog.text


def test_unsubscribe_stops_delivery() -> None:
    engine = make_engine()
    events: list = []
    unsubscribe = engine.subscribe(events.append)
    unsubscribe()
    engine.advance_to(LIVE + 15_000)
    assert events == []
