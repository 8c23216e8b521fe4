"""OKX spot store and data feed: the core classes with OKX's name, its page size and its third
credential, the API passphrase (its order rules are in :mod:`.execution`)."""

from __future__ import annotations

import os
from typing import Any

from realtrade_core.credentials import protect
from realtrade_core.feed import Data
from realtrade_core.store import Store

#: The environment variable holding the API key's passphrase (beside the key and secret ones).
PASSPHRASE_ENV = "REALTRADE_OKX_PASSPHRASE"
#: What the store signs with on the emulator, whose accounts have a key and a secret only: it
#: asks for a passphrase, as OKX does, and takes any.
EMULATOR_PASSPHRASE = "realtrade-emulator"


class OkxStore(Store):
    """An OKX spot store. Besides the core store's arguments it takes ``passphrase=``, the API
    key's passphrase OKX asks of every signed request (default: ``REALTRADE_OKX_PASSPHRASE``)."""

    exchange = "okx"
    # /api/v5/market/history-candles serves at most 100 candles a request (candles: 300).
    max_page = 100

    def __init__(self, *args: Any, passphrase: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._passphrase = passphrase or os.environ.get(PASSPHRASE_ENV) or None
        if self._passphrase:
            protect(self._passphrase)

    @property
    def passphrase(self) -> str | None:
        """The API key's passphrase (the emulator takes any, so it gets a placeholder)."""
        if self._passphrase is None and self.venue == "emulator":
            return EMULATOR_PASSPHRASE
        return self._passphrase

    def ccxt_options(self) -> dict[str, Any]:
        # realtrade trades spot: ccxt's load_markets would also ask for futures, swaps and two
        # underlyings' options, four requests more.
        options: dict[str, Any] = {"options": {"fetchMarkets": {"types": ["spot"]}}}
        if self.passphrase:
            options["password"] = self.passphrase
        return options


class OkxData(Data):
    exchange = "okx"
