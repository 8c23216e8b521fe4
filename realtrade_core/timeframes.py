"""Timeframes: ccxt strings ("1m", "4h", "1d") and backtrader TimeFrame + compression, both ways.

No backtrader import: its TimeFrame constants are plain integers, mirrored here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigurationError

# backtrader.TimeFrame values
BT_SECONDS, BT_MINUTES, BT_DAYS, BT_WEEKS, BT_MONTHS = 3, 4, 5, 6, 7

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_BT_NAMES = {BT_SECONDS: "Seconds", BT_MINUTES: "Minutes", BT_DAYS: "Days", BT_WEEKS: "Weeks", BT_MONTHS: "Months"}


@dataclass(frozen=True, slots=True)
class Timeframe:
    """One bar length: ``name`` as ccxt spells it, ``ms`` its length, and backtrader's pair."""

    name: str
    ms: int
    bt_timeframe: int
    bt_compression: int


def _from_ms(ms: int) -> Timeframe:
    if ms % _UNIT_MS["w"] == 0 and ms // _UNIT_MS["w"] == 1:
        return Timeframe("1w", ms, BT_WEEKS, 1)
    if ms % _UNIT_MS["d"] == 0:
        return Timeframe(f"{ms // _UNIT_MS['d']}d", ms, BT_DAYS, ms // _UNIT_MS["d"])
    if ms % _UNIT_MS["h"] == 0:
        return Timeframe(f"{ms // _UNIT_MS['h']}h", ms, BT_MINUTES, ms // 60_000)
    return Timeframe(f"{ms // 60_000}m", ms, BT_MINUTES, ms // 60_000)


def parse_timeframe(timeframe: str | int, compression: int | None = None) -> Timeframe:
    """Accept ``"1m"``/``"4h"``/``"1d"``/``"1w"`` or a backtrader TimeFrame with a compression."""
    if isinstance(timeframe, str):
        match = _PATTERN.match(timeframe)
        if not match or int(match.group(1)) <= 0:
            raise ConfigurationError(
                f"unknown timeframe {timeframe!r}: use a number and a unit m, h, d or w "
                f"(e.g. '1m', '15m', '4h', '1d', '1w')"
            )
        count, unit = int(match.group(1)), match.group(2)
        if compression not in (None, 1):
            raise ConfigurationError(f"give either timeframe={timeframe!r} or a compression, not both")
        return _from_ms(count * _UNIT_MS[unit])
    comp = 1 if compression is None else int(compression)
    if comp <= 0:
        raise ConfigurationError(f"compression must be a positive integer, got {compression!r}")
    if timeframe == BT_MINUTES:
        return _from_ms(comp * 60_000)
    if timeframe == BT_DAYS:
        return _from_ms(comp * _UNIT_MS["d"])
    if timeframe == BT_WEEKS and comp == 1:
        return _from_ms(_UNIT_MS["w"])
    name = _BT_NAMES.get(timeframe, repr(timeframe))
    raise ConfigurationError(
        f"backtrader timeframe {name} with compression {comp} has no exchange candle; "
        f"use Minutes, Days or Weeks(1), or resample a supported timeframe with cerebro.resampledata()"
    )


def check_supported(tf: Timeframe, supported: list[str] | tuple[str, ...], exchange: str) -> None:
    """Raise a ConfigurationError naming what ``exchange`` supports when ``tf`` is not among them."""
    if supported and tf.name not in supported:
        raise ConfigurationError(
            f"{exchange} has no {tf.name} candles; supported timeframes: {', '.join(supported)}. "
            f"Use one of them, or resample a smaller one with cerebro.resampledata()"
        )
