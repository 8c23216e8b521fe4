"""Live order round trips through realtrade's broker, beside bare ccxt in the same run.

1. realtrade: a strategy on a live broker sends a market order, and the next one as soon as
   ``notify_order`` reports the previous one Completed. Each round trip is timed from
   ``buy()`` / ``sell()`` to that notification: journal write, order-sender thread, ccxt REST
   request, the fill on the private WebSocket stream, cerebro's loop applying it.
2. Baseline: bare ``ccxt.create_order`` on the same emulator, timed from the call to its
   answer (REST only: no journal, no stream, nothing applied to a position).

ccxt's rate limiter is off on both sides (``enableRateLimit=False``).

The emulator's clock stands still, so every market order fills at once at the same price.
``--resting N`` first leaves N limit buys far below the market on the book, through the same
broker, and times the round trips with them there: a broker whose work grows with the orders
it tracks shows it here (the run without them is the baseline).

    python bench/bench_broker.py [--exchange binance|bybit] [--orders 200] [--resting 200]
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
    params = (("orders", 200), ("resting", 0), ("done", None))

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sent_at = 0.0
        self.started = False
        self.resting: list[bt.Order] = []
        self.resting_refs: set[int] = set()
        self.accepted = 0

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if data._getstatusname(status) == "LIVE" and not self.started:
            self.started = True
            # Half the last price: far from the market, within the exchange's price band.
            far = round(self.data.close[0] * 0.5, 2)
            self.resting = [self.buy(size=SIZE, exectype=bt.Order.Limit, price=far) for _ in range(self.p.resting)]
            self.resting_refs = {o.ref for o in self.resting}
            if not self.resting:
                self.send()

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        if len(self.times) % 2 == 0:
            self.buy(size=SIZE)
        else:
            self.sell(size=SIZE)

    def notify_order(self, order) -> None:
        if order.ref in self.resting_refs:
            if order.status == order.Accepted:
                self.accepted += 1
                if self.accepted == len(self.resting):  # all on the book: the round trips begin
                    self.send()
            elif order.status != order.Submitted:
                raise RuntimeError(f"a resting order ended {order.getstatusname()}: {order.info.get('reject_reason')}")
            return
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


def bench_realtrade(exchange: str, orders: int, resting: int = 0, qcheck: float | None = None) -> list[float]:
    balances = {"USDT": 1_000_000, "BTC": 10}
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50, seed=3, balances=balances) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        done = threading.Event()
        with tempfile.TemporaryDirectory() as tmp:
            cerebro = bt.Cerebro(quicknotify=True)  # notifications as they happen, not at the next bar
            # The feed's default qcheck (0.5 s) unless asked: the broker wakes cerebro's loop itself
            # when an answer or a fill arrives.
            wait = {} if qcheck is None else {"qcheck": qcheck}
            cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=1, **wait))
            cerebro.setbroker(store.getbroker(mode="live", journal=str(Path(tmp) / "journal.sqlite3")))
            cerebro.addstrategy(RoundTrips, orders=orders, resting=resting, done=done)

            def stop_when_done() -> None:
                done.wait(300)
                cerebro.runstop()

            threading.Thread(target=stop_when_done, daemon=True).start()
            (strategy,) = cerebro.run()
        store.stop()
    return strategy.times


def bench_ccxt(exchange: str, orders: int, resting: int = 0) -> list[float]:
    balances = {"USDT": 1_000_000, "BTC": 10}
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50, seed=3, balances=balances) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        store.start()  # attaches the emulator and loads the markets
        client = store.client
        far = round(float(client.fetch_ticker("BTC/USDT")["last"]) * 0.5, 2)
        for _ in range(resting):
            client.create_order("BTC/USDT", "limit", "buy", SIZE, far)
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
    parser.add_argument("--resting", type=int, default=200, help="limit orders left on the book for the second run")
    args = parser.parse_args()
    ours = bench_realtrade(args.exchange, args.orders)
    crowded = bench_realtrade(args.exchange, args.orders, args.resting) if args.resting else []
    theirs = bench_ccxt(args.exchange, args.orders)
    theirs_crowded = bench_ccxt(args.exchange, args.orders, args.resting) if args.resting else []
    print(f"{args.exchange} market order round trips on the emulator (127.0.0.1)")
    print(f"  realtrade live broker, buy() -> notify_order(Completed): {percentiles(ours)}")
    if crowded:
        print(f"  the same with {args.resting} resting limit orders:         {percentiles(crowded)}")
    print(f"  bare ccxt create_order, call -> answer (baseline):     {percentiles(theirs)}")
    if theirs_crowded:
        print(f"  the same with {args.resting} resting limit orders:         {percentiles(theirs_crowded)}")


if __name__ == "__main__":
    main()
