"""The core WebSocket connection: one thread, many streams, reconnects, heartbeats, typed events.

Exchange plugins subclass :class:`BaseWebSocket` and supply the URL, the subscribe/auth
messages and a parser; everything else (threading, reconnect with backoff and jitter,
re-authentication and resubscription, heartbeats, the staleness watchdog, event routing and
counters) lives here. See the class docstring for the subclass contract.

Design notes (measured, see ``bench/bench_websocket.py``)
-------------------------------------------------------
* websocket-client opens the connection (URL parsing, proxies, TLS, the HTTP upgrade) and
  frames what we send. Inbound frames are decoded here: websocket-client's pure-Python frame
  reader costs more per message than parsing a kline into a :class:`~realtrade_core.events.Bar`,
  and its UTF-8 check (``skip_utf8_validation=False``) about six times that again. Our decoder
  reads the socket in large chunks and cuts complete frames out of the buffer; text is decoded
  with ``bytes.decode`` (C), so invalid UTF-8 shows up as a parse error, never a crash.
* One thread per connection does everything: connect, authenticate, subscribe, read, answer
  pings, send application/protocol pings, watch for staleness, wait out the backoff. Other
  threads never touch the socket (an SSL object must not be used by two threads at once):
  ``send``/``subscribe``/``reconnect``/``stop`` queue work and wake the thread through a
  socket pair that it polls together with the connection.
"""

from __future__ import annotations

import json
import logging
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlsplit

import websocket as _wsclient

from .contract import Contract, placeholder
from .errors import ConfigurationError, WebSocketContractError
from .events import (
    DATA_EVENTS,
    ConnectionEvent,
    ConnectionState,
    ErrorEvent,
    Event,
)
from .validation import MalformedMessage

__all__ = [
    "Authenticated",
    "BaseWebSocket",
    "Control",
    "Outgoing",
    "Reconnect",
    "Resubscribe",
    "WebSocketConfig",
    "WebSocketContractError",
    "WebSocketStats",
]

logger = logging.getLogger(__name__)

Outgoing = str | bytes | Mapping[str, Any] | list[Any]
"""A message to send: ``str`` goes as a text frame, ``bytes`` as a binary frame, a dict or list
is JSON-encoded (compact) and sent as text."""

Callback = Callable[[Any], None]

CONNECTION_EVENTS: frozenset[str] = frozenset({"connected", "disconnected", "max_reconnect", "error"})
"""Events emitted by the connection itself."""

_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_CHUNK = 256 * 1024  # bytes asked of the socket per read
_BIG_CHUNK = 1024 * 1024  # largest single read while completing a big frame
_MAX_WAIT = 1.0  # longest poll while idle (seconds); stop/send/reconnect wake it at once
_LIVE_STATES = frozenset({ConnectionState.CONNECTING, ConnectionState.AUTHENTICATING, ConnectionState.CONNECTED})


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class WebSocketConfig:
    """Connection settings. Plugins set per-exchange defaults in ``default_config``; users
    override with ``dataclasses.replace(SomeWebSocket.default_config, ...)``.

    ``stale_after`` must exceed the longest silence a healthy connection can have: pair it with
    a heartbeat (the server's pings, ``app_ping_interval`` or ``ping_frame_interval``), or a
    quiet stream is replaced every ``stale_after`` seconds.

    Backoff is "full jitter": before reconnect attempt *n* the thread waits a uniformly random
    time in ``[0, min(reconnect_delay_max, reconnect_delay * 2**(n-1))]``. *n* counts
    consecutive failures; it goes back to 0 once a connection has stayed connected for
    ``healthy_after`` seconds. After ``max_reconnect_attempts`` consecutive failures the
    connection emits ``max_reconnect`` and its thread ends (``None``: never give up).
    """

    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 30.0
    max_reconnect_attempts: int | None = 20
    healthy_after: float = 30.0
    stale_after: float | None = 60.0  # replace the connection after this long with no frame
    app_ping_interval: float | None = None  # send ping_message() this often (Bybit: 20 s)
    ping_frame_interval: float | None = None  # send protocol ping frames this often
    connect_timeout: float = 10.0  # TCP + TLS + upgrade; also bounds one blocked send
    auth_timeout: float = 10.0  # wait this long for Authenticated after auth_messages()
    max_message_size: int = 64 * 1024 * 1024
    sslopt: Mapping[str, Any] | None = None  # passed to websocket.WebSocket(sslopt=...)
    connect_options: Mapping[str, Any] = field(default_factory=dict)  # proxies, origin, ...

    def __post_init__(self) -> None:
        if self.reconnect_delay < 0 or self.reconnect_delay_max < self.reconnect_delay:
            raise ValueError("need 0 <= reconnect_delay <= reconnect_delay_max")
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 0:
            raise ValueError("max_reconnect_attempts must be >= 0 or None")
        for name in ("stale_after", "app_ping_interval", "ping_frame_interval"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None")
        for name in ("healthy_after", "connect_timeout", "auth_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be >= 1")


@dataclass(frozen=True, slots=True)
class WebSocketStats:
    """Counters of one connection object (over all its reconnects)."""

    messages: int  # data frames received (text or binary messages)
    reconnects: int  # connection attempts after the first one
    parse_errors: int  # parse() raised, bad UTF-8, or a non-event was returned
    unknown_messages: int  # parse() returned None
    callback_errors: int  # a listener raised
    stale_reconnects: int  # connections replaced by the staleness watchdog
    last_message_time: float | None  # time.monotonic() of the last frame of any kind
    connected_since: float | None  # time.monotonic() when the current connection became ready
    quarantined: int = 0  # bad messages dropped (unreadable or invalid); by kind: .quarantined


class Control(Event):
    """Base of the control directives a parser may return next to data events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Authenticated(Control):
    """Return from ``parse`` for the exchange's auth acknowledgement (or rejection).

    After ``ok=True`` the connection subscribes its streams and becomes ``connected``; after
    ``ok=False`` it emits ``error`` and reconnects with backoff (a failed attempt).
    """

    ok: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reconnect(Control):
    """Return from ``parse`` to replace the connection now, without backoff and without
    counting a failure: Binance ``serverShutdown``, ``eventStreamTerminated`` and the like."""

    reason: str = "server requested"


@dataclass(frozen=True, slots=True)
class Resubscribe(Control):
    """Return from ``parse`` to send the subscribe messages for every active stream again on
    the open connection (e.g. the server says a subscription lapsed)."""

    reason: str = ""


class _SessionEnd(Exception):
    def __init__(self, reason: str, failed: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed


class _ProtocolError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Small helpers


def wall_ms() -> int:
    """Epoch milliseconds on this machine's clock."""
    return int(time.time() * 1000)


def exchange_clock(store: Any) -> Callable[[], int]:
    """Epoch milliseconds on the exchange's clock as ``store`` measured it: what a private
    stream signs its login with."""
    return lambda: wall_ms() + store.time_offset_ms


def market_clock(store: Any) -> Callable[[], int] | None:
    """The clock the exchange's market data runs on, for checking candle times: an in-process
    emulator's market clock (it may run fast, stand still or replay the past), else the
    exchange clock as ``store`` measured it. ``None`` for an emulator in another process, whose
    market clock can run at any speed: candles are then checked against absolute bounds here,
    and against the emulator's clock by the feed."""
    emulator = getattr(store, "emulator", None)
    if emulator is not None:
        engine = emulator.engine
        return lambda: int(engine.now())
    if store.venue == "emulator":
        return None
    return exchange_clock(store)


def connection_for_store(
    store: Any,
    *,
    private: bool,
    urls: Mapping[str, str],
    public_cls: type[BaseWebSocket],
    private_cls: type[BaseWebSocket],
    config: WebSocketConfig | None = None,
    private_stream: str = "private stream",
) -> BaseWebSocket:
    """The usual ``for_store``: ``public_cls(url=, symbols=, config=)`` for market data, or
    ``private_cls(url=, credentials=, symbols=, server_time=, config=)`` for the account, signed
    with the exchange's clock as the store measured it, not ours."""
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
    from .interlock import check_emulator_urls

    check_emulator_urls(
        chosen.values(),
        exchange=exchange,
        ccxt_id=getattr(store, "ccxt_id", None) or exchange,
        allow_remote=bool(getattr(store, "allow_remote_emulator", False)),
        what="stream URL",
    )
    return chosen


def _encode(message: Outgoing) -> tuple[int, bytes | str]:
    if isinstance(message, str):
        return _OP_TEXT, message
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _OP_BINARY, bytes(message)
    return _OP_TEXT, json.dumps(message, separators=(",", ":"))


class _LogLimiter:
    """At most one log record per key and interval; counts what it swallowed."""

    __slots__ = ("_next", "_suppressed", "interval")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        if not logger.isEnabledFor(level):
            return
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._next[key] = now + self.interval
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (%d similar suppressed)"
            args += (skipped,)
        logger.log(level, msg, *args, exc_info=exc_info)


class _Poller:
    """Wait until the connection or the wake-up socket is readable (poll, or select on Windows)."""

    def __init__(self, sock: socket.socket, wake: socket.socket) -> None:
        self._sock_fd = sock.fileno()
        self._wake = wake
        self._wake_fd = wake.fileno()
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            flags = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
            self._poll.register(self._sock_fd, flags)
            self._poll.register(self._wake_fd, flags)

    def wait(self, timeout: float) -> bool:
        """True when the connection is readable; drains the wake-up socket when it fired."""
        if self._poll is not None:
            ready = [fd for fd, _ in self._poll.poll(max(0, int(timeout * 1000) + 1))]
        else:  # pragma: no cover - Windows
            ready = select.select([self._sock_fd, self._wake_fd], [], [], max(0.0, timeout))[0]
        if self._wake_fd in ready:
            try:
                self._wake.recv(4096)
            except (BlockingIOError, InterruptedError):
                pass
        return self._sock_fd in ready


# --------------------------------------------------------------------------------------------


_SIGNATURES = {
    "exchange": "exchange: ClassVar[str] (the exchange name, e.g. 'binance')",
    "url": "url(self, streams: tuple[str, ...]) -> str",
    "parse": "parse(self, message: str | bytes) -> Iterable[Event] | None",
    "subscribe_messages": "subscribe_messages(self, streams) -> Iterable[Outgoing] (or set streams_in_url = True)",
    "unsubscribe_messages": "unsubscribe_messages(self, streams) -> Iterable[Outgoing] (or set streams_in_url = True)",
    "ping_message": "ping_message(self) -> Outgoing (the config sets app_ping_interval)",
}


class BaseWebSocket(Contract):
    """One WebSocket connection carrying many streams, on its own thread.

    Subclass contract
    -----------------
    ``missing_members()`` lists what a subclass lacks (the plugin registry calls it and rejects
    an incomplete plugin at registration); instantiating an incomplete subclass raises
    :class:`WebSocketContractError` (a ``TypeError``) naming the class and the signature of
    every missing member. A complete plugin for a well-behaved exchange::

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
    ``default_config: ClassVar[WebSocketConfig]``   optional  per-exchange defaults (ping interval, ...)
    ``extra_events: ClassVar[frozenset[str]]``      optional  ``EVENT`` names of plugin-defined events,
                                                              so ``on()`` accepts them
    =============================================  ========  ============================================

    Control directives. ``parse`` may return, next to data events, :class:`Authenticated`
    (the auth acknowledgement: subscription waits for it), :class:`Reconnect` (server control
    messages such as Binance ``serverShutdown``: replace the connection now, no backoff, not a
    failure) and :class:`Resubscribe`. They are handled by the connection, never delivered to
    listeners. Server pings are answered and count as liveness; nothing needs writing for them.

    Events
    ------
    ``on(name, callback)`` returns a function that removes the callback (so does
    ``off(name, callback)``). Each callback gets one event object.

    * ``"bar"``, ``"trade"``, ``"book"``, ``"order"``, ``"fill"``, ``"balance"``: the data
      events of :mod:`realtrade_core.events` (each class's ``EVENT``); ``"data"``: all of them.
    * ``"connected"``: ready (authenticated and subscribed), also after every reconnect;
      ``"disconnected"``: a ready connection ended (its reason says why) — a feed backfills
      from REST in between; ``"max_reconnect"``: gave up, the thread ends. All three get a
      :class:`~realtrade_core.events.ConnectionEvent`.
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
        self._listeners: dict[str, tuple[Callback, ...]] = {}
        self._routes: dict[type, tuple[Callback, ...]] = {}
        self._directives: dict[type, Callback] = {
            Authenticated: self._on_authenticated,
            Reconnect: self._on_reconnect,
            Resubscribe: self._on_resubscribe,
        }
        self._rng = random.Random()
        self._log = _LogLimiter()

        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._finished = False
        self._state = ConnectionState.IDLE
        self._host = "?"
        self._url_parts: tuple[str, ...] = ()
        self._ws: _wsclient.WebSocket | None = None  # only while a connection attempt runs
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
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = _OP_TEXT
        self._fragment_size = 0
        self._next_app_ping = 0.0
        self._next_frame_ping = 0.0
        self._readable: Callable[[], bool] = lambda: False

        self._attempt = 0
        self._ready_at: float | None = None
        self._auth_deadline: float | None = None
        self._ws_now: _wsclient.WebSocket | None = None  # the socket thread's live connection

        self.clock: Callable[[], int] | None = None  # the exchange's market clock, for checks
        self._hidden: tuple[str, ...] = ()  # secrets to remove from anything logged
        self._quarantined: dict[str, int] = {}
        self._quarantine_logged: set[str] = set()

        self._messages = 0
        self._reconnects = 0
        self._parse_errors = 0
        self._unknown = 0
        self._callback_errors = 0
        self._stale = 0
        self._last_rx: float | None = None

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

    @property
    def quarantined(self) -> dict[str, int]:
        """Bad messages dropped so far, by kind: ``"bar"``, ``"trade"``, ``"book"``, ``"order"``,
        ``"fill"``, ``"balance"`` (a message of that kind that was unreadable or invalid) and
        ``"malformed"`` (not even its kind could be read: truncated JSON, bad UTF-8 ...)."""
        return dict(self._quarantined)

    def hide_in_logs(self, *secrets: str | None) -> None:
        """Never log these values (API key, secret): they are cut out of quarantined messages
        and error texts."""
        hidden = set(self._hidden) | {s for s in secrets if s and len(s) >= 4}
        self._hidden = tuple(sorted(hidden, key=len, reverse=True))

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event_object)`` for ``event``; returns a function that undoes it."""
        known = DATA_EVENTS | CONNECTION_EVENTS | self.extra_events | {"data"}
        if event not in known:
            raise ValueError(f"unknown event {event!r}; known events: {', '.join(sorted(known))}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._lock:
            listeners = dict(self._listeners)
            listeners[event] = (*listeners.get(event, ()), callback)
            self._listeners = listeners
            self._routes = {}
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Remove one registration of ``callback`` for ``event`` (no error if absent)."""
        with self._lock:
            current = self._listeners.get(event, ())
            if callback not in current:
                return
            index = current.index(callback)
            listeners = dict(self._listeners)
            listeners[event] = current[:index] + current[index + 1 :]
            self._listeners = listeners
            self._routes = {}

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
        frame = _encode(message)
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
        frames = [_encode(m) for m in messages]
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

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                reason, failed = self._session()
                if self._stopping.is_set():
                    break
                if failed:
                    self._attempt += 1
                    limit = self.config.max_reconnect_attempts
                    if limit is not None and self._attempt > limit:
                        logger.error(
                            "%s: giving up after %d failed reconnect attempts (%s)",
                            self.name,
                            limit,
                            reason,
                        )
                        self._set_state(ConnectionState.FAILED)
                        self._emit(
                            "max_reconnect",
                            self._connection_event(ConnectionState.FAILED, f"gave up after {limit} attempts: {reason}"),
                        )
                        return
                    delay = self._backoff(self._attempt)
                    self._set_state(ConnectionState.DISCONNECTED)
                    logger.info("%s: reconnecting in %.2fs (attempt %d): %s", self.name, delay, self._attempt, reason)
                    if self._stopping.wait(delay):
                        break
                else:
                    logger.info("%s: reconnecting now: %s", self.name, reason)
                self._reconnects += 1
            self._set_state(ConnectionState.STOPPED)
        except BaseException:  # pragma: no cover - a bug here must not vanish silently
            logger.exception("%s: connection thread crashed", self.name)
            self._set_state(ConnectionState.FAILED)
            raise
        finally:
            with self._cond:
                self._finished = True
                self._open = False
                self._outbox.clear()
                for sock in (self._wake_r, self._wake_w):
                    if sock is not None:
                        sock.close()
                self._wake_r = self._wake_w = None
                self._cond.notify_all()

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        ceiling = min(cfg.reconnect_delay_max, cfg.reconnect_delay * 2.0 ** min(attempt - 1, 60))
        return self._rng.uniform(0.0, ceiling)

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
                self._remember_url(url)
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
            self._ready_at = None
            self._auth_deadline = None
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
        self._last_rx = now
        self._ws_now = ws
        with self._lock:
            self._open = True
        logger.info("%s: connected to %s", self.name, self._host)
        try:
            try:
                auth = [_encode(m) for m in (self.auth_messages() or ())]
            except Exception as exc:
                self._error("hook", exc, "auth_messages() failed")
                raise _SessionEnd(f"auth_messages() failed: {type(exc).__name__}", True) from None
            waits_for_ack = bool(auth) and self.auth_requires_ack
            if waits_for_ack:
                self._auth_deadline = now + self.config.auth_timeout
                self._set_state(ConnectionState.AUTHENTICATING)
            for opcode, payload in auth:
                self._send_frame(ws, opcode, payload)
            if not waits_for_ack:
                self._become_ready(ws)
            self._read_loop(ws, sock)
        except _SessionEnd as end:
            reason, failed = end.reason, end.failed
        except _ProtocolError as exc:
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

    def _read_loop(self, ws: _wsclient.WebSocket, sock: socket.socket) -> NoReturn:
        """The hot path: cut frames out of a buffer filled by large reads, parse, dispatch.

        Ends only by raising (_SessionEnd, _ProtocolError, OSError, ...).
        """
        cfg = self.config
        max_size = cfg.max_message_size
        parse = self.parse
        admit = self._admit
        mono = time.monotonic
        recv = sock.recv
        pending = getattr(sock, "pending", None)  # SSL: decrypted bytes already buffered
        assert self._wake_r is not None
        poller = _Poller(sock, self._wake_r)
        self._fragments = None
        self._next_app_ping = self._next_frame_ping = mono()

        def readable() -> bool:  # bytes waiting: the peer is alive even if we were slow
            return bool(pending and pending()) or poller.wait(0)

        self._readable = readable
        next_due = self._service(ws, mono())
        fragmenting = False
        count = self._messages
        buf = b""
        pos = 0
        while True:
            avail = len(buf) - pos
            need = 2
            if avail >= 2:
                length = buf[pos + 1]
                if length < 126:
                    head = 2
                elif length == 126:
                    head = 4
                    length = (buf[pos + 2] << 8) | buf[pos + 3] if avail >= 4 else -1
                elif length == 127:
                    head = 10
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big") if avail >= 10 else -1
                    if length > max_size:
                        raise _ProtocolError(f"frame of {length} bytes exceeds max_message_size")
                else:
                    raise _ProtocolError("masked frame from the server")
                if length < 0:
                    need = head
                elif head + length <= avail:
                    first = buf[pos]
                    start = pos + head
                    pos = start + length
                    if first == 0x81 and not fragmenting:  # final, unfragmented text frame
                        count += 1
                        try:
                            events = parse(buf[start:pos].decode())
                            if events is None:
                                self._unknown_message(buf[start:pos])
                            elif events:
                                events = admit(events)
                                routes = self._routes
                                for event in events:
                                    callbacks = routes.get(event.__class__)
                                    if callbacks is None:
                                        callbacks = self._route(event.__class__)
                                    for callback in callbacks:
                                        try:
                                            callback(event)
                                        except Exception as exc:
                                            self._callback_failed(callback, event, exc)
                        except Exception as exc:
                            self._parse_failed(exc, buf[start:pos])
                        if self._end is not None:
                            self._messages = count
                            raise _SessionEnd(*self._end)
                    else:
                        self._messages = count
                        fragmenting = self._slow_frame(ws, first, buf[start:pos])
                        count = self._messages
                    continue
                else:
                    need = head + length
            # Not enough buffered for a frame: service timers and queued work, then read.
            self._messages = count
            now = mono()
            if now >= next_due or self._attention:
                next_due = self._service(ws, now)
            if pending is None or not pending():
                wait = next_due - now
                if not poller.wait(_MAX_WAIT if wait > _MAX_WAIT else wait):
                    continue
            parts = [buf[pos:]]
            have = avail
            try:
                while have < need:
                    data = recv(_CHUNK if need - have < _CHUNK else min(need - have, _BIG_CHUNK))
                    if not data:
                        if self._stopping.is_set():
                            raise _SessionEnd("stopped", False)
                        raise _SessionEnd("connection closed by the server (no close frame)", True)
                    parts.append(data)
                    have += len(data)
                    self._last_rx = mono()
                    if have < need and (pending is None or not pending()):
                        # A large frame: keep reading only while bytes are already there.
                        if not poller.wait(0):
                            break
            finally:
                buf = b"".join(parts) if len(parts) > 1 else parts[0]
                pos = 0

    def _slow_frame(self, ws: _wsclient.WebSocket, first: int, payload: bytes) -> bool:
        """Everything but a final text frame. Returns whether a fragmented message is open."""
        fin = first & 0x80
        opcode = first & 0x0F
        if first & 0x70:
            raise _ProtocolError("reserved bits set (no extension was negotiated)")
        if opcode >= 0x8:
            if not fin or len(payload) > 125:
                raise _ProtocolError("fragmented or oversized control frame")
            if opcode == _OP_PING:
                self._send_frame(ws, _OP_PONG, payload)
            elif opcode == _OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                text = payload[2:].decode("utf-8", "replace")[:120]
                try:
                    ws.send_close(code if code is not None and 1000 <= code < 5000 else 1000)
                except Exception:
                    pass
                raise _SessionEnd(f"closed by the server (code {code}{': ' + text if text else ''})", True)
            elif opcode != _OP_PONG:
                raise _ProtocolError(f"unknown control opcode {opcode:#x}")
            return self._fragments is not None
        if opcode == 0x0:
            if self._fragments is None:
                raise _ProtocolError("continuation frame without a started message")
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if self._fragment_size > self.config.max_message_size:
                raise _ProtocolError("fragmented message exceeds max_message_size")
            if not fin:
                return True
            data = b"".join(self._fragments)
            opcode = self._fragment_opcode
            self._fragments = None
        elif opcode in (_OP_TEXT, _OP_BINARY):
            if self._fragments is not None:
                raise _ProtocolError("new message inside a fragmented message")
            if not fin:
                self._fragments = [payload]
                self._fragment_opcode = opcode
                self._fragment_size = len(payload)
                return True
            data = payload
        else:
            raise _ProtocolError(f"unknown data opcode {opcode:#x}")
        self._deliver(data, opcode == _OP_TEXT)
        return False

    def _deliver(self, data: bytes, text: bool) -> None:
        """Parse and dispatch one message (the slow path's twin of the inlined hot path)."""
        self._messages += 1
        try:
            events = self.parse(data.decode() if text else data)
            if events is None:
                self._unknown_message(data)
                return
            for event in self._admit(events) if events else ():
                callbacks = self._routes.get(event.__class__)
                if callbacks is None:
                    callbacks = self._route(event.__class__)
                for callback in callbacks:
                    try:
                        callback(event)
                    except Exception as exc:
                        self._callback_failed(callback, event, exc)
        except Exception as exc:
            self._parse_failed(exc, data)
        if self._end is not None:
            raise _SessionEnd(*self._end)

    def _service(self, ws: _wsclient.WebSocket, now: float) -> float:
        """Timers and queued work. Returns when it next needs to run (monotonic)."""
        cfg = self.config
        if self._attention:
            self._attention = False
            if self._stopping.is_set():
                raise _SessionEnd("stopped", False)
            if self._end is not None:
                raise _SessionEnd(*self._end)
            outbox = self._outbox
            while outbox:
                try:
                    opcode, payload = outbox.popleft()
                except IndexError:
                    break
                self._send_frame(ws, opcode, payload)
        due = now + 3600.0
        last = self._last_rx if self._last_rx is not None else now
        if cfg.stale_after is not None:
            if now - last >= cfg.stale_after and self._readable():
                self._last_rx = last = now  # data is waiting: the peer is alive, we were slow
            if now - last >= cfg.stale_after:
                self._stale += 1
                msg = f"stale: no data, ping or pong for {now - last:.1f}s"
                logger.warning("%s: %s; replacing the connection", self.name, msg)
                self._emit("error", ErrorEvent(self.exchange, "stale", msg, "", wall_ms()))
                raise _SessionEnd(msg, True)
            due = min(due, last + cfg.stale_after)
        if self._auth_deadline is not None:
            if now >= self._auth_deadline:
                msg = f"no auth acknowledgement within {cfg.auth_timeout:g}s"
                self._emit("error", ErrorEvent(self.exchange, "auth", msg, "", wall_ms()))
                raise _SessionEnd(msg, True)
            due = min(due, self._auth_deadline)
        if cfg.app_ping_interval is not None:
            if now >= self._next_app_ping:
                try:
                    ping = _encode(self.ping_message())
                except Exception as exc:
                    self._error("hook", exc, "ping_message() failed")
                    raise _SessionEnd(f"ping_message() failed: {type(exc).__name__}", True) from None
                self._send_frame(ws, *ping)
                self._next_app_ping = now + cfg.app_ping_interval
            due = min(due, self._next_app_ping)
        if cfg.ping_frame_interval is not None:
            if now >= self._next_frame_ping:
                self._send_frame(ws, _OP_PING, b"")
                self._next_frame_ping = now + cfg.ping_frame_interval
            due = min(due, self._next_frame_ping)
        if self._attempt and self._ready_at is not None:
            healthy_at = self._ready_at + cfg.healthy_after
            if now >= healthy_at:
                logger.debug("%s: healthy for %gs, attempt counter reset", self.name, cfg.healthy_after)
                self._attempt = 0
            else:
                due = min(due, healthy_at)
        return due

    def _send_frame(self, ws: _wsclient.WebSocket, opcode: int, payload: bytes | str) -> None:
        # Socket thread only. A failed or timed-out send may have left half a frame: the
        # connection is unusable, so it ends (and is replaced).
        try:
            ws.send(payload, opcode)
        except Exception as exc:
            if self._stopping.is_set():
                raise _SessionEnd("stopped", False) from None
            self._error("send", exc, "send failed")
            raise _SessionEnd(f"send failed: {type(exc).__name__}", True) from None

    def _become_ready(self, ws: _wsclient.WebSocket) -> None:
        with self._cond:
            streams = tuple(self._streams)
            if streams and not self.streams_in_url:
                try:
                    frames = [_encode(m) for m in self.subscribe_messages(streams)]
                except Exception as exc:
                    self._error("hook", exc, "subscribe_messages() failed")
                    raise _SessionEnd(f"subscribe_messages() failed: {type(exc).__name__}", True) from None
                for opcode, payload in frames:
                    self._send_frame(ws, opcode, payload)
            self._auth_deadline = None
            self._ready_at = time.monotonic()
            self._state = ConnectionState.CONNECTED
            self._cond.notify_all()
        logger.info("%s: ready with %d stream(s)", self.name, len(streams))
        self._emit("connected", self._connection_event(ConnectionState.CONNECTED, "ready"))

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
            return
        ws = self._ws_now
        if ws is None:
            return
        try:
            self._become_ready(ws)
        except _SessionEnd as end:
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
            for opcode, payload in [_encode(m) for m in self.subscribe_messages(streams)]:
                self._send_frame(ws, opcode, payload)
        except _SessionEnd as end:
            self._end = (end.reason, end.failed)
        except Exception as exc:
            self._error("hook", exc, "subscribe_messages() failed")
            self._end = (f"subscribe_messages() failed: {type(exc).__name__}", True)

    # ---------------------------------------------------------------- dispatch and accounting

    def _route(self, cls: type) -> tuple[Callback, ...]:
        directive = self._directives.get(cls)
        if directive is not None:
            callbacks: tuple[Callback, ...] = (directive,)
        elif (
            isinstance(cls, type)
            and issubclass(cls, Event)
            and cls.EVENT
            and not issubclass(cls, (Control, ConnectionEvent, ErrorEvent))
        ):
            listeners = self._listeners
            callbacks = listeners.get(cls.EVENT, ()) + listeners.get("data", ())
        else:
            callbacks = (self._not_an_event,)
        self._routes[cls] = callbacks
        return callbacks

    def _not_an_event(self, obj: object) -> None:
        self._parse_errors += 1
        self._log.log(
            "not-event",
            logging.WARNING,
            "%s: parse() returned %s, which is not a data event; dropped",
            self.name,
            type(obj).__name__,
        )

    def _emit(self, name: str, event: Event) -> None:
        for callback in self._listeners.get(name, ()):
            try:
                callback(event)
            except Exception as exc:
                self._callback_failed(callback, event, exc)

    def _callback_failed(self, callback: Callback, event: object, exc: Exception) -> None:
        self._callback_errors += 1
        self._log.log(
            "callback",
            logging.ERROR,
            "%s: %s listener %s raised %s: %s",
            self.name,
            type(event).__name__,
            getattr(callback, "__qualname__", type(callback).__name__),  # never a repr: it may hold keys
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    def _admit(self, events: Iterable[Event]) -> tuple[Event, ...]:
        """The message's events when every one is valid; raises MalformedMessage otherwise."""
        if type(events) is not tuple:
            events = tuple(events)
        now: int | None = None
        clock = self.clock
        for event in events:
            check = getattr(event, "problem", None)
            if check is None:
                continue  # not an event: routed to _not_an_event
            if clock is not None and now is None and getattr(event, "uses_clock", False):
                try:
                    now = clock()
                except Exception:  # a clock that cannot answer only skips the time window
                    clock = None
            problem = check(now)
            if problem is not None:
                raise MalformedMessage(getattr(event, "EVENT", "") or "malformed", problem)
        return events

    def _parse_failed(self, exc: Exception, data: bytes) -> None:
        """Quarantine one message that did not parse or did not pass the checks."""
        self._parse_errors += 1
        if isinstance(exc, MalformedMessage):
            kind, reason = exc.kind, exc.reason
        else:
            kind, reason = "malformed", f"{type(exc).__name__}: {exc}"
        self._quarantined[kind] = self._quarantined.get(kind, 0) + 1
        if not logger.isEnabledFor(logging.WARNING):
            return
        text = self._scrub(data[:4096].decode("utf-8", "replace"), 200)
        if kind not in self._quarantine_logged:
            self._quarantine_logged.add(kind)
            logger.warning(
                "%s: quarantined a bad %s message (%s): %s; further ones are counted in .quarantined",
                self.name,
                kind,
                self._scrub(reason),
                text,
            )
        else:
            self._log.log(
                f"quarantine-{kind}", logging.DEBUG, "%s: quarantined a bad %s message (%s): %s",
                self.name, kind, self._scrub(reason), text,
            )  # fmt: skip

    def _unknown_message(self, data: bytes) -> None:
        self._unknown += 1
        self._log.log("unknown", logging.DEBUG, "%s: unknown message: %.200r", self.name, data)

    def _connection_event(self, state: ConnectionState, reason: str) -> ConnectionEvent:
        return ConnectionEvent(self.exchange, state, reason, self._attempt, wall_ms())

    def _error(self, where: str, exc: BaseException, what: str) -> None:
        message = f"{what}: {self._scrub(str(exc))}" if str(exc) else what
        logger.warning("%s: %s (%s)", self.name, message, type(exc).__name__)
        self._emit("error", ErrorEvent(self.exchange, where, message, type(exc).__name__, wall_ms()))

    def _remember_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        self._host = f"{host}:{parts.port}" if parts.port else host
        secret_bits = [url, parts.path, parts.query, parts.fragment]
        self._url_parts = tuple(sorted((p for p in secret_bits if len(p) > 1), key=len, reverse=True))

    def _scrub(self, text: str, limit: int = 300) -> str:
        """Remove the URL's path and query (listen keys, tokens) and the hidden secrets from a
        message, then shorten it to ``limit`` characters."""
        for part in self._url_parts + self._hidden:
            text = text.replace(part, "…")
        return text if len(text) <= limit else text[: limit - 1] + "…"
