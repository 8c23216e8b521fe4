"""Start-up costs: cold start of the package and the CLI, history fetch, and memory after start.

1. Cold start: wall time of a fresh interpreter doing ``import realtrade_core`` and
   ``realtrade exchanges`` beside ``python -c pass``, the median of ``--runs`` runs each,
   interleaved so background load hits them alike. ``realtrade exchanges`` answers from a cache
   of the installed plugins' entry points, kept while nothing on ``sys.path`` changes; it is
   timed twice: with the cache the run before wrote ("exchanges"), and as the first run after an
   install, with no cache: it scans every distribution and writes one ("exchanges-uncached").
   Where the time goes: ``python -X importtime -c "import realtrade_core" 2>&1 | sort -t'|' -k2
   -n | tail``.
2. History: closed candles/s through ``Store.fetch_closed_candles`` (paged, retried, checked)
   beside a bare ccxt ``fetch_ohlcv`` paging loop over the same range of the same emulator.
3. Memory: the resident set of a process whose cerebro has its first live bar from the
   in-process emulator, beside a process that imported the same libraries and started the
   same emulator but runs nothing of realtrade's live path.

    python bench/bench_start.py [--runs 15] [--candles 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXCHANGES = "import sys; from realtrade_core.cli import main; sys.exit(main(['exchanges']))"
COLD = {
    "pass": "pass",
    "import": "import realtrade_core",
    "exchanges": EXCHANGES,
    "exchanges-uncached": EXCHANGES,
}


def cold_start(runs: int) -> dict[str, float]:
    """Median wall milliseconds of each of COLD's one-liners in a fresh interpreter. The listing's
    cache lives in a folder of the bench's own: one folder that an unmeasured run fills first,
    and an empty one for each uncached run."""
    times: dict[str, list[float]] = {name: [] for name in COLD}
    with tempfile.TemporaryDirectory(prefix="bench-start-") as folder:
        warm = {**os.environ, "REALTRADE_CACHE_DIR": os.path.join(folder, "warm")}
        subprocess.run([sys.executable, "-c", EXCHANGES], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=warm)
        for run in range(runs):
            for name, code in COLD.items():
                env = warm
                if name == "exchanges-uncached":
                    env = {**os.environ, "REALTRADE_CACHE_DIR": os.path.join(folder, f"empty-{run}")}
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def history_fetch(exchange: str, candles: int, rounds: int = 3) -> tuple[float, float]:
    """Candles/s of the store's paged fetch and of a bare ccxt paging loop, same range: the
    median of ``rounds`` interleaved rounds, after one unmeasured pass that warms the emulator
    (it makes its candles on first request) and both paths alike."""
    from realtrade_core.emulator.server import Emulator
    from realtrade_core.store import get_store

    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=candles + 1, seed=4) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config={"enableRateLimit": False})
        store.start()
        tf = store.timeframe("1m")
        last = (store.server_time() // tf.ms) * tf.ms - tf.ms
        since = last - (candles - 1) * tf.ms

        def ours() -> int:
            return len(store.fetch_closed_candles("BTC/USDT", tf, since=since, until=last))

        def bare() -> int:
            client, page, cursor, count = store.client, int(store.max_page), since, 0
            while cursor <= last:
                batch = client.fetch_ohlcv("BTC/USDT", "1m", since=cursor, limit=page)
                batch = [r for r in batch if r[0] <= last]
                if not batch:
                    break
                count += len(batch)
                cursor = batch[-1][0] + tf.ms
            return count

        def rate(fetch: Callable[[], int]) -> float:
            start = time.perf_counter()
            count = fetch()
            if count != candles:
                raise RuntimeError(f"history fetch returned {count} candles, not {candles}")
            return count / (time.perf_counter() - start)

        bare()  # warm-up
        ours_rates, bare_rates = [], []
        for _ in range(rounds):
            ours_rates.append(rate(ours))
            bare_rates.append(rate(bare))
        store.stop()
    return statistics.median(ours_rates), statistics.median(bare_rates)


RSS_SCRIPT = """
import sys, threading
import backtrader as bt, ccxt, websocket, aiohttp
from realtrade_core.emulator.server import Emulator
from realtrade_core import load_exchange

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

exchange, live = sys.argv[1], sys.argv[2] == "live"
load_exchange(exchange)
with Emulator(exchange, symbols=("BTC/USDT",), speed=600.0, history=500, seed=2) as emulator:
    if live:
        from realtrade_core.store import get_store

        class FirstLiveBar(bt.Strategy):
            def notify_data(self, data, status, *args, **kwargs):
                self.live = data._getstatusname(status) == "LIVE"

            def next(self):
                if getattr(self, "live", False):
                    self.env.runstop()

        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config={"enableRateLimit": False})
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=500))
        cerebro.addstrategy(FirstLiveBar)
        cerebro.run()
        print(rss_mb())
        store.stop()
    else:
        print(rss_mb())
"""


def rss_after_start(exchange: str) -> tuple[float, float]:
    """MB resident after the first live bar (500 bars of history), and for the baseline process."""
    out = {}
    for mode in ("live", "bare"):
        done = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, exchange, mode], check=True, capture_output=True, text=True, timeout=120
        )
        out[mode] = float(done.stdout.split()[-1])
    return out["live"], out["bare"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--candles", type=int, default=5000)
    parser.add_argument("--exchange", default="binance", choices=("binance", "bybit"))
    args = parser.parse_args()
    cold = cold_start(args.runs)
    print(f"cold start, median of {args.runs} runs: " + ", ".join(f"{k} {v:.1f} ms" for k, v in cold.items()))
    ours, bare = history_fetch(args.exchange, args.candles)
    print(f"history fetch: {ours:,.0f} candles/s (bare ccxt paging {bare:,.0f} candles/s)")
    live, base = rss_after_start(args.exchange)
    print(f"RSS after the first live bar: {live:.0f} MB (libraries + emulator alone {base:.0f} MB)")


if __name__ == "__main__":
    main()
