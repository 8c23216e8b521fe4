"""Settings of the ``realtrade`` commands: a TOML file, environment variables for keys, and the
command line, merged with a documented precedence: command line > environment > file > default.

Every setting is one :class:`Setting` in :data:`SETTINGS` (name, kind, default, allowed values,
meaning); the reading, the checks and the configuration reference in ``docs/configuration.md``
all come from that table, and a test holds the document to it. A bad value is refused with the
setting's name, where it came from and what is allowed.

API keys come from the environment (``REALTRADE_BINANCE_API_KEY``, ``REALTRADE_BINANCE_SECRET``)
or from the file's ``[exchanges.binance]`` table; never from the command line, where other users
of the machine could read them. Opting in to real money (``--allow-mainnet``) is a command-line
flag only: no file or variable can turn it on.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arguments import VENUES, did_you_mean
from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SETTINGS", "Config", "Setting", "credential_variables", "load_config", "reference_markdown"]

ENV_CONFIG = "REALTRADE_CONFIG"


@dataclass(frozen=True)
class Setting:
    """One setting: ``key`` as written in the file (``"emulator.speed"`` is ``speed`` in the
    ``[emulator]`` table), its kind, default, allowed values and meaning."""

    key: str
    kind: str  # "text", "choice", "integer", "number", "symbols", "path", "table", "flag"
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive
    below: float | None = None  # exclusive
    default_text: str = ""  # how the reference shows the default when it is not a plain value

    @property
    def option(self) -> str:
        """The command-line option that sets it."""
        return "--" + self.key.replace("emulator.", "").replace("url", "emulator-url").replace("_", "-")

    def check(self, value: Any, where: str) -> Any:
        """``value`` converted to this setting's kind, or a ConfigurationError naming it."""
        name = f"{where}: {self.key}"
        if value is None:
            return None
        if self.kind == "choice":
            if value not in self.choices:
                raise ConfigurationError(
                    f"{name} must be one of {', '.join(self.choices)}, got {value!r}."
                    + did_you_mean(str(value), self.choices)
                )
            return value
        if self.kind in ("text", "path"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{name} must be text, got {value!r}")
            return value.strip()
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be true or false, got {value!r}")
            return value
        if self.kind == "symbols":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(s, str) and s.strip() for s in items):
                raise ConfigurationError(f'{name} must be a list of symbols such as ["BTC/USDT"], got {value!r}')
            return [s.strip() for s in items]
        if self.kind == "table":
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"{name} must be a table, e.g. [{self.key}], got {value!r}")
            return dict(value)
        return self._number(value, name)

    def _number(self, value: Any, name: str) -> Any:
        integer = self.kind == "integer"
        given = value
        if isinstance(value, str):  # from the environment or the command line
            try:
                value = int(value) if integer else float(value)
            except ValueError:
                value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigurationError(f"{name} must be {'a whole number' if integer else 'a number'}, got {given!r}")
        if integer and value != int(value):
            raise ConfigurationError(f"{name} must be a whole number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigurationError(f"{name} must be at least {self.minimum:g}, got {value!r}")
        if self.above is not None and value <= self.above:
            raise ConfigurationError(f"{name} must be more than {self.above:g}, got {value!r}")
        if self.below is not None and value >= self.below:
            raise ConfigurationError(f"{name} must be less than {self.below:g}, got {value!r}")
        return int(value) if integer else float(value)


SETTINGS: tuple[Setting, ...] = (
    Setting("strategy", "text", None, "The strategy to run: `FILE.py` or `FILE.py:ClassName` (relative to the "
            "current directory). The command line's STRATEGY argument takes precedence."),
    Setting("exchange", "text", None, "Exchange plugin name (`binance`, `bybit`; `realtrade exchanges` lists "
            "them) or `ccxt:<id>` for any exchange ccxt supports, over REST."),
    Setting("venue", "choice", "emulator", "Where orders and data go: `emulator` (a local exchange emulator), "
            "`testnet` (the exchange's sandbox) or `mainnet` (real money).", choices=VENUES),
    Setting("symbols", "symbols", [], "Markets to trade, BASE/QUOTE, one data feed each "
            "(command line: `--symbol`, repeated).", default_text="none: required"),
    Setting("timeframe", "text", "1m", "Candle length: a number and m, h, d or w (`1m`, `15m`, `4h`, `1d`)."),
    Setting("market", "choice", "spot", "`spot`, or `perpetual` for USDT-margined perpetual contracts (ccxt's "
            "`swap`; symbols then read `BTC/USDT:USDT`, see docs/futures.md).", choices=("spot", "perpetual", "swap")),
    Setting("leverage", "number", None, "Perpetual contracts: the position's value over its margin (3 for 3x), at "
            "most 5 unless the code raises the broker's max_leverage.", above=0, default_text="1"),
    Setting("mode", "choice", "paper", "`paper` simulates fills at the live prices (the default); `live` sends "
            "real orders to the venue (command line: `--paper` / `--live`).", choices=("paper", "live")),
    Setting("cash", "number", None, "Starting cash in the quote asset. Paper: the simulated cash; live: the "
            "capital the strategy trades (its own ledger).", above=0,
            default_text="paper 10000; live: the quote asset's free balance"),
    Setting("commission", "number", None, "Paper fee rate per fill (0.001 is 0.1 %).", minimum=0, below=1,
            default_text="the market's taker fee"),
    Setting("backfill_bars", "integer", 100, "Closed candles of history each feed starts with (indicators warm "
            "up on them; orders made on them are never sent).", minimum=0),
    Setting("bars", "integer", None, "Stop after this many live bars (of the first symbol).", minimum=1,
            default_text="none: run until Ctrl-C"),
    Setting("journal", "path", None, "Live order journal (SQLite) path.",
            default_text="~/.local/share/realtrade/<exchange>-<venue>-<key hash>.sqlite3"),
    Setting("report", "path", None, "Folder for the run report's files (report.json, trades.csv, equity.csv, "
            "equity.png with matplotlib).", default_text="none: the report is only printed"),
    Setting("params", "table", {}, "Strategy parameters, e.g. `fast = 10` (command line: `--param fast=10`, "
            "repeated); each is converted to the type of the parameter's default.", default_text="{}"),
    Setting("emulator.url", "text", None, "An emulator started with `realtrade emulator` (loopback unless the "
            "code passes allow_remote_emulator). Unset: realtrade starts one in-process.",
            default_text="none: in-process"),
    Setting("emulator.speed", "number", 1.0, "In-process emulator: emulated seconds per real second "
            "(60 closes a 1m candle every second).", above=0),
    Setting("emulator.seed", "integer", 0, "In-process emulator: seed of its synthetic market."),
    Setting("emulator.history", "integer", 500, "In-process emulator: candles already in the past at start.",
            minimum=0),
)  # fmt: skip
_BY_KEY = {s.key: s for s in SETTINGS}
_TABLES = {"emulator", "exchanges"}


def credential_variables(exchange: str) -> tuple[str, str]:
    """The environment variables holding ``exchange``'s API key and secret:
    ``REALTRADE_BINANCE_API_KEY`` and ``REALTRADE_BINANCE_SECRET`` (``ccxt:kraken`` ->
    ``REALTRADE_CCXT_KRAKEN_...``)."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", exchange).strip("_").upper()
    return f"REALTRADE_{name}_API_KEY", f"REALTRADE_{name}_SECRET"


@dataclass
class Config:
    """Merged settings. ``values[key]`` is the value, ``sources[key]`` where it came from
    (``"command line"``, ``"environment"``, the file's path, or ``"default"``)."""

    values: dict[str, Any]
    sources: dict[str, str]
    file: Path | None = None
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # [exchanges.<name>] tables
    environ: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value

    def credentials(self, exchange: str) -> tuple[str | None, str | None]:
        """(api_key, secret) for ``exchange``: the environment first, then the file's
        ``[exchanges.<name>]`` table; (None, None) when neither has them."""
        key_var, secret_var = credential_variables(exchange)
        account = self.accounts.get(exchange.lower(), {})
        api_key = self.environ.get(key_var) or account.get("api_key")
        secret = self.environ.get(secret_var) or account.get("secret")
        if bool(api_key) != bool(secret):
            have, lack = (key_var, secret_var) if api_key else (secret_var, key_var)
            raise ConfigurationError(
                f"{exchange}: found the API {'key' if api_key else 'secret'} but not the other; "
                f"set both {have} and {lack} (or api_key and secret in [exchanges.{exchange.lower()}])"
            )
        return api_key or None, secret or None


def read_file(path: str | Path) -> dict[str, Any]:
    """A TOML file's tables, or a ConfigurationError naming the file and the problem."""
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {file} does not exist; check the path given to --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {file}: {exc}") from None


def _flatten(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """File tables -> ({setting key: value}, {exchange: account table}); unknown keys refused."""
    flat: dict[str, Any] = {}
    accounts: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "emulator" and isinstance(value, Mapping):
            for sub, subvalue in value.items():
                flat[f"emulator.{sub}"] = subvalue
        elif key == "exchanges" and isinstance(value, Mapping):
            for exchange, table in value.items():
                if not isinstance(table, Mapping):
                    raise ConfigurationError(f"{where}: [exchanges.{exchange}] must be a table with api_key and secret")
                unknown = set(table) - {"api_key", "secret"}
                if unknown:
                    raise ConfigurationError(
                        f"{where}: [exchanges.{exchange}] has no setting {sorted(unknown)[0]!r}; "
                        f"it takes api_key and secret"
                    )
                accounts[str(exchange).lower()] = {k: str(v) for k, v in table.items()}
        else:
            flat[key] = value
    for key in flat:
        if key not in _BY_KEY:
            raise ConfigurationError(
                f"{where}: unknown setting {key!r}.{did_you_mean(key, [*_BY_KEY, *_TABLES])} "
                f"Settings: {', '.join(_BY_KEY)} (see docs/configuration.md)"
            )
    return flat, accounts


def load_config(
    cli: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge the settings: ``cli`` (values the command line gave; None means not given) over
    the environment (``REALTRADE_CONFIG`` names the file when ``path`` is None; keys) over the
    file over the defaults. Every value is checked."""
    env = os.environ if environ is None else environ
    file = Path(path).expanduser() if path else (Path(env[ENV_CONFIG]).expanduser() if env.get(ENV_CONFIG) else None)
    from_file, accounts = _flatten(read_file(file), str(file)) if file is not None else ({}, {})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        given = (cli or {}).get(setting.key)
        if given is not None and given != () and given != []:
            values[setting.key], sources[setting.key] = setting.check(given, setting.option), "command line"
        elif setting.key in from_file:
            values[setting.key] = setting.check(from_file[setting.key], f"config file {file}")
            sources[setting.key] = str(file)
        else:
            values[setting.key], sources[setting.key] = setting.default, "default"
    return Config(values, sources, file, accounts, env)


def reference_markdown() -> str:
    """The configuration reference table (docs/configuration.md holds exactly this)."""
    lines = [
        "| setting | command line | default | allowed | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        table, _, name = s.key.rpartition(".")
        key = f"`{name}` in `[{table}]`" if table else f"`{s.key}`"
        default = s.default_text or (f"`{s.default}`" if s.default is not None else "none")
        if s.kind == "choice":
            allowed = ", ".join(f"`{c}`" for c in s.choices)
        elif s.kind in ("integer", "number"):
            bounds = [
                f">= {s.minimum:g}" if s.minimum is not None else "",
                f"> {s.above:g}" if s.above is not None else "",
                f"< {s.below:g}" if s.below is not None else "",
            ]
            allowed = ("whole number" if s.kind == "integer" else "number") + "".join(f", {b}" for b in bounds if b)
        else:
            allowed = {"text": "text", "path": "path", "symbols": "list of BASE/QUOTE", "table": "table",
                       "flag": "true / false"}[s.kind]  # fmt: skip
        option = {"strategy": "STRATEGY argument", "symbols": "`--symbol`", "mode": "`--paper` / `--live`",
                  "params": "`--param k=v`"}.get(s.key, f"`{s.option}`")  # fmt: skip
        lines.append(f"| {key} | {option} | {default} | {allowed} | {s.doc} |")
    return "\n".join(lines) + "\n"
