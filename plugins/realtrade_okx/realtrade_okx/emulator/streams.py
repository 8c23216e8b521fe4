"""WebSocket half of the OKX v5 emulator dialect: ``/ws/v5/public``, ``/ws/v5/business`` and
``/ws/v5/private``.

* ``/ws/v5/business``: ``candle{bar}`` (every bar of :data:`~.wire.BARS`) and ``trades-all``.
* ``/ws/v5/public``: ``trades`` and ``bbo-tbt`` (best bid and offer, one level).
* ``/ws/v5/private``: ``op: login`` first (``sign`` = Base64 HMAC-SHA256 of timestamp +
  ``GET/users/self/verify``, the timestamp in seconds within 30 s of the exchange's clock), then
  ``orders`` (spot; each push of a trade carries it: ``tradeId``, ``fillSz``, ``fillPx``,
  ``fillFee``) and ``account`` (the currencies that changed).

Subscriptions are OKX's argument objects (``{"channel": "candle1m", "instId": "BTC-USDT"}``),
acknowledged one by one (``event: subscribe``); a channel the endpoint does not serve is an
``event: error`` (60018). The text ``ping`` is answered ``pong``; a connection that sends
nothing for ``settings["idle_timeout"]`` seconds (30 by default, as OKX) is closed.

Candles of the source interval are pushed on every engine update (``confirm`` ``"0"``, then
``"1"`` when it closes); longer bars when a source candle closes, aggregated from the same
candles as REST, so a confirmed stream candle equals the REST candle of the same start.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.model import (
    BalanceEvent,
    BookEvent,
    EngineEvent,
    KlineEvent,
    OrderEvent,
    TradeEvent,
)

from ..common import login_signature
from .orders import OkxOrders
from .wire import BARS, account_record, balance_detail, bar_start, candle_row, dec_market, order_push

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import Connection, ConnectionHub, TopicWatch

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 30.0  # seconds: OKX closes a connection that sent nothing for 30 s
LOGIN_WINDOW_MS = 30_000
#: Channels each endpoint serves by instrument ("candle" stands for every candle{bar}).
MARKET_CHANNELS = {"business": ("candle", "trades-all"), "public": ("trades", "bbo-tbt")}
PRIVATE_CHANNELS = ("orders", "account")


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def topic_of(arg: dict[str, Any]) -> str:
    """The hub topic of a subscription argument: ``candle1m:BTC-USDT``, ``orders``, ``account``."""
    channel = str(arg.get("channel"))
    return f"{channel}:{arg['instId']}" if arg.get("instId") else channel


class OkxStreams(OkxOrders):
    """The streams of :class:`~realtrade_okx.emulator.OkxDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        # engine symbol -> its candle topics, one per bar of BARS (a bar it cannot serve is never
        # subscribed to, so never live).
        self._candle_watch: dict[str, TopicWatch[str]] = {}
        for symbol in self.engine.markets:
            topics = [f"candle{bar}:{self.inst_id_of(symbol)}" for bar in BARS]
            self._candle_watch[symbol] = hub.watch((topic, (topic,)) for topic in topics)

    def stream_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws/v5/public", self._stream("public")),
            web.get("/ws/v5/business", self._stream("business")),
            web.get("/ws/v5/private", self._stream("private")),
        ]

    def _stream(self, endpoint: str) -> Any:
        async def serve(request: web.Request) -> web.StreamResponse:
            def opened(conn: Connection) -> None:
                conn.state = uuid.uuid4().hex[:8]  # OKX's connId

            def on_text(conn: Connection, text: str) -> None:
                try:
                    self._on_text(conn, endpoint, text)
                except Exception:  # one bad request must not take the connection down
                    log.exception("okx emulator: failed to handle a %s stream request", endpoint)
                    conn.send(self._error(conn, "60012", "Invalid request"))

            idle = float((self.settings or {}).get("idle_timeout", DEFAULT_IDLE_TIMEOUT))
            kind = "private" if endpoint == "private" else "public"
            return await self.hub.serve(request, kind, on_text, on_open=opened, idle_timeout=idle)

        return serve

    @staticmethod
    def _error(conn: Connection, code: str, message: str) -> dict[str, Any]:
        return {"event": "error", "code": code, "msg": message, "connId": conn.state}

    def _on_text(self, conn: Connection, endpoint: str, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            conn.send(self._error(conn, "60012", f"Invalid request: {text[:100]}"))
            return
        op = msg.get("op")
        if op == "login" and endpoint == "private":
            conn.send(self._login(conn, msg.get("args")))
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            if not isinstance(args, list) or not args or not all(isinstance(a, dict) for a in args):
                conn.send(self._error(conn, "60012", f"Invalid request: {text[:100]}"))
                return
            for arg in args:
                conn.send(self._subscribe(conn, endpoint, op, arg, msg.get("id")))
        else:
            conn.send(self._error(conn, "60012", f"Invalid request: {text[:100]}"))

    def _login(self, conn: Connection, args: object) -> dict[str, Any]:
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            return self._error(conn, "60012", "Invalid request")
        arg = args[0]
        api_key, timestamp = str(arg.get("apiKey") or ""), str(arg.get("timestamp") or "")
        secret = self.engine.secret_for(api_key)
        if secret is None:
            return self._error(conn, "60005", "Invalid apiKey")
        wanted = (self.settings or {}).get("passphrase")
        if not arg.get("passphrase") or (wanted is not None and arg.get("passphrase") != wanted):
            return self._error(conn, "60024", "Wrong passphrase")
        try:
            sent_ms = int(timestamp) * 1000
        except ValueError:
            return self._error(conn, "60004", "Invalid timestamp")
        if abs(sent_ms - self.auth_time()) > LOGIN_WINDOW_MS:
            return self._error(conn, "60004", "Invalid timestamp")
        if login_signature(secret, timestamp) != arg.get("sign"):
            return self._error(conn, "60007", "Invalid sign")
        conn.account = api_key
        log.debug("okx emulator: private stream logged in")
        return {"event": "login", "code": "0", "msg": "", "connId": conn.state}

    def _served(self, endpoint: str, arg: dict[str, Any]) -> bool:
        channel = arg.get("channel")
        if not isinstance(channel, str):
            return False
        if endpoint == "private":
            return channel == "account" or (channel == "orders" and arg.get("instType") in ("SPOT", "ANY", None))
        name = "candle" if channel.startswith("candle") else channel
        if name not in MARKET_CHANNELS[endpoint]:
            return False
        if name == "candle" and channel[len("candle") :] not in BARS:
            return False
        try:
            spec = self.spec_for(arg.get("instId"))
        except Exception:
            return False
        if name == "candle":
            length, offset = BARS[channel[len("candle") :]]
            source = self.engine.interval_ms(spec.symbol)  # type: ignore[union-attr]
            return length % source == 0 and offset % source == 0
        return True

    def _subscribe(
        self, conn: Connection, endpoint: str, op: str, arg: dict[str, Any], req_id: object
    ) -> dict[str, Any]:
        if endpoint == "private" and conn.account is None:
            return self._error(conn, "60011", "Please log in")
        if not self._served(endpoint, arg):
            fields = ",".join(f"{k}:{v}" for k, v in arg.items())
            return self._error(
                conn, "60018", f"Wrong URL or channel:{fields} doesn't exist. Please use the correct URL, channel and "
                "parameters referring to API document.",
            )  # fmt: skip
        topic = topic_of(arg)
        if op == "subscribe":
            conn.subscribe(topic)
        else:
            conn.unsubscribe(topic)
        reply: dict[str, Any] = {"event": op, "arg": arg, "connId": conn.state}
        if req_id is not None:
            reply["id"] = req_id
        return reply

    # --- engine events --------------------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """Translate one engine event into stream messages; never raises into the engine."""
        try:
            if isinstance(event, KlineEvent):
                self._on_kline(event)
            elif isinstance(event, TradeEvent):
                self._on_trade(event)
            elif isinstance(event, BookEvent):
                self._on_book(event)
            elif isinstance(event, OrderEvent):
                self._on_order(event)
            elif isinstance(event, BalanceEvent):
                self._on_balance(event)
        except Exception:
            log.exception("okx emulator: could not translate %s", type(event).__name__)

    def _on_kline(self, event: KlineEvent) -> None:
        candles = self._candle_watch.get(event.symbol)
        if candles is None:
            return
        candle = event.candle
        instrument_id = self.inst_id_of(event.symbol)
        for topic in candles.live():
            channel = topic.partition(":")[0]
            bar = channel[len("candle") :]
            length, _ = BARS[bar]
            if length == candle.interval_ms:
                row = candle_row(candle.open_time, candle, event.closed)
            elif event.closed:
                start = bar_start(bar, candle.open_time)
                closed = candle.open_time + candle.interval_ms >= start + length
                rows = self.candle_rows({"instId": instrument_id, "bar": bar, "after": str(start + 1), "limit": "1"}, 1)
                if not rows:
                    continue
                row = rows[0]
                row[8] = "1" if closed else "0"
            else:
                continue
            payload = {"arg": {"channel": channel, "instId": instrument_id}, "data": [row]}
            self.hub.publish(topic, _dumps(payload))

    def _on_trade(self, event: TradeEvent) -> None:
        instrument_id = self.inst_id_of(event.symbol)
        item = {
            "instId": instrument_id, "tradeId": str(event.trade_id),
            "px": dec_market(event.price), "sz": dec_market(event.amount),
            "side": "sell" if event.buyer_is_maker else "buy", "ts": str(event.time),
        }  # fmt: skip
        for channel, extra in (("trades-all", {"source": "0"}), ("trades", {"count": "1", "source": "0"})):
            topic = f"{channel}:{instrument_id}"
            if self.hub.subscribers(topic):
                payload = {"arg": {"channel": channel, "instId": instrument_id}, "data": [{**item, **extra}]}
                self.hub.publish(topic, _dumps(payload))

    def _on_book(self, event: BookEvent) -> None:
        instrument_id = self.inst_id_of(event.symbol)
        topic = f"bbo-tbt:{instrument_id}"
        if not self.hub.subscribers(topic):
            return
        data = {
            "asks": [[dec_market(event.ask), dec_market(event.ask_amount), "0", "1"]],
            "bids": [[dec_market(event.bid), dec_market(event.bid_amount), "0", "1"]],
            "ts": str(event.time),
            "seqId": event.update_id,
        }
        self.hub.publish(topic, _dumps({"arg": {"channel": "bbo-tbt", "instId": instrument_id}, "data": [data]}))

    def _on_order(self, event: OrderEvent) -> None:
        if not self.hub.subscribers("orders"):
            return
        order = event.order
        item = order_push(order, self._extra(order), event.fill, self.inst_id_of(order.symbol))
        payload = {"arg": {"channel": "orders", "instType": "SPOT", "uid": "100000001"}, "data": [item]}
        self.hub.publish("orders", _dumps(payload), account=order.account)

    def _on_balance(self, event: BalanceEvent) -> None:
        if not self.hub.subscribers("account"):
            return
        details = [balance_detail(b, event.time, self._usd_price(b.asset)) for b in event.balances]
        payload = {"arg": {"channel": "account", "uid": "100000001"}, "data": [account_record(details, event.time)]}
        self.hub.publish("account", _dumps(payload), account=event.account)
