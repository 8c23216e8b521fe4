"""Heartbeat and reconnect: keeping one logical connection alive across many real ones.

:class:`KeepAlive` is the part of :class:`~realtrade_core.websocket.connection.BaseWebSocket`
(a mixin) that runs the connection's thread: one session after another (:meth:`_run`), with
full-jitter backoff between failed ones, and inside a session the timers (:meth:`_service`):
the staleness watchdog, the auth deadline, application and protocol pings, the maximum
connection age and the reset of the failure count once a connection has proved healthy.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from ..events import ConnectionState, ErrorEvent
from .clock import wall_ms
from .frames import OP_PING, SessionEnd
from .messages import encode

if TYPE_CHECKING:
    import websocket as _wsclient

logger = logging.getLogger("realtrade_core.websocket")


class KeepAlive:
    """The connection thread's loop and timers (a mixin of BaseWebSocket)."""

    def _init_keepalive(self) -> None:
        self._rng = random.Random()
        self._attempt = 0  # consecutive failed sessions
        self._reconnects = 0
        self._stale = 0
        self._last_rx: float | None = None  # time.monotonic() of the last frame of any kind
        self._opened_at: float | None = None  # when the current connection opened
        self._ready_at: float | None = None  # when it became ready (authenticated, subscribed)
        self._auth_deadline: float | None = None
        self._ack_deadline: float | None = None  # subscriptions unanswered until then (see connection)
        self._next_app_ping = 0.0
        self._next_frame_ping = 0.0

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

    def _service(self, ws: _wsclient.WebSocket, now: float) -> float:
        """Timers and queued work. Returns when it next needs to run (monotonic)."""
        cfg = self.config
        if self._attention:
            self._attention = False
            if self._stopping.is_set():
                raise SessionEnd("stopped", False)
            if self._end is not None:
                raise SessionEnd(*self._end)
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
                raise SessionEnd(msg, True)
            due = min(due, last + cfg.stale_after)
        if self._auth_deadline is not None:
            if now >= self._auth_deadline:
                msg = f"no auth acknowledgement within {cfg.auth_timeout:g}s"
                self._emit("error", ErrorEvent(self.exchange, "auth", msg, "", wall_ms()))
                raise SessionEnd(msg, True)
            due = min(due, self._auth_deadline)
        if self._ack_deadline is not None:
            if now >= self._ack_deadline:
                self._ack_deadline = None
                self._subscriptions_unanswered()
            else:
                due = min(due, self._ack_deadline)
        if cfg.max_connection_age is not None and self._opened_at is not None:
            retire_at = self._opened_at + cfg.max_connection_age
            if now >= retire_at:
                raise SessionEnd(f"reconnect: connection age limit ({cfg.max_connection_age:g}s)", False)
            due = min(due, retire_at)
        if cfg.app_ping_interval is not None:
            if now >= self._next_app_ping:
                try:
                    ping = encode(self.ping_message())
                except Exception as exc:
                    self._error("hook", exc, "ping_message() failed")
                    raise SessionEnd(f"ping_message() failed: {type(exc).__name__}", True) from None
                self._send_frame(ws, *ping)
                self._next_app_ping = now + cfg.app_ping_interval
            due = min(due, self._next_app_ping)
        if cfg.ping_frame_interval is not None:
            if now >= self._next_frame_ping:
                self._send_frame(ws, OP_PING, b"")
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
