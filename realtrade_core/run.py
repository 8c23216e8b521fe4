"""``realtrade run``: a backtrader strategy from a file, on any venue, paper or live, with a report.

The strategy class is loaded from ``FILE.py`` (or ``FILE.py:ClassName`` when the file defines
several), its parameters come from ``--param NAME=VALUE`` and the config file's ``[params]``
(converted to the type of each parameter's default), and everything is checked before anything
starts: the settings, the strategy and its parameters, the broker (mode, cash, keys, the
mainnet opt-in), then the markets and timeframe once the store has loaded them. Ctrl-C stops
the run as ``cerebro.runstop()`` would (orders accounted for, journal flushed, threads joined),
prints the report and exits with 130.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .arguments import VENUES, check_symbol, did_you_mean
from .errors import ConfigurationError, RealtradeError

EXIT_OK, EXIT_STRATEGY, EXIT_INTERRUPTED = 0, 3, 130
#: What an in-process emulator started by `realtrade run` offers: coins it knows a plausible price of.
SYNTHETIC_MARKETS = (
    *(f"{base}/{quote}" for quote in ("USDT", "USDC")
      for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "LTC", "DOT", "AVAX", "LINK", "TRX", "TON")),
    "ETH/BTC", "SOL/BTC", "BNB/BTC",
)  # fmt: skip
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --- the strategy -------------------------------------------------------------------------------


class StrategyFileError(Exception):
    """The strategy file raised while it was imported (its traceback is the user's to read)."""


def split_target(target: str) -> tuple[Path, str | None]:
    """``"dir/file.py:Name"`` -> ``(Path("dir/file.py"), "Name")``; the class is optional."""
    match = re.fullmatch(r"(.+?):([A-Za-z_]\w*)", target)
    if match and not Path(target).exists():
        return Path(match.group(1)), match.group(2)
    return Path(target), None


def load_strategy(target: str) -> type:
    """The backtrader Strategy class named by ``target`` (``FILE.py[:ClassName]``)."""
    import backtrader as bt

    path, name = split_target(target)
    if not path.is_file():
        raise ConfigurationError(f"strategy file {str(path)!r} does not exist; give the path of a .py file")
    if path.suffix != ".py":
        raise ConfigurationError(f"strategy file {str(path)!r} is not a Python file (.py)")
    module_name = "realtrade_strategy_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.resolve().parent))  # the file may import modules beside it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise StrategyFileError(f"{path} raised {type(exc).__name__} while it was imported") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    found = {
        obj.__name__: obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, bt.Strategy) and obj.__module__ == module_name
    }
    if name is not None:
        if name in found:
            return found[name]
        if isinstance(getattr(module, name, None), type) and issubclass(getattr(module, name), bt.Strategy):
            return getattr(module, name)  # imported into the file from elsewhere: still asked for by name
        listed = ", ".join(found) or "none"
        raise ConfigurationError(
            f"{path} has no strategy class {name!r}.{did_you_mean(name, found)} Strategies it defines: {listed}"
        )
    if not found:
        raise ConfigurationError(
            f"{path} defines no backtrader strategy (a subclass of backtrader.Strategy); "
            f"write one, or name an imported one with {path}:ClassName"
        )
    if len(found) > 1:
        raise ConfigurationError(
            f"{path} defines several strategies ({', '.join(found)}); choose one with {path}:ClassName"
        )
    return next(iter(found.values()))


def parse_param_options(options: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``("fast=10", "name=x")`` -> ``{"fast": "10", "name": "x"}``."""
    out: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--param {option!r}: give NAME=VALUE, e.g. --param fast=10")
        out[name.strip()] = value.strip()
    return out


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def convert_param(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the parameter's ``default`` (text from the command line is
    parsed; values from the TOML file must already fit)."""
    expected = type(default)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError
            number = int(value) if isinstance(value, str) else value
            if not isinstance(number, int):
                raise ValueError
            return number
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, str) or not isinstance(value, str):
            return value
        if default is None:
            for parse in (int, float):
                try:
                    return parse(value)
                except ValueError:
                    pass
            return value
        return ast.literal_eval(value)  # tuples, lists ... written as Python literals
    except (ValueError, TypeError, SyntaxError):
        raise ConfigurationError(
            f"strategy parameter {name} must be {expected.__name__} like its default {default!r}, got {value!r}"
        ) from None


def strategy_params(cls: type, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``cls``'s parameters and converted to their types."""
    defaults = dict(cls.params._getitems())  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name not in defaults:
            known = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
            raise ConfigurationError(
                f"{cls.__name__} has no parameter {name!r}.{did_you_mean(name, defaults)} Its parameters: {known}"
            )
        out[name] = convert_param(name, value, defaults[name])
    return out


# --- stopping ------------------------------------------------------------------------------------


STOPPING = (
    "realtrade: interrupted (Ctrl-C): stopping after this bar; orders already sent stay on the exchange and "
    "in the journal (Ctrl-C again to stop at once)\n"
)


def _say(text: str) -> None:
    """Write to stderr from a signal handler: straight to the file descriptor, since the handler
    may run while the main thread is inside a write to the same buffered stream."""
    try:
        os.write(sys.stderr.fileno(), text.encode())
    except (AttributeError, OSError, ValueError):  # a stderr without a descriptor (captured)
        sys.stderr.write(text)


@contextmanager
def watch_interrupt() -> Iterator[dict[str, Any]]:
    """Note a Ctrl-C (``state["hit"]``). Once the caller has put its cerebro in
    ``state["cerebro"]``, the first Ctrl-C asks it to stop after the step it is in, as
    ``cerebro.runstop()`` does: an exception raised between two notifications would cut one
    short (the strategy told of a fill, the run report not), so the report could miss an order
    the strategy saw. A second Ctrl-C, or one before cerebro runs, raises KeyboardInterrupt as
    usual, which :mod:`realtrade_core.runguard` turns into a clean stop inside ``cerebro.run()``."""
    state: dict[str, Any] = {"hit": False, "cerebro": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def interrupted(signum: int, frame: Any) -> None:
        cerebro = state["cerebro"]
        if cerebro is not None and not state["hit"]:
            state["hit"] = True
            _say(STOPPING)
            cerebro.runstop()
            return
        state["hit"] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def live_bar_limit() -> type:
    """An analyzer that stops the run after ``bars`` live bars of the first data."""
    import backtrader as bt

    class LiveBarLimit(bt.Analyzer):
        params = (("bars", None),)

        def start(self) -> None:
            self.seen = 0
            self._length = 0

        def next(self) -> None:
            data = self.strategy.datas[0]
            if len(data) == self._length:
                return  # another data moved
            self._length = len(data)
            if getattr(data, "live_started", False):
                self.seen += 1
                if self.p.bars is not None and self.seen >= self.p.bars:
                    self.strategy.env.runstop()

    return LiveBarLimit


def finish_report(recorder: Any, report_dir: str | None, **about: Any) -> dict[str, Any]:
    """Print the run report and, with ``report_dir``, write its files."""
    from .report import build_report, format_report, write_report

    report = build_report(recorder, **about)
    for line in format_report(report):
        click.echo(line)
    if report_dir:
        files = write_report(report_dir, report, recorder)
        click.echo(f"report  files     {', '.join(str(f) for f in files)}")
    return report


def check_market(symbols: list[str], market_type: str, leverage: float | None) -> None:
    """Symbols spelled for the other market type, and leverage on spot, in the command's words."""
    for symbol in symbols:
        spot, colon, _ = symbol.partition(":")
        if market_type == "perpetual" and not colon and "/" in symbol:
            raise ConfigurationError(f"{symbol!r} is a spot symbol; with --market perpetual write the contract as "
                                     f"{symbol}:{symbol.split('/', 1)[1]} (BASE/QUOTE:SETTLE)")  # fmt: skip
        if market_type == "spot" and colon:
            raise ConfigurationError(f"{symbol!r} is a perpetual contract: add --market perpetual (market = "
                                     f'"perpetual" in the config file), or trade the spot symbol {spot}')  # fmt: skip
    if market_type == "spot" and leverage is not None:
        raise ConfigurationError("--leverage applies to perpetual contracts: add --market perpetual")


def check_synthetic(symbol: str, market_type: str) -> None:
    """The in-process emulator would serve any name: refuse what no exchange lists (its
    perpetual contracts are its USDT markets', ``BASE/USDT:USDT``)."""
    if market_type == "perpetual":
        contracts = tuple(f"{m}:USDT" for m in SYNTHETIC_MARKETS if m.endswith("/USDT"))
        check_symbol(symbol, contracts, "the in-process emulator's perpetual contracts")
    else:
        check_symbol(symbol, SYNTHETIC_MARKETS, "the in-process emulator")


# --- the command -------------------------------------------------------------------------------


@click.command("run", context_settings=_CONTEXT)
@click.argument("strategy", required=False, metavar="STRATEGY.py[:ClassName]")
@click.option("--exchange", help="Exchange plugin (binance, bybit, okx) or ccxt:<id>.")
@click.option("--symbol", "symbols", multiple=True, metavar="BASE/QUOTE", help="Market to trade; repeat for several.")
@click.option("--timeframe", help="Candle length, e.g. 1m, 15m, 4h, 1d (default 1m).")
@click.option(
    "--market",
    type=click.Choice(["spot", "perpetual", "swap"]),
    help="spot (default) or perpetual: USDT perpetual contracts, symbols BASE/USDT:USDT.",
)
@click.option("--leverage", type=float, help="Perpetual contracts: leverage, e.g. 3 for 3x (default 1).")
@click.option("--venue", type=click.Choice(VENUES), help="emulator (default), testnet or mainnet.")
@click.option("--paper/--live", "paper", default=None, help="Paper trading (default) or real orders on the venue.")
@click.option("--cash", type=float, help="Starting cash (paper) or the strategy's capital (live), in the quote asset.")
@click.option("--commission", type=float, help="Paper fee rate, e.g. 0.001 (default: the market's taker fee).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Strategy parameter; repeat for several.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file (or $REALTRADE_CONFIG)."
)
@click.option("--backfill-bars", type=int, help="History bars each feed starts with (default 100).")
@click.option("--bars", type=int, help="Stop after this many live bars (default: run until Ctrl-C).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write the run report's files here.")
@click.option("--journal", type=click.Path(dir_okay=False), help="Live order journal path.")
@click.option("--emulator-url", help="An emulator started with `realtrade emulator` (default: one in-process).")
@click.option("--speed", type=float, help="In-process emulator: emulated seconds per real second (default 1).")
@click.option("--seed", type=int, help="In-process emulator: seed of the synthetic market (default 0).")
@click.option("--allow-mainnet", is_flag=True, help="Confirm live trading with real money on mainnet.")
def command(strategy: str | None, params: tuple[str, ...], config_path: str | None, paper: bool | None,
            report_dir: str | None, allow_mainnet: bool, **options: Any) -> int:  # fmt: skip
    """Run a backtrader strategy class from a file on an exchange, paper or live.

    \b
    realtrade run sma.py --exchange binance --symbol BTC/USDT --timeframe 1m --speed 60
    realtrade run sma.py:SmaCross --exchange bybit --symbol BTC/USDT --venue testnet --live
    realtrade run --config my.toml --param fast=10

    API keys come from REALTRADE_<EXCHANGE>_API_KEY and REALTRADE_<EXCHANGE>_SECRET (or the
    config file's [exchanges.<name>] table). Settings: command line > environment > config file
    > default (docs/configuration.md). Ctrl-C stops cleanly and prints the report.
    """
    from .config import load_config

    cli_values = {
        "strategy": strategy,
        "symbols": list(options["symbols"]),
        "mode": None if paper is None else ("paper" if paper else "live"),
        "report": report_dir,
        "emulator.url": options["emulator_url"],
        "emulator.speed": options["speed"],
        "emulator.seed": options["seed"],
        **{k: options[k] for k in ("exchange", "timeframe", "market", "leverage", "venue", "cash", "commission",
                                   "backfill_bars", "bars", "journal")},
    }  # fmt: skip
    config = load_config(cli_values, config_path)
    return run(config, parse_param_options(params), allow_mainnet=allow_mainnet)


def run(config: Any, cli_params: Mapping[str, str] | None = None, *, allow_mainnet: bool = False) -> int:
    """Run the strategy the merged ``config`` names; returns the exit code."""
    target = config.get("strategy")
    if not target:
        raise click.UsageError("give the strategy file: realtrade run STRATEGY.py[:ClassName] ...")
    exchange = config.get("exchange")
    if not exchange:
        raise ConfigurationError('give the exchange: --exchange binance (or exchange = "binance" in the config file)')
    symbols: list[str] = config.get("symbols") or []
    if not symbols:
        raise ConfigurationError("give at least one market: --symbol BTC/USDT (or symbols = [...] in the config file)")
    try:
        strategy_cls = load_strategy(target)
    except StrategyFileError as exc:
        traceback.print_exception(exc.__cause__, file=sys.stderr)
        click.echo(f"realtrade: error: {exc}", err=True)
        return EXIT_STRATEGY
    params = strategy_params(strategy_cls, {**config.get("params", {}), **(cli_params or {})})

    import backtrader as bt

    from .report import RunRecorder
    from .store import get_store

    venue, mode = config["venue"], config["mode"]
    market_type = "perpetual" if config["market"] == "swap" else config["market"]
    emulator_url = config.get("emulator.url")
    in_process = venue == "emulator" and not emulator_url
    api_key, secret = (None, None) if in_process else config.credentials(exchange)
    check_market(symbols, market_type, config.get("leverage"))
    store_options: dict[str, Any] = {"market_type": market_type}
    if in_process:
        for symbol in symbols:  # the emulator would serve any name: refuse what no exchange lists
            check_synthetic(symbol, market_type)
        store_options["emulator_options"] = {
            "symbols": tuple(symbols),
            "speed": config["emulator.speed"],
            "seed": config["emulator.seed"],
            "history": max(config["emulator.history"], config["backfill_bars"] + 10),
        }
    elif emulator_url:
        store_options["emulator_url"] = emulator_url
    store = get_store(exchange, venue, api_key=api_key, secret=secret, **store_options)

    broker_args: dict[str, Any] = {"mode": mode}
    for key in ("cash", "commission", "journal", "leverage"):
        if config.get(key) is not None:
            broker_args[key] = config[key]
    if mode == "live" and allow_mainnet:
        broker_args["allow_mainnet"] = True
    broker = store.getbroker(**broker_args)  # mode, amounts, keys and the mainnet opt-in: before any request

    started = time.monotonic()
    try:
        with watch_interrupt() as interrupt:
            try:
                store.start()  # markets and clock: the symbols and timeframe are checked against them next
                cerebro = bt.Cerebro()
                interrupt["cerebro"] = cerebro  # from now on Ctrl-C stops it between steps
                for symbol in symbols:
                    data = store.getdata(dataname=symbol, timeframe=config["timeframe"],
                                         backfill_bars=config["backfill_bars"])  # fmt: skip
                    cerebro.adddata(data, name=symbol)
                cerebro.setbroker(broker)
                cerebro.addstrategy(strategy_cls, **params)
                cerebro.addanalyzer(RunRecorder, _name="realtrade_report")
                if config.get("bars"):
                    cerebro.addanalyzer(live_bar_limit(), _name="realtrade_bar_limit", bars=config["bars"])
                cash = broker.getcash() if mode == "paper" else config.get("cash")
                perpetual = f" perpetual at {broker.p.leverage:g}x" if market_type == "perpetual" else ""
                click.echo(
                    f"realtrade run: {strategy_cls.__name__} on {exchange} {venue}, {', '.join(symbols)}{perpetual} "
                    f"{config['timeframe']}, {mode}"
                    + (f" cash {cash:,.2f}" if cash else "")
                    + (f", params {params}" if params else "")
                )
                strategies = cerebro.run()
            except KeyboardInterrupt:  # before or after the loop runstop covers
                interrupt["hit"] = True
                strategies = []
    except RealtradeError:
        raise
    except Exception as exc:
        traceback.print_exc()
        click.echo(f"realtrade: error: the strategy raised {type(exc).__name__}: {exc}", err=True)
        return EXIT_STRATEGY
    finally:
        store.stop()
    if strategies:
        recorder = strategies[0].analyzers.realtrade_report
        finish_report(recorder, config.get("report"), exchange=exchange, venue=venue, mode=mode, symbols=symbols,
                      timeframe=config["timeframe"], strategy=strategy_cls.__name__, params=params)  # fmt: skip
    click.echo(f"done    in {time.monotonic() - started:.1f} s" + (" (interrupted)" if interrupt["hit"] else ""))
    return EXIT_INTERRUPTED if interrupt["hit"] else EXIT_OK
