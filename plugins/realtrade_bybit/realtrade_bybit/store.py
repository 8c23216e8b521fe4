"""Bybit spot store and data feed: the core classes with Bybit's name (its order rules are in
:mod:`.execution`)."""

from __future__ import annotations

from typing import Any

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BybitStore(Store):
    exchange = "bybit"

    def ccxt_options(self) -> dict[str, Any]:
        # realtrade trades spot: ccxt's load_markets would also page through linear, inverse and
        # six coins' option markets, eleven requests more, each ~100 ms apart under its throttle.
        return {"options": {"fetchMarkets": {"types": ["spot"]}}}


class BybitData(Data):
    exchange = "bybit"
