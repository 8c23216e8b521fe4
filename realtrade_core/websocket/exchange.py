"""The usual base of a plugin's connection: one URL, markets named by the exchange's ids, and the
exchange's URLs and stream names declared as tables."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ..contract import placeholder
from ..errors import ConfigurationError
from .config import WebSocketConfig
from .connection import BaseWebSocket
from .messages import Outgoing, Subscribed


class ExchangeConnection(BaseWebSocket):
    """A :class:`BaseWebSocket` on one ``url`` whose messages name markets by the exchange's ids.

    ``symbols`` maps those ids (``BTCUSDT``) to unified symbols (``BTC/USDT``), as
    :func:`~realtrade_core.websocket.venue.connection_for_store` passes them from the store's
    markets. Parsers call :meth:`_symbol`; ``_request_ids`` numbers the requests a plugin sends.

    What differs between exchanges but needs no code, the market-data class declares:

    =====================  ====================================================================
    ``venue_urls``         the real venues' URLs: ``{"mainnet": {"public": url, "private":
                           url}, "testnet": {...}}`` (read by ``connection_for_store``)
    ``emulator_urls``      the emulator's names for the same two (keys of
                           ``store.stream_urls()``): ``{"public": ..., "private": ...}``
    ``stream_names``       kind (``"bar"``, ``"trade"``, ``"book"``) -> the stream's name, a
                           template of ``{id}`` (the market id), ``{id_lower}`` and, for bars,
                           ``{interval}``; :meth:`stream_name` fills it in
    ``intervals``          ccxt timeframe -> the exchange's kline interval (``{interval}``)
    =====================  ====================================================================

    Subscribing takes one method: :meth:`stream_request` writes the exchange's request for a
    batch of at most ``streams_per_request`` streams, and ``subscribe_messages`` /
    ``unsubscribe_messages`` send as many as the streams need.
    """

    venue_urls: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    emulator_urls: ClassVar[Mapping[str, str]] = {}
    stream_names: ClassVar[Mapping[str, str]] = {}
    intervals: ClassVar[Mapping[str, str]] = {}
    streams_per_request: ClassVar[int] = 10
    #: the field of a stream request that the exchange echoes in its answer (``"id"``,
    #: ``"req_id"``): :meth:`answered` finds the streams of a subscribe request by it
    request_id_field: ClassVar[str | None] = None

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
        self._requests: dict[Any, tuple[str, ...]] = {}  # subscribe request id -> its streams
        super().__init__(streams, config=config, name=name)

    @classmethod
    def stream_name(cls, kind: str, market: Mapping[str, Any] | str, timeframe: str | None = None) -> str:
        """The exchange's name of the stream of ``kind`` for ``market`` (a ccxt market or its id),
        from :attr:`stream_names`; a kind or timeframe the exchange does not stream is a
        ConfigurationError saying what it does stream."""
        template = cls.stream_names.get(kind)
        if template is None:
            *others, last = [repr(k) for k in cls.stream_names] or ["nothing"]
            offered = f"{', '.join(others)} or {last}" if others else last
            raise ConfigurationError(f"unknown stream kind {kind!r}; use {offered}")
        market_id = market if isinstance(market, str) else market["id"]
        interval = None
        if "{interval}" in template:
            interval = cls.intervals.get(timeframe or "")
            if interval is None:
                raise ConfigurationError(
                    f"{cls.exchange} has no {timeframe!r} kline stream; use one of {', '.join(cls.intervals)}"
                )
        return template.format(id=market_id, id_lower=market_id.lower(), interval=interval)

    @classmethod
    def missing_members(cls, config: WebSocketConfig | None = None) -> list[str]:
        missing = super().missing_members(config)
        batched = not cls.streams_in_url and cls.subscribe_messages is ExchangeConnection.subscribe_messages
        if batched and getattr(cls.stream_request, "__realtrade_placeholder__", False):
            missing.append("stream_request")
        return missing

    def url(self, streams: tuple[str, ...]) -> str:
        return self._url

    @placeholder
    def stream_request(self, op: str, streams: list[str]) -> Outgoing:
        """The exchange's request to ``op`` (``"subscribe"`` or ``"unsubscribe"``) ``streams``."""
        raise NotImplementedError

    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return self._stream_requests("subscribe", streams)

    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return self._stream_requests("unsubscribe", streams)

    def _stream_requests(self, op: str, streams: tuple[str, ...]) -> list[Outgoing]:
        size = self.streams_per_request
        batches = [list(streams[i : i + size]) for i in range(0, len(streams), size)]
        messages = [self.stream_request(op, batch) for batch in batches]
        field = self.request_id_field
        if field is not None and op == "subscribe":
            if len(self._requests) > 1000:  # answers lost with their connections: forget them
                self._requests.clear()
            for message, batch in zip(messages, batches, strict=True):
                if isinstance(message, Mapping) and field in message:
                    self._requests[message[field]] = tuple(batch)
        return messages

    def answered(self, request_id: Any, ok: bool = True) -> tuple[Subscribed, ...]:
        """For ``parse``: the :class:`Subscribed` of the subscribe request ``request_id`` (its
        ``request_id_field``) that the exchange answered; nothing for any other request."""
        streams = self._requests.pop(request_id, None)
        return () if streams is None else (Subscribed(streams, ok),)

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
