"""A scriptable aiohttp WebSocket server on 127.0.0.1 for the WebSocket layer's tests.

It runs its own event loop on a background thread; every method is called from the test's
thread. It records what each client connection sent (text, binary, protocol pings and pongs,
in arrival order), answers a tiny JSON protocol, and injects faults: drop connections, stall
(stop sending and stop answering, pings included), refuse upgrades, push malformed or
hand-made raw frames, send protocol pings.

Protocol (what ``JsonWebSocket`` in the tests speaks):

* client ``{"op": "auth", "args": [key, sig]}`` -> ``{"op": "auth", "success": bool, "msg": ...}``
  (unless ``auto_auth`` is False: then the test calls :meth:`WSServer.ack_auth`)
* client ``{"op": "subscribe" | "unsubscribe", "args": [...]}`` -> ``{"op": ..., "success": true,
  "args": [...]}`` (unless ``auto_subscribe`` is False: then a subscription takes effect, and is
  answered, only when the test calls :meth:`WSServer.answer_subscriptions`)
* client ``{"op": "ping"}`` -> ``{"op": "pong"}``
* server data: any JSON with a ``"topic"``; :meth:`WSServer.publish` sends only to connections
  subscribed to the stream.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Conn:
    """One accepted client connection."""

    id: int
    path_qs: str
    ws: web.WebSocketResponse
    transport: Any
    # (monotonic time, kind, payload) with kind in text / binary / ping / pong
    log: list[tuple[float, str, Any]] = field(default_factory=list)
    subscriptions: set[str] = field(default_factory=set)
    stalled: bool = False
    closed: bool = False
    authenticated: bool = False
    held: list[list[str]] = field(default_factory=list)  # subscribe requests not yet answered

    def texts(self) -> list[str]:
        return [p for _, k, p in self.log if k == "text"]

    def ops(self) -> list[str]:
        """The ``op`` of every JSON text message the client sent, in order."""
        out = []
        for text in self.texts():
            try:
                out.append(json.loads(text).get("op", "?"))
            except ValueError:
                out.append("?")
        return out

    def of_kind(self, kind: str) -> list[tuple[float, Any]]:
        return [(t, p) for t, k, p in self.log if k == kind]


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True, rsv: int = 0, mask: bool = False) -> bytes:
    """Build one raw WebSocket frame (server to client, so normally unmasked)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 65536:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


class WSServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.cond = threading.Condition()
        self.conns: list[Conn] = []
        self.refuse = 0  # refuse this many upgrades with HTTP 503 (-1: all)
        self.refused = 0
        self.auth_ok = True
        self.auto_auth = True
        self.auto_subscribe = True
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WSServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                app = web.Application()
                app.router.add_get("/{tail:.*}", self._handler)
                self._runner = web.AppRunner(app, handle_signals=False)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
                loop.run_until_complete(site.start())
                self.port = self._runner.addresses[0][1]
            except BaseException as exc:  # surface start-up errors in the test thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="wsserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ws"

    # ------------------------------------------------------------------ waiting

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(predicate, timeout))

    def wait_connections(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: len(self.conns) >= n, timeout)

    @property
    def last(self) -> Conn:
        with self.cond:
            return self.conns[-1]

    def open_conns(self) -> list[Conn]:
        with self.cond:
            return [c for c in self.conns if not c.closed]

    # ------------------------------------------------------------------ actions

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def push(self, *messages: str | dict, conn: Conn | None = None) -> None:
        """Send text messages (dicts are JSON-encoded) to ``conn`` or every open connection."""
        texts = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        targets = [conn] if conn is not None else self.open_conns()

        async def send() -> None:
            for c in targets:
                for text in texts:
                    await c.ws.send_str(text)

        self._call(send())

    def push_many(self, texts: Iterable[str], conn: Conn | None = None) -> None:
        """Send many text messages as fast as aiohttp can."""
        target = conn or self.last
        texts = list(texts)

        async def send() -> None:
            for text in texts:
                await target.ws.send_str(text)

        self._call(send(), timeout=60)

    def publish(self, stream: str, message: dict) -> int:
        """Send ``message`` to the connections subscribed to ``stream``; returns how many."""
        targets = [c for c in self.open_conns() if stream in c.subscriptions and not c.stalled]
        for c in targets:
            self.push(message, conn=c)
        return len(targets)

    def push_raw(self, *chunks: bytes, conn: Conn | None = None, gap: float = 0.0) -> None:
        """Write raw bytes (hand-made frames) to the TCP stream, optionally pausing between."""
        target = conn or self.last

        async def write() -> None:
            for i, chunk in enumerate(chunks):
                if i and gap:
                    await asyncio.sleep(gap)
                target.transport.write(chunk)

        self._call(write())

    def push_bad_utf8(self, conn: Conn | None = None) -> None:
        target = conn or self.last
        self._call(target.ws.send_frame(b'{"topic":"\xff\xfe"}', WSMsgType.TEXT))

    def ping(self, payload: bytes = b"", conn: Conn | None = None) -> None:
        target = conn or self.last
        self._call(target.ws.ping(payload))

    def close_conn(self, code: int = 1001, message: bytes = b"going away", conn: Conn | None = None) -> None:
        target = conn or self.last
        self._call(target.ws.close(code=code, message=message))

    def drop(self) -> None:
        """Abort every open connection's TCP stream (no close frame)."""
        conns = self.open_conns()
        if not conns or self._loop is None:
            return

        async def abort() -> None:
            for c in conns:
                c.transport.abort()

        self._call(abort())

    def stall(self) -> None:
        """Open connections stop answering anything (pings included); publish skips them."""
        for c in self.open_conns():
            c.stalled = True

    def ack_auth(self, conn: Conn | None = None, ok: bool = True) -> None:
        target = conn or self.last
        target.authenticated = ok
        self.push({"op": "auth", "success": ok, "msg": "" if ok else "invalid key"}, conn=target)

    def answer_subscriptions(self, conn: Conn | None = None, ok: bool = True) -> None:
        """Put the held subscribe requests of ``conn`` (default: the last) into effect and
        answer them (``ok=False``: refuse them)."""
        target = conn or self.last
        with self.cond:
            held, target.held = target.held, []
        for args in held:
            if ok:
                target.subscriptions.update(args)
            self.push({"op": "subscribe", "success": ok, "args": args}, conn=target)

    # ------------------------------------------------------------------ server side

    def _record(self, conn: Conn, kind: str, payload: Any) -> None:
        with self.cond:
            conn.log.append((time.monotonic(), kind, payload))
            self.cond.notify_all()

    def _replies(self, conn: Conn, text: str) -> list[dict]:
        try:
            msg = json.loads(text)
        except ValueError:
            return []
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "auth":
            if not self.auto_auth:
                return []
            conn.authenticated = self.auth_ok
            return [{"op": "auth", "success": self.auth_ok, "msg": "" if self.auth_ok else "invalid key"}]
        if op == "subscribe":
            args = list(msg.get("args", ()))
            if not self.auto_subscribe:
                with self.cond:
                    conn.held.append(args)
                    self.cond.notify_all()
                return []
            conn.subscriptions.update(args)
            return [{"op": "subscribe", "success": True, "args": args}]
        if op == "unsubscribe":
            conn.subscriptions.difference_update(msg.get("args", ()))
            return [{"op": "unsubscribe", "success": True}]
        if op == "ping":
            return [{"op": "pong"}]
        return []

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        with self.cond:
            if self.refuse:
                self.refuse -= 1 if self.refuse > 0 else 0
                self.refused += 1
                self.cond.notify_all()
                return web.Response(status=503, text="maintenance")
        ws = web.WebSocketResponse(autoping=False)
        # Registered before the handshake completes: the client may act on it at once.
        with self.cond:
            conn = Conn(len(self.conns) + 1, request.path_qs, ws, request.transport)
            self.conns.append(conn)
            self.cond.notify_all()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._record(conn, "text", msg.data)
                    if not conn.stalled:
                        for reply in self._replies(conn, msg.data):
                            await ws.send_str(json.dumps(reply))
                elif msg.type == WSMsgType.BINARY:
                    self._record(conn, "binary", msg.data)
                elif msg.type == WSMsgType.PING:
                    self._record(conn, "ping", msg.data)
                    if not conn.stalled:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    self._record(conn, "pong", msg.data)
        except Exception:  # connection aborted under us: that is what drop() is for
            pass
        finally:
            with self.cond:
                conn.closed = True
                self.cond.notify_all()
        return ws
