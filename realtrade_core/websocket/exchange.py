"""The usual base of a plugin's connection: one URL, markets named by the exchange's ids."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .config import WebSocketConfig
from .connection import BaseWebSocket


class ExchangeConnection(BaseWebSocket):
    """A :class:`BaseWebSocket` on one ``url`` whose messages name markets by the exchange's ids.

    ``symbols`` maps those ids (``BTCUSDT``) to unified symbols (``BTC/USDT``), as
    :func:`~realtrade_core.websocket.venue.connection_for_store` passes them from the store's
    markets. Parsers call :meth:`_symbol`; ``_request_ids`` numbers the requests a plugin sends.
    """

    def __init__(
        self,
        streams: Iterable[str] = (),
        *,
        url: str,
        symbols: Mapping[str, str] | None = None,
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        self._url = url
        self._symbols = dict(symbols or {})
        self._unknown_ids: set[str] = set()
        self._request_ids = itertools.count(1)
        super().__init__(streams, config=config, name=name)

    def url(self, streams: tuple[str, ...]) -> str:
        return self._url

    def _symbol(self, market_id: Any) -> str | None:
        """The unified symbol of ``market_id``; None (messages skipped, logged once) for a
        market the store does not know. A non-string id makes the message malformed."""
        if type(market_id) is not str:
            raise TypeError(f"the market id must be a string, got {type(market_id).__name__}")
        symbol = self._symbols.get(market_id)
        if symbol is None and market_id not in self._unknown_ids:
            self._unknown_ids.add(market_id)
            logging.getLogger(type(self).__module__).warning(
                "%s: market %r is not among the store's markets; its messages are skipped", self.name, market_id
            )
        return symbol
