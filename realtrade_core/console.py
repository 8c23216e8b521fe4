"""What the ``realtrade`` command prints and returns, for its click commands and for the answer
``realtrade exchanges`` gives without click: exit codes, tables and the exchanges listing.

Standard library only, and little of it: a cold ``realtrade exchanges`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .discovery import STATUS_ERROR, Row, info_dict

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STRATEGY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

NO_EXCHANGES = "No exchange plugins installed. Install one, e.g. `pip install realtrade-binance`."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def listed_exchanges() -> Sequence[Row]:
    """The rows of ``realtrade exchanges``: the process's plugin host's when one has been made
    (it knows which exchanges this process loaded or failed to load), else the cached scan's,
    which is what a new host would list."""
    from .host import existing_plugin_host

    host = existing_plugin_host()
    if host is not None:
        return host.list_exchanges()
    from .discovery import list_exchanges

    return list_exchanges()


def exchanges_report(rows: Sequence[Row], *, as_json: bool, check: bool) -> tuple[str, int]:
    """The text ``realtrade exchanges`` prints for ``rows`` (without the last newline) and its
    exit code: an error only for ``--check`` with a plugin that failed."""
    if as_json:
        import json

        return json.dumps([info_dict(row) for row in rows], indent=2), EXIT_OK
    if not rows:
        return NO_EXCHANGES, EXIT_OK
    headers = ("NAME", "DISTRIBUTION", "VERSION", "STATUS")
    table = format_table(headers, [(r.name, r.distribution, r.version, r.status) for r in rows])
    errors = [f"\n{r.name}: {r.error}" for r in rows if r.error]
    code = EXIT_ERROR if check and any(r.status == STATUS_ERROR for r in rows) else EXIT_OK
    return "\n".join([table, *errors]), code
