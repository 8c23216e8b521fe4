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

    def key_permissions(self) -> dict[str, bool | None]:
        """What the API key may do, from ``GET /v5/user/query-api`` (``realtrade check``)."""
        answer = self._call(self.client.privateGetV5UserQueryApi)
        info = (answer or {}).get("result") or {}
        permissions = info.get("permissions")
        if not isinstance(permissions, dict):
            return {"trade": None, "withdraw": None}
        read_only = str(info.get("readOnly")) == "1"
        spot = permissions.get("Spot") or []
        wallet = permissions.get("Wallet") or []
        return {"trade": not read_only and "SpotTrade" in spot, "withdraw": not read_only and "Withdraw" in wallet}


class BybitData(Data):
    exchange = "bybit"
