"""WebSocket half of the Binance emulator dialect: market streams and the WebSocket API.

Market streams (``/ws/<stream>``, ``/ws``, ``/stream?streams=a/b``) carry ``<symbol>@trade``,
``@aggTrade``, ``@bookTicker`` and ``@kline_<interval>`` for every interval that is a whole
multiple of the replayed one; SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY /
GET_PROPERTY work on any of them. Each stream maps to two hub topics, the raw one (its name) and
the wrapped one for combined connections; an engine event's payload is encoded once, and only
when someone listens (the combined text wraps the raw one).

The WebSocket API (``/ws-api/v3``) answers ``ping``, ``time``, ``session.status``,
``userDataStream.subscribe.signature`` and ``userDataStream.unsubscribe``; user-data events of
the subscribed account arrive as ``{"subscriptionId": N, "event": {...}}``.

Engine events reach :meth:`BinanceStreams.on_event` under the engine lock, from whichever
thread caused them, so translation here only builds payloads and hands them to the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtrade_core.emulator.model import (
    BalanceEvent,
    BookEvent,
    Candle,
    EngineEvent,
    ExecutionType,
    KlineEvent,
    OrderEvent,
    TradeEvent,
)

from .rest import BinanceRest
from .wire import (
    BAD_API_KEY,
    BAD_SIGNATURE,
    BinanceError,
    Interval,
    OrderList,
    account_position,
    agg_trade_event,
    book_ticker_event,
    combined_text,
    execution_name,
    execution_report,
    intervals_for,
    kline_event,
    list_status_event,
    mandatory,
    merge_candle,
    signature_ok,
    trade_event,
    ws_signature_payload,
)

if TYPE_CHECKING:
    from realtrade_core.emulator.engine import Engine
    from realtrade_core.emulator.faults import Faults
    from realtrade_core.emulator.hub import Connection, ConnectionHub, TopicWatch

log = logging.getLogger(__name__)

_COMBINED = "|combined"  # suffix of the hub topic that carries a stream wrapped for /stream
_USER_TOPIC = "userData:"  # + subscription id; published with the account as filter
_MAX_STREAMS = 1024  # per connection, as Binance allows
_CLOSE_TIMEOUT = 1.0  # seconds the server waits for a client's close frame
_STALL_POLL = 0.05
_METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One market stream: its name, its two hub topics and what feeds it."""

    name: str
    combined_topic: str
    symbol: str
    kind: str  # "trade" | "aggTrade" | "bookTicker" | "kline"
    interval: Interval | None = None


@dataclass(slots=True)
class _SymbolStreams:
    trade: StreamInfo
    agg_trade: StreamInfo
    book: StreamInfo
    source_ms: int
    klines: TopicWatch[tuple[Interval, StreamInfo]]  # kline streams of every interval it can serve


@dataclass(slots=True)
class _KlineState:
    """The kline of one (symbol, interval) bucket as streamed so far."""

    bucket: int
    closed_part: Candle | None = None  # aggregate of the bucket's closed source candles
    first_trade: int = -1
    last_trade: int = -1
    final_sent: bool = False


@dataclass(slots=True)
class _Session:
    conn: Connection
    last_pong: float
    combined: bool = False  # market streams: wrap payloads as {"stream", "data"}
    streams: list[str] = field(default_factory=list)  # market streams, in subscription order
    subscriptions: dict[int, str] = field(default_factory=dict)  # WS API: id -> account
    next_subscription: int = 0
    connected_since: int = 0
    rate_limits: bool = True


class _StreamRequestError(Exception):
    """A market-stream request error: ``{"error": {"code", "msg"}, "id"}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BinanceStreams(BinanceRest):
    """Market streams, the WebSocket API and event translation; mixed into the dialect."""

    def __init__(self, engine: Engine, hub: ConnectionHub, faults: Faults, settings: dict) -> None:
        super().__init__(engine, hub, faults, settings)
        self._stream_table: dict[str, StreamInfo] = {}
        self._by_symbol: dict[str, _SymbolStreams] = {}
        for symbol, spec in self.engine.markets.items():
            if spec.contract:
                continue  # perpetuals stream under /fstream (.futures)
            low = symbol.lower()
            source_ms = self.engine.interval_ms(symbol)

            def info(name: str, kind: str, interval: Interval | None = None, symbol: str = symbol) -> StreamInfo:
                stream = StreamInfo(name, name + _COMBINED, symbol, kind, interval)
                self._stream_table[name] = stream
                return stream

            klines = [(iv, info(f"{low}@kline_{iv.name}", "kline", iv)) for iv in intervals_for(source_ms)]
            self._by_symbol[symbol] = _SymbolStreams(
                trade=info(f"{low}@trade", "trade"),
                agg_trade=info(f"{low}@aggTrade", "aggTrade"),
                book=info(f"{low}@bookTicker", "bookTicker"),
                source_ms=source_ms,
                klines=self.hub.watch(
                    (((iv, stream), (stream.name, stream.combined_topic)) for iv, stream in klines),
                    # Nobody listens any more: forget the state, it is rebuilt from the engine when needed.
                    on_idle=lambda kline, symbol=symbol: self._kline_states.pop((symbol, kline[0].name), None),
                ),
            )
        self._kline_states: dict[tuple[str, str], _KlineState] = {}
        self._last_trade: dict[str, TradeEvent] = {}
        self._execution_ids = 0
        self._sessions_lock = threading.Lock()
        self._market_sessions: dict[Connection, _Session] = {}
        self._api_sessions: dict[Connection, _Session] = {}
        # account -> subscription ids with at least one subscriber; replaced, never mutated, so
        # on_event reads it without a lock.
        self._user_subs: dict[str, tuple[int, ...]] = {}
        self._user_counts: dict[tuple[str, int], int] = {}

    def stream_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self._market_handler),
            web.get("/ws/{stream}", self._market_handler),
            web.get("/stream", self._market_handler),
            web.get("/ws-api/v3", self._api_handler),
        ]

    @property
    def streams(self) -> dict[str, StreamInfo]:
        """Every market stream name this emulator serves."""
        return dict(self._stream_table)

    # --- engine events --------------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, TradeEvent):
            self._on_trade(event)
        elif isinstance(event, KlineEvent):
            self._on_kline(event)
        elif isinstance(event, BookEvent):
            streams = self._by_symbol.get(event.symbol)
            if streams is not None and self._wanted(streams.book):
                self._publish(
                    streams.book,
                    book_ticker_event(
                        event.symbol, event.update_id, event.bid, event.bid_amount, event.ask, event.ask_amount
                    ),
                )
        elif isinstance(event, OrderEvent):
            self._on_order(event)
        elif isinstance(event, BalanceEvent):
            subs = self._user_subs.get(event.account)
            if subs:
                self._publish_user(event.account, subs, account_position(event.balances, event.time))

    def _wanted(self, stream: StreamInfo) -> bool:
        hub = self.hub
        return bool(hub.subscribers(stream.name) or hub.subscribers(stream.combined_topic))

    def _publish(self, stream: StreamInfo, payload: dict[str, Any]) -> None:
        """Hand one payload, encoded once, to the raw and the combined topic."""
        hub = self.hub
        raw, combined = hub.subscribers(stream.name), hub.subscribers(stream.combined_topic)
        if not (raw or combined):
            return
        text = _dumps(payload)
        if raw:
            hub.publish(stream.name, text)
        if combined:
            hub.publish(stream.combined_topic, combined_text(stream.name, text))

    def _on_trade(self, trade: TradeEvent) -> None:
        symbol = trade.symbol
        self._last_trade[symbol] = trade
        streams = self._by_symbol.get(symbol)
        if streams is None:
            return
        for interval, _ in streams.klines.live():
            state = self._kline_states.get((symbol, interval.name))
            if state is not None and state.bucket <= trade.time < state.bucket + interval.ms:
                if state.first_trade < 0:
                    state.first_trade = trade.trade_id
                state.last_trade = trade.trade_id
        if self._wanted(streams.trade):
            self._publish(streams.trade, trade_event(trade))
        if self._wanted(streams.agg_trade):
            self._publish(streams.agg_trade, agg_trade_event(trade))

    def _on_kline(self, event: KlineEvent) -> None:
        """Stream the source kline and every wanted multiple of it.

        A higher interval's kline is the source candles of its bucket folded together (the same
        rule as the REST klines); it is final exactly once, with the last source candle of the
        bucket, or late, when the next bucket starts, if the source has a hole at its end.
        """
        symbol = event.symbol
        streams = self._by_symbol.get(symbol)
        if streams is None:
            return
        candle = event.candle
        source_ms = streams.source_ms
        for interval, stream in streams.klines.live():
            key = (symbol, interval.name)
            bucket = interval.align(candle.open_time)
            state = self._kline_states.get(key)
            if state is None or state.bucket != bucket:
                if state is not None and state.bucket < bucket and not state.final_sent and state.closed_part:
                    self._publish(
                        stream,
                        kline_event(
                            symbol,
                            interval.name,
                            state.closed_part,
                            True,
                            event.time,
                            state.first_trade,
                            state.last_trade,
                        ),
                    )
                state = self._new_kline_state(symbol, interval, bucket, candle.open_time, source_ms)
                self._kline_states[key] = state
            if state.final_sent:
                continue  # a bucket already closed gets no more updates
            current = merge_candle(state.closed_part, candle, bucket, interval.ms)
            if event.closed:
                state.closed_part = current
            final = event.closed and candle.open_time + source_ms >= bucket + interval.ms
            self._publish(
                stream,
                kline_event(symbol, interval.name, current, final, event.time, state.first_trade, state.last_trade),
            )
            if final:
                state.final_sent = True

    def _new_kline_state(
        self, symbol: str, interval: Interval, bucket: int, open_time: int, source_ms: int
    ) -> _KlineState:
        state = _KlineState(bucket)
        if open_time > bucket:
            # Subscribed mid-bucket: fold in the bucket's closed source candles from the engine
            # (re-entrant under the engine lock; only candles already closed are asked for).
            rows = self.engine.candles(symbol, source_ms, bucket, open_time - 1, (open_time - bucket) // source_ms)
            for row in rows:
                state.closed_part = merge_candle(state.closed_part, row, bucket, interval.ms)
        last = self._last_trade.get(symbol)
        # The engine prints a step's trade before its kline update: it may open this bucket.
        if last is not None and bucket <= last.time < bucket + interval.ms:
            state.first_trade = state.last_trade = last.trade_id
        return state

    def _on_order(self, event: OrderEvent) -> None:
        order = event.order
        order_list = self._track_list(event) if order.list_id is not None else None
        subs = self._user_subs.get(order.account)
        if not subs:
            return
        execution = execution_name(event.execution)
        if execution is None:
            return  # a stop trigger: Binance sends no executionReport for it
        meta = self._order_meta.get(order.order_id) or self._pending_meta.get((order.account, order.client_order_id))
        cancel_id = self._cancel_ids.get(order.order_id) if execution == "CANCELED" else None
        self._execution_ids += 1
        report = execution_report(order, execution, event.fill, event.time, self._execution_ids, meta, cancel_id)
        self._publish_user(order.account, subs, report)
        if order_list is not None:
            self._publish_user(order.account, subs, list_status_event(order_list, event.time))

    def _track_list(self, event: OrderEvent) -> OrderList | None:
        """Follow an OCO leg's event; returns the list when its status changes: both legs placed
        (EXEC_STARTED), or the contingency played out (ALL_DONE: a leg traded or triggered and
        the other expired, or both were cancelled)."""
        order = event.order
        order_list = self._order_list(order)
        if event.execution is ExecutionType.NEW:
            if all(order.order_id != leg for leg, _ in order_list.legs):
                order_list.legs.append((order.order_id, order.client_order_id))
                order_list.legs.sort()
            return order_list if len(order_list.legs) == 2 else None
        if order_list.done:
            return None
        if not order.status.is_open:
            order_list.closed.add(order.order_id)
        if event.execution is ExecutionType.EXPIRED or len(order_list.closed) >= len(order_list.legs):
            order_list.done = True
            return order_list
        return None

    def _publish_user(self, account: str, subs: tuple[int, ...], event: dict[str, Any]) -> None:
        for sid in subs:
            self.hub.publish(_USER_TOPIC + str(sid), _dumps({"subscriptionId": sid, "event": event}), account=account)

    # --- connection plumbing ------------------------------------------------------------------

    async def _run_connection(
        self,
        request: web.Request,
        kind: str,
        on_open: Callable[[_Session], None],
        on_text: Callable[[_Session, str], None],
    ) -> web.WebSocketResponse:
        registry = self._market_sessions if kind == "market" else self._api_sessions

        def opened(conn: Connection) -> None:
            session = conn.state = _Session(conn, asyncio.get_running_loop().time(), connected_since=self.server_time())
            with self._sessions_lock:
                registry[conn] = session
            on_open(session)

        def closed(conn: Connection) -> None:
            with self._sessions_lock:
                registry.pop(conn, None)
            if conn.state is not None:
                self._drop_user_subscriptions(conn.state)

        def pong(conn: Connection) -> None:
            conn.state.last_pong = asyncio.get_running_loop().time()

        return await self.hub.serve(
            request,
            kind,
            lambda conn, text: on_text(conn.state, text),
            on_open=opened,
            on_close=closed,
            on_pong=pong,
            keepalive=lambda ws, conn: self._keepalive(ws, conn.state),
            autoping=False,
            timeout=_CLOSE_TIMEOUT,
            max_msg_size=1 << 20,
        )

    async def _keepalive(self, ws: web.WebSocketResponse, session: _Session) -> None:
        """Binance's rules: a ping frame every ``ping_interval`` s, disconnect when no pong came
        for ``pong_timeout`` s, close after ``max_lifetime`` s whatever happens."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        interval = float(settings.get("ping_interval", 20.0))
        timeout = float(settings.get("pong_timeout", 60.0))
        lifetime = float(settings.get("max_lifetime", 86_400.0))
        start = loop.time()
        next_ping = start + interval
        end_of_life = start + lifetime
        conn = session.conn
        try:
            while not ws.closed:
                now = loop.time()
                if now >= end_of_life:
                    log.info("Binance emulator: connection reached its %.0f s lifetime, closing it", lifetime)
                    await ws.close()
                    return
                if conn.stalled:
                    # A stalled server neither pings nor holds the client to its pongs.
                    session.last_pong = now
                    next_ping = max(next_ping, now + _STALL_POLL)
                    await asyncio.sleep(_STALL_POLL)
                    continue
                if now - session.last_pong >= timeout:
                    log.info("Binance emulator: no pong for %.1f s, disconnecting the client", now - session.last_pong)
                    await ws.close()
                    return
                if now >= next_ping:
                    await ws.ping(str(self.server_time()).encode())
                    next_ping = now + interval
                wake = min(next_ping, session.last_pong + timeout, end_of_life)
                await asyncio.sleep(max(0.0, wake - loop.time()))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("Binance emulator keepalive stopped: %s", exc)

    # --- market streams -------------------------------------------------------------------------

    async def _market_handler(self, request: web.Request) -> web.StreamResponse:
        combined = request.path.startswith("/stream")
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            path_stream = request.match_info.get("stream")
            names = [path_stream] if path_stream else []
        unknown = [n for n in names if n not in self._stream_table]
        if unknown:
            return web.json_response({"code": -1121, "msg": f"Invalid stream name: {unknown[0]}"}, status=400)

        def on_open(session: _Session) -> None:
            session.combined = combined
            for name in names:
                self._subscribe(session, name)

        return await self._run_connection(request, "market", on_open, self._market_message)

    def _topic(self, session: _Session, name: str) -> str:
        return self._stream_table[name].combined_topic if session.combined else name

    def _subscribe(self, session: _Session, name: str) -> None:
        if name not in session.streams:
            session.streams.append(name)
            session.conn.subscribe(self._topic(session, name))

    def _unsubscribe(self, session: _Session, name: str) -> None:
        if name in session.streams:
            session.streams.remove(name)
            session.conn.unsubscribe(self._topic(session, name))

    def _market_message(self, session: _Session, text: str) -> None:
        request_id: Any = None
        try:
            try:
                message = json.loads(text)
            except ValueError as exc:
                raise _StreamRequestError(3, f"Invalid JSON: {exc}") from None
            if not isinstance(message, dict):
                raise _StreamRequestError(2, "Invalid request: expected a JSON object")
            request_id = message.get("id")
            if isinstance(request_id, bool) or not (
                request_id is None or isinstance(request_id, str) or (isinstance(request_id, int) and request_id >= 0)
            ):
                request_id = None
                raise _StreamRequestError(2, "Invalid request: request ID must be an unsigned integer")
            result = self._market_request(session, message)
        except _StreamRequestError as exc:
            session.conn.send({"error": {"code": exc.code, "msg": exc.msg}, "id": request_id})
            return
        session.conn.send({"result": result, "id": request_id})

    def _market_request(self, session: _Session, message: dict[str, Any]) -> Any:
        method = message.get("method")
        if method is None:
            raise _StreamRequestError(2, "Invalid request: missing field `method`")
        params = message.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise _StreamRequestError(2, "Invalid request: params must be a list of stream names")
            unknown = [p for p in params if p not in self._stream_table]
            if unknown:
                raise _StreamRequestError(2, f"Invalid request: unknown stream name `{unknown[0]}`")
            if method == "SUBSCRIBE":
                if len(set(session.streams) | set(params)) > _MAX_STREAMS:
                    raise _StreamRequestError(2, f"Invalid request: too many streams (at most {_MAX_STREAMS})")
                for name in params:
                    self._subscribe(session, name)
            else:
                for name in params:
                    self._unsubscribe(session, name)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(session.streams)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                raise _StreamRequestError(2, "Invalid request: property name must be a string")
            if params[0] != "combined":
                raise _StreamRequestError(0, "Unknown property")
            if method == "GET_PROPERTY":
                return session.combined
            if len(params) != 2 or not isinstance(params[1], bool):
                raise _StreamRequestError(1, "Invalid value type: expected Boolean")
            if params[1] != session.combined:
                names = list(session.streams)
                for name in names:
                    self._unsubscribe(session, name)
                session.combined = params[1]
                for name in names:
                    self._subscribe(session, name)
            return None
        raise _StreamRequestError(2, f"Invalid request: unknown variant `{method}`, expected one of {_METHODS}")

    def send_server_shutdown(self) -> int:
        """Send the ``serverShutdown`` event on every market-stream connection (Binance sends it
        before maintenance disconnects); returns how many connections got it."""
        event = {"e": "serverShutdown", "E": self.server_time()}
        with self._sessions_lock:
            sessions = list(self._market_sessions.values())
        for session in sessions:
            session.conn.send({"stream": "!serverShutdown", "data": event} if session.combined else event)
        return len(sessions)

    # --- WebSocket API --------------------------------------------------------------------------

    async def _api_handler(self, request: web.Request) -> web.StreamResponse:
        rate_limits = request.query.get("returnRateLimits", "true").lower() != "false"

        def on_open(session: _Session) -> None:
            session.rate_limits = rate_limits

        return await self._run_connection(request, "api", on_open, self._api_message)

    def _api_message(self, session: _Session, text: str) -> None:
        request_id: Any = None
        weight = 1
        try:
            try:
                message = json.loads(text)
            except ValueError:
                raise BinanceError(-1102, "A mandatory parameter was not sent, was empty/null, or malformed.") from None
            if not isinstance(message, dict):
                raise BinanceError(-1102, "A mandatory parameter was not sent, was empty/null, or malformed.")
            request_id = message.get("id")
            if isinstance(request_id, (bool, float, dict, list)):
                request_id = None
                raise BinanceError(-1102, "Mandatory parameter 'id' was not sent, was empty/null, or malformed.")
            method = message.get("method")
            if not isinstance(method, str) or not method:
                raise mandatory("method")
            params = message.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise mandatory("params")
            weight = 2 if method.startswith(("userDataStream", "session")) else 1
            result = self._api_request(session, method, params)
            answer: dict[str, Any] = {"id": request_id, "status": 200, "result": result}
        except BinanceError as exc:
            answer = {"id": request_id, "status": exc.status, "error": exc.body()}
        used = self._use_weight(weight)
        if session.rate_limits:
            answer["rateLimits"] = [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                    "count": used,
                }
            ]
        session.conn.send(answer)

    def _api_request(self, session: _Session, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.server_time()}
        if method == "session.status":
            return {
                "apiKey": None,
                "authorizedSince": None,
                "connectedSince": session.connected_since,
                "returnRateLimits": session.rate_limits,
                "serverTime": self.server_time(),
                "userDataStream": bool(session.subscriptions),
            }
        if method == "userDataStream.subscribe.signature":
            return self._subscribe_user_data(session, params)
        if method == "userDataStream.unsubscribe":
            return self._unsubscribe_user_data(session, params)
        if method in ("userDataStream.subscribe", "session.logon"):
            # session.logon needs an Ed25519 key; the emulator's accounts have HMAC keys only.
            raise BinanceError(-1002, "You are not authorized to execute this request.", status=401)
        raise BinanceError(-1020, f"This operation is not supported: unknown method '{method}'.")

    def _subscribe_user_data(self, session: _Session, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("apiKey", "timestamp", "signature"):
            if params.get(name) in (None, ""):
                raise mandatory(name)
        api_key = params["apiKey"]
        secret = self.engine.secret_for(str(api_key))
        if secret is None:
            raise BinanceError(*BAD_API_KEY, status=401)
        if not signature_ok(secret, ws_signature_payload(params), str(params["signature"])):
            raise BinanceError(*BAD_SIGNATURE)
        try:
            timestamp = int(params["timestamp"])
            recv_window = None if params.get("recvWindow") is None else int(params["recvWindow"])
        except (TypeError, ValueError):
            raise mandatory("timestamp") from None
        self._check_timestamp(timestamp, recv_window)
        conn = session.conn
        if conn.account not in (None, api_key):
            raise BinanceError(-1002, "This connection already streams another account's user data.", status=401)
        sid = session.next_subscription
        session.next_subscription += 1
        session.subscriptions[sid] = api_key
        conn.account = api_key
        conn.subscribe(_USER_TOPIC + str(sid))
        self._count_user_subscription(api_key, sid, +1)
        log.debug("Binance emulator: user data stream %d subscribed", sid)
        return {"subscriptionId": sid}

    def _unsubscribe_user_data(self, session: _Session, params: dict[str, Any]) -> dict[str, Any]:
        sid = params.get("subscriptionId")
        if sid is None:
            self._drop_user_subscriptions(session)
            return {}
        if isinstance(sid, bool) or not isinstance(sid, int) or sid not in session.subscriptions:
            raise BinanceError(-1130, "Data sent for parameter 'subscriptionId' is not valid.")
        self._end_subscription(session, sid)
        return {}

    def _end_subscription(self, session: _Session, sid: int) -> None:
        account = session.subscriptions.pop(sid, None)
        if account is None:
            return
        session.conn.unsubscribe(_USER_TOPIC + str(sid))
        self._count_user_subscription(account, sid, -1)

    def _drop_user_subscriptions(self, session: _Session) -> None:
        for sid in list(session.subscriptions):
            self._end_subscription(session, sid)

    def _count_user_subscription(self, account: str, sid: int, delta: int) -> None:
        with self._sessions_lock:
            key = (account, sid)
            count = self._user_counts.get(key, 0) + delta
            if count > 0:
                self._user_counts[key] = count
            else:
                self._user_counts.pop(key, None)
            subs = dict(self._user_subs)
            active = tuple(sorted(s for (a, s) in self._user_counts if a == account))
            if active:
                subs[account] = active
            else:
                subs.pop(account, None)
            self._user_subs = subs

    def terminate_user_data_streams(self, api_key: str | None = None) -> int:
        """Send ``eventStreamTerminated`` on every user-data subscription (of ``api_key``, or
        all) and end them, as Binance does when a session's subscription is revoked; clients
        must subscribe again. Thread-safe; returns how many subscriptions were ended."""

        def terminate() -> int:
            with self._sessions_lock:
                sessions = list(self._api_sessions.values())
            ended = 0
            event = {"e": "eventStreamTerminated", "E": self.server_time()}
            for session in sessions:
                for sid, account in list(session.subscriptions.items()):
                    if api_key is None or account == api_key:
                        session.conn.send({"subscriptionId": sid, "event": event})
                        self._end_subscription(session, sid)
                        ended += 1
            return ended

        return self.hub.call_on_loop(terminate)
