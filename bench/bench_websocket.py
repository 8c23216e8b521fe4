"""Benchmark: BaseWebSocket's hot path against a raw websocket-client recv() loop.

An aiohttp server on 127.0.0.1, in its own process, pushes N Binance-style kline messages
(JSON, prices as strings, ~300 bytes) as fast as it can (pre-framed and written straight to the
transport, so the server is never the bottleneck). Measured in this process:

1. raw websocket-client ``recv()`` loops: the default (UTF-8 validated in pure Python) and with
   ``skip_utf8_validation=True``, the **ceiling**; plus ``WebSocketApp`` for reference;
2. raw ``recv()`` + the same parse into a ``Bar`` + the same callback (what parsing costs);
3. a BaseWebSocket subclass: socket -> parse -> typed ``Bar`` -> callback;
4. send-to-callback latency at a moderate rate (the server stamps ``time.monotonic_ns()`` into
   each message; CLOCK_MONOTONIC is system-wide on Linux, so the processes agree).

Run: ``.venv/bin/python bench/bench_websocket.py [--n 100000] [--repeat 3] [--rate 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websocket

from realtrade_core.events import Bar, Event
from realtrade_core.websocket import BaseWebSocket, Outgoing, WebSocketConfig

T0 = 1_700_000_040_000  # on a minute: candles are checked, one off its interval is dropped


def kline(seq: int, stamp: int) -> bytes:
    return json.dumps(
        {
            "e": "kline",
            "E": stamp,
            "s": "BTCUSDT",
            "k": {
                "t": T0 + seq * 60_000,
                "T": T0 + seq * 60_000 + 59_999,
                "s": "BTCUSDT",
                "i": "1m",
                "f": 100 + seq,
                "L": 200 + seq,
                "o": "37012.34000000",
                "c": "37020.01000000",
                "h": "37025.00000000",
                "l": "37001.50000000",
                "v": "12.34567000",
                "n": 100,
                "x": True,
                "q": "456789.12345678",
                "V": "6.12345000",
                "Q": "226612.00000000",
                "B": "0",
            },
        },
        separators=(",", ":"),
    ).encode()


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + struct.pack("!H", n) + payload
    return bytes([0x81, 127]) + struct.pack("!Q", n) + payload


# ------------------------------------------------------------------------------ server process


def serve(port_queue: Any) -> None:
    from aiohttp import WSMsgType, web

    blobs: dict[int, bytes] = {}  # pre-framed floods, built once per size

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            cmd = json.loads(msg.data)
            if "cmd" not in cmd:
                continue  # e.g. a SUBSCRIBE
            n = cmd["n"]
            if cmd["cmd"] == "flood":
                blob = blobs.get(n) or blobs.setdefault(n, b"".join(frame(kline(i, i)) for i in range(n)))
                transport = request.transport
                assert transport is not None
                for off in range(0, len(blob), 1 << 20):
                    transport.write(blob[off : off + (1 << 20)])
                    while transport.get_write_buffer_size() > (8 << 20):
                        await asyncio.sleep(0.0005)
            elif cmd["cmd"] == "paced":
                interval = 1.0 / cmd["rate"]
                start = time.monotonic()
                for i in range(n):
                    delay = start + i * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send_str(kline(i, time.monotonic_ns()).decode())
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


# ------------------------------------------------------------------------------ client side


SYMBOLS = {"BTCUSDT": "BTC/USDT"}


def parse_kline(message: str | bytes) -> tuple[Bar, ...]:
    """The parse a Binance plugin does for a kline (shared by every measured path)."""
    d = json.loads(message)
    k = d.get("k")
    if k is None:
        return ()
    return (
        Bar(
            "bench",
            SYMBOLS[d["s"]],
            k["i"],
            k["t"],
            float(k["o"]),
            float(k["h"]),
            float(k["l"]),
            float(k["c"]),
            float(k["v"]),
            k["x"],
            d["E"],
        ),
    )


class KlineWebSocket(BaseWebSocket):
    """A Binance-like plugin, complete."""

    exchange = "bench"

    def __init__(self, address: str, **kw: Any) -> None:
        self._address = address
        super().__init__(**kw)

    def url(self, streams: tuple[str, ...]) -> str:
        return self._address

    def subscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return [{"method": "SUBSCRIBE", "params": list(streams), "id": 1}]

    def unsubscribe_messages(self, streams: tuple[str, ...]) -> Iterable[Outgoing]:
        return [{"method": "UNSUBSCRIBE", "params": list(streams), "id": 2}]

    def parse(self, message: str | bytes) -> Iterable[Event] | None:
        return parse_kline(message)


class Sink:
    """The callback: counts, timestamps the first and last message, checks order."""

    def __init__(self, n: int, latency: bool = False) -> None:
        self.n = n
        self.count = 0
        self.first = self.last = 0.0
        self.last_open = -1
        self.out_of_order = 0
        self.latency = latency
        self.latencies: list[float] = []
        self.done = threading.Event()

    def __call__(self, bar: Bar) -> None:
        if self.latency:
            self.latencies.append((time.monotonic_ns() - bar.event_time) / 1000.0)
        if bar.open_time <= self.last_open:
            self.out_of_order += 1
        self.last_open = bar.open_time
        count = self.count = self.count + 1
        if count == 1:
            self.first = time.perf_counter()
        elif count == self.n:
            self.last = time.perf_counter()
            self.done.set()

    def rate(self) -> float:
        assert self.count == self.n and self.out_of_order == 0, (self.count, self.out_of_order)
        return (self.n - 1) / (self.last - self.first)


def raw_recv(url: str, n: int, skip_utf8: bool) -> float:
    ws = websocket.create_connection(url, skip_utf8_validation=skip_utf8)
    try:
        ws.send(json.dumps({"cmd": "flood", "n": n}))
        recv = ws.recv
        recv()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            recv()
        return (n - 1) / (time.perf_counter() - t0)
    finally:
        ws.close()


def raw_recv_parse(url: str, n: int, latency_rate: float = 0.0) -> Sink:
    sink = Sink(n, latency=bool(latency_rate))
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    try:
        cmd = {"cmd": "paced", "n": n, "rate": latency_rate} if latency_rate else {"cmd": "flood", "n": n}
        ws.send(json.dumps(cmd))
        recv = ws.recv
        for _ in range(n):
            for bar in parse_kline(recv()):
                sink(bar)
    finally:
        ws.close()
    return sink


def websocket_app(url: str, n: int) -> float:
    sink = Sink(n)

    def on_message(_app: Any, message: str) -> None:
        for bar in parse_kline(message):
            sink(bar)

    app = websocket.WebSocketApp(
        url, on_open=lambda a: a.send(json.dumps({"cmd": "flood", "n": n})), on_message=on_message
    )
    thread = threading.Thread(target=app.run_forever, kwargs={"skip_utf8_validation": True}, daemon=True)
    thread.start()
    sink.done.wait(120)
    app.close()
    thread.join(5)
    return sink.rate()


def base_websocket(url: str, n: int, latency_rate: float = 0.0) -> Sink:
    sink = Sink(n, latency=bool(latency_rate))
    ws = KlineWebSocket(url, streams=("btcusdt@kline_1m",), config=WebSocketConfig(stale_after=30.0))
    ws.on("bar", sink)
    cmd = {"cmd": "paced", "n": n, "rate": latency_rate} if latency_rate else {"cmd": "flood", "n": n}
    ws.on("connected", lambda _e: ws.send(cmd))
    ws.start()
    try:
        if not sink.done.wait(120):
            raise RuntimeError(f"BaseWebSocket received {sink.count} of {n}")
    finally:
        ws.stop(5)
    stats = ws.stats()
    assert stats.parse_errors == stats.callback_errors == 0
    return sink


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(n: int, chunk: int = 100_000) -> tuple[float, float]:
    """In this process: one BaseWebSocket connection takes ``chunk`` messages (warm-up), then
    ``n`` more in floods of ``chunk``; the resident set (MB) after the warm-up and after the
    ``n``, both read while the connection is still open."""
    ctx = mp.get_context("spawn")
    port_queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(port_queue,), daemon=True)
    server.start()
    received = [0]
    chunk_done = threading.Event()

    def on_bar(_bar: Bar) -> None:
        received[0] += 1
        if received[0] % chunk == 0:
            chunk_done.set()

    try:
        url = f"ws://127.0.0.1:{port_queue.get(timeout=60)}/ws"
        ws = KlineWebSocket(url, streams=("btcusdt@kline_1m",), config=WebSocketConfig(stale_after=30.0))
        ws.on("bar", on_bar)
        connected = threading.Event()
        ws.on("connected", lambda _e: connected.set())
        ws.start()
        try:
            if not connected.wait(60):
                raise RuntimeError("the benchmark server never answered")
            after_start = 0.0
            for flood in range(1 + max(1, n // chunk)):
                chunk_done.clear()
                ws.send({"cmd": "flood", "n": chunk})
                if not chunk_done.wait(120):
                    raise RuntimeError(f"BaseWebSocket received {received[0]} messages, not {(flood + 1) * chunk}")
                if flood == 0:
                    after_start = _rss_mb()
            after = _rss_mb()
        finally:
            ws.stop(5)
    finally:
        server.terminate()
        server.join(5)
    return after_start, after


def rss_after_messages(n: int) -> tuple[float, float]:
    """MB resident of a fresh process after its first 100,000 WebSocket messages (or ``n`` if
    fewer) and after ``n`` more, on one connection (see :func:`rss_child`)."""
    import subprocess

    chunk = min(n, 100_000)
    code = f"from bench.bench_websocket import rss_child; print(*rss_child({n}, {chunk}))"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True, timeout=600
    )
    start, after = (float(x) for x in done.stdout.split()[-2:])
    return start, after


def best_interleaved(runs: int, paths: list[tuple[str, Callable[[], float]]]) -> list[tuple[str, float, float]]:
    """Run every path once per round (so background load hits them alike); best and median rate."""
    rates: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _ in range(runs):
        for name, fn in paths:
            rates[name].append(fn())
    return [(name, max(rates[name]), statistics.median(rates[name])) for name, _ in paths]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="messages per throughput run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (best and median are reported)")
    ap.add_argument("--rate", type=float, default=2000.0, help="messages/s for the latency runs")
    ap.add_argument("--latency-n", type=int, default=6000, help="messages per latency run")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    port_queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(port_queue,), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{port_queue.get(timeout=30)}/ws"
        n, r = args.n, args.repeat
        size = len(kline(1, 1))
        print(f"websocket-client {websocket.__version__}, Python {sys.version.split()[0]}, {size}-byte kline messages")
        print(f"throughput: N={n:,} per run, {r} interleaved rounds; server: aiohttp in a separate process\n")

        small = max(2000, n // 10)  # the validated loop is slow; fewer messages suffice
        rows = best_interleaved(r, [
            (f"raw recv() loop, UTF-8 validated (default; N={small:,})", lambda: raw_recv(url, small, False)),
            ("raw recv() loop, skip_utf8_validation=True  [ceiling]", lambda: raw_recv(url, n, True)),
            ("WebSocketApp on_message -> parse -> Bar -> callback", lambda: websocket_app(url, n)),
            ("raw recv() -> parse -> Bar -> callback", lambda: raw_recv_parse(url, n).rate()),
            ("BaseWebSocket -> parse -> Bar -> callback", lambda: base_websocket(url, n).rate()),
        ])  # fmt: skip
        ceiling, ceiling_median = rows[1][1], rows[1][2]
        print(f"{'path':<60}{'best msgs/s':>12}{'us/msg':>8}{'vs ceiling':>11}{'median ratio':>14}")
        for name, rate, median in rows:
            print(f"{name:<60}{rate:>12,.0f}{1e6 / rate:>8.2f}{rate / ceiling:>11.0%}{median / ceiling_median:>14.0%}")

        print(f"\nlatency: server send -> callback, {args.latency_n:,} messages at {args.rate:,.0f} msg/s")
        print(f"{'path':<62}{'p50 us':>11}{'p99 us':>9}{'max us':>12}")
        for name, fn in [
            ("raw recv() -> parse -> Bar -> callback", raw_recv_parse),
            ("BaseWebSocket -> parse -> Bar -> callback", base_websocket),
        ]:
            lat = fn(url, args.latency_n, args.rate).latencies
            q = statistics.quantiles(lat, n=100)
            print(f"{name:<62}{q[49]:>11.0f}{q[98]:>9.0f}{max(lat):>12.0f}")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
