"""Store: one connection to one exchange account on one venue.

A store owns the ccxt client, market metadata and the shared WebSocket connections of one
(exchange, market type, account, venue), and hands out data feeds and a broker wired to it by
instance. It is lazy: nothing touches the network until :meth:`start`.

Plugin contract (subclass :class:`Store`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
``ccxt_id``            no        ccxt exchange id (default: ``exchange``)
``websocket_class``    no        BaseWebSocket subclass for streams (None: REST only)
``ccxt_options()``     no        extra ccxt constructor options (e.g. ``defaultType``)
=====================  ========  ===========================================================
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from .contract import Contract
from .credentials import Credentials, redact
from .errors import ConfigurationError

log = logging.getLogger(__name__)

VENUES = ("mainnet", "testnet", "emulator")


class Store(Contract):
    """Base class of every exchange store. See the module docstring for the plugin contract."""

    _required = ("exchange",)

    exchange: ClassVar[str | None] = None
    ccxt_id: ClassVar[str | None] = None
    websocket_class: ClassVar[type | None] = None

    def __init__(
        self,
        venue: str = "emulator",
        api_key: str | None = None,
        secret: str | None = None,
        market_type: str = "spot",
        emulator_url: str | None = None,
        ccxt_config: dict[str, Any] | None = None,
    ) -> None:
        if venue not in VENUES:
            raise ConfigurationError(f"unknown venue {venue!r}; use one of {', '.join(VENUES)}")
        self.venue = venue
        self.market_type = market_type
        self.emulator_url = emulator_url
        self._credentials = Credentials(api_key, secret)
        self._ccxt_config = dict(ccxt_config or {})
        self._client: Any = None
        self.started = False

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def ccxt_options(self) -> dict[str, Any]:
        """Extra ccxt options for this exchange; override in a plugin when needed."""
        return {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} exchange={self.exchange!r} venue={self.venue!r} "
            f"market_type={self.market_type!r} api_key={redact(self._credentials.api_key)!r}>"
        )
