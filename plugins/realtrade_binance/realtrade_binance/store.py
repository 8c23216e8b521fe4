"""Binance store (spot and USDⓈ-M perpetuals) and data feed: the core classes with Binance's
name (its order rules are in :mod:`.execution`)."""

from __future__ import annotations

from typing import Any, ClassVar

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BinanceStore(Store):
    exchange = "binance"
    #: USDⓈ-M perpetuals are ccxt's ``binanceusdm`` (the ``fapi`` endpoints)
    ccxt_ids: ClassVar[dict[str, str]] = {"perpetual": "binanceusdm"}

    def ccxt_options(self) -> dict[str, Any]:
        # One store loads one market type: without this ccxt's load_markets also fetches the
        # other types and the cross and isolated margin pairs (four requests more).
        types = ["linear"] if self.perpetual else ["spot"]
        return {"options": {"fetchMarkets": {"types": types}, "fetchMargins": False}}


class BinanceData(Data):
    exchange = "binance"
