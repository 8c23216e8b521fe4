"""Live order round trips through realtrade's broker, beside bare ccxt in the same run.

1. realtrade: a strategy on a live broker sends a market order, and the next one as soon as
   ``notify_order`` reports the previous one Completed. Each round trip is timed from
   ``buy()`` / ``sell()`` to that notification: journal write, order-sender thread, ccxt REST
   request, the fill on the private WebSocket stream, cerebro's loop applying it.
2. Baseline: bare ``ccxt.create_order`` on the same emulator, timed from the call to its
   answer (REST only: no journal, no stream, nothing applied to a position).

ccxt's rate limiter is off on both sides (``enableRateLimit=False``).

The emulator's clock stands still, so every market order fills at once at the same price.

    python bench/bench_broker.py [--exchange binance|bybit] [--orders 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import backtrader as bt

from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store

SIZE = 0.001
#: ccxt's own throttle spaces requests 50-100 ms apart for limits the emulator does not enforce:
#: off on both sides, so the rows compare the paths, not the throttle.
NO_THROTTLE = {"enableRateLimit": False}


class RoundTrips(bt.Strategy):
    params = (("orders", 200), ("done", None))

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sent_at = 0.0
        self.started = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if data._getstatusname(status) == "LIVE" and not self.started:
            self.started = True
            self.send()

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        if len(self.times) % 2 == 0:
            self.buy(size=SIZE)
        else:
            self.sell(size=SIZE)

    def notify_order(self, order) -> None:
        if order.status == order.Completed:
            self.times.append(time.perf_counter() - self.sent_at)
            if len(self.times) < self.p.orders:
                self.send()
            else:
                self.p.done.set()
        elif order.status in (order.Rejected, order.Canceled, order.Margin, order.Expired):
            raise RuntimeError(f"order ended {order.getstatusname()}: {order.info.get('reject_reason')}")


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms   ({len(ms)} orders)"


def bench_realtrade(exchange: str, orders: int) -> list[float]:
    balances = {"USDT": 1_000_000, "BTC": 10}
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50, seed=3, balances=balances) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        done = threading.Event()
        with tempfile.TemporaryDirectory() as tmp:
            cerebro = bt.Cerebro(quicknotify=True)  # notifications as they happen, not at the next bar
            cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=1, qcheck=0.001))
            cerebro.setbroker(store.getbroker(mode="live", journal=str(Path(tmp) / "journal.sqlite3")))
            cerebro.addstrategy(RoundTrips, orders=orders, done=done)

            def stop_when_done() -> None:
                done.wait(300)
                cerebro.runstop()

            threading.Thread(target=stop_when_done, daemon=True).start()
            (strategy,) = cerebro.run()
        store.stop()
    return strategy.times


def bench_ccxt(exchange: str, orders: int) -> list[float]:
    balances = {"USDT": 1_000_000, "BTC": 10}
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50, seed=3, balances=balances) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        store.start()  # attaches the emulator and loads the markets
        client = store.client
        times = []
        for i in range(orders):
            start = time.perf_counter()
            client.create_order("BTC/USDT", "market", "buy" if i % 2 == 0 else "sell", SIZE)
            times.append(time.perf_counter() - start)
        store.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="binance", choices=("binance", "bybit"))
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    ours = bench_realtrade(args.exchange, args.orders)
    theirs = bench_ccxt(args.exchange, args.orders)
    print(f"{args.exchange} market order round trips on the emulator (127.0.0.1)")
    print(f"  realtrade live broker, buy() -> notify_order(Completed): {percentiles(ours)}")
    print(f"  bare ccxt create_order, call -> answer (baseline):     {percentiles(theirs)}")


if __name__ == "__main__":
    main()
