"""The Binance USDⓈ-M futures user-data stream: the account's perpetual orders, fills, positions,
wallet and funding.

Futures have no WebSocket API subscription as spot has: the stream is a *listen key* asked for
over REST (``POST /fapi/v1/listenKey``, through the store's ccxt client) and named in the URL
(``fstream.../ws/<listenKey>``). Every connection asks for the key first (:meth:`url`): Binance
hands out the account's live key again and extends it by 60 minutes, so a connection replaced
every 50 minutes (``max_connection_age``) keeps its key alive without a separate keepalive;
``listenKeyExpired`` replaces the connection at once. The key never reaches the logs.

Events (see :mod:`realtrade_core.events`):

- ``ORDER_TRADE_UPDATE`` -> :class:`OrderUpdate`, with a :class:`Fill` first when it reports a
  trade (``x`` TRADE; CALCULATED is the exchange's liquidation order, a fill of an order no
  strategy placed);
- ``ACCOUNT_UPDATE`` -> :class:`BalanceUpdate` (the wallet balance), one :class:`PositionUpdate`
  per position it lists and, for reason ``FUNDING_FEE``, a :class:`FundingFee` per settle asset
  whose balance the funding changed;
- ``listenKeyExpired`` -> :class:`Reconnect`; ``MARGIN_CALL`` is logged (the positions' updates
  follow any liquidation); ``ACCOUNT_CONFIG_UPDATE`` and ``TRADE_LITE`` need no event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from realtrade_core.events import (
    AssetBalance,
    BalanceUpdate,
    Event,
    Fill,
    FundingFee,
    OrderUpdate,
    PositionUpdate,
)
from realtrade_core.validation import decimal, decimal_or_zero, ident, known, optional_decimal, reading
from realtrade_core.websocket import ExchangeConnection, Reconnect, WebSocketConfig

from .stream_words import ORDER_STATUS, SHUTDOWN, SIDES

__all__ = ["FUTURES_USER_URLS", "BinanceFuturesUserDataWebSocket"]

logger = logging.getLogger(__name__)

#: Where the futures user-data stream connects; the listen key is the last path segment.
FUTURES_USER_URLS: dict[str, dict[str, str]] = {
    "mainnet": {"private": "wss://fstream.binance.com/private/ws"},
    "testnet": {"private": "wss://fstream.binancefuture.com/ws"},
}
#: A listen key lives 60 minutes after it was last asked for; each connection asks again.
MAX_CONNECTION_AGE = 50 * 60.0
_ORDER_TYPE = {
    "MARKET": "market",
    "LIMIT": "limit",
    "STOP": "stop_limit",
    "STOP_MARKET": "stop_market",
    "TAKE_PROFIT": "take_profit_limit",
    "TAKE_PROFIT_MARKET": "take_profit_market",
    "TRAILING_STOP_MARKET": "trailing_stop_market",
    "LIQUIDATION": "market",
}
_FILLS = frozenset({"TRADE", "CALCULATED"})
_QUIET = frozenset(
    {"ACCOUNT_CONFIG_UPDATE", "TRADE_LITE", "STRATEGY_UPDATE", "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT"}
)


class BinanceFuturesUserDataWebSocket(ExchangeConnection):
    """The account's USDⓈ-M futures user data on ``<url>/<listenKey>``.

    ``listen_key`` asks Binance for the key (a REST call; it runs on this connection's thread
    before every connect). No subscriptions: the listen key is the stream.
    """

    exchange = "binance"
    # Binance pings every 3 minutes on fstream; the account may be quiet for longer.
    default_config = WebSocketConfig(stale_after=600.0, max_connection_age=MAX_CONNECTION_AGE)

    def __init__(
        self,
        *,
        url: str,
        listen_key: Callable[[], str],
        symbols: Mapping[str, str] | None = None,
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        self._listen_key = listen_key
        if config is not None and config.max_connection_age is None:
            config = replace(config, max_connection_age=MAX_CONNECTION_AGE)
        super().__init__((), url=url, symbols=symbols, config=config or self.default_config, name=name)

    def url(self, streams: tuple[str, ...]) -> str:
        key = self._listen_key()
        if not isinstance(key, str) or not key:
            raise ValueError("binance answered no listen key for the futures user-data stream")
        self.hide_in_logs(key)
        return f"{self._url.rstrip('/')}/{key}"

    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Any]:
        return ()  # the listen key in the URL is the subscription

    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Any]:
        return ()

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        msg = json.loads(message)
        if not isinstance(msg, dict):
            return None
        if "stream" in msg and "data" in msg and isinstance(msg["data"], dict):
            msg = msg["data"]  # the combined-stream envelope
        kind = msg.get("e")
        if kind == "ORDER_TRADE_UPDATE":
            return reading("order", self._order_trade_update, msg)
        if kind == "ACCOUNT_UPDATE":
            return reading("balance", self._account_update, msg)
        if kind == "listenKeyExpired":
            return (Reconnect("listenKeyExpired: the futures user-data listen key expired"),)
        if kind == "serverShutdown":
            return SHUTDOWN
        if kind == "MARGIN_CALL":
            logger.warning("%s: margin call: positions near liquidation (%s)", self.name,
                           ", ".join(str(p.get("s")) for p in msg.get("p") or ()))  # fmt: skip
            return ()
        if kind in _QUIET:
            return ()
        return None

    def _order_trade_update(self, msg: dict[str, Any]) -> tuple[Event, ...] | None:
        o = msg["o"]
        symbol = self._symbol(o["s"])
        if symbol is None:
            return None
        status = known(ORDER_STATUS, o["X"], "Binance order status")
        side = known(SIDES, o["S"], "side")
        order_id = ident(o["i"])
        client_id = o.get("c") or None
        filled = decimal(o["z"])
        average = optional_decimal(o.get("ap")) if filled else None
        raw_type = o.get("ot") or o["o"]
        when = o.get("T") or msg["E"]
        reason = o["X"] if o["X"] == "EXPIRED_IN_MATCH" else None
        update = OrderUpdate(
            "binance", order_id, client_id, symbol, side, _ORDER_TYPE.get(raw_type) or str(raw_type).lower(), status,
            optional_decimal(o.get("p")) or None, decimal(o["q"]), filled, average or None, reason, when,
            optional_decimal(o.get("sp")) or None,
        )  # fmt: skip
        if o.get("x") not in _FILLS:
            return (update,)
        fill = Fill(
            "binance", ident(o["t"]), order_id, client_id, symbol, side, decimal(o["L"]), decimal(o["l"]),
            decimal_or_zero(o.get("n")), o.get("N") or None, o["m"], when,
        )  # fmt: skip
        return (fill, update)  # the fill first: the order's new state already includes it

    def _account_update(self, msg: dict[str, Any]) -> tuple[Event, ...]:
        account = msg["a"]
        when = msg.get("T") or msg["E"]
        events: list[Event] = []
        positions = []
        for p in account.get("P") or ():
            if p.get("ps", "BOTH") != "BOTH":
                continue  # a hedge-mode side: realtrade trades one-way accounts only
            symbol = self._symbol(p["s"])
            if symbol is None:
                continue
            size = decimal(p["pa"])
            positions.append((symbol, size))
            entry = optional_decimal(p.get("ep")) if size else None
            events.append(PositionUpdate("binance", symbol, size, entry, decimal_or_zero(p.get("up")), None, when))
        balances = tuple(AssetBalance(b["a"], decimal(b["wb"]), Decimal(0)) for b in account.get("B") or ())
        if balances:
            events.insert(0, BalanceUpdate("binance", balances, when))
        if account.get("m") == "FUNDING_FEE":
            for b in account.get("B") or ():
                amount = decimal_or_zero(b.get("bc"))
                if not amount:
                    continue
                if len(positions) != 1:
                    logger.warning("%s: a funding payment of %s %s names %d positions; it cannot be attributed",
                                   self.name, amount, b["a"], len(positions))  # fmt: skip
                    continue
                symbol, size = positions[0]
                events.append(FundingFee("binance", f"{symbol}@{when}", symbol, amount, b["a"], size, None, None, when))
        return tuple(events)
