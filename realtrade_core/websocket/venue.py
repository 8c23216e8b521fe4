"""A plugin's connections for a store: the venue's URLs, the clocks to sign and check with (see
:mod:`.clock`), the store's credentials. Helpers for a plugin's ``for_store`` (see :mod:`.contract`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..interlock import check_emulator_urls
from .clock import exchange_clock, market_clock

if TYPE_CHECKING:
    from .config import WebSocketConfig
    from .connection import BaseWebSocket


def connection_for_store(
    store: Any,
    *,
    private: bool,
    public_cls: type[BaseWebSocket],
    private_cls: type[BaseWebSocket],
    config: WebSocketConfig | None = None,
    private_stream: str = "private stream",
    urls: Mapping[str, str] | None = None,
) -> BaseWebSocket:
    """The usual ``for_store``: ``public_cls(url=, symbols=, config=)`` for market data, or
    ``private_cls(url=, credentials=, symbols=, server_time=, config=)`` for the account, signed
    with the exchange's clock as the store measured it, not ours. ``urls`` (``{"public",
    "private"}``) default to the venue's, from ``public_cls``'s ``venue_urls`` and
    ``emulator_urls`` (see :class:`~realtrade_core.websocket.ExchangeConnection`)."""
    if urls is None:
        declared = getattr(public_cls, "venue_urls", {}), getattr(public_cls, "emulator_urls", {})
        urls = venue_stream_urls(store, public_cls.exchange or store.exchange, *declared)
    symbols = store.symbols_by_id()
    if not private:
        ws = public_cls(url=urls["public"], symbols=symbols, config=config)
    else:
        if not store.credentials:
            raise ConfigurationError(
                f"{store.exchange} {store.venue}: the {private_stream} needs an API key and secret"
            )
        ws = private_cls(
            url=urls["private"],
            credentials=store.credentials,
            symbols=symbols,
            server_time=exchange_clock(store),
            config=config,
        )
        ws.hide_in_logs(store.credentials.api_key, store.credentials.secret)
        ws.clock_refused = store.sync_time
    ws.clock = market_clock(store)
    return ws


def venue_stream_urls(
    store: Any, exchange: str, urls: Mapping[str, Mapping[str, str]], emulator_keys: Mapping[str, str]
) -> dict[str, str]:
    """``{"public", "private"}`` stream URLs for ``store``'s venue: from ``urls`` (venue -> role
    -> URL) for a real venue; for the emulator from the store, ``emulator_keys`` naming the
    emulator's URL for each role."""
    if store.venue != "emulator":
        return dict(urls[store.venue])
    known = store.stream_urls()
    missing = [key for key in emulator_keys.values() if key not in known]
    if missing:
        raise ConfigurationError(
            f"{exchange} emulator: no {', '.join(missing)} URL; start the store (store.start()) first"
        )
    chosen = {role: known[key] for role, key in emulator_keys.items()}
    # The interlock once more, for a store subclass whose stream_urls() comes from elsewhere:
    # an emulator's streams are on loopback (or a remote host the user allowed), never a real venue.
    check_emulator_urls(
        chosen.values(),
        exchange=exchange,
        ccxt_id=getattr(store, "ccxt_id", None) or exchange,
        allow_remote=bool(getattr(store, "allow_remote_emulator", False)),
        what="stream URL",
    )
    return chosen
