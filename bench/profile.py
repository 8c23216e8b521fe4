"""Where the live path's time goes: cProfile in every thread of a benchmark run, merged.

The live path spans threads (the emulator's server, the WebSocket reader, the feed workers,
cerebro), and cProfile only sees the thread it runs in; this starts a profiler in each thread
the run makes, then prints each thread's own time and the functions that take the most of it
across all of them (the emulator's share shows what the process spends making the market).

    python -m bench.profile [--exchange binance] [--bars 2000] [--symbols 1] [--top 40]
        [--sort tottime|cumulative] [--what throughput|latency] [--out FILE.pstats]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_feed

_profiles: list[tuple[str, cProfile.Profile, list[float]]] = []
_lock = threading.Lock()


def _install(profiling: bool = True) -> None:
    """Every thread started from now on runs under a profiler of its own (wrapped around the
    thread's whole life, so subclasses with their own ``run`` are profiled too)."""
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        spent = [0.0]
        with _lock:
            _profiles.append((self.name, profile, spent))
        began = time.thread_time()
        if profiling:
            profile.enable()
        try:
            original(self)
        finally:
            profile.disable()
            spent[0] = time.thread_time() - began

    threading.Thread._bootstrap_inner = run  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="binance")
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    parser.add_argument("--what", default="throughput", choices=("throughput", "latency"))
    parser.add_argument("--cpu-only", action="store_true", help="no cProfile: only each thread's CPU time")
    parser.add_argument("--out", help="also write the merged stats here (for snakeviz, pstats ...)")
    args = parser.parse_args(argv)

    _install(not args.cpu_only)
    main_profile = cProfile.Profile()
    if args.what == "throughput":  # imports and the emulator's start outside the figures
        bench_feed.live_throughput(args.exchange, 20, args.symbols)
        _profiles.clear()
    began = time.thread_time()
    if not args.cpu_only:
        main_profile.enable()
    if args.what == "throughput":
        rate, _ = bench_feed.live_throughput(args.exchange, args.bars, args.symbols)
        under = "CPU time only" if args.cpu_only else "under the profiler"
        headline = f"{args.exchange}: {rate:,.0f} live bars/s, {under} ({args.symbols} symbols)"
    else:
        ours, _, _ = bench_feed.latency(args.exchange, args.bars, args.symbols, history=200)
        headline = f"{args.exchange}: close -> next() p50 {bench_feed.pct(ours, 0.5):.2f} ms under the profiler"
    main_profile.disable()
    main_spent = time.thread_time() - began

    print(headline)
    by_name: dict[str, float] = {"MainThread (cerebro)": main_spent}
    for name, _, spent in _profiles:
        key = name
        key = "realtrade-feed-*" if key.startswith("realtrade-feed-") else key
        by_name[key] = by_name.get(key, 0.0) + spent[0]
    print("CPU seconds by thread (threads of one kind summed):")
    for name, spent in sorted(by_name.items(), key=lambda kv: -kv[1]):
        print(f"  {spent:8.3f}  {name}")
    if args.what == "throughput":
        total = sum(by_name.values())
        print(f"  {total:8.3f}  all: {total / (args.bars * args.symbols) * 1e6:.0f} us of CPU per bar")
    if args.cpu_only:
        return 0

    stats = pstats.Stats(main_profile, stream=io.StringIO())
    for _, profile, _ in _profiles:
        try:
            stats.add(profile)
        except TypeError:  # a thread that never ran a profiled call
            continue
    if args.out:
        stats.dump_stats(args.out)
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
