"""Benchmark the exchange emulator's server against a bare aiohttp server doing the same work.

    python bench/bench_emulator.py --exchange binance

Measures, in one process (server thread + client threads, as tests use the emulator):

1. WebSocket push: N kline-shaped messages published with ``hub.publish`` on one topic, counted
   as received by one websocket-client client; baseline: a bare aiohttp handler sending the same
   JSON frames (encoded per message, as publish does) in a loop.
2. REST: a cheap GET (the dialect's server-time endpoint) in a sequential keep-alive loop, then
   from several client threads; baseline: a bare aiohttp route answering a body of the same size.

Both servers run the same way: aiohttp ``AppRunner`` + ``TCPSite`` on their own asyncio loop in a
daemon thread. If the exchange's dialect is not available (not installed, or not implemented
yet), a minimal stand-in dialect is used and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import websocket
from aiohttp import web

from realtrade_core.emulator import Emulator
from realtrade_core.emulator.dialect import EmulatorDialect

TOPIC = "bench@kline_1m"
# Candidate server-time paths per dialect, relative to the server root.
TIME_PATHS = ("/api/v3/time", "/v5/market/time", "/api/time")


def kline_message(i: int) -> dict[str, Any]:
    """A Binance-shaped kline event (~330 bytes of JSON)."""
    t = 1_700_000_000_000 + i * 60_000
    return {
        "e": "kline",
        "E": t + 1234,
        "s": "BTCUSDT",
        "k": {
            "t": t, "T": t + 59_999, "s": "BTCUSDT", "i": "1m", "f": 100 + i, "L": 200 + i,
            "o": "60012.34000000", "c": "60020.01000000", "h": "60030.00000000", "l": "60001.10000000",
            "v": "12.34500000", "n": 100, "x": False, "q": "740912.12345678", "V": "6.10000000",
            "Q": "366000.00000000", "B": "0",
        },
    }  # fmt: skip


# --- dialects ---------------------------------------------------------------------------------------


class StandInDialect(EmulatorDialect):
    """Used when the requested exchange's dialect is not available: one time endpoint."""

    name = "standin"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/time", self._time)]

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        return {"rest": base_http + "/api"}

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        return {"rest": base_http + "/api"}

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, dict]:
        return status, {"code": -1, "msg": "injected"}

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_time()})


def with_bench_stream(base: type[EmulatorDialect]) -> type[EmulatorDialect]:
    """``base`` plus a WebSocket route whose connections are subscribed to TOPIC on connect, so
    the push benchmark exercises the hub and writer the dialects use, whatever their protocol."""

    class Bench(base):  # type: ignore[misc, valid-type]
        def routes(self) -> list[web.RouteDef]:
            return [*super().routes(), web.get("/_bench/ws", self._bench_ws)]

        async def _bench_ws(self, request: web.Request) -> web.WebSocketResponse:
            return await self.hub.serve(
                request, "bench", lambda conn, text: None, on_open=lambda conn: conn.subscribe(TOPIC)
            )

    Bench.__name__ = f"Bench{base.__name__}"
    return Bench


def pick_dialect(exchange: str) -> tuple[type[EmulatorDialect], str]:
    """The exchange's dialect if it is usable, else the stand-in; plus a note for the report."""
    try:
        from realtrade_core import load_exchange

        cls = load_exchange(exchange).emulator
    except Exception as exc:  # any failure to load means "not ready": fall back, and say why
        return StandInDialect, f"{exchange} dialect unavailable ({type(exc).__name__}: {exc}); used a stand-in"
    if cls is None or cls.routes is EmulatorDialect.routes:
        return StandInDialect, f"{exchange} dialect not implemented yet; used a stand-in"
    return cls, f"{exchange} dialect {cls.__module__}.{cls.__qualname__}"


# --- bare aiohttp baseline ----------------------------------------------------------------------------


class BareServer:
    """aiohttp on its own loop thread, like the emulator, with no emulator machinery."""

    def __init__(self, body: bytes, messages: int) -> None:
        self.body = body
        self.messages = messages
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BareServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/time", self._time)
        app.router.add_get("/ws", self._ws)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def _time(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/json")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # "go"
        for i in range(self.messages):
            await ws.send_str(json.dumps(kline_message(i), separators=(",", ":")))
        async for _ in ws:
            pass
        return ws


# --- client ceiling ----------------------------------------------------------------------------------


class RawFramePusher:
    """A socket that answers one WebSocket handshake and writes all frames pre-built in one go:
    no server work at all, so its rate is what the websocket-client client itself can read."""

    def __init__(self, messages: int) -> None:
        frames = []
        for i in range(messages):
            data = json.dumps(kline_message(i), separators=(",", ":")).encode()
            frames.append(
                bytes((0x81, 126)) + len(data).to_bytes(2, "big") + data
                if len(data) > 125
                else bytes((0x81, len(data))) + data
            )
        self.blob = b"".join(frames)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self.server:
            while True:
                try:
                    conn, _ = self.server.accept()
                except OSError:
                    return
                with conn:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(4096)
                    key = next(
                        line.split(b":", 1)[1].strip()
                        for line in request.split(b"\r\n")
                        if line.lower().startswith(b"sec-websocket-key:")
                    )
                    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                    )
                    conn.recv(4096)  # "go"
                    conn.sendall(self.blob)
                    conn.recv(4096)  # the client's close

    def close(self) -> None:
        self.server.close()


# --- measurements -------------------------------------------------------------------------------------
#
# Clients run in a child process (this script with --client): a client thread in the server's own
# process would fight it for the GIL, and the convoy effect would measure that fight instead of
# the server. Baseline and emulator are measured by the same client code.


def client_ws(url: str, n: int) -> dict[str, float]:
    """Receive ``n`` frames; rate from the first frame to the last."""
    # As realtrade_core.websocket does: the pure-Python UTF-8 check would otherwise cap the client
    # at a few thousand frames per second and hide the server.
    ws = websocket.create_connection(url, timeout=60, skip_utf8_validation=True)
    try:
        print("connected", flush=True)
        ws.send("go")
        recv = ws.recv
        recv()
        first = time.perf_counter()
        for _ in range(n - 1):
            recv()
        return {"rate": (n - 1) / (time.perf_counter() - first)}
    finally:
        ws.close()


def client_ws_raw(url: str, n: int) -> dict[str, float]:
    """Like client_ws, but after the handshake count frames by their headers straight off the
    socket: a reader far faster than websocket-client, to show what the server itself can push."""
    ws = websocket.create_connection(url, timeout=60, skip_utf8_validation=True)
    try:
        print("connected", flush=True)
        ws.send("go")
        sock = ws.sock
        buffer = b""
        pos = count = 0
        first = 0.0
        while count < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            if not first:
                first = time.perf_counter()
            buffer = buffer[pos:] + chunk
            pos = 0
            while count < n and len(buffer) - pos >= 2:
                length = buffer[pos + 1] & 0x7F
                header = 2
                if length == 126:
                    if len(buffer) - pos < 4:
                        break
                    length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                    header = 4
                elif length == 127:
                    if len(buffer) - pos < 10:
                        break
                    length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                    header = 10
                if len(buffer) - pos < header + length:
                    break
                pos += header + length
                count += 1
        return {"rate": (n - 1) / (time.perf_counter() - first)}
    finally:
        ws.close()


def client_rest(host: str, port: int, path: str, seconds: float, threads: int) -> dict[str, float]:
    """Requests per second of a keep-alive GET loop in ``threads`` client threads."""
    counts = [0] * threads
    stop = threading.Event()
    errors: list[BaseException] = []

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            while not stop.is_set():
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {response.status}")
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    stop.wait(seconds)  # the measurement window itself
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {"rate": sum(counts) / elapsed}


def spawn_client(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--client", *args], stdout=subprocess.PIPE, text=True)


def client_result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate(timeout=300)
    if proc.returncode:
        raise RuntimeError(f"benchmark client failed with exit code {proc.returncode}")
    return float(json.loads(out.strip().splitlines()[-1])["rate"])


def ws_emulator(emu: Emulator, n: int, client: str = "ws") -> float:
    proc = spawn_client(client, emu.base_ws + "/_bench/ws", str(n))
    assert proc.stdout is not None
    proc.stdout.readline()  # "connected"
    deadline = time.monotonic() + 10
    while emu.hub.subscribers(TOPIC) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("bench WebSocket did not subscribe")
        time.sleep(0.001)
    (conn,) = [c for c in emu.hub.connections() if TOPIC in c.topics]
    messages = [kline_message(i) for i in range(n)]
    publish = emu.hub.publish
    window = emu.hub.max_queue // 2  # stay under the slow-client limit
    for i, message in enumerate(messages):
        if i % 1000 == 0:
            while conn.queued > window:
                time.sleep(0.0005)
        publish(TOPIC, message)
    return client_result(proc)


def ws_bare(port: int, n: int, client: str = "ws") -> float:
    return client_result(spawn_client(client, f"ws://127.0.0.1:{port}/ws", str(n)))


def rest_rate(port: int, path: str, seconds: float, threads: int) -> float:
    return client_result(spawn_client("rest", "127.0.0.1", str(port), path, str(seconds), str(threads)))


def find_time_path(emu: Emulator) -> tuple[str, bytes]:
    rest_path = urlsplit(emu.urls.get("rest", emu.base_http)).path.rstrip("/")
    candidates = [rest_path + "/time"] if rest_path else []
    candidates += [p for p in TIME_PATHS if p not in candidates]
    for path in candidates:
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return path, body
        finally:
            conn.close()
    raise RuntimeError(f"no server-time endpoint among {candidates}")


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        kind, *rest = argv[1:]
        if kind == "ws":
            result = client_ws(rest[0], int(rest[1]))
        elif kind == "wsraw":
            result = client_ws_raw(rest[0], int(rest[1]))
        else:
            result = client_rest(rest[0], int(rest[1]), rest[2], float(rest[3]), int(rest[4]))
        print(json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchange", default="binance")
    parser.add_argument("--messages", type=int, default=200_000, help="WebSocket messages per run")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each REST run")
    parser.add_argument("--threads", type=int, default=4, help="client threads of the parallel REST run")
    parser.add_argument("--runs", type=int, default=2, help="runs of each measurement; the best is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    dialect, note = pick_dialect(args.exchange)
    results: dict[str, Any] = {"exchange": args.exchange, "dialect": note, "python": sys.version.split()[0]}
    started = time.perf_counter()
    with Emulator(with_bench_stream(dialect), speed=None, history=100) as emu:
        results["startup_s"] = round(time.perf_counter() - started, 3)
        path, body = find_time_path(emu)
        results["rest_path"] = path
        results["ws_message_bytes"] = len(json.dumps(kline_message(0), separators=(",", ":")))
        ws_emu = best_of(args.runs, lambda: ws_emulator(emu, args.messages))
        ws_emu_raw = best_of(args.runs, lambda: ws_emulator(emu, args.messages, "wsraw"))
        rest1_emu = best_of(args.runs, lambda: rest_rate(emu.port, path, args.seconds, 1))
        restn_emu = best_of(args.runs, lambda: rest_rate(emu.port, path, args.seconds, args.threads))
    with BareServer(body, args.messages) as bare:
        ws_base = best_of(args.runs, lambda: ws_bare(bare.port, args.messages))
        ws_base_raw = best_of(args.runs, lambda: ws_bare(bare.port, args.messages, "wsraw"))
        rest1_base = best_of(args.runs, lambda: rest_rate(bare.port, "/time", args.seconds, 1))
        restn_base = best_of(args.runs, lambda: rest_rate(bare.port, "/time", args.seconds, args.threads))
    raw = RawFramePusher(args.messages)
    try:
        ws_ceiling = best_of(args.runs, lambda: ws_bare(raw.port, args.messages))
    finally:
        raw.close()
    results["ws_msgs_per_s"] = {
        "emulator": round(ws_emu),
        "bare_aiohttp": round(ws_base),
        "client_ceiling": round(ws_ceiling),
    }
    results["ws_msgs_per_s_raw_reader"] = {"emulator": round(ws_emu_raw), "bare_aiohttp": round(ws_base_raw)}
    results["rest_req_per_s_1_client"] = {"emulator": round(rest1_emu), "bare_aiohttp": round(rest1_base)}
    results[f"rest_req_per_s_{args.threads}_threads"] = {
        "emulator": round(restn_emu),
        "bare_aiohttp": round(restn_base),
    }

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"realtrade emulator benchmark: {note} (Python {results['python']}, startup {results['startup_s']} s)")
    rows = [
        (f"WebSocket push to 1 websocket-client ({results['ws_message_bytes']} B)", "msg/s", ws_emu, ws_base),
        ("WebSocket push to 1 raw-socket reader", "msg/s", ws_emu_raw, ws_base_raw),
        (f"REST GET {path}, 1 client, keep-alive", "req/s", rest1_emu, rest1_base),
        (f"REST GET {path}, {args.threads} client threads", "req/s", restn_emu, restn_base),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'emulator':>12}  {'bare aiohttp':>12}  ratio")
    for label, unit, value, base in rows:
        print(f"{label:<{width}}  {value:>12,.0f}  {base:>12,.0f}  {value / base:5.0%}  {unit}")
    print(
        f"(client ceiling: websocket-client reads {ws_ceiling:,.0f} msg/s from a socket that does no work; "
        f"REST clients use http.client in a separate process)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
