"""``realtrade fetch``: closed candles of one market, paged from the exchange into a CSV file.

The file has the header ``timestamp,open,high,low,close,volume``; ``timestamp`` is the candle's
*open* time in UTC as ``YYYY-MM-DD HH:MM:SS``. That is what ``realtrade emulator --data``
replays and what backtrader's ``GenericCSVData`` reads with its default date format
(``GenericCSVData(dataname=path, openinterest=-1, timeframe=..., compression=...)``).

An existing file is continued from its last candle (an interrupted download resumes, a daily
run appends the new candles); candles the exchange does not have inside the range are reported
as gaps. Public data: no API key is needed, and ``--venue`` defaults to ``mainnet``.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .arguments import VENUES
from .errors import ConfigurationError

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def parse_date(text: str, option: str) -> int:
    """``2024-01-01``, ``2024-01-01T12:30``, ``2024-01-01 12:30:00+02:00`` or epoch ms -> epoch
    ms (UTC unless an offset is given)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ConfigurationError(
            f"{option} {text!r} is not a date: give e.g. 2024-01-01, 2024-01-01T12:00 or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(TIME_FORMAT)


def _read_stamp(text: str) -> int:
    value = text.strip()
    if value.isdigit():
        return int(value)
    return int(datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp() * 1000)


def last_candle(path: Path) -> int | None:
    """The open time (ms) of the last candle in an existing file; None for a new or empty one.
    The header must be :data:`HEADER`: any other file is not ours to append to."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("r", encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise ConfigurationError(
            f"{path} exists but is not a candle file of realtrade fetch (header {','.join(HEADER)}); "
            f"choose another -o file or remove it"
        )
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 4096))
        tail = handle.read().decode("utf-8").strip().splitlines()
    last = tail[-1] if tail else ""
    if not last or last.lower().startswith("timestamp"):
        return None
    try:
        return _read_stamp(last.split(",")[0])
    except ValueError:
        raise ConfigurationError(f"{path}: cannot read the time of its last line {last!r}; fix or remove it") from None


def fetch_to_csv(
    store: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None,
    path: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Page ``symbol``'s closed candles from ``since_ms`` (to ``until_ms``, default the last
    closed one) into ``path``, continuing an existing file. Returns what was done: ``written``,
    ``first``/``last`` (ms), ``gaps`` (list of (from_ms, to_ms) of missing candles) and
    ``resumed_from`` (ms, or None)."""
    store.start()
    market = store.market(symbol)
    tf = store.timeframe(timeframe)
    now = store.server_time()
    end = (now // tf.ms) * tf.ms - tf.ms  # the last closed candle's open time
    if until_ms is not None:
        end = min(end, until_ms)
    start = -(-since_ms // tf.ms) * tf.ms  # the first candle opening at or after since
    previous = last_candle(path)
    resumed = previous is not None
    if previous is not None:
        start = max(start, previous + tf.ms)
    result: dict[str, Any] = {"written": 0, "first": None, "last": previous, "gaps": [], "resumed_from": previous,
                              "symbol": market["symbol"], "timeframe": tf.name}  # fmt: skip
    if start > end:
        return result
    total = (end - start) // tf.ms + 1
    page = max(1, int(store.max_page))
    new_file = not resumed
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(HEADER)
        label = f"{market['symbol']} {tf.name}: {total:,} candles, {_stamp(start)} to {_stamp(end)} (UTC)"
        # click's own bar, not tqdm or rich: click is already the command line's library, and
        # with show_pos, show_eta and the rate as its item text it shows all a download needs
        # (candles done/total, percent, candles per second, time left). On a terminal it redraws
        # in place on stderr; without one (a log, CI, cron) click prints only the label, once,
        # and the summary line follows: no carriage-return noise in the log.
        bar_options: dict[str, Any] = {
            "show_pos": True,
            "show_percent": True,
            "show_eta": True,
            "item_show_func": lambda rate: rate,
            "file": sys.stderr,
        }
        began = time.monotonic()
        done = 0
        with click.progressbar(length=total, label=label, **bar_options) if progress else _NoBar() as bar:
            cursor = start
            while cursor <= end:
                chunk_end = min(end, cursor + (page - 1) * tf.ms)
                rows = store.fetch_closed_candles(market["symbol"], tf, since=cursor, until=chunk_end)
                for row in rows:
                    open_ms = int(row[0])
                    if previous is not None and open_ms - previous > tf.ms:
                        result["gaps"].append((previous + tf.ms, open_ms - tf.ms))
                    elif previous is None and open_ms > start and not resumed:
                        result["gaps"].append((start, open_ms - tf.ms))  # nothing at the start of the range
                    writer.writerow((_stamp(open_ms), *(repr(float(x)) for x in row[1:6])))
                    previous = open_ms
                    result["first"] = result["first"] if result["first"] is not None else open_ms
                    result["written"] += 1
                handle.flush()  # what is written stays written: a later run resumes after it
                steps = (chunk_end - cursor) // tf.ms + 1
                done += steps
                bar.update(steps, f"{done / max(time.monotonic() - began, 1e-3):,.0f} candles/s")
                cursor = chunk_end + tf.ms
    if previous is not None and previous < end:
        result["gaps"].append((previous + tf.ms, end))  # nothing at the end of the range
    result["last"] = previous
    return result


class _NoBar:
    """Stands in for the progress bar with --quiet."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, steps: int, current_item: str | None = None) -> None:
        return None


@click.command("fetch", context_settings=_CONTEXT)
@click.option("--exchange", help="Exchange plugin (binance, bybit, okx) or ccxt:<id>.")
@click.option("--symbol", required=True, metavar="BASE/QUOTE", help="Market, e.g. BTC/USDT (perpetual: BTC/USDT:USDT).")
@click.option("--market", "market_type", type=click.Choice(["spot", "perpetual"]), default="spot", show_default=True,
              help="Market type: spot, or USDT perpetual contracts.")  # fmt: skip
@click.option("--timeframe", default="1m", show_default=True, help="Candle length, e.g. 1m, 1h, 1d.")
@click.option(
    "--since", required=True, help="First candle's open time: 2024-01-01, 2024-01-01T12:00 or epoch ms (UTC)."
)
@click.option("--until", default=None, help="Last candle's open time (default: the last closed candle).")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="CSV file (continued if it exists)."
)
@click.option("--venue", type=click.Choice(VENUES), default=None, help="Where to read (default: mainnet).")
@click.option("--emulator-url", default=None, help="An emulator started with `realtrade emulator`.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(symbol: str, timeframe: str, since: str, until: str | None, output: str, config_path: str | None,
            quiet: bool, market_type: str = "spot", **options: Any) -> int:  # fmt: skip
    """Download an exchange's closed candles to a CSV file, with a progress bar.

    \b
    realtrade fetch --exchange binance --symbol BTC/USDT --timeframe 1h --since 2024-01-01 -o btc-1h.csv

    The file replays in `realtrade emulator --data` and loads into backtrader's GenericCSVData
    (openinterest=-1). Run it again to continue the file; gaps in the exchange's data are listed.
    """
    from .config import load_config
    from .store import get_store

    config = load_config({"exchange": options["exchange"], "venue": options["venue"],
                          "emulator.url": options["emulator_url"]}, config_path)  # fmt: skip
    exchange = config.get("exchange")
    if not exchange:
        raise ConfigurationError('give the exchange: --exchange binance (or exchange = "binance" in the config file)')
    venue = config["venue"] if config.sources["venue"] != "default" else "mainnet"
    since_ms = parse_date(since, "--since")
    until_ms = parse_date(until, "--until") if until else None
    if until_ms is not None and until_ms < since_ms:
        raise ConfigurationError(f"--until {until} is before --since {since}: swap them")
    emulator_url = config.get("emulator.url") if venue == "emulator" else None
    if venue == "emulator" and not emulator_url:
        raise ConfigurationError("fetch from an emulator needs --emulator-url (from `realtrade emulator`)")
    store = get_store(
        exchange, venue, market_type=market_type, **({"emulator_url": emulator_url} if emulator_url else {})
    )
    path = Path(output)
    try:
        result = fetch_to_csv(store, symbol, timeframe, since_ms, until_ms, path, progress=not quiet)
    finally:
        store.stop()
    what = f"{result['symbol']} {result['timeframe']} from {exchange} {venue}"
    if result["written"] == 0:
        last = f" (last candle {_stamp(result['last'])})" if result["last"] is not None else ""
        click.echo(f"{path}: up to date, no new closed candle of {what}{last}")
    else:
        resumed = f", continued after {_stamp(result['resumed_from'])}" if result["resumed_from"] is not None else ""
        click.echo(
            f"{path}: {result['written']} candles of {what}, {_stamp(result['first'])} to "
            f"{_stamp(result['last'])} (open times, UTC){resumed}"
        )
    for first, last in result["gaps"]:
        count = (last - first) // store.timeframe(timeframe).ms + 1
        click.echo(f"gap     {_stamp(first)} to {_stamp(last)}: {count} candle(s) the exchange does not have")
    return 0
