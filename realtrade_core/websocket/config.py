"""Connection settings (:class:`WebSocketConfig`) and counters (:class:`WebSocketStats`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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

    ``max_connection_age`` replaces a connection once it has been open that long, at once and
    not as a failure (its ``disconnected`` reason says "connection age limit"): for exchanges
    that cut every connection after a while (Binance: 24 h), so the cut comes on our terms.
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
    max_connection_age: float | None = None  # seconds; replace an older connection (None: never)

    def __post_init__(self) -> None:
        if self.reconnect_delay < 0 or self.reconnect_delay_max < self.reconnect_delay:
            raise ValueError("need 0 <= reconnect_delay <= reconnect_delay_max")
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 0:
            raise ValueError("max_reconnect_attempts must be >= 0 or None")
        for name in ("stale_after", "app_ping_interval", "ping_frame_interval", "max_connection_age"):
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
