"""WebSocket half of the Bybit v5 emulator dialect: ``/v5/public/spot`` and ``/v5/private``.

Engine events reach :meth:`BybitStreams.on_event` under the engine lock from whatever thread
caused them, so translation only builds each message once (one ``json.dumps`` per event and
topic, and only for topics somebody is subscribed to) and hands the text to the hub, which queues
it per connection.

Kline topics of an interval longer than the source candles are aggregated here, from the same
source candles and with the same bucket rules as the REST ``/v5/market/kline`` endpoint, so a
confirmed stream candle equals the REST candle of the same start.
"""

from __future__ import annotations

import json
import logging
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.model import (
    BalanceEvent,
    BookEvent,
    Candle,
    EngineEvent,
    KlineEvent,
    OrderEvent,
    TradeEvent,
)

from .rest import BybitRest
from .wire import (
    FIXED_INTERVALS_MS,
    INTERVAL_CODES,
    KlineAgg,
    aggregate,
    bucket_next,
    bucket_start,
    dec_market,
    execution_push,
    kline_item,
    order_push,
    tick_direction,
    wallet_account,
    wallet_coin,
    ws_auth_signature,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import Connection, ConnectionHub, TopicWatch

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 600.0  # seconds; Bybit cuts a connection that sent no ping for 10 minutes
PRIVATE_TOPICS = frozenset(
    {"order", "order.spot", "order.linear", "execution", "execution.spot", "execution.linear", "wallet", "position",
     "position.linear"}
)  # fmt: skip
ORDERBOOK_DEPTHS = ("1", "50", "200")


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class BybitStreams(BybitRest):
    """The public and private streams of :class:`~realtrade_bybit.emulator.BybitDialect`."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        # (symbol, code) -> (bucket start, aggregate of that bucket's closed source candles).
        # Only touched from on_event, which the engine serialises under its lock.
        self._kline_state: dict[tuple[str, str], tuple[int, KlineAgg | None]] = {}
        # symbol -> its kline topics of every interval code it serves; a topic nobody listens to
        # any more loses its state.
        self._kline_watch: dict[str, TopicWatch[str]] = {
            symbol: hub.watch(
                ((code, (f"kline.{code}.{symbol}",)) for code in INTERVAL_CODES
                 if self._public_topic_ok(f"kline.{code}.{symbol}")),
                on_idle=lambda code, symbol=symbol: self._kline_state.pop((symbol, code), None),
            )
            for symbol in self.engine.markets
        }  # fmt: skip
        self._ticks: dict[str, tuple[Decimal, str]] = {}  # symbol -> (last price, tick direction)
        self._ticker_seq = 0

    def stream_routes(self) -> list[web.RouteDef]:
        return [web.get("/v5/public/spot", self._public_stream), web.get("/v5/private", self._private_stream)]

    # --- connections --------------------------------------------------------------------------------

    async def _public_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "public")

    async def _private_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "private")

    async def _serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        def opened(conn: Connection) -> None:
            # Bybit's connection id: a UUID on public streams, hex and a short suffix on private ones.
            public = kind == "public"
            conn.state = str(uuid.uuid4()) if public else f"{uuid.uuid4().hex[:20]}-{id(conn) % 100000:x}"

        def on_text(conn: Connection, text: str) -> None:
            try:
                self._on_text(conn, conn.state, kind, text)
            except Exception:  # one bad request must not take the connection down
                log.exception("bybit emulator: failed to handle a %s stream request", kind)
                conn.send({"success": False, "ret_msg": "error:internal error", "conn_id": conn.state, "op": ""})

        # Any client message resets the idle timer; Bybit's rule is "no ping".
        idle = float((self.settings or {}).get("idle_timeout", DEFAULT_IDLE_TIMEOUT))
        return await self.hub.serve(request, kind, on_text, on_open=opened, idle_timeout=idle)

    def _on_text(self, conn: Connection, conn_id: str, kind: str, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            conn.send({"success": False, "ret_msg": "error:request is not a JSON object", "conn_id": conn_id, "op": ""})
            return
        op = msg.get("op")
        req_id = msg.get("req_id")
        if op == "ping":
            conn.send(self._pong(kind, conn_id, req_id))
        elif op == "auth" and kind == "private":
            conn.send(self._auth(conn, conn_id, msg.get("args"), req_id))
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            topics = [a for a in args if isinstance(a, str)] if isinstance(args, list) else []
            if kind == "public":
                conn.send(self._public_sub(conn, conn_id, op, topics, req_id))
            else:
                conn.send(self._private_sub(conn, conn_id, op, topics, req_id))
        else:
            reply: dict[str, Any] = {"success": False, "ret_msg": f"error:invalid op {op!r}", "conn_id": conn_id}
            reply["op"] = op if isinstance(op, str) else ""
            conn.send(reply)

    def _pong(self, kind: str, conn_id: str, req_id: object) -> dict[str, Any]:
        if kind == "private":
            req = req_id if req_id is not None else ""
            return {"req_id": req, "op": "pong", "args": [str(self.auth_time())], "conn_id": conn_id}
        reply: dict[str, Any] = {"success": True, "ret_msg": "pong", "conn_id": conn_id}
        if req_id is not None:
            reply["req_id"] = req_id
        reply["op"] = "ping"
        return reply

    @staticmethod
    def _ws_reply(success: bool, ret_msg: str, conn_id: str, op: str, req_id: object) -> dict[str, Any]:
        reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn_id}
        if req_id is not None:
            reply["req_id"] = req_id
        reply["op"] = op
        return reply

    def _auth(self, conn: Connection, conn_id: str, args: object, req_id: object) -> dict[str, Any]:
        """``{"op":"auth","args":[api_key, expires_ms, hex_hmac(secret, "GET/realtime" + expires)]}``."""
        if conn.account is not None:
            return self._ws_reply(False, "error:Repeat auth", conn_id, "auth", req_id)
        if not isinstance(args, list) or len(args) != 3:
            return self._ws_reply(False, "Params Error", conn_id, "auth", req_id)
        api_key, expires, signature = args
        try:
            expires_ms = int(str(expires))
        except ValueError:
            return self._ws_reply(False, "Params Error", conn_id, "auth", req_id)
        secret = self.engine.secret_for(str(api_key))
        if secret is None:
            return self._ws_reply(False, "Request not authorized", conn_id, "auth", req_id)
        if expires_ms <= self.auth_time():
            # As on Bybit: an auth request whose expiry already passed is a params error.
            return self._ws_reply(False, "Params Error", conn_id, "auth", req_id)
        if ws_auth_signature(secret, expires) != str(signature).lower():
            return self._ws_reply(False, "Request not authorized", conn_id, "auth", req_id)
        conn.account = str(api_key)
        log.debug("bybit emulator: private stream authenticated")
        return self._ws_reply(True, "", conn_id, "auth", req_id)

    def _private_sub(
        self, conn: Connection, conn_id: str, op: str, topics: list[str], req_id: object
    ) -> dict[str, Any]:
        if conn.account is None:
            return self._ws_reply(False, "Request not authorized", conn_id, op, req_id)
        invalid = [t for t in topics if t not in PRIVATE_TOPICS]
        for topic in topics:
            if topic in PRIVATE_TOPICS:
                conn.subscribe(topic) if op == "subscribe" else conn.unsubscribe(topic)
        if invalid or not topics:
            return self._ws_reply(False, f"error:invalid topic(s) {invalid}", conn_id, op, req_id)
        return self._ws_reply(True, "", conn_id, op, req_id)

    def _public_topic_ok(self, topic: str) -> bool:
        parts = topic.split(".")
        markets = self.engine.markets
        if len(parts) == 2 and parts[0] in ("publicTrade", "tickers"):
            return parts[1] in markets
        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1] in ORDERBOOK_DEPTHS and parts[2] in markets
        if len(parts) == 3 and parts[0] == "kline":
            code, symbol = parts[1], parts[2]
            if code not in INTERVAL_CODES or symbol not in markets:
                return False
            source = self.engine.interval_ms(symbol)
            length = FIXED_INTERVALS_MS.get(code, 86_400_000)  # weeks and months aggregate days
            return length % source == 0
        return False

    def _public_sub(self, conn: Connection, conn_id: str, op: str, topics: list[str], req_id: object) -> dict[str, Any]:
        invalid = []
        for topic in topics:
            if not self._public_topic_ok(topic):
                invalid.append(topic)
                continue
            if op == "subscribe":
                conn.subscribe(topic)
            else:
                conn.unsubscribe(topic)
        if invalid or not topics:
            return self._ws_reply(False, f"error:invalid topic(s) {invalid}", conn_id, op, req_id)
        return self._ws_reply(True, op, conn_id, op, req_id)

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
            log.exception("bybit emulator: could not translate %s", type(event).__name__)

    def _on_kline(self, event: KlineEvent) -> None:
        klines = self._kline_watch.get(event.symbol)
        if klines is None:
            return
        for code in klines.live():
            topic = f"kline.{code}.{event.symbol}"
            agg, confirm = self._fold_kline(event, code)
            payload = {
                "topic": topic,
                "data": [kline_item(code, agg, confirm, event.time)],
                "ts": event.time,
                "type": "snapshot",
            }
            self.hub.publish(topic, _dumps(payload))

    def _fold_kline(self, event: KlineEvent, code: str) -> tuple[KlineAgg, bool]:
        """The candle of interval ``code`` containing ``event.candle``, and whether it is final."""
        candle: Candle = event.candle
        start = bucket_start(code, candle.open_time)
        end = bucket_next(code, start)
        key = (event.symbol, code)
        state = self._kline_state.get(key)
        if state is None or state[0] != start:
            state = (start, self._seed(event.symbol, code, candle, start))
        closed_part = state[1]
        agg = closed_part.add(candle) if closed_part is not None else KlineAgg.of(code, candle)
        confirm = event.closed and candle.open_time + candle.interval_ms >= end
        if confirm:
            self._kline_state.pop(key, None)  # the next bucket starts fresh
        elif event.closed:
            self._kline_state[key] = (start, agg)
        else:
            self._kline_state[key] = state
        return agg, confirm

    def _seed(self, symbol: str, code: str, candle: Candle, start: int) -> KlineAgg | None:
        """Aggregate of the source candles of the bucket that closed before ``candle`` (a
        subscription that starts mid-bucket must still report the whole bucket, as REST does)."""
        if candle.open_time <= start:
            return None
        before = self.engine.candles(
            symbol,
            candle.interval_ms,
            start=start,
            end=candle.open_time - 1,
            limit=(candle.open_time - start) // candle.interval_ms + 1,
        )
        aggs = aggregate(code, [c for c in before if c.open_time < candle.open_time])
        return aggs[-1] if aggs else None

    def _on_trade(self, event: TradeEvent) -> None:
        symbol = event.symbol
        previous = self._ticks.get(symbol)
        direction = tick_direction(previous[0] if previous else None, event.price, previous[1] if previous else "")
        self._ticks[symbol] = (event.price, direction)
        topic = f"publicTrade.{symbol}"
        if self.hub.subscribers(topic):
            item = {
                "T": event.time,
                "s": symbol,
                "S": "Sell" if event.buyer_is_maker else "Buy",  # the taker's side
                "v": dec_market(event.amount),
                "p": dec_market(event.price),
                "L": direction,
                "i": str(event.trade_id),
                "BT": False,
                "RPI": False,
                "seq": event.trade_id,
            }
            self.hub.publish(topic, _dumps({"topic": topic, "type": "snapshot", "ts": event.time, "data": [item]}))
        topic = f"tickers.{symbol}"
        if self.hub.subscribers(topic):
            self._ticker_seq += 1
            payload = {
                "topic": topic,
                "ts": event.time,
                "type": "snapshot",
                "cs": self._ticker_seq,
                "data": self.ticker_record(symbol, with_book=False),
            }
            self.hub.publish(topic, _dumps(payload))

    def _on_book(self, event: BookEvent) -> None:
        for depth in ORDERBOOK_DEPTHS:
            topic = f"orderbook.{depth}.{event.symbol}"
            if not self.hub.subscribers(topic):
                continue
            data = {
                "s": event.symbol,
                "b": [[dec_market(event.bid), dec_market(event.bid_amount)]],
                "a": [[dec_market(event.ask), dec_market(event.ask_amount)]],
                "u": event.update_id,
                "seq": event.update_id,
            }
            payload = {"topic": topic, "type": "snapshot", "ts": event.time, "data": data, "cts": event.time}
            self.hub.publish(topic, _dumps(payload))

    def _private_push(self, topic: str, account: str, time_ms: int, item: dict[str, Any]) -> None:
        payload = {"id": uuid.uuid4().hex, "topic": topic, "creationTime": time_ms, "data": [item]}
        self.hub.publish(topic, _dumps(payload), account=account)

    def _on_order(self, event: OrderEvent) -> None:
        order = event.order
        account = order.account
        for topic in ("order", "order.spot"):
            if self.hub.subscribers(topic):
                self._private_push(topic, account, event.time, order_push(order, self._extra(order), event.execution))
        if event.fill is None:
            return
        spec = self.engine.markets.get(order.symbol)
        for topic in ("execution", "execution.spot"):
            if self.hub.subscribers(topic):
                self._private_push(topic, account, event.time, execution_push(event.fill, order, spec))

    def _on_balance(self, event: BalanceEvent) -> None:
        if not self.hub.subscribers("wallet"):
            return
        coins = [wallet_coin(b, self._usd_price(b.asset)) for b in event.balances]
        self._private_push("wallet", event.account, event.time, wallet_account(coins))
