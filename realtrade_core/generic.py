"""The generic ccxt adapter: any exchange ccxt supports, over REST alone.

``load_exchange("ccxt:kraken")`` (or ``get_store("ccxt:kraken", ...)``) builds an exchange spec
from the core base classes for ccxt id ``kraken``: history from REST, live bars by polling
REST at the candle cadence (closed candles only), paper trading, and live orders through ccxt.
No WebSocket and no emulator dialect: breadth where no plugin gives depth.
"""

from __future__ import annotations

import difflib
from functools import cache

from .errors import ExchangeNotFoundError
from .spec import Capabilities, ExchangeSpec

PREFIX = "ccxt:"


def is_generic(name: str) -> bool:
    return name.strip().lower().startswith(PREFIX)


@cache
def generic_spec(name: str) -> ExchangeSpec:
    """The spec for ``ccxt:<id>``; raises ExchangeNotFoundError for an id ccxt does not know."""
    import ccxt

    from .broker import Broker
    from .feed import Data
    from .store import Store

    ccxt_id = name.strip().lower()[len(PREFIX) :]
    if ccxt_id not in ccxt.exchanges:
        close = difflib.get_close_matches(ccxt_id, ccxt.exchanges, n=3, cutoff=0.75)
        hint = f" Did you mean {' or '.join(repr(PREFIX + c) for c in close)}?" if close else ""
        raise ExchangeNotFoundError(
            name,
            [f"{PREFIX}<id> for any of ccxt's {len(ccxt.exchanges)} exchange ids"],
            f"ccxt has no exchange {ccxt_id!r}.{hint} The generic adapter takes '{PREFIX}<id>' with an id "
            f"from ccxt.exchanges, e.g. '{PREFIX}kraken'; `realtrade exchanges` lists the exchange plugins.",
        )
    full = f"{PREFIX}{ccxt_id}"
    attrs = {"exchange": full, "ccxt_id": ccxt_id, "__module__": __name__}
    store = type(f"Ccxt{ccxt_id.capitalize()}Store", (Store,), dict(attrs))
    feed = type(f"Ccxt{ccxt_id.capitalize()}Data", (Data,), {"exchange": full, "__module__": __name__})
    timeframes = tuple(getattr(ccxt, ccxt_id)().timeframes or ())
    capabilities = Capabilities(
        timeframes=timeframes, public_stream=False, private_stream=False, testnet=True, emulator=False
    )
    return ExchangeSpec(
        name=full,
        store=store,
        broker=Broker,  # with the default ExecutionDialect: what ccxt's unified API does
        feed=feed,
        capabilities=capabilities,
        ccxt_id=ccxt_id,
        description=f"ccxt {ccxt_id} over REST (generic adapter)",
    )
