"""The ``realtrade`` command line.

Each subcommand lives in the module that does its work and is imported only when that
subcommand runs, so ``realtrade exchanges`` and ``realtrade --version`` stay fast and never
import ccxt, backtrader or a plugin.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from . import __version__
from .errors import RealtradeError

# name -> (module, help). The module provides add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "exchanges": ("realtrade_core.cli", "list installed exchanges with version and status"),
    "emulator": ("realtrade_core.emulator.cli", "serve an emulated exchange on loopback"),
    "demo": ("realtrade_core.demo", "paper-trade a strategy on live bars from an in-process emulator"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``realtrade exchanges``."""
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also import each plugin and validate it (slower: loads ccxt and backtrader)",
    )


def run(args: argparse.Namespace) -> int:
    """``realtrade exchanges``: one row per installed exchange plugin."""
    from .plugins import get_plugin_host

    host = get_plugin_host()
    rows = host.check_all() if args.check else host.list_exchanges()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    if not rows:
        print("No exchange plugins installed. Install one, e.g. `pip install realtrade-binance`.")
        return 0
    headers = ("NAME", "DISTRIBUTION", "VERSION", "STATUS")
    table = [(r.name, r.distribution, r.version, r.status) for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    for line in (headers, *table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    for r in rows:
        if r.error:
            print(f"\n{r.name}: {r.error}")
    return 1 if args.check and any(r.status == "error" for r in rows) else 0


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtrade",
        description="Take a backtrader strategy from backtest to live crypto trading.",
    )
    parser.add_argument("--version", action="version", version=f"realtrade {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:
            importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen subcommand's module is imported to declare its arguments.
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(chosen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except RealtradeError as exc:
        print(f"realtrade: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
