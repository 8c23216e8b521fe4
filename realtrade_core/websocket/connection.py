"""The core WebSocket connection: one thread, many streams, reconnects, heartbeats, typed events.

Exchange plugins subclass :class:`BaseWebSocket` and supply the URL, the subscribe/auth
messages and a parser; everything else lives in the core. This module holds the class, its
public API and one connection's life (connect with websocket-client, authenticate, subscribe,
serve, tear down); its other parts are mixins of their own modules:

* :mod:`.keepalive`: the thread's loop of sessions, backoff, heartbeats and timers;
* :mod:`.frames`: reading frames off the socket (the hot path; why it is not websocket-client's
  own reader is measured there);
* :mod:`.dispatch`: listeners, routing by event class, quarantine of bad messages, secrets out
  of the logs.

One thread per connection does everything: connect, authenticate, subscribe, read, answer
pings, send application/protocol pings, watch for staleness, wait out the backoff. Other
threads never touch the socket: ``send``/``subscribe``/``reconnect``/``stop`` queue work and
wake the thread through a socket pair that it polls together with the connection.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import websocket as _wsclient

from ..contract import Contract, placeholder
from ..errors import WebSocketContractError
from ..events import ConnectionEvent, ConnectionState, ErrorEvent, Event
from .clock import wall_ms
from .config import WebSocketConfig, WebSocketStats
from .dispatch import Dispatch
from .frames import FrameReader, ProtocolError, SessionEnd
from .keepalive import KeepAlive
from .messages import Authenticated, Outgoing, Reconnect, Resubscribe, Subscribed, encode

logger = logging.getLogger("realtrade_core.websocket")

_LIVE_STATES = frozenset({ConnectionState.CONNECTING, ConnectionState.AUTHENTICATING, ConnectionState.CONNECTED})

_SIGNATURES = {
    "exchange": "exchange: ClassVar[str] (the exchange name, e.g. 'binance')",
    "url": "url(self, streams: tuple[str, ...]) -> str",
    "parse": "parse(self, message: str | bytes) -> Iterable[Event] | None",
    "subscribe_messages": "subscribe_messages(self, streams) -> Iterable[Outgoing] (or set streams_in_url = True)",
    "unsubscribe_messages": "unsubscribe_messages(self, streams) -> Iterable[Outgoing] (or set streams_in_url = True)",
    "ping_message": "ping_message(self) -> Outgoing (the config sets app_ping_interval)",
    "stream_request": "stream_request(self, op, streams) -> Outgoing (an ExchangeConnection's (un)subscribe request)",
}


class BaseWebSocket(Dispatch, KeepAlive, FrameReader, Contract):
    """One WebSocket connection carrying many streams, on its own thread.

    Subclass contract
    -----------------
    ``missing_members()`` lists what a subclass lacks (the plugin registry calls it and rejects
    an incomplete plugin at registration); instantiating an incomplete subclass raises
    :class:`WebSocketContractError` (a ``TypeError``) naming the class and the signature of
    every missing member. The class a plugin registers (``ExchangeSpec.websocket``) also gives
    the store its connections: the classmethods ``for_store`` and ``stream_name`` of
    :class:`~realtrade_core.websocket.contract.StoreStreams`, checked at registration too. A
    complete connection for a well-behaved exchange::

        class BybitPublic(BaseWebSocket):
            exchange = "bybit"
            default_config = WebSocketConfig(app_ping_interval=20.0)

            def url(self, streams):
                return "wss://stream.bybit.com/v5/public/spot"

            def subscribe_messages(self, streams):
                return [{"op": "subscribe", "args": list(streams)}]

            def unsubscribe_messages(self, streams):
                return [{"op": "unsubscribe", "args": list(streams)}]

            def ping_message(self):
                return {"op": "ping"}

            def parse(self, message):
                msg = json.loads(message)
                if "topic" not in msg:
                    return ()  # subscription acks, pongs
                ...  # build Bar / Trade / BookTop from msg["data"]

    =============================================  ========  ============================================
    member                                          needed    meaning
    =============================================  ========  ============================================
    ``exchange: ClassVar[str]``                     required  exchange name, put in events and log lines
    ``url(streams) -> str``                         required  the URL for the next connection; called per
                                                              connection with the active streams (tuple)
    ``parse(message) -> Iterable[Event] | None``    required  one received message (``str``; ``bytes``
                                                              for binary frames) to events; ``None`` means
                                                              "not understood" (counted as unknown); an
                                                              empty tuple means "understood, nothing to
                                                              emit" (acks, pongs); raising counts a parse
                                                              error. Never crashes the connection.
    ``subscribe_messages(streams)``                 required  messages (:data:`Outgoing`) that subscribe
                                                              ``streams``; unless ``streams_in_url``
    ``unsubscribe_messages(streams)``               required  the reverse; unless ``streams_in_url``
    ``ping_message() -> Outgoing``                  required  application ping; only when the config's
                                                              ``app_ping_interval`` is set (Bybit style)
    ``auth_messages() -> Iterable[Outgoing]``       optional  sent first on every connection (so compute
                                                              timestamps/signatures in it); default none
    ``headers() -> Mapping[str, str] | None``       optional  extra HTTP headers for the upgrade request
    ``streams_in_url: ClassVar[bool]``              optional  ``False``. ``True``: ``url()`` encodes the
                                                              streams, nothing is sent to subscribe, and a
                                                              runtime (un)subscribe replaces the connection
    ``auth_requires_ack: ClassVar[bool]``           optional  ``True``: after ``auth_messages()`` wait (up
                                                              to ``auth_timeout``) for ``parse`` to return
                                                              :class:`Authenticated`; ``False``: auth is
                                                              fire-and-forget (or done by URL/headers)
    ``subscribe_requires_ack: ClassVar[bool]``      optional  ``False``. ``True``: the exchange answers
                                                              each subscription and ``parse`` returns
                                                              :class:`Subscribed` for it; ``connected``
                                                              waits (up to ``auth_timeout``) for those
                                                              answers, so a candle closing after it is
                                                              streamed, not missed
    ``default_config: ClassVar[WebSocketConfig]``   optional  per-exchange defaults (ping interval, ...)
    ``extra_events: ClassVar[frozenset[str]]``      optional  ``EVENT`` names of plugin-defined events,
                                                              so ``on()`` accepts them
    =============================================  ========  ============================================

    Control directives. ``parse`` may return, next to data events, :class:`Authenticated`
    (the auth acknowledgement: subscription waits for it), :class:`Reconnect` (server control
    messages such as Binance ``serverShutdown``: replace the connection now, no backoff, not a
    failure), :class:`Resubscribe` and :class:`Subscribed` (a subscription answered). They are
    handled by the connection, never delivered to listeners. Server pings are answered and
    count as liveness; nothing needs writing for them.

    Events
    ------
    ``on(name, callback)`` returns a function that removes the callback (so does
    ``off(name, callback)``). Each callback gets one event object.

    * ``"bar"``, ``"trade"``, ``"book"``, ``"order"``, ``"fill"``, ``"balance"``: the data
      events of :mod:`realtrade_core.events` (each class's ``EVENT``); ``"data"``: all of them.
    * ``"connected"``: ready (authenticated and subscribed; with ``subscribe_requires_ack``, the
      subscriptions answered), also after every reconnect; ``"disconnected"``: a ready
      connection ended (its reason says why) — a feed backfills from REST in between;
      ``"max_reconnect"``: gave up, the thread ends. All three get a
      :class:`~realtrade_core.events.ConnectionEvent`.
    * ``"subscribed"``: with ``subscribe_requires_ack``, streams subscribed on a ready
      connection have been answered; gets the :class:`Subscribed` naming them.
    * ``"error"``: a failed connect, lost or stale connection, rejected or timed-out auth, a
      failing hook; gets an :class:`~realtrade_core.events.ErrorEvent`.

    Callbacks run on the connection's thread and must be cheap (the backtrader side only
    enqueues). A callback that raises is logged (rate limited) and counted; the thread goes on.

    Quarantine. Listeners only ever get valid events. Every event a parser returns is checked
    (``event.problem(now_ms)``: types, finite non-negative prices, a candle's shape, alignment and
    open time against ``clock``); a message that fails to parse (``parse`` raised, e.g.
    :class:`~realtrade_core.validation.MalformedMessage` from the plugin's readers) or yields an
    invalid event is dropped whole, counted in :attr:`quarantined` by kind (``"bar"``,
    ``"order"`` ... or ``"malformed"``) and logged at WARNING the first time per kind (its text
    shortened, the URL's secrets and :meth:`hide_in_logs` values removed), at DEBUG after that.
    ``clock`` (epoch ms on the exchange's market clock, or None) is set by
    :func:`connection_for_store`.

    Threads. ``start()`` returns at once; ``stop(timeout)`` ends the thread and joins it.
    ``send``, ``subscribe``, ``unsubscribe``, ``reconnect`` and ``stop`` are thread-safe.
    Secrets: the URL's path and query, headers and sent payloads are never logged; the repr
    shows class, host and state only.
    """

    exchange: ClassVar[str] = ""
    streams_in_url: ClassVar[bool] = False
    auth_requires_ack: ClassVar[bool] = True
    subscribe_requires_ack: ClassVar[bool] = False
    default_config: ClassVar[WebSocketConfig] = WebSocketConfig()
    extra_events: ClassVar[frozenset[str]] = frozenset()

    _instances: ClassVar[int] = 0

    # ---------------------------------------------------------------- subclass hooks

    @placeholder
    def url(self, streams: tuple[str, ...]) -> str:
        """Return the URL for the next connection (required)."""
        raise NotImplementedError

    @placeholder
    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        """Turn one received message into events (required); see the class docstring."""
        raise NotImplementedError

    @placeholder
    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        """Messages that subscribe ``streams`` (required unless ``streams_in_url``)."""
        raise NotImplementedError

    @placeholder
    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        """Messages that unsubscribe ``streams`` (required unless ``streams_in_url``)."""
        raise NotImplementedError

    @placeholder
    def ping_message(self) -> Outgoing:
        """The application-level ping (required when ``app_ping_interval`` is set)."""
        raise NotImplementedError

    def auth_messages(self) -> Iterable[Outgoing]:
        """Messages sent first on every connection (optional; default none)."""
        return ()

    def headers(self) -> Mapping[str, str] | None:
        """Extra headers for the HTTP upgrade request (optional)."""
        return None

    # ---------------------------------------------------------------- construction

    def __init__(
        self,
        streams: Iterable[str] = (),
        *,
        config: WebSocketConfig | None = None,
        name: str | None = None,
    ) -> None:
        cfg = type(self).default_config if config is None else config
        self._check_contract(cfg)
        self.config = cfg
        BaseWebSocket._instances += 1
        self.name = name or f"{self.exchange}-{BaseWebSocket._instances}"

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._streams: dict[str, None] = {}
        self._init_dispatch()
        self._directives.update(
            {
                Authenticated: self._on_authenticated,
                Reconnect: self._on_reconnect,
                Resubscribe: self._on_resubscribe,
                Subscribed: self._on_subscribed,
            }
        )
        # Streams subscribed and not yet answered (subscribe_requires_ack), and whether the
        # "connected" of this connection waits for them.
        self._unanswered: dict[str, None] = {}
        self._ready_owed = False
        self._init_keepalive()
        self._init_frames()

        #: Called (on this connection's thread) when the exchange refused the login's timestamp:
        #: re-measures the exchange clock the next login is signed with (``store.sync_time``).
        self.clock_refused: Callable[[], Any] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._finished = False
        self._state = ConnectionState.IDLE
        self._host = "?"
        self._ws: _wsclient.WebSocket | None = None  # only while a connection attempt runs
        self._ws_now: _wsclient.WebSocket | None = None  # the socket thread's live connection
        self._open = False  # transport open: send() may queue
        self._outbox: deque[tuple[int, bytes | str]] = deque()
        self._attention = False  # another thread queued work or asked for stop/reconnect
        self._end: tuple[str, bool] | None = None  # (reason, failed) to end the session
        self._end_reason = ""
        self._handshaking = False  # ws.connect() running: stop() may shut the raw socket
        # Socket pair the thread polls next to the connection, so other threads can wake it.
        # Created by start(), closed when the thread ends.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._messages = 0

        self.subscribe(*streams)

    @classmethod
    def missing_members(cls, config: WebSocketConfig | None = None) -> list[str]:
        """Names of required members this class lacks (empty when it is complete).

        What is required depends on ``streams_in_url`` and on the config's
        ``app_ping_interval`` (``default_config`` unless ``config`` is given).
        """
        cfg = cls.default_config if config is None else config
        missing = [] if isinstance(cls.exchange, str) and cls.exchange else ["exchange"]
        names = ["url", "parse"]
        if not cls.streams_in_url:
            names += ["subscribe_messages", "unsubscribe_messages"]
        if cfg.app_ping_interval is not None:
            names.append("ping_message")
        missing += [n for n in names if getattr(getattr(cls, n), "__realtrade_placeholder__", False)]
        return missing

    @classmethod
    def _check_contract(cls, cfg: WebSocketConfig) -> None:
        missing = cls.missing_members(cfg)
        if missing:
            raise WebSocketContractError(
                f"{cls.__module__}.{cls.__qualname__} does not implement what BaseWebSocket requires: "
                f"{'; '.join(_SIGNATURES[n] for n in missing)}. See the table in BaseWebSocket's docstring."
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} host={self._host} state={self._state.value}>"

    # ---------------------------------------------------------------- public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def streams(self) -> tuple[str, ...]:
        """Active streams, in subscription order."""
        with self._lock:
            return tuple(self._streams)

    def is_connected(self) -> bool:
        """True while the connection is ready (authenticated and subscriptions sent)."""
        return self._state is ConnectionState.CONNECTED

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until ready; False on timeout or when the thread has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._state is ConnectionState.CONNECTED or self._finished, timeout)
            return self._state is ConnectionState.CONNECTED

    def stats(self) -> WebSocketStats:
        return WebSocketStats(
            messages=self._messages,
            reconnects=self._reconnects,
            parse_errors=self._parse_errors,
            unknown_messages=self._unknown,
            callback_errors=self._callback_errors,
            stale_reconnects=self._stale,
            last_message_time=self._last_rx,
            connected_since=self._ready_at,
            quarantined=sum(self._quarantined.values()),
        )

    def subscribe(self, *streams: str) -> None:
        """Add streams. Sent now if connected; remembered for every later (re)connection."""
        self._check_streams(streams)
        replace = False
        with self._lock:
            new = tuple(s for s in dict.fromkeys(streams) if s not in self._streams)
            if not new:
                return
            if self.streams_in_url:
                replace = self._state in _LIVE_STATES
            elif self._state is ConnectionState.CONNECTED:
                self._queue(self.subscribe_messages(new))
                self._await_answers(new)
            self._streams.update(dict.fromkeys(new))
        if replace:
            self.reconnect("streams changed")

    def unsubscribe(self, *streams: str) -> None:
        """Remove streams. Sent now if connected; not resubscribed later."""
        self._check_streams(streams)
        replace = False
        with self._lock:
            gone = tuple(s for s in dict.fromkeys(streams) if s in self._streams)
            if not gone:
                return
            if self.streams_in_url:
                replace = self._state in _LIVE_STATES
            elif self._state is ConnectionState.CONNECTED:
                self._queue(self.unsubscribe_messages(gone))
            for s in gone:
                del self._streams[s]
        if replace:
            self.reconnect("streams changed")

    def send(self, message: Outgoing) -> bool:
        """Queue ``message`` for the socket thread (it sends it at once).

        Returns False, queueing nothing, when no connection is open. A message queued on a
        connection that drops before sending it is discarded with that connection.
        """
        frame = encode(message)
        with self._lock:
            if not self._open:
                return False
            self._outbox.append(frame)
            self._poke()
        return True

    def reconnect(self, reason: str = "requested") -> None:
        """Replace the current connection now (no backoff, not counted as a failure).

        A connection being opened is replaced as soon as it is open; between attempts (during
        the backoff) there is nothing to replace.
        """
        with self._lock:
            if self._state in _LIVE_STATES:
                self._end = (f"reconnect: {reason}", False)
                self._poke()

    def start(self) -> None:
        """Start the connection thread (returns at once; no-op if it is running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._finished = False
            self._attempt = 0
            self._state = ConnectionState.CONNECTING
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._thread = threading.Thread(target=self._run, name=f"realtrade-ws-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Close the connection and end the thread; True once the thread has ended.

        From a callback (the connection's own thread) this only requests the stop.
        A connect in progress is aborted at once.
        """
        with self._lock:
            self._stopping.set()
            self._poke()
            ws = self._ws if self._handshaking else None
            thread = self._thread
        if ws is not None:
            sock = ws.sock
            if sock is not None:
                try:  # wake a blocked handshake; plain socket method, never the SSL layer
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    # ---------------------------------------------------------------- internals: other threads

    @staticmethod
    def _check_streams(streams: tuple[str, ...]) -> None:
        for s in streams:
            if not isinstance(s, str) or not s:
                raise ValueError(f"stream names must be non-empty strings, got {s!r}")

    def _queue(self, messages: Iterable[Outgoing]) -> None:
        # Called with the lock held and the connection ready.
        frames = [encode(m) for m in messages]
        self._outbox.extend(frames)
        self._poke()

    def _poke(self) -> None:
        self._attention = True
        wake = self._wake_w
        if wake is not None:
            try:
                wake.send(b"\0")
            except OSError:
                pass  # already awake (buffer full), or the thread just ended

    # ---------------------------------------------------------------- internals: the thread

    def _set_state(self, state: ConnectionState) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def _session(self) -> tuple[str, bool]:
        """One connection, from connect to close. Returns (reason it ended, failed?)."""
        cfg = self.config
        with self._cond:
            # Atomically with the snapshot: a later (un)subscribe sees a live state and, for
            # streams_in_url, asks for a replacement that this session will honour.
            self._end = None
            self._attention = False
            streams = tuple(self._streams)
            self._state = ConnectionState.CONNECTING
            self._cond.notify_all()
        ws = _wsclient.WebSocket(skip_utf8_validation=True, enable_multithread=False, sslopt=dict(cfg.sslopt or {}))
        with self._lock:
            self._ws = ws
        try:
            try:
                url = self.url(streams)
                self._host = self._remember_url(url)
                headers = self.headers()
            except Exception as exc:
                self._error("hook", exc, "url()/headers() failed")
                return f"url()/headers() failed: {type(exc).__name__}", True
            if self._stopping.is_set():
                return "stopped", False
            try:
                options: dict[str, Any] = dict(cfg.connect_options)
                if headers:
                    options["header"] = dict(headers)
                self._handshaking = True
                try:
                    ws.connect(url, timeout=cfg.connect_timeout, **options)
                finally:
                    self._handshaking = False
            except Exception as exc:
                if self._stopping.is_set():
                    return "stopped", False
                self._error("connect", exc, f"connect to {self._host} failed")
                return f"connect failed: {self._scrub(str(exc)) or type(exc).__name__}", True
            return self._serve(ws)
        finally:
            self._teardown(ws)

    def _teardown(self, ws: _wsclient.WebSocket) -> None:
        was_ready = self._state is ConnectionState.CONNECTED
        with self._cond:
            self._ws = None
            self._ws_now = None
            self._open = False
            self._outbox.clear()
            self._opened_at = self._ready_at = None
            self._auth_deadline = None
            self._unanswered.clear()
            self._ack_deadline = None
            self._ready_owed = False
            self._state = ConnectionState.DISCONNECTED
            self._cond.notify_all()
        sock = ws.sock
        if sock is not None:
            try:
                if ws.connected:
                    sock.settimeout(0.5)
                    ws.send_close()
            except Exception:
                pass
            ws.shutdown()
        if was_ready:
            reason = self._end_reason
            logger.info("%s: disconnected from %s: %s", self.name, self._host, reason)
            self._emit("disconnected", self._connection_event(ConnectionState.DISCONNECTED, reason))

    def _serve(self, ws: _wsclient.WebSocket) -> tuple[str, bool]:
        """Authenticate, subscribe, then read until the connection ends."""
        sock = ws.sock
        assert sock is not None
        now = time.monotonic()
        self._last_rx = self._opened_at = now
        self._ws_now = ws
        with self._lock:
            self._open = True
        logger.info("%s: connected to %s", self.name, self._host)
        try:
            try:
                auth = [encode(m) for m in (self.auth_messages() or ())]
            except Exception as exc:
                self._error("hook", exc, "auth_messages() failed")
                raise SessionEnd(f"auth_messages() failed: {type(exc).__name__}", True) from None
            waits_for_ack = bool(auth) and self.auth_requires_ack
            if waits_for_ack:
                self._auth_deadline = now + self.config.auth_timeout
                self._set_state(ConnectionState.AUTHENTICATING)
            for opcode, payload in auth:
                self._send_frame(ws, opcode, payload)
            if not waits_for_ack:
                self._become_ready(ws)
            self._read_loop(ws, sock)
        except SessionEnd as end:
            reason, failed = end.reason, end.failed
        except ProtocolError as exc:
            reason, failed = f"protocol error: {exc}", True
            self._error("recv", exc, "protocol error")
        except (OSError, _wsclient.WebSocketException) as exc:
            if self._stopping.is_set():
                reason, failed = "stopped", False
            elif self._end is not None:
                reason, failed = self._end
            else:
                reason, failed = f"connection lost: {type(exc).__name__}: {self._scrub(str(exc))}", True
                self._error("recv", exc, "connection lost")
        except Exception as exc:  # a bug in a hook or here: log it, reconnect
            logger.exception("%s: unexpected error on the connection thread", self.name)
            reason, failed = f"internal error: {type(exc).__name__}", True
            self._error("hook", exc, "unexpected error")
        self._end_reason = reason
        return reason, failed

    def _send_frame(self, ws: _wsclient.WebSocket, opcode: int, payload: bytes | str) -> None:
        # Socket thread only. A failed or timed-out send may have left half a frame: the
        # connection is unusable, so it ends (and is replaced).
        try:
            ws.send(payload, opcode)
        except Exception as exc:
            if self._stopping.is_set():
                raise SessionEnd("stopped", False) from None
            self._error("send", exc, "send failed")
            raise SessionEnd(f"send failed: {type(exc).__name__}", True) from None

    def _become_ready(self, ws: _wsclient.WebSocket) -> None:
        with self._cond:
            streams = tuple(self._streams)
            if streams and not self.streams_in_url:
                try:
                    frames = [encode(m) for m in self.subscribe_messages(streams)]
                except Exception as exc:
                    self._error("hook", exc, "subscribe_messages() failed")
                    raise SessionEnd(f"subscribe_messages() failed: {type(exc).__name__}", True) from None
                for opcode, payload in frames:
                    self._send_frame(ws, opcode, payload)
                self._await_answers(streams)
            self._auth_deadline = None
            self._ready_at = time.monotonic()
            self._state = ConnectionState.CONNECTED
            self._ready_owed = bool(self._unanswered)
            self._cond.notify_all()
        if not self._ready_owed:
            self._announce_ready(len(streams))

    def _announce_ready(self, streams: int) -> None:
        logger.info("%s: ready with %d stream(s)", self.name, streams)
        self._emit("connected", self._connection_event(ConnectionState.CONNECTED, "ready"))

    def _await_answers(self, streams: tuple[str, ...]) -> None:
        # Under the lock. Subscriptions sent: with subscribe_requires_ack, wait for their answers.
        if self.subscribe_requires_ack and streams:
            self._unanswered.update(dict.fromkeys(streams))
            if self._ack_deadline is None:
                self._ack_deadline = time.monotonic() + self.config.auth_timeout

    def _on_subscribed(self, event: Subscribed) -> None:
        with self._lock:
            answered = tuple(s for s in event.streams if s in self._unanswered)
            for stream in answered:
                del self._unanswered[stream]
            if not self._unanswered:
                self._ack_deadline = None
            owed = self._ready_owed and not self._unanswered and self._state is ConnectionState.CONNECTED
            if owed:
                self._ready_owed = False
            count = len(self._streams)
        if owed:
            self._announce_ready(count)
        elif answered and event.ok and not self._ready_owed:
            self._emit("subscribed", Subscribed(answered))

    def _subscriptions_unanswered(self) -> None:
        # The answer deadline passed (socket thread): go on as if subscribed; what the exchange
        # sends for the streams still arrives, and a feed's check after "connected" fetches the rest.
        with self._lock:
            late = tuple(self._unanswered)
        logger.warning(
            "%s: no answer to the subscription of %s within %gs; going on as subscribed",
            self.name, ", ".join(late), self.config.auth_timeout,
        )  # fmt: skip
        self._on_subscribed(Subscribed(late))

    # ---------------------------------------------------------------- directives

    def _on_authenticated(self, event: Authenticated) -> None:
        if self._state is not ConnectionState.AUTHENTICATING:
            logger.debug("%s: auth acknowledgement while not authenticating; ignored", self.name)
            return
        if not event.ok:
            msg = f"authentication rejected: {event.reason}" if event.reason else "authentication rejected"
            logger.error("%s: %s", self.name, msg)
            self._emit("error", ErrorEvent(self.exchange, "auth", msg, "", wall_ms()))
            self._end = (msg, True)
            if event.clock and self.clock_refused is not None:
                try:
                    self.clock_refused()  # else every new login is signed on the same wrong clock
                except Exception as exc:
                    logger.warning("%s: could not re-measure the exchange clock: %s", self.name, exc)
            return
        ws = self._ws_now
        if ws is None:
            return
        try:
            self._become_ready(ws)
        except SessionEnd as end:
            self._end = (end.reason, end.failed)

    def _on_reconnect(self, event: Reconnect) -> None:
        logger.info("%s: server asks to reconnect: %s", self.name, event.reason)
        self._end = (f"reconnect: {event.reason}", False)

    def _on_resubscribe(self, event: Resubscribe) -> None:
        ws = self._ws_now
        with self._lock:
            streams = tuple(self._streams)
            if ws is None or not streams or self.streams_in_url or not self.is_connected():
                return
        logger.info("%s: resubscribing %d stream(s): %s", self.name, len(streams), event.reason)
        try:
            for opcode, payload in [encode(m) for m in self.subscribe_messages(streams)]:
                self._send_frame(ws, opcode, payload)
        except SessionEnd as end:
            self._end = (end.reason, end.failed)
        except Exception as exc:
            self._error("hook", exc, "subscribe_messages() failed")
            self._end = (f"subscribe_messages() failed: {type(exc).__name__}", True)

    # ---------------------------------------------------------------- events of the connection

    def _connection_event(self, state: ConnectionState, reason: str) -> ConnectionEvent:
        return ConnectionEvent(self.exchange, state, reason, self._attempt, wall_ms())

    def _error(self, where: str, exc: BaseException, what: str) -> None:
        message = f"{what}: {self._scrub(str(exc))}" if str(exc) else what
        logger.warning("%s: %s (%s)", self.name, message, type(exc).__name__)
        self._emit("error", ErrorEvent(self.exchange, where, message, type(exc).__name__, wall_ms()))
