"""The click group of the ``realtrade`` command and its ``exchanges`` command.

:func:`realtrade_core.cli.main` runs it for every command line but the two it answers without
importing click (``realtrade exchanges`` and ``realtrade exchanges --json``). Each other
subcommand lives in the module that does its work and is imported only when that subcommand
runs (or its ``--help`` is asked for), so ``realtrade --help`` and ``realtrade --version`` stay
fast and never import ccxt, backtrader or a plugin. The exit codes are listed in
:mod:`realtrade_core.cli`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from . import __version__
from .console import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, exchanges_report, listed_exchanges
from .errors import RealtradeError

# name -> (module, attribute, one-line help). Only the chosen command's module is imported.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "exchanges": ("realtrade_core.cligroup", "exchanges", "List installed exchanges with version and status."),
    "emulator": ("realtrade_core.emulator.cli", "command", "Serve an emulated exchange on loopback."),
    "demo": ("realtrade_core.demo", "command", "Paper-trade a strategy on live bars from an in-process emulator."),
    "run": ("realtrade_core.run", "command", "Run a backtrader strategy file on an exchange (paper or live)."),
    "fetch": ("realtrade_core.fetch", "command", "Download candle history to a CSV file."),
    "check": ("realtrade_core.check", "command", "Check connectivity, clock, keys and markets of an exchange venue."),
    "new-exchange": ("realtrade_core.scaffold", "command", "Scaffold a third-party exchange plugin distribution."),
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _LazyGroup(click.Group):
    """A group whose commands are imported by name when used; the command list is static."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        return getattr(importlib.import_module(entry[0]), entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the table, so `realtrade --help` imports no command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, _, text) in COMMANDS.items()])

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            from .arguments import did_you_mean

            raise click.UsageError(
                f"no command {name!r}.{did_you_mean(name, COMMANDS)} Commands: {', '.join(COMMANDS)}"
            )
        return super().resolve_command(ctx, args)


@click.group(cls=_LazyGroup, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="realtrade", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log output: -v for INFO, -vv for DEBUG.")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Log level of realtrade, ccxt and the rest (default WARNING); overrides -v.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, log_level: str | None) -> int | None:
    """Take a backtrader strategy from backtest to live crypto trading.

    Start with `realtrade demo`; then `realtrade run my_strategy.py --exchange binance
    --symbol BTC/USDT --timeframe 1m` trades your own strategy on the local emulator. Give a
    command's --help for its options. REALTRADE_TRACE_HOOKS=1 logs every plugin hook call.
    """
    level = log_level.upper() if log_level else ("DEBUG" if verbose >= 2 else "INFO" if verbose == 1 else None)
    ctx.call_on_close(_configure_logging(level))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(EXIT_USAGE)
    return None


def _configure_logging(level: str | None) -> Any:
    """Log to stderr at ``level`` (None: WARNING) for the command's duration; returns the
    function that undoes it. A program that set up logging itself and calls :func:`main` keeps
    its own handlers and level unless a level is asked for."""
    root = logging.getLogger()
    previous = root.level
    handler: logging.Handler | None = None
    if level is not None or not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(level or "WARNING")
    hooks = logging.getLogger("realtrade_core.hooks")
    hooks_previous = hooks.level
    if os.environ.get("REALTRADE_TRACE_HOOKS", "").strip() not in ("", "0"):
        hooks.setLevel(logging.DEBUG)  # the switch asks for these records whatever the level

    def undo() -> None:
        if handler is not None:
            root.removeHandler(handler)
            root.setLevel(previous)
        hooks.setLevel(hooks_previous)

    return undo


@click.command("exchanges", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.option(
    "--check", is_flag=True, help="Also import each plugin and validate it (slower: loads ccxt and backtrader)."
)
def exchanges(as_json: bool, check: bool) -> int:
    """List installed exchanges with version and status (reads package metadata only)."""
    if check:
        from .plugins import get_plugin_host

        rows = get_plugin_host().check_all()
    else:
        rows = listed_exchanges()
    text, code = exchanges_report(rows, as_json=as_json, check=check)
    click.echo(text)
    return code


def error(message: str) -> None:
    """Print ``realtrade: error: message`` to stderr."""
    click.echo(f"realtrade: error: {message}", err=True)


def run(args: list[str]) -> int:
    """Run the command line ``args`` through click; return the exit code."""
    try:
        result = cli.main(args=args, prog_name="realtrade", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: exit 2, with the command's usage line
        exc.show()
        return exc.exit_code
    except click.Abort:
        error("aborted")
        return EXIT_INTERRUPTED
    except RealtradeError as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    return int(result or 0)
