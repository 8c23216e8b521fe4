"""``realtrade check``: can this machine trade on this exchange venue? A table of checks.

Each check is one row (OK, WARN, FAIL or SKIP) with what was measured: the plugin loads, the
venue answers and its markets load, the round-trip latency, the clock's skew from the
exchange's (signed requests are refused beyond the exchange's receive window), the API key is
accepted and what it may do (trading; withdrawals, which a trading key should not allow, where
the exchange reports them), and each market asked for is listed and trading. The exit code is
1 when any check failed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import click

from .arguments import VENUES
from .errors import ConfigurationError, RealtradeError

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
SKEW_WARN_MS = 1_000  # clocks this far apart work, but little margin is left
SKEW_FAIL_MS = 5_000  # Binance's and Bybit's default receive window: signed requests are refused
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True)
class Row:
    check: str
    status: str
    detail: str


def skew_status(offset_ms: int, venue: str) -> str:
    """OK, WARN or FAIL for a clock ``offset_ms`` from the exchange's. An emulator's clock may
    run fast or replay the past on purpose: never a failure there."""
    size = abs(offset_ms)
    if venue == "emulator":
        return OK
    return FAIL if size >= SKEW_FAIL_MS else WARN if size >= SKEW_WARN_MS else OK


def run_checks(store: Any, symbols: list[str], samples: int = 3) -> list[Row]:
    """Every check against ``store`` (a store not yet started), in order; stops early only when
    the venue cannot be reached (nothing after it could pass)."""
    rows: list[Row] = []
    spec = store.spec
    rows.append(Row("plugin", OK, f"{spec.name}: {spec.description or type(store).__name__}"))
    started = time.monotonic()
    try:
        store.start()
    except RealtradeError as exc:
        rows.append(Row("connect", FAIL, str(exc)))
        return rows
    markets = store.client.markets or {}
    rows.append(Row("connect", OK, f"{len(markets)} markets loaded in {(time.monotonic() - started) * 1000:.0f} ms"))

    times: list[float] = []
    for _ in range(samples):
        begin = time.monotonic()
        try:
            store._call(store.client.fetch_time)  # one REST round trip
        except RealtradeError as exc:
            rows.append(Row("latency", FAIL, str(exc)))
            break
        times.append((time.monotonic() - begin) * 1000)
    if times:
        rows.append(Row("latency", OK, f"median {statistics.median(times):.0f} ms over {len(times)} requests"))

    offset = store.sync_time()
    where = "the emulator's clock" if store.venue == "emulator" else "the exchange's clock"
    rows.append(Row("clock", skew_status(offset, store.venue), f"{offset:+d} ms from {where}"))

    rows.append(_check_keys(store))
    for symbol in symbols:
        rows.append(_check_market(store, symbol))
    return rows


def _check_keys(store: Any) -> Row:
    if not store.credentials:
        return Row("keys", SKIP, "no API key given: public data and paper trading only")
    try:
        balance = store._call(store.client.fetch_balance)
    except RealtradeError as exc:
        return Row("keys", FAIL, str(exc))
    held = sorted(asset for asset, amount in (balance.get("total") or {}).items() if amount)
    detail = f"accepted; holds {', '.join(held[:8]) or 'nothing'}{' ...' if len(held) > 8 else ''}"
    try:
        can_trade, can_withdraw = key_permissions(store, balance)
    except RealtradeError as exc:
        return Row("keys", WARN, detail + f"; could not read the key's permissions: {exc}")
    if can_trade is False:
        return Row("keys", FAIL, detail + "; this key may not trade: enable spot trading for it")
    if can_withdraw is True:
        return Row("keys", WARN, detail + "; trading allowed, and withdrawals too: a trading key should not withdraw")
    if can_trade is True:
        return Row("keys", OK, detail + "; trading allowed, withdrawals not")
    return Row("keys", OK, detail + "; the exchange does not report the key's permissions here")


def key_permissions(store: Any, balance: Any) -> tuple[bool | None, bool | None]:
    """(may trade, may withdraw) for the store's API key, None where the exchange does not say.

    A plugin's store may offer ``key_permissions()`` (optional) returning ``{"trade": bool |
    None, "withdraw": bool | None}`` from its exchange's key endpoint; otherwise the account
    record that came with the balance is read (Binance's ``canTrade`` / ``canWithdraw``)."""
    reader = getattr(store, "key_permissions", None)
    if callable(reader):
        found = reader() or {}
        return found.get("trade"), found.get("withdraw")
    info = balance.get("info") if isinstance(balance, dict) else None
    info = info if isinstance(info, dict) else {}
    return info.get("canTrade"), info.get("canWithdraw")


def _check_market(store: Any, symbol: str) -> Row:
    try:
        market = store.market(symbol)
    except ConfigurationError as exc:
        return Row(f"market {symbol}", FAIL, str(exc))
    if market.get("active") is False:
        return Row(f"market {symbol}", FAIL, f"{market['symbol']} is listed but not trading now")
    try:
        ticker = store._call(store.client.fetch_ticker, market["symbol"])
    except RealtradeError as exc:
        return Row(f"market {symbol}", WARN, f"listed; no ticker: {exc}")
    last = ticker.get("last") if isinstance(ticker, dict) else None
    minimum = ((market.get("limits") or {}).get("cost") or {}).get("min")
    tail = f", minimum order {minimum:g} {market.get('quote', '')}" if minimum else ""
    return Row(f"market {symbol}", OK, f"trading, last price {last}{tail}")


@click.command("check", context_settings=_CONTEXT)
@click.option("--exchange", help="Exchange plugin (binance, bybit, okx) or ccxt:<id>.")
@click.option("--venue", type=click.Choice(VENUES), default=None, help="emulator (default), testnet or mainnet.")
@click.option("--symbol", "symbols", multiple=True, metavar="BASE/QUOTE", help="Market to check; repeat for several.")
@click.option("--emulator-url", default=None, help="An emulator started with `realtrade emulator`.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file.")
def command(exchange: str | None, venue: str | None, symbols: tuple[str, ...], emulator_url: str | None,
            config_path: str | None) -> int:  # fmt: skip
    """Check connectivity, latency, clock skew, API key and markets of an exchange venue.

    \b
    REALTRADE_BINANCE_API_KEY=... REALTRADE_BINANCE_SECRET=... realtrade check --exchange binance --venue testnet

    Prints one row per check and exits with 1 if any failed. Keys come from the environment or
    the config file, as for `realtrade run`.
    """
    from .config import load_config
    from .console import format_table
    from .store import get_store

    config = load_config({"exchange": exchange, "venue": venue, "symbols": list(symbols),
                          "emulator.url": emulator_url}, config_path)  # fmt: skip
    name = config.get("exchange")
    if not name:
        raise ConfigurationError('give the exchange: --exchange binance (or exchange = "binance" in the config file)')
    where = config["venue"]
    url = config.get("emulator.url") if where == "emulator" else None
    in_process = where == "emulator" and not url
    api_key, secret = (None, None) if in_process else config.credentials(name)
    options: dict[str, Any] = {"emulator_url": url} if url else {}
    store = get_store(name, where, api_key=api_key, secret=secret, **options)
    click.echo(f"realtrade check: {name} {where}" + (f" at {url}" if url else " (in-process emulator)" * in_process))
    try:
        rows = run_checks(store, list(config.get("symbols") or []))
    finally:
        store.stop()
    click.echo(format_table(("CHECK", "STATUS", "DETAIL"), [(r.check, r.status, r.detail) for r in rows]))
    failed = [r.check for r in rows if r.status == FAIL]
    if failed:
        click.echo(f"failed: {', '.join(failed)}", err=True)
        return 1
    return 0
