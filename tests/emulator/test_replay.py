"""Market replay sources: the candle CSV loader, the synthetic market and default market specs."""

from __future__ import annotations

import itertools
from decimal import Decimal as D
from pathlib import Path

import pytest

from realtrade_core.emulator.clock import EmulatedClock
from realtrade_core.emulator.engine import Engine
from realtrade_core.emulator.model import KlineEvent
from realtrade_core.emulator.replay import default_market_spec, load_candles_csv, synthetic_candles

HEADER = "timestamp,open,high,low,close,volume\n"
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "candles.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


# --- load_candles_csv ----------------------------------------------------------------------------


def test_loads_epoch_millisecond_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{T0},42283.58,42554.57,42261.02,42475.23,1271.68108\n"
        f"{T0 + HOUR},42475.23,42775.00,42431.65,42613.56,1196.37856\n",
    )
    first, second = load_candles_csv(path)
    assert (first.open_time, first.open, first.high, first.low, first.close, first.volume) == (
        T0,
        D("42283.58"),
        D("42554.57"),
        D("42261.02"),
        D("42475.23"),
        D("1271.68108"),
    )
    assert second.open_time == T0 + HOUR


def test_keeps_the_exact_digits_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},19720.0,19720.0,19479.80,19565.47,0.0\n{T0 + HOUR},1,1,1,1,1\n")
    assert str(load_candles_csv(path)[0].high) == "19720.0"


def test_loads_iso_timestamps_in_utc(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2024-01-01T00:00:00Z,1,1,1,1,1\n2024-01-01T01:00:00+00:00,1,1,1,1,1\n2024-01-01 02:00:00,1,1,1,1,1\n",
    )
    assert [c.open_time for c in load_candles_csv(path)] == [T0, T0 + HOUR, T0 + 2 * HOUR]


def test_iso_timestamp_with_offset_is_converted_to_utc(tmp_path: Path) -> None:
    path = write(tmp_path, "2024-01-01T02:00:00+02:00,1,1,1,1,1\n2024-01-01T01:00:00Z,1,1,1,1,1\n")
    assert [c.open_time for c in load_candles_csv(path)] == [T0, T0 + HOUR]


def test_infers_the_interval_as_the_smallest_gap_despite_holes(tmp_path: Path) -> None:
    times = [T0, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 6 * HOUR]
    path = write(tmp_path, "".join(f"{t},1,1,1,1,1\n" for t in times))
    candles = load_candles_csv(path)
    assert [c.interval_ms for c in candles] == [HOUR] * 4
    assert [c.open_time for c in candles] == times


def test_uses_a_given_interval(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n{T0 + 2 * HOUR},1,1,1,1,1\n")
    assert {c.interval_ms for c in load_candles_csv(path, interval_ms=HOUR)} == {HOUR}


def test_single_row_needs_an_interval(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n")
    with pytest.raises(ValueError, match="interval"):
        load_candles_csv(path)
    assert load_candles_csv(path, interval_ms=HOUR)[0].interval_ms == HOUR


def test_reads_optional_quote_volume_and_trades(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{T0},1,2,1,2,3,4.5,6\n{T0 + HOUR},2,2,2,2,1,2,1\n",
        header="timestamp,open,high,low,close,volume,quote_volume,trades\n",
    )
    first = load_candles_csv(path)[0]
    assert (first.quote_volume, first.trades) == (D("4.5"), 6)


def test_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n\n{T0 + HOUR},1,1,1,1,1\n\n")
    assert len(load_candles_csv(path)) == 2


def test_bad_number_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n{T0 + HOUR},1,abc,1,1,1\n")
    with pytest.raises(ValueError, match=r"candles\.csv, line 3: high 'abc' is not a number"):
        load_candles_csv(path)


def test_bad_timestamp_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "yesterday,1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"line 2: timestamp 'yesterday'"):
        load_candles_csv(path)


def test_missing_field_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1\n")
    with pytest.raises(ValueError, match=r"line 2: expected 6 fields, found 5"):
        load_candles_csv(path)


def test_high_below_close_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1.5,1,2,1\n")
    with pytest.raises(ValueError, match=r"line 2: high 1.5 is below"):
        load_candles_csv(path)


def test_negative_volume_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,-1\n")
    with pytest.raises(ValueError, match=r"line 2: volume -1 is negative"):
        load_candles_csv(path)


def test_unsorted_rows_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0 + HOUR},1,1,1,1,1\n{T0},1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"line 3: .* earlier than the row before"):
        load_candles_csv(path)


def test_duplicate_timestamps_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n{T0},1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"line 3: duplicate timestamp"):
        load_candles_csv(path)


def test_gap_that_is_not_a_whole_interval_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1,1\n{T0 + HOUR},1,1,1,1,1\n{T0 + HOUR + HOUR // 2 * 3},1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"line 4: .* not a whole multiple"):
        load_candles_csv(path)


def test_missing_header_column_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, f"{T0},1,1,1,1\n", header="timestamp,open,high,low,close\n")
    with pytest.raises(ValueError, match=r"line 1: the header lacks volume"):
        load_candles_csv(path)


def test_empty_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "", header="")
    with pytest.raises(ValueError, match="empty"):
        load_candles_csv(path)


def test_loaded_candles_replay_unchanged(tmp_path: Path) -> None:
    times = [T0 + i * HOUR for i in (0, 1, 2, 4, 5)]  # a hole at hour 3
    path = write(tmp_path, "".join(f"{t},10,12,9,11,{i + 1}.5\n" for i, t in enumerate(times)))
    candles = load_candles_csv(path)
    engine = Engine([(default_market_spec("XUSDT", "X", "USDT", D(10)), candles)], clock=EmulatedClock(T0, speed=None))
    closed: list = []
    engine.subscribe(lambda e: closed.append(e.candle) if isinstance(e, KlineEvent) and e.closed else None)
    engine.advance_to(T0 + 6 * HOUR)
    assert closed == candles


# --- synthetic_candles ---------------------------------------------------------------------------


def test_synthetic_market_is_reproducible_from_its_seed() -> None:
    assert synthetic_candles(42, 300, 60_000, T0, D("40000")) == synthetic_candles(42, 300, 60_000, T0, D("40000"))


def test_synthetic_markets_differ_between_seeds() -> None:
    assert synthetic_candles(1, 50, 60_000, T0, D("40000")) != synthetic_candles(2, 50, 60_000, T0, D("40000"))


def test_synthetic_candles_are_consistent() -> None:
    candles = synthetic_candles(7, 2000, 60_000, T0, D("40000"))
    for c in candles:
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
        assert c.low > 0 and c.volume > 0


def test_synthetic_candles_are_contiguous_and_open_at_the_previous_close() -> None:
    candles = synthetic_candles(7, 100, 300_000, T0, D("2000"))
    assert [c.open_time for c in candles] == [T0 + i * 300_000 for i in range(100)]
    assert all(b.open == a.close for a, b in itertools.pairwise(candles))
    assert candles[0].open == D("2000")


def test_synthetic_prices_are_rounded_to_the_tick() -> None:
    tick = default_market_spec("BTCUSDT", "BTC", "USDT", D("40000")).tick_size
    for c in synthetic_candles(3, 200, 60_000, T0, D("40000")):
        assert all(price % tick == 0 for price in (c.open, c.high, c.low, c.close))


def test_synthetic_tiny_prices_stay_positive() -> None:
    candles = synthetic_candles(5, 500, 86_400_000, T0, D("0.00000812"))
    assert min(c.low for c in candles) > 0


def test_synthetic_market_without_start_price_takes_it_from_the_seed() -> None:
    first = synthetic_candles(9, 10, 60_000, T0, None)
    assert first == synthetic_candles(9, 10, 60_000, T0, None) and first[0].open > 0


def test_synthetic_count_zero_is_empty() -> None:
    assert synthetic_candles(1, 0, 60_000, T0, D("1")) == []


def test_synthetic_rejects_a_non_positive_start_price() -> None:
    with pytest.raises(ValueError, match="start_price"):
        synthetic_candles(1, 10, 60_000, T0, D("0"))


# --- default_market_spec -------------------------------------------------------------------------


def test_default_spec_for_btc_usdt() -> None:
    spec = default_market_spec("BTCUSDT", "BTC", "USDT", D("40000"))
    assert (spec.tick_size, spec.step_size, spec.min_amount, spec.min_notional) == (
        D("0.01"),
        D("0.00001"),
        D("0.00001"),
        D("5"),
    )


def test_default_spec_min_notional_follows_the_quote_asset() -> None:
    spec = default_market_spec("ETHBTC", "ETH", "BTC", D("0.05"))
    assert (spec.min_notional, spec.step_size) == (D("0.0001"), D("0.0001"))


def test_default_spec_for_a_tiny_price_keeps_eight_decimals() -> None:
    spec = default_market_spec("SHIBUSDT", "SHIB", "USDT", D("0.00000812"))
    assert spec.tick_size == D("0.00000001") and spec.step_size == D("1")


def test_default_spec_limits_are_whole_steps_and_reach_the_minimum_value() -> None:
    for price in (D("0.0014"), D("0.5"), D("2000"), D("40000"), D("250000")):
        spec = default_market_spec("XUSDT", "X", "USDT", price)
        assert spec.min_amount % spec.step_size == 0 and spec.max_amount % spec.step_size == 0
        assert spec.max_amount * price > spec.min_notional > spec.min_amount * price


def test_default_spec_rejects_a_non_positive_price() -> None:
    with pytest.raises(ValueError, match="positive"):
        default_market_spec("XUSDT", "X", "USDT", D("-1"))
