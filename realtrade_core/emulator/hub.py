"""Open WebSocket connections of the emulator's server: topic fan-out and fault hooks.

Thread-safe: :meth:`ConnectionHub.publish` and :meth:`Connection.send` may be called from any
thread (the engine calls dialects under its lock, from the driver thread, an HTTP handler or a
test). Each connection has its own queue and writer task on the server's loop, so a slow
client never blocks the engine or other clients.

A dialect's WebSocket handler is one call to :meth:`ConnectionHub.serve`, which prepares the
connection, registers it, hands every text message to the dialect and unregisters it however
the connection ends::

    async def stream(self, request):
        return await self.hub.serve(request, "public", self.on_text)  # conn.subscribe(topic), conn.send({...})

Engine events reach subscribers with :meth:`ConnectionHub.publish`, which encodes a payload once
for all of a topic's subscribers (kept per topic, in step with subscribe, unsubscribe and
disconnect). An event that may feed many streams (a kline feeds one per interval) asks a
:class:`TopicWatch` which of them anybody listens to, rather than the hub once per topic.

Why the queue is a deque plus an event rather than an ``asyncio.Queue``: ``Queue.put`` is not
thread-safe, and waking the loop once per message from another thread (one
``call_soon_threadsafe`` each, i.e. one self-pipe write) caps throughput far below what a
market-data benchmark needs. Here a producer appends to the deque (atomic under the GIL) and
wakes the writer only if no wake-up is already pending; all connections woken from other
threads share one scheduled callback. The writer then sends everything queued as a batch of
frames in one socket write.

Faults: :meth:`ConnectionHub.drop_all` aborts every transport (the client sees the connection
vanish, no close frame); :meth:`ConnectionHub.stall` drops outgoing frames and pauses reading
from the sockets, so requests and pings wait unanswered until the stall ends; a client that
falls more than :attr:`ConnectionHub.max_queue` frames behind is disconnected, as exchanges do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from aiohttp import web

    from .faults import Faults

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")

#: The frame :meth:`ConnectionHub.send_malformed` sends: truncated JSON, as a broken proxy or a
#: server bug would produce. Clients must survive it (log, skip, or reconnect), not crash.
MALFORMED_FRAME = '{"e":"kline","E":17000000,"s":"BTC'

# How long a thread other than the loop waits for the loop to carry out a drop / stall.
_LOOP_CALL_TIMEOUT = 10.0
# How often a stalled connection's reader looks whether the stall is over (seconds).
_STALL_POLL = 0.05
# The writer sends at most this many frames / bytes in one socket write, then yields to the loop
# so a backlog never starves HTTP handlers.
_BATCH_FRAMES = 512
_BATCH_BYTES = 256 * 1024
# Above this many bytes buffered in the transport (a client reading slower than we write), the
# writer waits until it falls below the low mark: memory stays bounded by max_queue instead.
_HIGH_WATER = 1024 * 1024
_LOW_WATER = 256 * 1024
_DRAIN_POLL = 0.001


# One encoder for every message: json.dumps(..., separators=...) builds a new encoder per call.
_JSON = json.JSONEncoder(separators=(",", ":"))


def _encode(payload: str | dict[str, Any] | list[Any]) -> bytes:
    """The UTF-8 payload of a text frame: strings as they are, anything else as compact JSON."""
    if isinstance(payload, str):
        return payload.encode()
    return _JSON.encode(payload).encode()


# Server-to-client text frames (RFC 6455 section 5.2): FIN + opcode 1, no mask, then the length
# in 7 bits, or 126 + 16 bits, or 127 + 64 bits.
_SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]


def _frame_header(length: int) -> bytes:
    if length < 126:
        return _SHORT_HEADERS[length]
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


def _report_failure(task: asyncio.Task[Any]) -> None:
    """Log a connection's keepalive task that ended with an error (a dialect bug) instead of
    letting it vanish."""
    if not task.cancelled() and task.exception() is not None:
        log.error("emulator: a connection's keepalive failed", exc_info=task.exception())


class Connection:
    """One client WebSocket. ``topics`` are the dialect's own stream names; ``account`` is the
    API key of an authenticated private connection (None for public ones); ``state`` is what the
    dialect keeps about the connection (its session), set by the dialect."""

    ws: web.WebSocketResponse
    kind: str
    topics: set[str]
    account: str | None
    state: Any

    def __init__(self, hub: ConnectionHub, ws: web.WebSocketResponse, kind: str) -> None:
        self.ws = ws
        self.kind = kind
        self.topics = set()
        self.account = None
        self.state = None
        self.sent = 0  # frames written to the socket
        self.dropped = 0  # frames discarded because of a stall
        self._hub = hub
        self._pending: deque[bytes] = deque()  # encoded payloads of text frames
        self._wake = asyncio.Event()
        self._signalled = False  # a wake-up is pending; set by producers, cleared by the writer
        self._closed = False
        self._paused = False  # transport reading paused by a stall
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Connection kind={self.kind!r} account={'yes' if self.account else 'no'} "
            f"topics={len(self.topics)} queued={len(self._pending)} closed={self._closed}>"
        )

    # --- sending ------------------------------------------------------------------------------

    def send(self, payload: str | dict[str, Any]) -> None:
        """Queue a text frame (dicts are JSON-encoded); thread-safe; dropped while stalled."""
        if self._closed:
            return
        if self._hub.faults.stalled:
            self.dropped += 1
            return
        self._enqueue(_encode(payload))

    def _enqueue(self, data: bytes) -> None:
        pending = self._pending
        pending.append(data)
        if len(pending) > self._hub.max_queue:
            self._overflow()
            return
        if not self._signalled:
            self._signalled = True
            self._hub._wake(self)

    def _overflow(self) -> None:
        # A real exchange disconnects a client that cannot keep up; so do we, rather than grow
        # without bound. The client sees a disconnect and must resubscribe.
        if self._closed:
            return
        log.warning(
            "WebSocket client too slow (%d frames queued, limit %d): disconnecting it",
            len(self._pending),
            self._hub.max_queue,
        )
        self._closed = True  # stop queueing now; the cut itself happens on the loop
        self._pending.clear()
        self._hub._run_on_loop_nowait(self._abort_and_unregister)

    # --- subscriptions --------------------------------------------------------------------------

    def subscribe(self, topic: str) -> None:
        self.topics.add(topic)
        self._hub._add_subscriber(topic, self)

    def unsubscribe(self, topic: str) -> None:
        self.topics.discard(topic)
        self._hub._remove_subscriber(topic, self)

    @property
    def stalled(self) -> bool:
        """True while a stall fault holds: send nothing, answer no ping, read nothing."""
        return self._hub.faults.stalled

    @property
    def closed(self) -> bool:
        return self._closed or self.ws.closed

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._pending)

    # --- loop-side machinery -----------------------------------------------------------------

    def _start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"ws-writer-{self.kind}")

    async def _write_loop(self) -> None:
        ws = self.ws
        pending = self._pending
        faults = self._hub.faults
        transport = self._transport()
        # Frames are written straight to the socket, many per write: one send() system call per
        # frame (what ws.send_str does) is what limits a Python server's message rate, and each
        # call also hands the GIL to other threads. aiohttp's own writer is still used when the
        # client negotiated compression, or if the transport cannot be reached.
        direct = transport is not None and not ws.compress
        try:
            while not self._closed:
                await self._wake.wait()
                self._wake.clear()
                # Cleared before draining: a producer appending after this point signals again.
                self._signalled = False
                while pending:
                    if ws.closed or self._closed:
                        return
                    if faults.stalled:
                        self.dropped += len(pending)
                        pending.clear()
                        break
                    if direct:
                        await self._write_batch_direct(transport)
                    else:
                        await self._write_batch_aiohttp()
                    await asyncio.sleep(0)  # let handlers and other writers run between batches
        except ConnectionError as exc:  # aiohttp's ClientConnectionResetError is one
            log.debug("WebSocket writer stopped: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let a writer die silently: the client would just go quiet
            log.exception("WebSocket writer failed; closing the connection")
            self._abort_transport()
        finally:
            self._closed = True
            self._pending.clear()
            self._hub._forget(self)

    async def _write_batch_direct(self, transport: asyncio.Transport) -> None:
        pending = self._pending
        parts: list[bytes] = []
        size = frames = 0
        while pending and frames < _BATCH_FRAMES and size < _BATCH_BYTES:
            data = pending.popleft()
            parts.append(_frame_header(len(data)))
            parts.append(data)
            size += len(data)
            frames += 1
        if transport.is_closing():
            raise ConnectionResetError("the WebSocket transport is closing")
        transport.write(b"".join(parts))
        self.sent += frames
        if transport.get_write_buffer_size() > _HIGH_WATER:
            while transport.get_write_buffer_size() > _LOW_WATER and not transport.is_closing():
                await asyncio.sleep(_DRAIN_POLL)

    async def _write_batch_aiohttp(self) -> None:
        pending = self._pending
        for _ in range(min(len(pending), _BATCH_FRAMES)):
            await self.ws.send_str(pending.popleft().decode())
            self.sent += 1

    def _transport(self) -> asyncio.Transport | None:
        # aiohttp exposes no public handle on the socket of a prepared WebSocketResponse; the
        # request's transport is what we need to stop reading (stall) and to cut it (drop).
        req = getattr(self.ws, "_req", None)
        return getattr(req, "transport", None) if req is not None else None

    def _abort_transport(self) -> None:
        transport = self._transport()
        if transport is not None and not transport.is_closing():
            transport.abort()

    def _abort_and_unregister(self) -> None:
        self._abort_transport()
        self._hub.unregister(self)

    def _pause_reading(self) -> None:
        transport = self._transport()
        if transport is not None and not self._paused and not transport.is_closing():
            try:
                transport.pause_reading()
                self._paused = True
            except (RuntimeError, AttributeError):  # already paused / transport without flow control
                pass

    def _resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        transport = self._transport()
        if transport is not None and not transport.is_closing():
            try:
                transport.resume_reading()
            except (RuntimeError, AttributeError):
                pass


class TopicWatch(Generic[K]):
    """Which of a fixed list of streams somebody listens to, for a dialect's event handler.

    A market event can feed many streams (a kline feeds one stream per interval, each with its
    topics); asking the hub about every topic of every one on every event costs more than the
    messages themselves. A watch holds the candidates, each a key and its hub topics, and
    :meth:`live` answers the keys with at least one subscribed topic, in the candidates' order,
    recomputed only when the hub's subscriptions changed (:attr:`ConnectionHub.generation`).
    ``on_idle(key)`` runs, from :meth:`live`, for each key that stopped being listened to: the
    dialect forgets what it keeps for that stream.

    Call :meth:`live` from one thread at a time (dialects do, under the engine lock).
    """

    def __init__(
        self, hub: ConnectionHub, streams: Iterable[tuple[K, tuple[str, ...]]], on_idle: Callable[[K], None] | None
    ) -> None:
        self._hub = hub
        self._streams = tuple(streams)
        self._on_idle = on_idle
        self._generation = -1
        self._live: tuple[K, ...] = ()

    def live(self) -> tuple[K, ...]:
        generation = self._hub.generation
        if generation != self._generation:
            # Read before the topics: a change meanwhile bumps it again, and the next call rescans.
            self._generation = generation
            subscribers = self._hub.subscribers
            before = self._live
            self._live = tuple(key for key, topics in self._streams if any(subscribers(t) for t in topics))
            if self._on_idle is not None:
                for key in before:
                    if key not in self._live:
                        self._on_idle(key)
        return self._live


class ConnectionHub:
    """Registry of open connections, owned by the server; dialects register theirs."""

    #: A connection with more frames than this waiting is disconnected as too slow.
    max_queue: int = 250_000

    def __init__(self, loop: asyncio.AbstractEventLoop, faults: Faults) -> None:
        self.loop = loop
        self.faults = faults
        self._lock = threading.Lock()
        self._connections: dict[Connection, None] = {}  # insertion-ordered set
        # topic -> subscribers. Tuples replaced under the lock (copy on write), so publish reads
        # them without locking or copying.
        self._by_topic: dict[str, tuple[Connection, ...]] = {}
        # Bumped (under the lock, after ``_by_topic`` changed) whenever a topic gains its first
        # subscriber or loses its last: what a :class:`TopicWatch` compares to stay current.
        self.generation = 0
        self._loop_thread: int | None = None
        self._dirty: deque[Connection] = deque()
        self._flush_scheduled = False
        self._resume_handle: asyncio.TimerHandle | None = None

    # --- registry -------------------------------------------------------------------------------

    def register(self, ws: web.WebSocketResponse, kind: str) -> Connection:
        """Track ``ws`` (already prepared) and start its writer task. Call from the loop."""
        if self._loop_thread is None:
            self._loop_thread = threading.get_ident()
        conn = Connection(self, ws, kind)
        with self._lock:
            self._connections[conn] = None
        conn._start()
        if self.faults.stalled:  # a connection opened during a stall is stalled too
            conn._pause_reading()
            self._schedule_resume()
        return conn

    def unregister(self, conn: Connection) -> None:
        """Stop tracking ``conn`` and its writer; safe to call twice and from any thread."""
        conn._closed = True
        self._forget(conn)
        writer = conn._writer
        if writer is not None and not writer.done():
            self._run_on_loop_nowait(writer.cancel)

    async def serve(
        self,
        request: web.Request,
        kind: str,
        on_text: Callable[[Connection, str], None],
        *,
        on_open: Callable[[Connection], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
        on_pong: Callable[[Connection], None] | None = None,
        keepalive: Callable[[web.WebSocketResponse, Connection], Awaitable[None]] | None = None,
        idle_timeout: float | None = None,
        **options: Any,
    ) -> web.WebSocketResponse:
        """Serve one client WebSocket of ``kind`` until it ends: the session loop every dialect
        shares. Runs on the server's loop, as an aiohttp handler does.

        ``on_text(conn, text)`` gets every text message; one that raises is logged and the
        connection goes on. ``on_open(conn)`` runs once the connection is registered,
        ``on_close(conn)`` when it ends (before it is unregistered). ``keepalive(ws, conn)``
        runs as a task beside the reader, from after ``on_open`` (a dialect's pings and lifetime rules) and is
        cancelled at the end. ``idle_timeout``: close the connection (code 1000, "idle
        timeout") when the client sends nothing for that long. ``on_pong`` hears the client's
        pongs; with ``autoping=False`` in ``options`` (passed to ``web.WebSocketResponse``) the
        client's pings are answered here. While the server is stalled, messages already read
        wait unanswered until the stall ends.
        """
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(**options)
        await ws.prepare(request)
        conn = self.register(ws, kind)
        task: asyncio.Task[None] | None = None
        try:
            if on_open is not None:
                on_open(conn)
            if keepalive is not None:
                task = asyncio.get_running_loop().create_task(keepalive(ws, conn))
                task.add_done_callback(_report_failure)
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=idle_timeout)
                except asyncio.TimeoutError:
                    log.info("emulator: closing a %s stream idle for %.1f s", kind, idle_timeout)
                    await ws.close(code=1000, message=b"idle timeout")
                    break
                while conn.stalled and not ws.closed:
                    await asyncio.sleep(_STALL_POLL)  # a stalled server reads and answers nothing
                if msg.type is WSMsgType.TEXT:
                    try:
                        on_text(conn, msg.data)
                    except Exception:  # a dialect bug must not cut the client off silently
                        log.exception("emulator: a %s stream request %.200r failed", kind, msg.data)
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    if on_pong is not None:
                        on_pong(conn)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        except ConnectionError as exc:
            log.debug("emulator: %s connection lost: %s", kind, exc)
        finally:
            if task is not None:
                task.cancel()
            if on_close is not None:
                on_close(conn)
            self.unregister(conn)
        return ws

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.pop(conn, None)
            for topic in conn.topics:
                self._remove_subscriber_locked(topic, conn)

    def _add_subscriber(self, topic: str, conn: Connection) -> None:
        with self._lock:
            if conn not in self._connections:
                return
            subs = self._by_topic.get(topic, ())
            if conn not in subs:
                self._by_topic[topic] = (*subs, conn)
                if not subs:
                    self.generation += 1

    def _remove_subscriber(self, topic: str, conn: Connection) -> None:
        with self._lock:
            self._remove_subscriber_locked(topic, conn)

    def _remove_subscriber_locked(self, topic: str, conn: Connection) -> None:
        subs = self._by_topic.get(topic)
        if subs and conn in subs:
            rest = tuple(c for c in subs if c is not conn)
            if rest:
                self._by_topic[topic] = rest
            else:
                del self._by_topic[topic]
                self.generation += 1

    def connections(self, kind: str | None = None) -> list[Connection]:
        with self._lock:
            conns = list(self._connections)
        return [c for c in conns if not c.closed and (kind is None or c.kind == kind)]

    def subscribers(self, topic: str) -> int:
        """How many open connections are subscribed to ``topic``."""
        return len(self._by_topic.get(topic, ()))

    def watch(
        self, streams: Iterable[tuple[K, tuple[str, ...]]], on_idle: Callable[[K], None] | None = None
    ) -> TopicWatch[K]:
        """A :class:`TopicWatch` over ``streams``: (key, the key's topics) pairs."""
        return TopicWatch(self, streams, on_idle)

    # --- fan-out --------------------------------------------------------------------------------

    def publish(self, topic: str, payload: str | dict[str, Any], account: str | None = None) -> None:
        """Send to every connection subscribed to ``topic`` (and, if given, owned by ``account``)."""
        subs = self._by_topic.get(topic)
        if not subs:
            return
        if self.faults.stalled:
            for conn in subs:
                conn.dropped += 1
            return
        data = _encode(payload)  # encoded once for every subscriber
        for conn in subs:
            if (account is None or conn.account == account) and not conn._closed:
                conn._enqueue(data)

    def _wake(self, conn: Connection) -> None:
        if threading.get_ident() == self._loop_thread:
            conn._wake.set()
            return
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._flush)
            except RuntimeError:  # loop closed: the server has stopped, nothing to deliver to
                self._flush_scheduled = False

    def _flush(self) -> None:
        # Cleared before draining so a producer appending meanwhile schedules another flush.
        self._flush_scheduled = False
        dirty = self._dirty
        while dirty:
            dirty.popleft()._wake.set()

    # --- faults -----------------------------------------------------------------------------------

    def chosen(self, private: bool | None = None) -> list[Connection]:
        """Open connections: all (None), the authenticated ones of an account (True), or the
        others (False: market data)."""
        return [c for c in self.connections() if private is None or (c.account is not None) == private]

    def drop_all(self, private: bool | None = None) -> int:
        """Close every connection (or only the private or public ones, see :meth:`chosen`) now
        (fault injection); returns how many were closed."""
        return self.call_on_loop(lambda: self._drop_all(private))

    def _drop_all(self, private: bool | None = None) -> int:
        conns = self.chosen(private)
        for conn in conns:
            # Abort, not a close handshake: the client must see the connection vanish, as it
            # does when a load balancer or the exchange cuts it.
            conn._abort_and_unregister()
        if conns:
            log.info("fault: dropped %d WebSocket connection(s)", len(conns))
        return len(conns)

    def send_malformed(self, private: bool | None = None) -> int:
        """Send one malformed (non-JSON) text frame on every connection (or only the private or
        public ones, see :meth:`chosen`); returns the count."""
        conns = self.chosen(private)
        for conn in conns:
            conn.send(MALFORMED_FRAME)
        return len(conns)

    def stall(self, seconds: float) -> int:
        """Stall every connection for ``seconds``: nothing is sent (frames are dropped), nothing
        is read, so pings go unanswered; connections stay open. Returns how many are stalled."""
        self.faults.stall(seconds)
        return self.call_on_loop(self._apply_stall)

    def _apply_stall(self) -> int:
        conns = self.connections()
        for conn in conns:
            conn._pause_reading()
        self._schedule_resume()
        return len(conns)

    def unstall(self) -> None:
        """End a stall now (after :meth:`Faults.reset`): resume reading on every connection."""
        self.call_on_loop(self._resume_all)

    def _schedule_resume(self) -> None:
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        delay = max(0.0, self.faults.stall_until - self.loop.time())
        # stall_until is on time.monotonic(), which is also what the default loop clock uses;
        # _resume_all re-checks anyway, so a small mismatch only delays the resume.
        self._resume_handle = self.loop.call_later(delay, self._resume_all)

    def _resume_all(self) -> None:
        self._resume_handle = None
        if self.faults.stalled:  # extended meanwhile
            self._schedule_resume()
            return
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn._resume_reading()

    async def close_all(self, timeout: float = 0.5) -> None:
        """Close every connection with a 1001 "going away" frame (server shutdown). Call from
        the loop; connections that do not finish the close handshake within ``timeout`` are cut."""
        conns = self.connections()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None

        async def close_one(conn: Connection) -> None:
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server shutdown"), timeout)
            except (asyncio.TimeoutError, ConnectionError, RuntimeError):
                pass
            finally:
                conn._abort_and_unregister()

        if conns:
            await asyncio.gather(*(close_one(c) for c in conns), return_exceptions=True)
        with self._lock:
            rest = list(self._connections)
        for conn in rest:
            conn._abort_and_unregister()

    # --- threading helpers ------------------------------------------------------------------------

    def attach_loop_thread(self) -> None:
        """Record the calling thread as the loop's; the server calls it once on its loop."""
        self._loop_thread = threading.get_ident()

    def _on_loop_thread(self) -> bool:
        if self._loop_thread is not None:
            return threading.get_ident() == self._loop_thread
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def call_on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (transports and connection state live there) and
        return its result; from the loop itself, or before it runs, ``fn`` runs at once."""
        if self._on_loop_thread() or not self.loop.is_running():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=_LOOP_CALL_TIMEOUT)

    def _run_on_loop_nowait(self, fn: Callable[[], Any]) -> None:
        if self._on_loop_thread() or not self.loop.is_running():
            fn()
            return
        try:
            self.loop.call_soon_threadsafe(fn)
        except RuntimeError:  # loop closed
            pass
