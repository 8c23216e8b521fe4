"""Checks of what a user passes to get_store, getdata and getbroker, made before anything starts.

A bad market, timeframe, amount or venue must be refused where it is written, with a message
that says what was wrong and what to do, not found inside ``cerebro.run()`` behind a long
traceback. Everything here is pure (no network, no backtrader): the store calls it from its
factories with what it knows at that moment.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "check_broker_arguments",
    "check_feed_arguments",
    "check_symbol",
    "check_venue",
    "did_you_mean",
    "number_setting",
]

VENUES = ("mainnet", "testnet", "emulator")


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """``" Did you mean 'x'?"`` for the choice closest to ``word``; ``""`` when none is close."""
    lowered = {str(choice).lower(): str(choice) for choice in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=cutoff)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def check_venue(venue: Any) -> str:
    """``venue`` itself when it is one of :data:`VENUES`; else a ConfigurationError."""
    if venue in VENUES:
        return venue
    raise ConfigurationError(
        f"unknown venue {venue!r}.{did_you_mean(str(venue), VENUES)} Use one of {', '.join(VENUES)}"
        f" (emulator: a local exchange emulator, testnet: the exchange's sandbox, mainnet: real money)"
    )


def number_setting(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    integer: bool = False,
    optional: bool = False,
    example: str = "",
) -> Any:
    """``value`` checked as a finite number (``integer``: a whole one) within the bounds;
    a ConfigurationError naming ``name`` otherwise. ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    hint = f", e.g. {name}={example}" if example else ""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be {kind}, got {value!r}{hint}")
    if integer and value != int(value):
        raise ConfigurationError(f"{name} must be {kind}, got {value!r}{hint}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g}, got {value!r}{hint}")
    if above is not None and value <= above:
        raise ConfigurationError(f"{name} must be more than {above:g}, got {value!r}{hint}")
    if below is not None and value >= below:
        raise ConfigurationError(f"{name} must be less than {below:g}, got {value!r}{hint}")
    return int(value) if integer else value


def _unknown_names(given: Iterable[str], known: Collection[str], where: str) -> None:
    settable = sorted(set(known) - {"store"})  # the store is set by the factory itself
    for name in given:
        if name not in settable:
            raise ConfigurationError(
                f"{where} has no setting {name!r}.{did_you_mean(name, settable)} "
                f"Its settings are: {', '.join(settable)}"
            )


def symbol_shape_problem(symbol: Any) -> str | None:
    """What is wrong with the spelling of a symbol, or None (spot ``"BTC/USDT"``, a perpetual
    contract in ccxt's form ``"BTC/USDT:USDT"``; an exchange's own id such as ``"BTCUSDT"``
    passes too: the market list decides)."""
    if not isinstance(symbol, str) or not symbol.strip():
        return f"the symbol must be text such as 'BTC/USDT', got {symbol!r}"
    pair, colon, settle = symbol.partition(":")
    parts = pair.split("/")
    bad_settle = bool(colon) and not (settle.isalnum() and len(parts) == 2)
    if len(parts) > 2 or not all(part.isalnum() for part in parts) or bad_settle:
        return (f"invalid symbol {symbol!r}: write spot symbols as BASE/QUOTE, e.g. 'BTC/USDT', and "
                f"perpetual contracts as BASE/QUOTE:SETTLE, e.g. 'BTC/USDT:USDT'")  # fmt: skip
    return None


def check_symbol(symbol: Any, available: Collection[str] | None, where: str) -> None:
    """Refuse a badly spelled symbol, and one not in ``available`` (when the caller knows the
    markets: None skips that part), with the closest symbols offered."""
    problem = symbol_shape_problem(symbol)
    if problem is not None:
        raise ConfigurationError(problem)
    if available is None:
        return
    by_id = {s.replace("/", "").upper(): s for s in available}
    if symbol in available or symbol.replace("/", "").upper() in by_id:
        return
    shown = ", ".join(sorted(available)[:10]) + (" ..." if len(available) > 10 else "")
    raise ConfigurationError(
        f"{where} has no market {symbol!r}.{did_you_mean(symbol.upper(), available, cutoff=0.8)} It has: {shown}"
    )


def check_feed_arguments(kwargs: Mapping[str, Any], known: Collection[str], where: str) -> None:
    """The arguments of ``store.getdata(...)`` that can be judged without the exchange."""
    _unknown_names(kwargs, known, f"{where} data")
    if not kwargs.get("dataname"):
        raise ConfigurationError("dataname is required: the symbol, e.g. store.getdata(dataname='BTC/USDT')")
    problem = symbol_shape_problem(kwargs["dataname"])
    if problem is not None:
        raise ConfigurationError(problem)
    if "backfill_bars" in kwargs:
        number_setting("backfill_bars", kwargs["backfill_bars"], minimum=0, integer=True, example="100")
    if "qcheck" in kwargs:
        number_setting("qcheck", kwargs["qcheck"], above=0, example="0.5")
    if "poll_interval" in kwargs:
        number_setting("poll_interval", kwargs["poll_interval"], above=0, optional=True, example="5")
    for flag in ("historical", "backfill_start", "backfill"):
        if flag in kwargs and not isinstance(kwargs[flag], bool):
            raise ConfigurationError(f"{flag} must be True or False, got {kwargs[flag]!r}")
    start, end = kwargs.get("fromdate"), kwargs.get("todate")
    for name, value in (("fromdate", start), ("todate", end)):
        if value is not None and not isinstance(value, (datetime, date)):
            raise ConfigurationError(f"{name} must be a datetime, got {value!r}, e.g. {name}=datetime(2024, 1, 1)")
    if start is not None and end is not None and _as_datetime(start) > _as_datetime(end):
        raise ConfigurationError(f"fromdate {start} is after todate {end}: swap them")
    if kwargs.get("historical") and start is None and kwargs.get("backfill_bars", 1) == 0:
        raise ConfigurationError("historical=True delivers history and ends: give fromdate=, or backfill_bars > 0")


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def check_broker_arguments(
    kwargs: Mapping[str, Any],
    known: Collection[str],
    *,
    where: str,
    venue: str,
    has_keys: bool,
    keys_from_emulator: bool,
) -> None:
    """The arguments of ``store.getbroker(...)`` that can be judged without the exchange:
    names, mode, amounts, and that a live broker has API keys to trade with."""
    _unknown_names(kwargs, known, f"{where} broker")
    mode = kwargs.get("mode", "paper")
    if mode not in ("paper", "live"):
        raise ConfigurationError(
            f"unknown broker mode {mode!r}.{did_you_mean(str(mode), ('paper', 'live'))} "
            f"Use 'paper' (the default: simulated cash) or 'live' (real orders on the venue)"
        )
    if mode == "paper" and "cash" in kwargs and kwargs["cash"] is None:
        raise ConfigurationError("a paper broker needs its starting cash, e.g. cash=10000 (or leave cash out)")
    number_setting("cash", kwargs.get("cash"), above=0, optional=True, example="10000")
    number_setting("commission", kwargs.get("commission"), minimum=0, below=1, optional=True, example="0.001")
    for name in ("balance_refresh", "audit_interval", "poll_interval", "fill_grace", "stream_timeout", "stop_timeout"):
        if name in kwargs:
            number_setting(name, kwargs[name], above=0, example="10")
    if "submit_retries" in kwargs:
        number_setting("submit_retries", kwargs["submit_retries"], minimum=0, integer=True, example="2")
    if mode == "live" and not has_keys and not keys_from_emulator:
        if venue == "emulator":
            what = "the emulator's API key and secret (`realtrade emulator` prints them)"
        else:
            what = f"an API key and secret of your {venue} account"
        raise ConfigurationError(
            f"{where}: live trading needs {what}: pass api_key= and secret= to get_store(), "
            f"or set them in the environment (see `realtrade run --help`); or use mode='paper'"
        )
