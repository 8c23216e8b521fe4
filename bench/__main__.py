"""``python -m bench``: every speed figure of realtrade beside its ceiling, measured in one run.

Each row puts a realtrade figure beside the baseline it is measured against in the same run on
the same machine (backtrader fed from memory, a bare websocket-client loop, bare ccxt, a bare
interpreter), their ratio, and the goal. ``--quick`` runs every row on small samples (under a
minute on an idle machine): it proves the command works, not the numbers. The machine is
printed first: on a loaded machine every figure is noisier, ceilings included.

    python -m bench [--quick] [--exchanges binance,bybit]

The single benchmarks run alone too, with more options: bench/bench_feed.py (throughput and
close -> next() latency), bench/bench_broker.py, bench/bench_websocket.py,
bench/bench_start.py (cold start, history, memory), bench/bench_emulator.py (the emulator's
server against bare aiohttp; not in the table).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_broker, bench_feed, bench_start, bench_websocket


@dataclass
class Row:
    what: str
    ours: str
    baseline: str
    ratio: str
    goal: str


def pct(values: list[float], q: float) -> float:
    return bench_feed.pct(values, q)


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def machine() -> str:
    cpus = os.cpu_count()
    try:
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load unknown"
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs {model}, Python {platform.python_version()}, {load}"


def throughput_rows(exchange: str, bars: int, symbols: int) -> list[Row]:
    live, rows = bench_feed.live_throughput(exchange, bars, symbols)
    apart, _ = bench_feed.live_throughput(exchange, bars, symbols, remote=True)
    repeat = max(1, 20_000 // max(1, len(rows) * symbols))
    memory = bench_feed.memory_throughput(rows, repeat=repeat, symbols=symbols)
    handed = bench_feed.handoff_throughput(rows, repeat=repeat, symbols=symbols)
    plural = "s" if symbols > 1 else ""
    return [
        Row(
            f"{exchange}: live bars/s, {symbols} symbol{plural}",
            f"{live:,.0f}/s",
            f"backtrader from memory {memory:,.0f}/s",
            f"{live / memory:.1%}",
            ">= 80%",
        ),
        Row(
            f"{exchange}: the same, emulator in its own process",
            f"{apart:,.0f}/s",
            f"backtrader handed each bar {handed:,.0f}/s",
            f"{apart / handed:.1%}",
            f"(ceiling {handed / memory:.0%})",
        ),
    ]


def latency_rows(exchange: str, bars: int, symbols: int) -> list[Row]:
    ours, bare, starting = bench_feed.latency(exchange, bars, symbols, history=200)
    label = f"{exchange}: close -> next(), {symbols} symbol{'s' if symbols > 1 else ''}, {len(ours)} bars"
    rows = [
        Row(
            f"{label}, p50",
            ms(pct(ours, 0.5)),
            f"bare websocket loop {ms(pct(bare, 0.5))}",
            f"{pct(ours, 0.5) - pct(bare, 0.5):+.2f} ms",
            "",
        ),
        Row(
            f"{label}, p99",
            ms(pct(ours, 0.99)),
            f"bare websocket loop {ms(pct(bare, 0.99))}",
            f"{pct(ours, 0.99) - pct(bare, 0.99):+.2f} ms",
            "<= 2 ms",
        ),
    ]
    if symbols == 1:
        rows.append(
            Row(
                f"{exchange}: first live bar after 200 bars of history",
                ms(ours[0]),
                f"bare websocket loop {ms(bare[0])}",
                f"{ours[0] - bare[0]:+.2f} ms",
                "<= 10 ms",
            )
        )
    if starting:
        rows.append(
            Row(
                f"{exchange}: {len(starting)} candles closed while {symbols} feed{'s' if symbols > 1 else ''} started",
                f"{ms(max(starting))} max",
                "(reach next() with the history)",
                "",
                "",
            )
        )
    return rows


def websocket_row(n: int) -> Row:
    ctx = mp.get_context("spawn")
    port_queue = ctx.Queue()
    server = ctx.Process(target=bench_websocket.serve, args=(port_queue,), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{port_queue.get(timeout=60)}/ws"
        bench_websocket.raw_recv(url, n, True)  # warm-up: the server frames its flood once per size
        ours, bare = [], []
        for _ in range(3):  # interleaved, so background load hits both alike
            bare.append(bench_websocket.raw_recv(url, n, True))
            ours.append(bench_websocket.base_websocket(url, n).rate())
    finally:
        server.terminate()
        server.join(5)
    ours_m, bare_m = statistics.median(ours), statistics.median(bare)
    return Row(
        f"WebSocket ingest to typed bars, {n:,} msgs x3",
        f"{ours_m:,.0f} msg/s",
        f"bare recv() loop {bare_m:,.0f} msg/s",
        f"{ours_m / bare_m:.1%}",
        ">= 91% (1.1x)",
    )


def broker_rows(exchange: str, orders: int, resting: int, rounds: int = 3) -> list[Row]:
    # Interleaved rounds, each figure the median of its rounds' p50s, so that a change of the
    # machine's load during the row hits the three alike (one round each swung by 30 %).
    runs: dict[str, list[float]] = {"ours": [], "bare": [], "crowded": []}
    for _ in range(rounds):
        runs["ours"].append(statistics.median(bench_broker.bench_realtrade(exchange, orders)))
        runs["crowded"].append(statistics.median(bench_broker.bench_realtrade(exchange, orders, resting)))
        runs["bare"].append(statistics.median(bench_broker.bench_ccxt(exchange, orders)))
    p50, base50, crowded50 = (statistics.median(runs[k]) * 1000 for k in ("ours", "bare", "crowded"))
    return [
        Row(
            f"{exchange}: market order round trip p50 ({orders}, median of {rounds})",
            ms(p50),
            f"bare ccxt create_order {ms(base50)}",
            f"{p50 / base50:.2f}x",
            "<= 1.05x",
        ),
        Row(
            f"{exchange}: the same with {resting} resting limit orders",
            ms(crowded50),
            f"with none {ms(p50)}",
            f"{crowded50 / p50:.2f}x",
            "flat (<= 1.1x)",
        ),
    ]


def cold_rows(runs: int) -> list[Row]:
    cold = bench_start.cold_start(runs)
    base = cold["pass"]
    rows = []
    for key, label, goal in (
        ("import", "import realtrade_core", "<= 2x"),
        ("exchanges", "realtrade exchanges", "<= 2x"),
        ("exchanges-uncached", "realtrade exchanges, first after an install", ""),
    ):
        ratio = f"{cold[key] / base:.2f}x"
        rows.append(Row(f"cold: {label} (median of {runs})", ms(cold[key]), f"python -c pass {ms(base)}", ratio, goal))
    return rows


def history_row(exchange: str, candles: int) -> Row:
    ours, bare = bench_start.history_fetch(exchange, candles)
    return Row(
        f"{exchange}: history fetch, {candles:,} candles (median of 3)",
        f"{ours:,.0f} candles/s",
        f"bare ccxt paging {bare:,.0f}/s",
        f"{ours / bare:.1%}",
        "",
    )


def rss_row(exchange: str) -> Row:
    live, bare = bench_start.rss_after_start(exchange)
    return Row(
        f"{exchange}: RSS at the first live bar",
        f"{live:.0f} MB",
        f"libraries + emulator {bare:.0f} MB",
        f"{live - bare:+.0f} MB",
        "",
    )


def rss_messages_row(n: int) -> Row:
    start, after = bench_websocket.rss_after_messages(n)
    return Row(
        f"RSS after {n:,} WebSocket messages (one connection)",
        f"{after:.0f} MB",
        f"after its first {min(n, 100_000):,} {start:.0f} MB",
        f"{after - start:+.0f} MB",
        "flat",
    )


def render(rows: list[Row]) -> str:
    headers = Row("measure", "realtrade", "ceiling / baseline (same run)", "ratio", "goal")
    table = [headers, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in ("what", "ours", "baseline", "ratio", "goal")]
    lines = []
    for i, r in enumerate(table):
        cells = (r.what, r.ours, r.baseline, r.ratio, r.goal)
        lines.append(
            "  ".join(
                c.rjust(w) if j in (1, 3) and i else c.ljust(w)
                for j, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples: proves every row runs (under a minute)")
    parser.add_argument("--exchanges", default="binance,bybit", help="comma-separated (default binance,bybit)")
    args = parser.parse_args(argv)
    exchanges = [e.strip() for e in args.exchanges.split(",") if e.strip()]
    q = args.quick
    sizes = {
        "bars": 150 if q else 2000, "bars16": 40 if q else 300, "latency": 15 if q else 200,
        "latency16": 0 if q else 100, "ws": 10_000 if q else 100_000, "orders": 15 if q else 200,
        "resting": 20 if q else 200, "cold": 5 if q else 15, "candles": 2000 if q else 20_000,
        "rss": 20_000 if q else 1_000_000,
    }  # fmt: skip
    print(f"python -m bench{' --quick' if q else ''}: {machine()}", flush=True)
    began = time.perf_counter()
    steps: list[tuple[str, Callable[[], Row | list[Row]]]] = []
    for ex in exchanges:
        steps.append((f"{ex} throughput", lambda ex=ex: throughput_rows(ex, sizes["bars"], 1)))
        steps.append((f"{ex} throughput x16", lambda ex=ex: throughput_rows(ex, sizes["bars16"], 16)))
    for ex in exchanges:
        steps.append((f"{ex} latency", lambda ex=ex: latency_rows(ex, sizes["latency"], 1)))
        if sizes["latency16"]:
            steps.append((f"{ex} latency x16", lambda ex=ex: latency_rows(ex, sizes["latency16"], 16)))
    steps.append(("websocket", lambda: websocket_row(sizes["ws"])))
    for ex in exchanges:
        steps.append((f"{ex} broker", lambda ex=ex: broker_rows(ex, sizes["orders"], sizes["resting"], 1 if q else 3)))
    steps.append(("cold start", lambda: cold_rows(sizes["cold"])))
    for ex in exchanges:
        steps.append((f"{ex} history", lambda ex=ex: history_row(ex, sizes["candles"])))
    steps.append(("memory", lambda: rss_row(exchanges[0])))
    steps.append(("memory after messages", lambda: rss_messages_row(sizes["rss"])))

    rows: list[Row] = []
    for label, step in steps:
        t0 = time.perf_counter()
        result = step()
        rows.extend(result if isinstance(result, list) else [result])
        print(f"  ... {label}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    sys.stderr.flush()
    print(render(rows))
    print(f"({time.perf_counter() - began:.0f} s; load after: {machine().rsplit('load ', 1)[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
