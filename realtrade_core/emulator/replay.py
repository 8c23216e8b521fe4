"""Market replay sources for the emulator: candles from a CSV file or a seeded synthetic market.

Both produce the engine's :class:`~.model.Candle` records; :func:`default_market_spec` picks
exchange-like filters for a symbol whose real filters are unknown.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

from .model import Candle, MarketSpec

__all__ = ["default_market_spec", "load_candles_csv", "synthetic_candles"]

_REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
_OPTIONAL = ("quote_volume", "trades")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
_EPOCH_MS_RE = re.compile(r"[0-9]+(?:\.0*)?")

# Smallest order value per quote asset, as Binance spot sets them; anything else gets 5.
_MIN_NOTIONAL = {
    "BTC": Decimal("0.0001"),
    "ETH": Decimal("0.001"),
    "BNB": Decimal("0.01"),
}
_DEFAULT_MIN_NOTIONAL = Decimal(5)
_SMALLEST_INCREMENT = -8  # exchanges quote at most 8 decimals


def _power_of_ten(exponent: int) -> Decimal:
    # Decimal(10) ** -2 gives 0.01 and Decimal(10) ** 4 gives 10000, never the 1E+4 form.
    return Decimal(10) ** exponent


class _RowError(ValueError):
    pass


def _parse_timestamp(text: str) -> int:
    value = text.strip()
    if _EPOCH_MS_RE.fullmatch(value):
        return int(value.split(".")[0])
    iso = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value  # Python 3.10 lacks "Z"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise _RowError(
            f"timestamp {text!r} is neither epoch milliseconds nor ISO-8601 (e.g. 2024-01-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # candle files are UTC unless they say otherwise
    return (moment - _EPOCH) // _MILLISECOND


def _parse_decimal(text: str, column: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _RowError(f"{column} {text!r} is not a number") from None
    if not value.is_finite():
        raise _RowError(f"{column} {text!r} is not a finite number")
    return value


def _parse_row(row: list[str], columns: dict[str, int], interval_hint: int) -> Candle:
    timestamp = _parse_timestamp(row[columns["timestamp"]])
    o, h, low, c, v = (_parse_decimal(row[columns[name]], name) for name in _REQUIRED[1:])
    for name, price in (("open", o), ("high", h), ("low", low), ("close", c)):
        if price <= 0:
            raise _RowError(f"{name} {price} is not positive")
    if v < 0:
        raise _RowError(f"volume {v} is negative")
    if h < max(o, c, low):
        raise _RowError(f"high {h} is below the open, close or low")
    if low > min(o, c):
        raise _RowError(f"low {low} is above the open or close")
    quote_volume = Decimal(0)
    trades = 0
    if "quote_volume" in columns:
        quote_volume = _parse_decimal(row[columns["quote_volume"]], "quote_volume")
    if "trades" in columns:
        text = row[columns["trades"]].strip()
        if not text.isascii() or not text.isdigit():
            raise _RowError(f"trades {text!r} is not a whole number")
        trades = int(text)
    return Candle(timestamp, interval_hint, o, h, low, c, v, quote_volume, trades)


def load_candles_csv(path: str | os.PathLike[str], interval_ms: int | None = None) -> list[Candle]:
    """Read candles from a CSV file with the header ``timestamp,open,high,low,close,volume``.

    ``timestamp`` is the candle's open time, either epoch milliseconds or ISO-8601 (UTC unless an
    offset is given, e.g. ``2024-01-01T00:00:00Z``). Optional columns ``quote_volume`` and
    ``trades`` are read when present; other extra columns are ignored. Rows must be in strictly
    increasing time order. Missing candles (exchange outages) are allowed: every gap must be a
    whole multiple of the interval, which, when not given, is the smallest gap in the file.
    Prices keep the exact digits of the file. Raises ValueError naming the file, the line and
    the problem.
    """
    name = os.fspath(path)
    if interval_ms is not None and interval_ms <= 0:
        raise ValueError(f"{name}: interval_ms must be positive, got {interval_ms}")
    rows: list[tuple[int, Candle]] = []
    with open(name, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{name}: the file is empty; expected the header {','.join(_REQUIRED)}")
        names = [column.strip().lower() for column in header]
        missing = [column for column in _REQUIRED if column not in names]
        if missing:
            raise ValueError(f"{name}, line 1: the header lacks {', '.join(missing)}; expected {','.join(_REQUIRED)}")
        columns = {column: names.index(column) for column in (*_REQUIRED, *_OPTIONAL) if column in names}
        previous: int | None = None
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise ValueError(f"{name}, line {line}: expected {len(names)} fields, found {len(row)}")
            try:
                candle = _parse_row(row, columns, interval_ms or 1)
            except _RowError as exc:
                raise ValueError(f"{name}, line {line}: {exc}") from None
            if previous is not None:
                if candle.open_time == previous:
                    raise ValueError(f"{name}, line {line}: duplicate timestamp {candle.open_time}")
                if candle.open_time < previous:
                    raise ValueError(
                        f"{name}, line {line}: timestamp {candle.open_time} is earlier than the row before "
                        f"({previous}); rows must be sorted by time"
                    )
            previous = candle.open_time
            rows.append((line, candle))
    if not rows:
        raise ValueError(f"{name}: no candles after the header")
    if interval_ms is None:
        if len(rows) < 2:
            raise ValueError(f"{name}: cannot infer the interval from a single candle; pass interval_ms")
        interval_ms = min(b.open_time - a.open_time for (_, a), (_, b) in itertools.pairwise(rows))
    for (_, before), (line, candle) in itertools.pairwise(rows):
        gap = candle.open_time - before.open_time
        if gap % interval_ms:
            raise ValueError(
                f"{name}, line {line}: timestamp {candle.open_time} is {gap} ms after the row before, "
                f"not a whole multiple of the {interval_ms} ms interval"
            )
    return [
        Candle(c.open_time, interval_ms, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades)
        for _, c in rows
    ]


def _tick_size(price: Decimal) -> Decimal:
    # About a millionth of the price, as a power of ten: 40000 -> 0.01, 2000 -> 0.001.
    return _power_of_ten(min(0, max(_SMALLEST_INCREMENT, price.adjusted() - 6)))


def _step_exponent(price: Decimal, min_notional: Decimal) -> int:
    # One step is worth at most a tenth of the minimum order value, so the minimum is reachable
    # in fine increments: BTC at 40000 USDT -> 0.00001, ETH at 0.05 BTC -> 0.0001.
    return min(0, max(_SMALLEST_INCREMENT, (min_notional / (price * 10)).adjusted()))


def _step_size(price: Decimal, min_notional: Decimal) -> Decimal:
    return _power_of_ten(_step_exponent(price, min_notional))


def default_market_spec(symbol: str, base: str, quote: str, reference_price: Decimal) -> MarketSpec:
    """Filters that suit a market trading around ``reference_price`` when its real ones are unknown.

    The tick is about a millionth of the price (a power of ten, at most 1, at least 1e-8), the
    minimum order value follows the quote asset as on Binance (0.0001 BTC, 0.001 ETH, 0.01 BNB,
    5 of anything else, e.g. USDT), the step keeps one step worth at most a tenth of that
    minimum, the minimum amount is one step and the maximum a billion steps. BTCUSDT at 40000:
    tick 0.01, step 0.00001, minimum value 5 USDT, maximum amount 10000 BTC.
    """
    price = Decimal(reference_price)
    if not price.is_finite() or price <= 0:
        raise ValueError(f"reference price of {symbol} must be positive, got {reference_price}")
    min_notional = _MIN_NOTIONAL.get(quote.upper(), _DEFAULT_MIN_NOTIONAL)
    step_exponent = _step_exponent(price, min_notional)
    step = _power_of_ten(step_exponent)
    return MarketSpec(
        symbol=symbol,
        base=base,
        quote=quote,
        tick_size=_tick_size(price),
        step_size=step,
        min_amount=step,
        max_amount=_power_of_ten(step_exponent + 9),
        min_notional=min_notional,
    )


def _to_tick(value: float, tick: Decimal, rounding: str) -> Decimal:
    return Decimal(repr(value)).quantize(tick, rounding=rounding)


def synthetic_candles(
    seed: int, count: int, interval_ms: int, start_ms: int, start_price: Decimal | None = None
) -> list[Candle]:
    """A seeded random-walk market: the same arguments always give the same candles.

    ``start_price`` None lets the seed choose one too: two significant digits, log-uniform
    between 10 and 50,000.

    Closes follow a geometric random walk whose volatility scales with the square root of the
    interval (about 0.08 % per minute, 3 % per day); each candle opens at the previous close;
    wicks reach beyond the body by a random fraction; prices are rounded to the tick that
    :func:`default_market_spec` would choose for ``start_price`` and never fall below it. Base
    volumes vary log-normally around about 50,000 quote units per minute, rounded to the
    default step for a USD quote and always positive.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    rng = random.Random(seed)
    if start_price is None:
        level = Decimal(repr(10 ** rng.uniform(1.0, math.log10(50_000))))
        price = level.quantize(Decimal(1).scaleb(level.adjusted() - 1), rounding=ROUND_HALF_EVEN)
    else:
        price = Decimal(start_price)
    if not price.is_finite() or price <= 0:
        raise ValueError(f"start_price must be positive, got {start_price}")
    tick = _tick_size(price)
    volume_step = _step_size(price, _DEFAULT_MIN_NOTIONAL)
    minutes = interval_ms / 60_000
    sigma = min(0.0008 * math.sqrt(minutes), 0.2)
    typical_volume = 50_000 / float(price) * minutes
    candles = []
    open_ = max(price.quantize(tick, rounding=ROUND_HALF_EVEN), tick)
    for i in range(count):
        close = max(_to_tick(float(open_) * math.exp(rng.gauss(0.0, sigma)), tick, ROUND_HALF_EVEN), tick)
        top, bottom = max(open_, close), min(open_, close)
        high = _to_tick(float(top) * (1 + abs(rng.gauss(0.0, sigma / 2))), tick, ROUND_CEILING)
        low = _to_tick(float(bottom) * (1 - abs(rng.gauss(0.0, sigma / 2))), tick, ROUND_FLOOR)
        high = max(high, top)
        low = min(max(low, tick), bottom)
        volume = max(
            _to_tick(typical_volume * math.exp(rng.gauss(0.0, 0.6)), volume_step, ROUND_HALF_EVEN), volume_step
        )
        quote_volume = (volume * (open_ + high + low + close) / 4).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)
        trades = 1 + int(rng.expovariate(1.0) * 50 * math.sqrt(minutes))
        candles.append(
            Candle(start_ms + i * interval_ms, interval_ms, open_, high, low, close, volume, quote_volume, trades)
        )
        open_ = close
    return candles
