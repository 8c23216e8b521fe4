"""The ``realtrade`` command line: :func:`main`, its entry point.

``realtrade exchanges`` and ``realtrade exchanges --json`` are answered here without importing
click, from the cached scan of installed plugins (:mod:`realtrade_core.discovery`), printing
what the click command prints; every other command line, ``exchanges --check`` and ``--help``
among them, goes to the click group in :mod:`realtrade_core.cligroup`.

Exit codes (every command):

====  =====================================================================================
0     success
1     an error realtrade explains in one line (a bad setting, symbol or key, an exchange
      that cannot be reached, a failed ``check``, a broken plugin with ``exchanges --check``)
2     the command line itself is wrong (unknown option, missing argument, value out of range)
3     ``run``: the strategy raised an exception (its traceback is printed: it is your code)
130   interrupted with Ctrl-C (``run`` and ``demo`` stop cleanly first and print their report)
====  =====================================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .console import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_STRATEGY, EXIT_USAGE, format_table

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STRATEGY",
    "EXIT_USAGE",
    "format_table",
    "main",
]

# The command lines answered without click: exactly these, every other one goes through click.
_PLAIN_LISTINGS = (["exchanges"], ["exchanges", "--json"])

# Names kept from when the click group lived here; imported from cligroup on first use.
_FROM_CLIGROUP = ("cli", "exchanges", "COMMANDS", "CONTEXT", "LOG_LEVELS", "error")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in _PLAIN_LISTINGS:
        code = _plain_listing(as_json=len(args) == 2)
        if code is not None:
            return code
    from .cligroup import run

    return run(args)


def _plain_listing(*, as_json: bool) -> int | None:
    """Print ``realtrade exchanges [--json]`` as the click command would; None to leave it to
    click: text that is not plain ASCII (click.echo may re-encode it, or strip escape codes),
    or no standard output."""
    from .console import exchanges_report, listed_exchanges

    text, code = exchanges_report(listed_exchanges(), as_json=as_json, check=False)
    if sys.stdout is None or not text.isascii() or "\x1b" in text:
        return None
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return code


def __getattr__(name: str) -> Any:
    if name in _FROM_CLIGROUP:
        from . import cligroup

        return getattr(cligroup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
