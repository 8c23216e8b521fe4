"""Reading frames off the socket: the connection's hot path (:class:`FrameReader`).

websocket-client opens the connection (URL parsing, proxies, TLS, the HTTP upgrade) and frames
what we send; inbound frames are cut out of the socket's bytes here. The reason is measured by
``bench/bench_websocket.py`` (Binance-style klines over loopback; on a 2-core machine, Python
3.11, websocket-client 1.9): websocket-client's ``recv()`` loop with parsing into a ``Bar``
delivers about 39,000 messages/s (25 us each; 110 us with its default UTF-8 check), this reader
about 80,000 (12.5 us, above a bare ``recv()`` loop that parses nothing). Its pure-Python frame
reader costs more per message than the parse itself. The reader takes the socket's bytes in
large chunks and cuts every complete frame out of the buffer; text is decoded with
``bytes.decode`` (C), so invalid UTF-8 shows up as a parse error, never a crash. Frames that
are not a final text frame (binary, fragments, pings, close) take the slow path.

One thread per connection reads; other threads never touch the socket (an SSL object must not
be used by two threads at once). It polls the socket together with a wake-up socket pair, so
``send``/``stop``/``reconnect`` from other threads take effect at once.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from .messages import OP_BINARY, OP_TEXT

if TYPE_CHECKING:
    import websocket as _wsclient

OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_CHUNK = 256 * 1024  # bytes asked of the socket per read
_BIG_CHUNK = 1024 * 1024  # largest single read while completing a big frame
_MAX_WAIT = 1.0  # longest poll while idle (seconds); stop/send/reconnect wake it at once


class SessionEnd(Exception):
    """Ends one connection: ``reason`` is said in ``disconnected``, ``failed`` counts toward
    the backoff."""

    def __init__(self, reason: str, failed: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed


class ProtocolError(Exception):
    """The server broke the WebSocket protocol (a masked frame, reserved bits, ...)."""


class Poller:
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


class FrameReader:
    """The read loop of :class:`~realtrade_core.websocket.connection.BaseWebSocket` (a mixin).

    It runs on the connection's thread: cuts frames out of the socket's bytes, hands each text
    message to ``parse``, checks the events (``_admit``) and calls their listeners inline (the
    dispatch of :mod:`.dispatch`, unrolled here because it runs once per message), and between
    reads lets ``_service`` (:mod:`.keepalive`) run the timers and queued sends.
    """

    def _init_frames(self) -> None:
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = OP_TEXT
        self._fragment_size = 0
        self._readable: Callable[[], bool] = lambda: False  # data is waiting on the socket (for the stale check)

    def _read_loop(self, ws: _wsclient.WebSocket, sock: socket.socket) -> NoReturn:
        """The hot path: cut frames out of a buffer filled by large reads, parse, dispatch.

        Ends only by raising (SessionEnd, ProtocolError, OSError, ...).
        """
        cfg = self.config
        max_size = cfg.max_message_size
        parse = self.parse
        admit = self._admit
        mono = time.monotonic
        recv = sock.recv
        pending = getattr(sock, "pending", None)  # SSL: decrypted bytes already buffered
        assert self._wake_r is not None
        poller = Poller(sock, self._wake_r)
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
                        raise ProtocolError(f"frame of {length} bytes exceeds max_message_size")
                else:
                    raise ProtocolError("masked frame from the server")
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
                            raise SessionEnd(*self._end)
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
                            raise SessionEnd("stopped", False)
                        raise SessionEnd("connection closed by the server (no close frame)", True)
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
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        if opcode >= 0x8:
            if not fin or len(payload) > 125:
                raise ProtocolError("fragmented or oversized control frame")
            if opcode == OP_PING:
                self._send_frame(ws, OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                text = payload[2:].decode("utf-8", "replace")[:120]
                try:
                    ws.send_close(code if code is not None and 1000 <= code < 5000 else 1000)
                except Exception:
                    pass
                raise SessionEnd(f"closed by the server (code {code}{': ' + text if text else ''})", True)
            elif opcode != OP_PONG:
                raise ProtocolError(f"unknown control opcode {opcode:#x}")
            return self._fragments is not None
        if opcode == 0x0:
            if self._fragments is None:
                raise ProtocolError("continuation frame without a started message")
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if self._fragment_size > self.config.max_message_size:
                raise ProtocolError("fragmented message exceeds max_message_size")
            if not fin:
                return True
            data = b"".join(self._fragments)
            opcode = self._fragment_opcode
            self._fragments = None
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise ProtocolError("new message inside a fragmented message")
            if not fin:
                self._fragments = [payload]
                self._fragment_opcode = opcode
                self._fragment_size = len(payload)
                return True
            data = payload
        else:
            raise ProtocolError(f"unknown data opcode {opcode:#x}")
        self._deliver(data, opcode == OP_TEXT)
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
            raise SessionEnd(*self._end)
