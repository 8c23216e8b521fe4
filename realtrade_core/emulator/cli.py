"""``realtrade emulator``: serve one emulated exchange on loopback until Ctrl+C.

Prints the REST and WebSocket URLs, the admin URL, and the API key, secret and balances of the
funded default account (``--balance ASSET=AMOUNT`` sets them), so any client (ccxt, the plugin's
WebSocket, curl) can connect.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigurationError


@click.command("emulator", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--exchange", required=True, help="Exchange whose wire protocol to speak (binance, bybit, okx).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (default: 0, pick a free one)."
)
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    metavar="BASE/QUOTE",
    help="Market to serve; repeat for several (default: BTC/USDT). A USDT perpetual is BASE/QUOTE:QUOTE "
    "(BTC/USDT:USDT), served on the exchange's futures API.",
)
@click.option(
    "--data",
    multiple=True,
    metavar="CSV",
    help="Candles to replay (header timestamp,open,high,low,close,volume, as `realtrade fetch` writes); "
    "with several symbols give SYMBOL=CSV per symbol; symbols without data get a seeded synthetic market.",
)
@click.option(
    "--history",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Candles already in the past at start.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Emulated seconds per real second (1.0 is real time; 60 makes a minute pass each second).",
)
@click.option(
    "--lockstep",
    is_flag=True,
    help="Wait at every candle close until the client acknowledges it (POST /_emulator/ack; realtrade's "
    "broker does it by itself): orders made on a closed bar are in before the next candle opens, at any "
    "--speed. Real exchanges do not wait.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic market.")
@click.option("--interval", default="1m", show_default=True, help="Candle interval of a synthetic market.")
@click.option(
    "--balance",
    "balances",
    multiple=True,
    metavar="ASSET=AMOUNT",
    help="What the default account holds, e.g. --balance USDT=10000 --balance BTC=0.5; repeat per asset; "
    "given balances replace the defaults (100000 of each quote asset, 10 of each base asset).",
)
@click.option("--api-key", default=None, help="API key of the default account (default: random).")
@click.option("--secret", default=None, help="API secret of the default account (default: random).")
def command(**options: Any) -> int:
    """Serve an emulated exchange on loopback until Ctrl+C.

    Prints the REST and WebSocket URLs, the admin URL, and the API key, secret and balances of
    the funded default account, so any client (ccxt, the plugin's WebSocket, curl, `realtrade
    run --emulator-url`) can connect.
    """
    options["symbols"] = list(options["symbols"]) or None
    options["data"] = list(options["data"]) or None
    options["balances"] = list(options["balances"]) or None
    return run(argparse.Namespace(**options))


def _data_argument(values: list[str] | None, symbols: list[str]) -> str | dict[str, str] | None:
    if not values:
        return None
    mapping: dict[str, str] = {}
    plain: list[str] = []
    for value in values:
        symbol, sep, path = value.partition("=")
        if sep and "/" in symbol and not Path(value).exists():
            mapping[symbol] = path
        else:
            plain.append(value)
    if plain and (mapping or len(plain) > 1):
        raise ConfigurationError("with several --data files, give each as SYMBOL=CSV, e.g. --data ETH/USDT=eth.csv")
    if plain:
        return plain[0]
    return mapping


def _balance_argument(values: list[str] | None) -> dict[str, Any] | None:
    """``["USDT=10000", "BTC=0.5"]`` -> ``{"USDT": "10000", "BTC": "0.5"}`` (checked by the emulator)."""
    if not values:
        return None
    balances: dict[str, Any] = {}
    for value in values:
        asset, sep, amount = value.partition("=")
        asset, amount = asset.strip(), amount.strip()
        if not sep or not asset or not amount:
            raise ConfigurationError(f"--balance {value!r}: give ASSET=AMOUNT, e.g. --balance USDT=10000")
        if asset.upper() in balances:
            raise ConfigurationError(f"--balance gives {asset.upper()} twice; give each asset once")
        balances[asset.upper()] = amount
    return balances


def _format_amount(amount: Any) -> str:
    text = f"{amount:f}" if hasattr(amount, "is_finite") else str(amount)
    return text.rstrip("0").rstrip(".") if "." in text else text


def run(args: argparse.Namespace) -> int:
    """Start the emulator, print how to reach it, serve until SIGINT/SIGTERM."""
    from .server import Emulator

    symbols = args.symbols or ["BTC/USDT"]
    emulator = Emulator(
        args.exchange,
        host=args.host,
        port=args.port,
        symbols=symbols,
        data=_data_argument(args.data, symbols),
        history=args.history,
        speed=args.speed,
        seed=args.seed,
        interval=args.interval,
        api_key=args.api_key,
        secret=args.secret,
        balances=_balance_argument(args.balances),
        lockstep=args.lockstep,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        emulator.start()
        try:
            _print_banner(emulator)
            while not stop.wait(1.0):  # a timed wait keeps the main thread responsive to signals
                pass
            print("stopping...", flush=True)
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("emulator stopped", flush=True)
    return 0


def _print_banner(emulator: Any) -> None:
    rows: list[tuple[str, str]] = [(name, url) for name, url in emulator.urls.items()]
    rows.append(("admin", emulator.admin_url + "/state"))
    rows.append(("api key", emulator.api_key))
    rows.append(("secret", emulator.secret))
    held = {asset: b.total for asset, b in emulator.balances().items() if b.total}
    balances = ", ".join(f"{asset} {_format_amount(amount)}" for asset, amount in sorted(held.items())) or "none"
    rows.append(("balances", balances))
    rows.append(("symbols", ", ".join(emulator.symbols)))
    clock = datetime.fromtimestamp(emulator.engine.now() / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    rows.append(("clock", f"{clock}, speed {emulator.speed:g}x" + (", lockstep" if emulator.lockstep else "")))
    width = max(len(name) for name, _ in rows) + 1
    print(f"realtrade emulator: {emulator.exchange} listening on {emulator.base_http}", flush=False)
    for name, value in rows:
        print(f"  {name + ':':<{width}} {value}")
    print("Press Ctrl+C to stop.", flush=True)
