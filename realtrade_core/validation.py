"""What a stream message must be before it becomes an event: strict readers and range checks.

Exchange messages are untrusted input: a proxy can truncate them, an exchange bug can send a
string where a number belongs, a corrupted open time can lie decades ahead. Such a message must
never reach a feed or a broker, where it could freeze the bar splice (a candle "from 2100" makes
every real candle look old), crash a worker thread, or pass a forming candle off as closed
(``"closed": "false"`` is a non-empty, so truthy, string).

Two tools, both generic (every plugin uses them, none copies them):

* **Readers** for plugin parsers: :func:`number`, :func:`decimal`, :func:`ms`, :func:`ident`,
  :func:`flag` convert a wire value strictly (no ``bool`` taken for a number, no ``float`` for a
  ``Decimal``); :func:`decimal_or_zero` and :func:`optional_decimal` read the numbers exchanges
  leave empty; :func:`known` reads a value from an exchange's table (statuses, sides);
  :func:`reading` runs a parser step and turns any failure into :class:`MalformedMessage`
  naming the kind of message and what was wrong.
* **Checks** on built events: each event class's ``problem(now_ms)`` (see
  :mod:`realtrade_core.events`) says what is wrong with it, built from the helpers here
  (:func:`candle_problem` is shared with the feed's REST candles). The WebSocket connection runs
  them on every event a parser returns and quarantines the whole message when one fails.

Times are epoch milliseconds. ``now_ms`` is the exchange's clock when the caller knows it
(``None``: only the absolute bounds apply).
"""

from __future__ import annotations

import math
from calendar import monthrange
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

__all__ = [
    "MAX_TIME_MS",
    "MIN_CANDLE_MS",
    "MalformedMessage",
    "candle_problem",
    "decimal",
    "decimal_or_zero",
    "flag",
    "ident",
    "known",
    "ms",
    "number",
    "optional_decimal",
    "reading",
    "timeframe_ms",
]

_T = TypeVar("_T")

#: No exchange has candles before 2010: an earlier open time is garbage, typically seconds sent
#: where milliseconds belong.
MIN_CANDLE_MS = 1_262_304_000_000  # 2010-01-01T00:00:00Z
#: Any time at or after 2100 is garbage, whatever the clock says.
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
#: How far ahead of the exchange clock (as we know it) a candle may claim to be: the clock is an
#: estimate (offset measured over a network round trip), so a little slack, never a whole bar.
CLOCK_SLACK_MS = 5_000

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DAY_MS = _UNIT_MS["d"]
_MONDAY_MS = 4 * _DAY_MS  # 1970-01-01 was a Thursday; weekly candles open on Mondays


class MalformedMessage(ValueError):
    """A stream message that cannot become valid events. ``kind`` is the event kind it would
    have been (``"bar"``, ``"order"`` ...) or ``"malformed"`` when even that is unknown; the
    connection drops the message and counts it under ``kind`` (see ``BaseWebSocket.quarantined``).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"bad {kind} message: {reason}")
        self.kind = kind
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Readers


def number(value: Any) -> float:
    """A float from a JSON number or a numeric string (range checks come later)."""
    if type(value) is str or type(value) is float or type(value) is int:
        return float(value)
    raise TypeError(f"expected a number or a numeric string, got {_show(value)}")


def decimal(value: Any) -> Decimal:
    """An exact Decimal from a numeric string or an integer (floats are not exact: refused)."""
    if type(value) is str or type(value) is int:
        return Decimal(value)
    raise TypeError(f"expected a decimal string, got {_show(value)}")


def decimal_or_zero(value: Any) -> Decimal:
    """:func:`decimal`, with an absent value (missing or ``""``) read as zero."""
    return Decimal(0) if value is None or value == "" else decimal(value)


def optional_decimal(value: Any) -> Decimal | None:
    """:func:`decimal`, or None where the exchange writes "none" as missing, ``""`` or zero
    (``"0.00000000"``: a market order's price, an order's absent stop). A negative value is
    kept, for the event's own check to refuse."""
    amount = decimal_or_zero(value)
    return amount if amount else None


class UnknownValue(ValueError):
    """A value the exchange's table (of statuses, sides ...) does not hold: see :func:`known`."""


def known(table: Mapping[Any, _T], value: Any, what: str) -> _T:
    """``table[value]``: an exchange's status, side or type read through its table. A value the
    table does not hold makes the message malformed (``"unknown <what> 'X'"``): a state the
    parser cannot map must not pass as another one."""
    try:
        return table[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value (a list where text belongs)
        raise UnknownValue(f"unknown {what} {str(value)[:40]!r}") from None


def ms(value: Any) -> int:
    """Epoch ms from an integer or a string of digits (Bybit writes private times as strings)."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise TypeError(f"expected a time in epoch milliseconds, got {_show(value)}")


def ident(value: Any) -> str:
    """An id as text, from a non-empty string or an integer."""
    if (type(value) is str and value) or type(value) is int:
        return str(value)
    raise TypeError(f"expected an id, got {_show(value)}")


def flag(value: Any) -> bool:
    """A real JSON boolean (the string "false" is not one)."""
    if type(value) is bool:
        return value
    raise TypeError(f"expected true or false, got {_show(value)}")


def reading(kind: str, build: Callable[..., _T], *args: Any) -> _T:
    """``build(*args)``; any failure to read the message becomes :class:`MalformedMessage`
    of ``kind`` (a missing field, a wrong type, a number that is not one)."""
    try:
        return build(*args)
    except MalformedMessage:
        raise
    except UnknownValue as exc:
        raise MalformedMessage(kind, str(exc)) from None
    except KeyError as exc:
        raise MalformedMessage(kind, f"missing field {exc}") from None
    except (TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
        raise MalformedMessage(kind, f"{type(exc).__name__}: {str(exc)[:120]}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


# --------------------------------------------------------------------------------------------
# Field checks: each returns what is wrong, or None


def bad_text(value: Any, name: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if type(value) is not str or not value:
        return f"{name} must be a non-empty string, got {_show(value)}"
    return None


def bad_time(value: Any, name: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if type(value) is not int:
        return f"{name} must be an integer epoch-ms time, got {_show(value)}"
    if not 0 <= value < MAX_TIME_MS:
        return f"{name} {value} is not a time between 1970 and 2100"
    return None


def bad_float(value: Any, name: str) -> str | None:
    """Finite and non-negative (prices, sizes, volumes)."""
    if type(value) is not float and type(value) is not int:
        return f"{name} must be a number, got {_show(value)}"
    if not math.isfinite(value) or value < 0:
        return f"{name} must be finite and non-negative, got {value!r}"
    return None


def bad_decimal(value: Any, name: str, optional: bool = False, signed: bool = False) -> str | None:
    """A finite Decimal, non-negative unless ``signed`` (fees can be rebates)."""
    if value is None and optional:
        return None
    if type(value) is not Decimal:
        return f"{name} must be a Decimal, got {_show(value)}"
    if not value.is_finite() or (value < 0 and not signed):
        return f"{name} must be finite{'' if signed else ' and non-negative'}, got {value}"
    return None


def bad_bool(value: Any, name: str) -> str | None:
    if type(value) is not bool:
        return f"{name} must be true or false, got {_show(value)}"
    return None


def bad_member(value: Any, name: str, cls: type, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, cls):
        return f"{name} must be a {cls.__name__}, got {_show(value)}"
    return None


def first(*problems: str | None) -> str | None:
    """The first problem found (arguments are evaluated eagerly: keep them cheap)."""
    for problem in problems:
        if problem is not None:
            return problem
    return None


# --------------------------------------------------------------------------------------------
# Candles


def timeframe_ms(timeframe: str) -> int | None:
    """Length of a fixed-length candle (``"1s"`` .. ``"1w"``) in ms; None for months or an
    unknown spelling."""
    unit = _UNIT_MS.get(timeframe[-1:])
    count = timeframe[:-1]
    if unit is None or not count.isascii() or not count.isdigit() or int(count) <= 0:
        return None
    return int(count) * unit


_SPANS: dict[str, tuple[int, int]] = {}  # timeframe -> (length, alignment offset), fixed lengths only
_INF = math.inf


def _span(timeframe: Any) -> tuple[int, int] | None:
    span = _SPANS.get(timeframe) if type(timeframe) is str else None
    if span is None and type(timeframe) is str:
        length = timeframe_ms(timeframe)
        if length is None:
            return None
        span = (length, _MONDAY_MS if timeframe.endswith("w") else 0)
        if len(_SPANS) < 64:
            _SPANS[timeframe] = span
    return span


def candle_ok(
    timeframe: Any, open_time: Any, o: Any, h: Any, low: Any, c: Any, v: Any, closed: Any, now_ms: int | None
) -> bool:
    """True when the candle is certainly valid: the fast path of every healthy message (float
    prices, an integer open time, a fixed-length timeframe). False means "look closer" with
    :func:`candle_problem`, which says what is wrong (or finds a month candle fine)."""
    if not (
        type(closed) is bool
        and type(open_time) is int
        and type(o) is float
        and type(h) is float
        and type(low) is float
        and type(c) is float
        and type(v) is float
        and MIN_CANDLE_MS <= open_time < MAX_TIME_MS
        and 0.0 <= low <= o <= h < _INF  # NaN fails every comparison
        and low <= c <= h
        and 0.0 <= v < _INF
    ):
        return False
    span = _span(timeframe)
    if span is None or (open_time - span[1]) % span[0]:
        return False
    if now_ms is None:
        return True
    length = span[0]
    slack = CLOCK_SLACK_MS if length >= 2 * CLOCK_SLACK_MS else max(length // 2, 1_000)
    return (open_time + length if closed else open_time) <= now_ms + slack


def _month_bounds(open_ms: int) -> tuple[bool, int]:
    """(open_ms is the first instant of a UTC month, the next month's first instant)."""
    moment = datetime.fromtimestamp(open_ms / 1000, tz=timezone.utc)
    aligned = moment.day == 1 and moment.hour == moment.minute == moment.second == 0 and open_ms % 1000 == 0
    days = monthrange(moment.year, moment.month)[1]
    start = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)
    return aligned, int(start.timestamp() * 1000) + days * _DAY_MS


def candle_problem(
    timeframe: str | int,
    open_time: Any,
    o: Any,
    h: Any,
    low: Any,
    c: Any,
    v: Any,
    *,
    closed: bool = True,
    now_ms: int | None = None,
) -> str | None:
    """What is wrong with one candle, or None.

    ``timeframe`` is a ccxt timeframe string (``"1m"``, ``"1w"``, ``"1M"``) or a length in ms.
    The open time must be an integer at or after 2010, before 2100, and aligned to the interval
    (epoch-aligned; weeks on Mondays; months on the 1st). Prices and volume must be finite and
    non-negative, the high the highest and the low the lowest price. With ``now_ms`` (the
    exchange clock) a closed candle must have closed by then, and a forming one have opened
    (:data:`CLOCK_SLACK_MS` of slack for the clock estimate, at most half a bar).
    """
    if type(open_time) is not int:
        return f"open time must be an integer epoch-ms time, got {_show(open_time)}"
    if not MIN_CANDLE_MS <= open_time < MAX_TIME_MS:
        return f"open time {open_time} is not between 2010 and 2100"
    if type(timeframe) is int and timeframe > 0:
        length = timeframe
        aligned = open_time % length == 0
    elif type(timeframe) is str and timeframe == "1M":
        aligned, end = _month_bounds(open_time)
        length = end - open_time
    else:
        fixed = timeframe_ms(timeframe) if type(timeframe) is str else None
        if fixed is None:
            return f"unknown timeframe {_show(timeframe)}"
        length = fixed
        offset = _MONDAY_MS if timeframe.endswith("w") else 0
        aligned = (open_time - offset) % length == 0
    if not aligned:
        return f"open time {open_time} is not aligned to the {timeframe} interval"
    problem = first(bad_float(o, "open"), bad_float(h, "high"), bad_float(low, "low"), bad_float(c, "close"))
    if problem is not None:
        return problem
    problem = bad_float(v, "volume")
    if problem is not None:
        return problem
    if h < low or h < o or h < c or low > o or low > c:
        return f"high {h} / low {low} do not enclose open {o} and close {c}"
    if now_ms is not None:
        slack = min(CLOCK_SLACK_MS, max(length // 2, 1_000))
        if closed and open_time + length > now_ms + slack:
            return f"a closed candle opened at {open_time} cannot have closed yet (exchange clock {now_ms})"
        if not closed and open_time > now_ms + slack:
            return f"open time {open_time} lies in the future (exchange clock {now_ms})"
    return None
