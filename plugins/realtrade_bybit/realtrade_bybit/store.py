"""Bybit store (spot and ``category=linear`` perpetuals) and data feed: the core classes with
Bybit's name (its order rules are in :mod:`.execution`)."""

from __future__ import annotations

from typing import Any

from realtrade_core.feed import Data
from realtrade_core.store import Store


class BybitStore(Store):
    exchange = "bybit"

    def ccxt_options(self) -> dict[str, Any]:
        # One store loads one market type (spot, or category=linear for USDT perpetuals): ccxt's
        # load_markets would also page through the other categories and six coins' option
        # markets, eleven requests more, each ~100 ms apart under its throttle.
        if self.perpetual:
            return {"options": {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap"}}
        return {"options": {"fetchMarkets": {"types": ["spot"]}}}

    def key_permissions(self) -> dict[str, bool | None]:
        """What the API key may do, from ``GET /v5/user/query-api`` (``realtrade check``)."""
        answer = self._call(self.client.privateGetV5UserQueryApi)
        info = (answer or {}).get("result") or {}
        permissions = info.get("permissions")
        if not isinstance(permissions, dict):
            return {"trade": None, "withdraw": None}
        read_only = str(info.get("readOnly")) == "1"
        wallet = permissions.get("Wallet") or []
        if getattr(self, "perpetual", False):
            trade = bool(permissions.get("ContractTrade"))
        else:
            trade = "SpotTrade" in (permissions.get("Spot") or [])
        return {"trade": not read_only and trade, "withdraw": not read_only and "Withdraw" in wallet}


class BybitData(Data):
    exchange = "bybit"
