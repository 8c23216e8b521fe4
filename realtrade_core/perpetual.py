"""Linear (USDT-margined) perpetual contracts in backtrader: margin, leverage, fees and funding.

A perpetual contract is traded on margin: opening a position of ``size`` contracts at ``price``
locks ``size * price * multiplier / leverage`` of the account's cash as initial margin, profit
and loss are settled into cash as the price moves (marked to market at every bar's close), and
every funding time (00:00, 08:00 and 16:00 UTC on Binance USDⓈ-M and Bybit linear) the holders
of one side pay the other ``size * mark price * multiplier * funding rate``: longs pay shorts
when the rate is positive, shorts pay longs when it is negative. Linear USDT contracts have a
multiplier (ccxt's ``contractSize``) of 1: one contract is one coin.

This module holds the funding schedule and rates (standard library only);
:class:`~realtrade_core.backtest.PerpetualCommission` is the commission scheme (a backtrader
``CommInfoBase``) that models the rest. :class:`~realtrade_core.backtest.ExchangeBackBroker` and
the paper broker use it for perpetual markets and apply the funding it carries as cash flows. Cash (``getcash()``) is
what is free: the wallet less the margin in use, plus unrealised profit; value
(``getvalue()``) is the account's equity: wallet plus unrealised profit.

Funding in a backtest: the payment due at funding time ``T`` is taken from (or paid into) cash
with the first bar that ends after ``T``, before that bar's orders execute (on the exchange an
order sent when the bar ending at ``T`` closes fills after the funding), on the position held
then, at that bar's open as the mark price. The exchange uses its mark price at ``T``; the
difference is ``|size| * |mark - open| * |rate|`` per payment, a fraction of a basis point of
the position for the usual rates. Bars longer than the 8 h funding interval settle the payments
that fall inside them at the next bar.

What this model leaves out: liquidation (a backtest keeps a position whose losses exceed its
margin; the exchange would have closed it: keep leverage low, see the futures docs), tiered
maintenance margin, and the maker fee (every fill pays the taker rate, as spot does).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .rules import to_decimal

__all__ = [
    "FUNDING_INTERVAL_MS",
    "ExchangeFundingRates",
    "FundingInfo",
    "FundingPayment",
    "FundingRates",
    "funding_times",
]

log = logging.getLogger(__name__)

#: Binance USDⓈ-M and Bybit linear settle funding every 8 hours: 00:00, 08:00 and 16:00 UTC.
FUNDING_INTERVAL_MS = 8 * 3600 * 1000


def funding_times(after_ms: int, until_ms: int, interval_ms: int = FUNDING_INTERVAL_MS) -> list[int]:
    """The funding times ``T`` (ms) on the exchange's schedule with ``after_ms <= T < until_ms``."""
    first = -(-after_ms // interval_ms) * interval_ms
    return list(range(first, until_ms, interval_ms))


class FundingRates:
    """A perpetual market's funding rates: the rate at each funding time.

    ``rates`` is a mapping ``{funding time in ms: rate}``, an iterable of ``(ms, rate)`` pairs,
    ccxt's ``fetch_funding_rate_history`` records (``{"timestamp": ..., "fundingRate": ...}``),
    or one number: that rate at every funding time of the schedule (``interval_ms``, 8 h). A rate
    is a fraction: 0.0001 is 0.01 % of the position's value per funding.
    """

    def __init__(self, rates: Any, interval_ms: int = FUNDING_INTERVAL_MS) -> None:
        self.interval_ms = int(interval_ms)
        if self.interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms!r}")
        self.constant: float | None = None
        self._times: list[int] = []
        self._rates: list[float] = []
        if isinstance(rates, FundingRates):
            self.constant, self._times, self._rates = rates.constant, list(rates._times), list(rates._rates)
            return
        if isinstance(rates, (int, float, Decimal, str)) and not isinstance(rates, bool):
            self.constant = _rate(rates, "the funding rate")
            return
        pairs = rates.items() if isinstance(rates, Mapping) else rates
        if not isinstance(pairs, Iterable):
            raise TypeError(
                f"funding rates must be a number, a mapping {{ms: rate}}, (ms, rate) pairs or ccxt's funding "
                f"rate history, got {type(rates).__name__}"
            )
        table: dict[int, float] = {}
        for entry in pairs:
            if isinstance(entry, Mapping):
                when, rate = entry.get("timestamp"), entry.get("fundingRate")
            else:
                try:
                    when, rate = entry
                except (TypeError, ValueError):
                    raise TypeError(f"a funding rate entry must be (ms, rate), got {entry!r}") from None
            if isinstance(when, datetime):
                when = int(when.replace(tzinfo=when.tzinfo or timezone.utc).timestamp() * 1000)
            if not isinstance(when, (int, float)) or isinstance(when, bool):
                raise TypeError(f"a funding time must be milliseconds since the epoch, got {when!r}")
            table[int(when)] = _rate(rate, f"the funding rate at {int(when)}")
        self._times = sorted(table)
        self._rates = [table[t] for t in self._times]

    def __len__(self) -> int:
        return len(self._times)

    def __repr__(self) -> str:
        if self.constant is not None:
            return f"FundingRates({self.constant!r} every {self.interval_ms // 3_600_000} h)"
        return f"FundingRates({len(self._times)} rates)"

    def due(self, after_ms: int, until_ms: int) -> list[tuple[int, float]]:
        """The ``(time, rate)`` of every funding with ``after_ms <= time < until_ms``."""
        if self.constant is not None:
            return [(t, self.constant) for t in funding_times(after_ms, until_ms, self.interval_ms)]
        lo = bisect.bisect_left(self._times, after_ms)
        hi = bisect.bisect_left(self._times, until_ms)
        return list(zip(self._times[lo:hi], self._rates[lo:hi], strict=True))


class ExchangeFundingRates(FundingRates):
    """The rates an exchange settles, read from it as each funding time passes (paper trading).

    ``due`` asks the store for the window's settled rates (one REST request per funding time,
    three a day); a funding the exchange has not published when the next bar closes is skipped
    with a warning."""

    def __init__(self, store: Any, symbol: str) -> None:
        super().__init__(0.0)
        self.constant = None
        self.store = store
        self.symbol = symbol

    def __repr__(self) -> str:
        return f"ExchangeFundingRates({self.symbol!r})"

    def due(self, after_ms: int, until_ms: int) -> list[tuple[int, float]]:
        times = funding_times(after_ms, until_ms, self.interval_ms)
        if not times:
            return []
        try:
            settled = self.store.funding_rates(self.symbol, times[0], times[-1])
        except Exception as exc:  # the bar goes on; the payment is reported as missing
            log.warning("%s: could not read the funding rates settled at %s: %s", self.symbol, times, exc)
            return []
        found = settled.due(times[0], times[-1] + 1)
        missing = sorted(set(times) - {t for t, _ in found})
        if missing:
            log.warning("%s: the exchange published no funding rate for %s; no funding applied then",
                        self.symbol, missing)  # fmt: skip
        return found


def _rate(value: Any, what: str) -> float:
    rate = float(to_decimal(value, what))
    if not math.isfinite(rate) or abs(rate) >= 1:
        raise ValueError(f"{what} must be a fraction below 1 in size (0.0001 is 0.01 %), got {value!r}")
    return rate


@dataclass(frozen=True, slots=True)
class FundingInfo:
    """A perpetual contract's funding state now: its ``mark_price`` (what funding and
    liquidation are computed from), ``index_price`` (the spot index it follows), the
    ``funding_rate`` that will be settled next and when (``next_funding_time``, ms), as the
    exchange reported them at ``time`` (ms)."""

    symbol: str
    mark_price: float | None
    index_price: float | None
    funding_rate: float | None
    next_funding_time: int | None
    time: int | None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement: at ``time`` (ms), ``size`` contracts of ``symbol`` at ``mark`` and
    ``rate`` moved ``amount`` (in the settle currency) into cash; negative: paid out."""

    time: int
    symbol: str
    size: float
    mark: float
    rate: float
    amount: float
