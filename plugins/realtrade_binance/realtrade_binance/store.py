"""Binance spot store and data feed: the core classes with Binance's name (its order rules are
in :mod:`.execution`)."""

from __future__ import annotations

from typing import Any

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BinanceStore(Store):
    exchange = "binance"

    def ccxt_options(self) -> dict[str, Any]:
        # realtrade trades spot: without this ccxt's load_markets also fetches the USD-M and
        # COIN-M futures markets and the cross and isolated margin pairs (four requests more).
        return {"options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}}


class BinanceData(Data):
    exchange = "binance"
